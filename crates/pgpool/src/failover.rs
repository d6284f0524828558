//! Failover, failback and promotion, executed by the main process alone from the
//! request queue in shared memory: mark the node, run failover_command /
//! failback_command / follow_primary_command with Pgpool-II's % escapes, find the new
//! primary (polling until it has left recovery, bounded by
//! search_primary_node_timeout), persist pgpool_status and tell the children.

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use config::{ClusteringMode, Config};
use shmem::{
    BackendRole, BackendStatus, Request, RequestKind, Shmem, REQUEST_FROM_PCP, REQUEST_NO_COMMANDS,
    REQUEST_SWITCHOVER,
};

use crate::backend::Secret;
use crate::primary;

/// Values for the % escapes of failover/failback/follow_primary commands.
#[derive(Debug, Default, Clone)]
pub struct Escapes {
    pub failed_node: i32,
    pub failed_host: String,
    pub failed_port: String,
    pub failed_dir: String,
    pub new_main: i32,
    pub new_main_host: String,
    pub new_main_port: String,
    pub new_main_dir: String,
    pub old_main: i32,
    pub old_primary: i32,
    pub old_primary_host: String,
    pub old_primary_port: String,
}

impl Escapes {
    fn node_fields(cfg: &Config, node: i32) -> (String, String, String) {
        match usize::try_from(node).ok().and_then(|n| cfg.backends.get(n)) {
            Some(b) => (
                b.hostname.clone(),
                b.port.to_string(),
                b.data_directory.clone(),
            ),
            None => (String::new(), String::new(), String::new()),
        }
    }

    pub fn new(cfg: &Config, failed: i32, new_main: i32, old_main: i32, old_primary: i32) -> Self {
        let (fh, fp, fd) = Self::node_fields(cfg, failed);
        let (mh, mp, md) = Self::node_fields(cfg, new_main);
        let (ph, pp, _) = Self::node_fields(cfg, old_primary);
        Escapes {
            failed_node: failed,
            failed_host: fh,
            failed_port: fp,
            failed_dir: fd,
            new_main,
            new_main_host: mh,
            new_main_port: mp,
            new_main_dir: md,
            old_main,
            old_primary,
            old_primary_host: ph,
            old_primary_port: pp,
        }
    }

    /// Expands `%d %h %p %D %m %H %M %P %r %R %N %S %%` in `template`.
    pub fn expand(&self, template: &str) -> String {
        expand_percent(template, |c| {
            Some(match c {
                'd' => self.failed_node.to_string(),
                'h' => self.failed_host.clone(),
                'p' => self.failed_port.clone(),
                'D' => self.failed_dir.clone(),
                'm' => self.new_main.to_string(),
                'H' => self.new_main_host.clone(),
                'M' => self.old_main.to_string(),
                'P' => self.old_primary.to_string(),
                'r' => self.new_main_port.clone(),
                'R' => self.new_main_dir.clone(),
                'N' => self.old_primary_host.clone(),
                'S' => self.old_primary_port.clone(),
                _ => return None,
            })
        })
    }
}

/// Replaces `%c` in a command template by `value(c)`; `%%` is a percent sign, and an
/// escape `value` does not know stays as written (Pgpool-II's command lines).
pub fn expand_percent(template: &str, value: impl Fn(char) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') | None => out.push('%'),
            Some(e) => match value(e) {
                Some(v) => out.push_str(&v),
                None => {
                    out.push('%');
                    out.push(e);
                }
            },
        }
    }
    out
}

/// Runs a command line through /bin/sh and logs how it ended.
fn run_command(what: &str, line: &str) -> bool {
    if line.trim().is_empty() {
        return true;
    }
    log::info!("execute command: {line}");
    match Command::new("/bin/sh").arg("-c").arg(line).status() {
        Ok(s) if s.success() => true,
        Ok(s) => {
            log::warn!("{what} exited with {s}");
            false
        }
        Err(e) => {
            log::warn!("could not run {what}: {e}");
            false
        }
    }
}

pub struct ClusterOps<'a> {
    pub shm: &'a Shmem,
    pub secret: Option<Secret>,
    /// The follow_primary_command lines of each follow the requests called for, in
    /// order: the supervisor runs them in a process of their own, one follow at a time.
    pub follows: std::cell::RefCell<Vec<Vec<String>>>,
}

/// Runs one follow's follow_primary_command lines (in the follow primary process).
pub fn run_follow(lines: &[String]) {
    for line in lines {
        run_command("follow_primary_command", line);
    }
}

fn replication_mode(cfg: &Config) -> bool {
    matches!(
        cfg.backend_clustering_mode,
        ClusteringMode::StreamingReplication | ClusteringMode::LogicalReplication
    )
}

impl ClusterOps<'_> {
    fn alive(&self, node: usize) -> bool {
        self.shm.backend(node).status().is_alive()
    }

    fn first_alive(&self, cfg: &Config) -> i32 {
        (0..cfg.backends.len())
            .find(|&i| self.alive(i))
            .map_or(-1, |i| i as i32)
    }

    fn primary(&self) -> i32 {
        self.shm.cluster().primary_node_id()
    }

    /// Handles queued requests; returns true when node states changed.
    pub fn handle(&self, cfg: &Config, requests: Vec<Request>) -> bool {
        let mut changed = false;
        for r in requests {
            let node = r.node;
            let valid = usize::try_from(node)
                .ok()
                .filter(|&n| n < cfg.backends.len());
            let Some(n) = valid else {
                log::warn!("ignoring {:?} request for invalid node id {node}", r.kind);
                continue;
            };
            changed |= match r.kind {
                RequestKind::Detach => self.detach(cfg, n, r.flags),
                RequestKind::Quarantine => self.mark_down(cfg, n),
                RequestKind::Attach => self.attach(cfg, n, r.flags),
                RequestKind::Promote => self.promote(cfg, n, r.flags & REQUEST_SWITCHOVER != 0),
            };
            self.shm
                .requests()
                .done_seq
                .fetch_max(r.seq, Ordering::AcqRel);
        }
        changed
    }

    /// Quarantine: down here only, no failover_command (the watchdog cluster did not
    /// confirm the failure); health checks go on and lift it.
    fn mark_down(&self, cfg: &Config, node: usize) -> bool {
        if !self.alive(node) {
            return false;
        }
        log::info!("node {node} is quarantined: down on this pgpool only, no failover_command");
        self.shm
            .backend(node)
            .set_quarantine(true, BackendStatus::Down);
        self.shm
            .cluster()
            .main_node_id
            .store(self.first_alive(cfg), Ordering::Release);
        true
    }

    /// Failover of `node`.
    fn detach(&self, cfg: &Config, node: usize, flags: u32) -> bool {
        let b = &cfg.backends[node];
        let quarantined = self.shm.backend(node).quarantined();
        if !self.alive(node) && !quarantined {
            log::info!("failover request for node {node} ignored: node is already down");
            return false;
        }
        let run_commands = flags & REQUEST_NO_COMMANDS == 0;
        if b.flag.disallow_to_failover && flags & REQUEST_FROM_PCP == 0 {
            log::warn!("node {node} has DISALLOW_TO_FAILOVER: failover request ignored");
            return false;
        }
        let others_alive = (0..cfg.backends.len())
            .filter(|&i| i != node && self.alive(i))
            .count();
        if others_alive == 0 && flags & REQUEST_FROM_PCP == 0 {
            // Detaching the last node helps nobody: clients could not connect at all.
            log::warn!("node {node} is the last live node: failover request ignored");
            // Pgpool-II's words for a failover that detached nothing (scripts grep them).
            log::info!("failover: no backends are degenerated");
            return false;
        }
        let started = Instant::now();
        let old_primary = self.primary();
        let old_main = self.shm.cluster().main_node_id.load(Ordering::Acquire);
        log::info!(
            "starting degeneration. shutdown host {}({})",
            b.hostname,
            b.port
        );
        self.shm
            .backend(node)
            .set_quarantine(false, BackendStatus::Down);
        self.shm.backend(node).pg_up.store(0, Ordering::Relaxed);
        self.shm
            .backend(node)
            .admin_detached
            .store(u8::from(flags & REQUEST_FROM_PCP != 0), Ordering::Release);
        let new_main = self.first_alive(cfg);
        self.shm
            .cluster()
            .main_node_id
            .store(new_main, Ordering::Release);
        let primary_failed = replication_mode(cfg) && old_primary == node as i32;
        let esc = Escapes::new(cfg, node as i32, new_main, old_main, old_primary);
        if run_commands && !cfg.failover_command.is_empty() {
            run_command("failover_command", &esc.expand(&cfg.failover_command));
        }
        if primary_failed {
            self.shm.cluster().set_primary(None);
            self.shm.backend(node).set_role(BackendRole::Unknown);
            let found = self.search_primary(cfg);
            if let Some(p) = found {
                log::info!("find_primary_node: primary node is {p}");
                if run_commands {
                    self.follow_primary(cfg, p, old_main, old_primary);
                }
            } else {
                log::warn!("find_primary_node: no primary node found after failover");
            }
        }
        log::info!(
            "failover done. shutdown host {}({}) in {:.3} s",
            b.hostname,
            b.port,
            started.elapsed().as_secs_f64()
        );
        true
    }

    /// Runs follow_primary_command for every node but the new primary.
    fn follow_primary(&self, cfg: &Config, new_primary: usize, old_main: i32, old_primary: i32) {
        if cfg.follow_primary_command.is_empty() {
            return;
        }
        // Every configured node but the new primary, those already down included (a
        // standby detached earlier comes back once it follows), as Pgpool-II.
        let followers: Vec<usize> = (0..cfg.backends.len())
            .filter(|&other| other != new_primary && cfg.backends[other].configured)
            .collect();
        let lines: Vec<String> = followers
            .iter()
            .map(|&other| {
                Escapes::new(cfg, other as i32, new_primary as i32, old_main, old_primary)
                    .expand(&cfg.follow_primary_command)
            })
            .collect();
        // As Pgpool-II: a standby is out of service until the command has made it follow
        // the new primary and attached it again (pcp_attach_node / pcp_recovery_node).
        for &other in &followers {
            if self.alive(other) {
                let b = &cfg.backends[other];
                log::info!(
                    "starting follow degeneration. shutdown host {}({})",
                    b.hostname,
                    b.port
                );
                self.shm.backend(other).set_status(BackendStatus::Down);
            }
        }
        self.shm
            .cluster()
            .main_node_id
            .store(self.first_alive(cfg), Ordering::Release);
        self.follows.borrow_mut().push(lines);
    }

    /// Records `node` as the primary and the other live nodes as its standbys.
    fn set_primary(&self, cfg: &Config, node: usize) {
        self.shm.cluster().set_primary(Some(node));
        for other in 0..cfg.backends.len() {
            if other != node && !self.alive(other) {
                continue;
            }
            let role = if other == node {
                BackendRole::Primary
            } else {
                BackendRole::Standby
            };
            let st = self.shm.backend(other);
            st.set_roles(role);
        }
    }

    /// Polls live nodes until one is out of recovery (the new primary).
    fn search_primary(&self, cfg: &Config) -> Option<usize> {
        let timeout = cfg.search_primary_node_timeout;
        let started = Instant::now();
        loop {
            for node in 0..cfg.backends.len() {
                if !self.alive(node) {
                    continue;
                }
                let is_primary = cfg.backends[node].flag.always_primary
                    || matches!(
                        primary::is_in_recovery(cfg, node, self.secret.clone()),
                        Ok(false)
                    );
                if is_primary {
                    self.set_primary(cfg, node);
                    return Some(node);
                }
            }
            if timeout > 0 && started.elapsed() >= Duration::from_secs(timeout as u64) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Failback: the node is usable again.
    fn attach(&self, cfg: &Config, node: usize, flags: u32) -> bool {
        if self.alive(node) {
            log::info!("node {node} is already attached");
            return false;
        }
        let b = &cfg.backends[node];
        let state = self.shm.backend(node);
        if state.quarantined() {
            // Pgpool-II's words: the node returns without failback_command.
            log::info!(
                "failback request is changed to update status request because node_id: {node} was quarantined"
            );
            state.set_quarantine(false, BackendStatus::ConnectWait);
            let main = self.first_alive(cfg);
            self.shm
                .cluster()
                .main_node_id
                .store(main, Ordering::Release);
            return true;
        }
        self.shm
            .backend(node)
            .admin_detached
            .store(0, Ordering::Release);
        self.shm
            .backend(node)
            .set_status(BackendStatus::ConnectWait);
        let main = self.first_alive(cfg);
        self.shm
            .cluster()
            .main_node_id
            .store(main, Ordering::Release);
        if replication_mode(cfg) {
            let role = match primary::is_in_recovery(cfg, node, self.secret.clone()) {
                Ok(false) if self.primary() < 0 => {
                    self.shm.cluster().set_primary(Some(node));
                    BackendRole::Primary
                }
                Ok(false) => {
                    log::warn!(
                        "attached node {node} is not in recovery although node {} is the primary",
                        self.primary()
                    );
                    BackendRole::Standby
                }
                Ok(true) => BackendRole::Standby,
                Err(e) => {
                    log::warn!("could not determine the role of attached node {node}: {e}");
                    BackendRole::Unknown
                }
            };
            self.shm.backend(node).set_role(role);
            self.shm.backend(node).set_pg_role(role);
        }
        let esc = Escapes::new(cfg, node as i32, main, main, self.primary());
        if flags & REQUEST_NO_COMMANDS == 0 && !cfg.failback_command.is_empty() {
            run_command("failback_command", &esc.expand(&cfg.failback_command));
        }
        log::info!("failback done. attach host {}({})", b.hostname, b.port);
        true
    }

    /// pcp_promote_node: make `node` the primary in pgpool's view; with switchover,
    /// fail over the current primary with `node` as the candidate.
    fn promote(&self, cfg: &Config, node: usize, switchover: bool) -> bool {
        if !self.alive(node) {
            log::warn!("promote request for node {node} ignored: node is down");
            return false;
        }
        let old = self.primary();
        if old == node as i32 {
            log::info!("node {node} is already the primary");
            return false;
        }
        if switchover && old >= 0 {
            let old_main = self.shm.cluster().main_node_id.load(Ordering::Acquire);
            let esc = Escapes::new(cfg, old, node as i32, old_main, old);
            self.shm
                .backend(old as usize)
                .set_status(BackendStatus::Down);
            self.shm
                .cluster()
                .main_node_id
                .store(self.first_alive(cfg), Ordering::Release);
            if !cfg.failover_command.is_empty() {
                run_command("failover_command", &esc.expand(&cfg.failover_command));
            }
            let found = self.search_primary(cfg);
            log::info!("switchover done: primary is {found:?}");
            // The old primary follows the new one too (follow_primary.sh rebuilds and
            // attaches it), as in Pgpool-II.
            if let Some(p) = found {
                self.follow_primary(cfg, p, old_main, old);
            }
            return true;
        }
        self.set_primary(cfg, node);
        log::info!("node {node} promoted to primary (was {old})");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_expand() {
        let e = Escapes {
            failed_node: 0,
            failed_host: "h0".into(),
            failed_port: "5432".into(),
            failed_dir: "/d0".into(),
            new_main: 1,
            new_main_host: "h1".into(),
            new_main_port: "5433".into(),
            new_main_dir: "/d1".into(),
            old_main: 0,
            old_primary: 0,
            old_primary_host: "h0".into(),
            old_primary_port: "5432".into(),
        };
        assert_eq!(
            e.expand("f.sh %d %h %p %D %m %H %M %P %r %R %N %S %% %x"),
            "f.sh 0 h0 5432 /d0 1 h1 0 0 5433 /d1 h0 5432 % %x"
        );
    }
}
