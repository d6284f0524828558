//! Dynamic process management (`process_management_mode = dynamic`, Pgpool-II 4.4): the
//! main process keeps between `min_spare_children` and `max_spare_children` children
//! waiting for a client, never more than `num_init_children` in all. Every cycle (two
//! seconds) it counts the idle children: too few, and it forks the missing ones plus a
//! quarter of `max_spare_children`; too many for long enough (how long, and how many at
//! once, is `process_management_strategy`: lazy, gentle or aggressive), and it asks the
//! idle children holding the fewest pooled connections to exit. The decision is a pure
//! function of the slots' state ([`Keeper::plan`]); the supervisor carries it out.

use std::sync::atomic::Ordering;
use std::time::Duration;

use config::{Config, ProcessManagementMode, ProcessManagementStrategy};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shmem::{ChildState, Shmem};

/// How often the spare count is looked at.
pub const CYCLE: Duration = Duration::from_secs(2);

/// What the supervisor sees of one child slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlotView {
    /// A child process runs in the slot.
    pub running: bool,
    /// It serves a client now.
    pub busy: bool,
    /// Pooled backend connection sets it holds.
    pub pooled: usize,
}

/// What to do this cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Nothing,
    /// Fork a child into each of these (empty) slots.
    Spawn(Vec<usize>),
    /// Ask the idle children of these slots to exit.
    Retire(Vec<usize>),
}

/// Scale-down pacing of a strategy: cycles with too many spares before the first
/// retirement, cycles between retirements, children retired at once.
fn pacing(strategy: ProcessManagementStrategy) -> (u32, u32, usize) {
    match strategy {
        ProcessManagementStrategy::Aggressive => (25, 2, 8),
        ProcessManagementStrategy::Lazy => (150, 10, 3),
        ProcessManagementStrategy::Gentle => (60, 5, 3),
    }
}

/// The state kept between cycles.
#[derive(Debug, Default)]
pub struct Keeper {
    /// Consecutive cycles with more idle children than max_spare_children.
    surplus_cycles: u32,
}

impl Keeper {
    /// The children to start with: max_spare_children for the aggressive strategy,
    /// min_spare_children otherwise, at most `total`.
    pub fn initial(
        strategy: ProcessManagementStrategy,
        min: usize,
        max: usize,
        total: usize,
    ) -> usize {
        let n = if strategy == ProcessManagementStrategy::Aggressive {
            max
        } else {
            min
        };
        n.clamp(1, total.max(1))
    }

    /// One cycle's decision for `slots` (index = slot, `slots.len()` = num_init_children).
    pub fn plan(
        &mut self,
        strategy: ProcessManagementStrategy,
        min: usize,
        max: usize,
        slots: &[SlotView],
    ) -> Plan {
        let running = slots.iter().filter(|s| s.running).count();
        let busy = slots.iter().filter(|s| s.running && s.busy).count();
        let idle = running - busy;
        if idle > max {
            self.surplus_cycles = self.surplus_cycles.saturating_add(1);
            let (before, between, at_once) = pacing(strategy);
            if self.surplus_cycles < before || !self.surplus_cycles.is_multiple_of(between) {
                return Plan::Nothing;
            }
            let want = (idle - max).min(at_once);
            let mut idle_slots: Vec<usize> = (0..slots.len())
                .filter(|&i| slots[i].running && !slots[i].busy)
                .collect();
            if strategy != ProcessManagementStrategy::Aggressive {
                // the ones with the fewest pooled connections go first
                idle_slots.sort_by_key(|&i| slots[i].pooled);
            }
            idle_slots.truncate(want);
            return Plan::Retire(idle_slots);
        }
        self.surplus_cycles = 0;
        if idle >= min {
            return Plan::Nothing;
        }
        let room = slots.len() - running;
        let want = (min - idle + max / 4).min(room);
        let empty: Vec<usize> = (0..slots.len())
            .filter(|&i| !slots[i].running)
            .take(want)
            .collect();
        if empty.is_empty() {
            Plan::Nothing
        } else {
            Plan::Spawn(empty)
        }
    }
}

/// One cycle of the main process: in dynamic mode retire surplus idle children (SIGTERM:
/// a child exits once it has no client) and return the slots to fork a child into; in
/// static mode return every empty slot (left so by a switch from dynamic mode, or a
/// failed fork).
pub fn cycle(shm: &Shmem, cfg: &Config, keeper: &mut Keeper) -> Vec<usize> {
    let n = shm.layout().num_children;
    let max_pool = shm.layout().max_pool;
    let slots: Vec<SlotView> = (0..n)
        .map(|i| {
            let c = shm.child(i);
            SlotView {
                running: c.pid.load(Ordering::Acquire) != 0,
                busy: c.state() == ChildState::Active,
                pooled: (0..max_pool)
                    .filter(|&s| shm.pool(i, s).major.load(Ordering::Relaxed) != 0)
                    .count(),
            }
        })
        .collect();
    if cfg.process_management_mode != ProcessManagementMode::Dynamic {
        return (0..n).filter(|&i| !slots[i].running).collect();
    }
    match keeper.plan(
        cfg.process_management_strategy,
        cfg.min_spare_children as usize,
        cfg.max_spare_children as usize,
        &slots,
    ) {
        Plan::Nothing => Vec::new(),
        Plan::Spawn(v) => v,
        Plan::Retire(v) => {
            for i in v {
                let c = shm.child(i);
                let pid = c.pid.load(Ordering::Acquire);
                if pid != 0 && c.state() != ChildState::Active {
                    log::debug!(
                        "asking child process with pid:{pid} to kill itself to satisfy max_spare_children\nDETAIL:  child process has {} pooled connections",
                        slots[i].pooled
                    );
                    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
                }
            }
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProcessManagementStrategy::{Aggressive, Gentle, Lazy};

    fn slots(running: usize, busy: usize, total: usize) -> Vec<SlotView> {
        (0..total)
            .map(|i| SlotView {
                running: i < running,
                busy: i < busy,
                pooled: 0,
            })
            .collect()
    }

    #[test]
    fn starts_with_min_or_max() {
        assert_eq!(Keeper::initial(Gentle, 5, 10, 32), 5);
        assert_eq!(Keeper::initial(Lazy, 5, 10, 32), 5);
        assert_eq!(Keeper::initial(Aggressive, 5, 10, 32), 10);
        assert_eq!(Keeper::initial(Aggressive, 5, 10, 4), 4);
    }

    #[test]
    fn spawns_below_min_up_to_the_ceiling() {
        let mut k = Keeper::default();
        // 5 running, all busy: 0 idle < min 2 -> 2 + 8/4 = 4 more
        assert_eq!(
            k.plan(Gentle, 2, 8, &slots(5, 5, 20)),
            Plan::Spawn(vec![5, 6, 7, 8])
        );
        // only 2 slots left
        assert_eq!(
            k.plan(Gentle, 2, 8, &slots(18, 18, 20)),
            Plan::Spawn(vec![18, 19])
        );
        // full
        assert_eq!(k.plan(Gentle, 2, 8, &slots(20, 20, 20)), Plan::Nothing);
        // enough idle
        assert_eq!(k.plan(Gentle, 2, 8, &slots(6, 3, 20)), Plan::Nothing);
    }

    #[test]
    fn retires_after_the_strategy_waited() {
        let mut k = Keeper::default();
        let s = slots(15, 0, 20); // 15 idle > max 4
        for _ in 0..25 {
            assert_eq!(k.plan(Aggressive, 2, 4, &s), Plan::Nothing);
        }
        // 26th cycle (at least 25, and every 2nd): 11 too many, at most 8 at once
        assert_eq!(
            k.plan(Aggressive, 2, 4, &s),
            Plan::Retire(vec![0, 1, 2, 3, 4, 5, 6, 7])
        );
        assert_eq!(k.plan(Aggressive, 2, 4, &s), Plan::Nothing);
        assert!(matches!(k.plan(Aggressive, 2, 4, &s), Plan::Retire(v) if v.len() == 8));
        // a cycle within bounds resets the wait
        assert_eq!(k.plan(Aggressive, 2, 4, &slots(4, 0, 20)), Plan::Nothing);
        assert_eq!(k.plan(Aggressive, 2, 4, &s), Plan::Nothing);
    }

    #[test]
    fn gentle_retires_the_least_pooled_three() {
        let mut k = Keeper::default();
        let mut s = slots(8, 1, 10);
        for (i, v) in s.iter_mut().enumerate() {
            v.pooled = 10 - i;
        }
        let mut last = Plan::Nothing;
        for _ in 0..60 {
            last = k.plan(Gentle, 1, 2, &s);
        }
        // 7 idle, max 2: 5 too many, 3 at once, the least pooled (slots 7, 6, 5)
        assert_eq!(last, Plan::Retire(vec![7, 6, 5]));
    }
}
