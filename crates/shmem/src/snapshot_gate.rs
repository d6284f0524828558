//! Snapshot isolation mode's ordering across children: on every node, a transaction's
//! snapshot must be taken on the same side of every other transaction's commit, or the
//! nodes see different data and their writes diverge. A child taking snapshots and a child
//! committing exclude each other; any number of either kind may proceed together. Each
//! child marks its own slot and then looks at the others (sequentially consistent, as in
//! Dekker's algorithm), so no lock is ever held by a process that died: the main process
//! clears a dead child's mark.

use std::sync::atomic::Ordering;

use crate::segment::Shmem;

/// What a child is about to do on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SnapshotStep {
    /// The first statement of a transaction (it takes the snapshot).
    Snapshot = 1,
    /// COMMIT (or a statement outside a transaction, which commits as it ends).
    Commit = 2,
}

impl SnapshotStep {
    fn other(self) -> u8 {
        match self {
            SnapshotStep::Snapshot => SnapshotStep::Commit as u8,
            SnapshotStep::Commit => SnapshotStep::Snapshot as u8,
        }
    }
}

impl Shmem {
    fn others_doing(&self, me: usize, step: u8) -> bool {
        (0..self.layout().num_children)
            .any(|i| i != me && self.child(i).snapshot_step.load(Ordering::SeqCst) == step)
    }

    /// Waits until no other child does the opposite step, and marks child `me` as doing
    /// `step` (until [`Shmem::snapshot_step_done`]).
    pub fn snapshot_step_begin(&self, me: usize, step: SnapshotStep) {
        let mine = &self.child(me).snapshot_step;
        let mut pause = std::time::Duration::from_micros(50);
        loop {
            if !self.others_doing(me, step.other()) {
                mine.store(step as u8, Ordering::SeqCst);
                if !self.others_doing(me, step.other()) {
                    return;
                }
                mine.store(0, Ordering::SeqCst);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(2));
        }
    }

    pub fn snapshot_step_done(&self, me: usize) {
        self.child(me).snapshot_step.store(0, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Layout;

    #[test]
    fn opposite_steps_exclude_each_other() {
        let shm = Shmem::create(Layout {
            num_children: 3,
            max_pool: 1,
        })
        .expect("shmem");
        shm.snapshot_step_begin(0, SnapshotStep::Snapshot);
        // The same step proceeds beside it.
        shm.snapshot_step_begin(1, SnapshotStep::Snapshot);
        shm.snapshot_step_done(1);
        // SAFETY: test-only fork; the child only touches atomics and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            shm.snapshot_step_begin(2, SnapshotStep::Commit);
            let ok = shm.child(0).snapshot_step.load(Ordering::SeqCst) == 0;
            shm.snapshot_step_done(2);
            // SAFETY: ends the forked test child without running destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(
            shm.child(2).snapshot_step.load(Ordering::SeqCst),
            0,
            "commit waited"
        );
        shm.snapshot_step_done(0);
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(status, 0);
    }
}
