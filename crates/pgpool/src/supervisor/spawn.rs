//! How the main process forks each kind of process it supervises (pooled children,
//! one health check per backend node, the PCP server, the streaming-replication check,
//! the query cache's change feed, the watchdog, follow primary processes), and how it
//! reaps them and forks them again. Each forked process closes the client ports it does
//! not serve.

use std::sync::atomic::Ordering;

use super::{Proc, Supervisor};
use crate::child::{self, ChildSetup};
use crate::sys;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

impl Supervisor<'_> {
    pub(super) fn spawn_child(&mut self, index: usize) {
        let hba = if self.cfg.enable_pool_hba {
            match config::hba::load_hba(&crate::hba_path(&self.cfg)) {
                Ok(h) => h,
                Err(e) => {
                    log::error!("{e}");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let passwd = crate::load_passwd(&self.cfg).unwrap_or_else(|e| {
            log::error!("{e}");
            Default::default()
        });
        match sys::fork() {
            Ok(Some(pid)) => {
                self.shm
                    .child(index)
                    .pid
                    .store(pid.as_raw(), Ordering::Release);
                self.procs.insert(pid.as_raw(), Proc::Child(index));
            }
            Ok(None) => {
                let setup = ChildSetup {
                    index,
                    cfg: self.cfg.clone(),
                    shm: self.shm,
                    // With the cache off the storage may still hold the shared relation cache
                    // (enable_shared_relcache); the child uses it for nothing else then.
                    qcache: self.qcache,
                    listeners: self.listeners,
                    hba,
                    passwd,
                    aes_key: crate::load_aes_key(),
                    tls: self.tls.clone(),
                };
                child::run(setup);
            }
            Err(e) => log::error!("fork of child process {index} failed: {e}"),
        }
    }

    /// Forks a process that serves no clients (the client ports close in it, so that
    /// they close with the main process); `run` is its life (the worker functions never
    /// return: they exit).
    fn fork_worker(&mut self, proc: Proc, what: &str, run: impl FnOnce(&Self)) {
        match sys::fork() {
            Ok(Some(pid)) => {
                self.procs.insert(pid.as_raw(), proc);
            }
            Ok(None) => {
                self.listeners.close_fds();
                run(self);
                sys::exit_now(1)
            }
            Err(e) => log::error!("fork of {what} failed: {e}"),
        }
    }

    pub(super) fn spawn_health_check(&mut self, node: usize) {
        let secret = self.passwd_secret(&self.cfg.health_check(node).user);
        let what = format!("health check process {node}");
        self.fork_worker(Proc::HealthCheck(node), &what, |sup| {
            crate::health_check::run(crate::health_check::HealthCheckSetup {
                node,
                cfg: sup.cfg.clone(),
                shm: sup.shm,
                passwd_secret: secret,
            })
        });
    }

    pub(super) fn spawn_pcp(&mut self) {
        self.fork_worker(Proc::Pcp, "PCP process", |sup| {
            crate::pcp::run(crate::pcp::PcpSetup {
                cfg: sup.cfg.clone(),
                pcp_conf: sup.opts.pcp_file.clone(),
                shm: sup.shm,
                qcache: sup.qcache,
            })
        });
    }

    pub(super) fn spawn_sr_check(&mut self) {
        let secret = self.passwd_secret(&self.cfg.sr_check_user);
        self.fork_worker(Proc::SrCheck, "sr_check worker", |sup| {
            crate::sr_check::run(crate::sr_check::SrCheckSetup {
                cfg: sup.cfg.clone(),
                shm: sup.shm,
                secret,
            })
        });
    }

    /// The query cache's change feed (memqcache_logical_invalidation), when asked for.
    pub(super) fn spawn_cache_feed(&mut self) {
        if self.cfg.memqcache_logical_invalidation && !self.cfg.memory_cache_enabled {
            log::warn!("memqcache_logical_invalidation is on but memory_cache_enabled is off: there is no cache to invalidate");
        }
        let Some(cache) = self
            .qcache
            .filter(|_| self.cfg.memory_cache_enabled && self.cfg.memqcache_logical_invalidation)
        else {
            return;
        };
        let secret = self.passwd_secret(&self.cfg.sr_check_user);
        self.fork_worker(Proc::CacheFeed, "query cache feed", |sup| {
            crate::cache_feed::run(crate::cache_feed::CacheFeedSetup {
                cfg: sup.cfg.clone(),
                shm: sup.shm,
                cache,
                secret,
            })
        });
    }

    pub(super) fn spawn_watchdog(&mut self) {
        let Some(node_id) = self.watchdog_id else {
            return;
        };
        self.fork_worker(Proc::Watchdog, "watchdog process", |sup| {
            crate::watchdog::run(crate::watchdog::WatchdogSetup {
                cfg: sup.cfg.clone(),
                shm: sup.shm,
                qcache: sup.qcache,
                node_id,
            })
        });
    }

    /// Starts the next queued follow in a process of its own, as Pgpool-II's follow
    /// child (its commands typically call pcp_attach_node or pcp_recovery_node, whose
    /// requests this process serves), unless one is running: follows run one at a time.
    pub(super) fn start_follow(&mut self) {
        if self.shutdown.is_some() {
            return;
        }
        if let Some((&pid, _)) = self.procs.iter().find(|(_, p)| **p == Proc::FollowPrimary) {
            if !self.follow_queue.is_empty() {
                log::info!(
                    "follow primary commands wait for the running follow primary process (pid {pid})"
                );
            }
            return;
        }
        let Some(lines) = self.follow_queue.pop_front() else {
            return;
        };
        match sys::fork() {
            Ok(Some(pid)) => {
                log::info!("follow primary process started (pid {pid})");
                self.procs.insert(pid.as_raw(), Proc::FollowPrimary);
            }
            Ok(None) => {
                crate::logging::set_process_kind(crate::logging::ProcessKind::FollowPrimary);
                self.listeners.close_fds();
                sys::reset(&[
                    Signal::SIGTERM,
                    Signal::SIGINT,
                    Signal::SIGHUP,
                    Signal::SIGCHLD,
                    Signal::SIGUSR1,
                    Signal::SIGUSR2,
                ]);
                crate::failover::run_follow(&lines);
                sys::exit_now(0);
            }
            Err(e) => {
                log::error!(
                    "could not fork the follow primary process: {e}; running the commands here"
                );
                crate::failover::run_follow(&lines);
            }
        }
    }

    pub(super) fn respawn(&mut self, proc: Proc) {
        match proc {
            Proc::SrCheck => self.spawn_sr_check(),
            Proc::CacheFeed => self.spawn_cache_feed(),
            // dynamic mode: the next cycle forks what the spare count needs
            Proc::Child(_) if self.dynamic() => {}
            Proc::Child(i) => self.spawn_child(i),
            Proc::HealthCheck(n) if self.configured(n) => self.spawn_health_check(n),
            Proc::HealthCheck(_) => {}
            Proc::Pcp => self.spawn_pcp(),
            Proc::Watchdog => self.spawn_watchdog(),
            Proc::FollowPrimary => self.start_follow(),
        }
    }

    /// Collects exited processes, logs how they ended, and forks them again.
    pub(super) fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    let Some(pid) = status.pid() else { break };
                    if self.collector.as_ref().is_some_and(|c| c.pid() == pid) {
                        log::warn!("logger process with pid: {pid} exited: {status:?}");
                        let listeners = self.listeners;
                        if let Some(c) = self.collector.as_mut() {
                            c.restart(|| listeners.close_fds());
                            self.shm
                                .cluster()
                                .logger_pid
                                .store(c.pid().as_raw(), Ordering::Release);
                        }
                        continue;
                    }
                    let Some(proc) = self.procs.remove(&pid.as_raw()) else {
                        continue;
                    };
                    if proc == Proc::Watchdog {
                        self.shm.watchdog().set_pid(0);
                    }
                    if let Proc::Child(index) = proc {
                        self.shm.child(index).pid.store(0, Ordering::Release);
                        self.shm.forget_cancel_keys(index);
                        self.shm.snapshot_step_done(index);
                    }
                    let what = match proc {
                        Proc::Child(_) => "child process".to_string(),
                        Proc::HealthCheck(n) => format!("health check process({n})"),
                        Proc::Pcp => "PCP process".to_string(),
                        Proc::SrCheck => "worker process".to_string(),
                        Proc::CacheFeed => "query cache feed process".to_string(),
                        Proc::Watchdog => "watchdog process".to_string(),
                        Proc::FollowPrimary => "follow primary process".to_string(),
                    };
                    match status {
                        WaitStatus::Exited(_, 0) | WaitStatus::Exited(_, 1) => {
                            log::debug!("{what} with pid: {pid} exited")
                        }
                        WaitStatus::Exited(_, 3) => {
                            log::error!(
                                "{what} with pid: {pid} exited with a fatal error; shutting down"
                            );
                            self.begin_shutdown(Signal::SIGINT);
                        }
                        WaitStatus::Signaled(_, sig, _) => {
                            log::warn!(
                                "{what} with pid: {pid} was terminated by signal {}",
                                sig as i32
                            )
                        }
                        other => log::warn!("{what} with pid: {pid} exited: {other:?}"),
                    }
                    if self.shutdown.is_none() {
                        self.respawn(proc);
                    }
                }
            }
        }
    }
}
