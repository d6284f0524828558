//! How the main process forks each kind of process it supervises: pooled children,
//! one health check per backend node, the PCP server, the streaming-replication check
//! and the watchdog. Each forked process closes the client ports it does not serve.

use std::sync::atomic::Ordering;

use super::{Proc, Supervisor};
use crate::child::{self, ChildSetup};
use crate::sys;

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
                    qcache: self.qcache.filter(|_| self.cfg.memory_cache_enabled),
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

    pub(super) fn spawn_health_check(&mut self, node: usize) {
        let secret = self.passwd_secret(&self.cfg.health_check(node).user);
        match sys::fork() {
            Ok(Some(pid)) => {
                self.procs.insert(pid.as_raw(), Proc::HealthCheck(node));
            }
            Ok(None) => {
                // It serves no clients: the client ports must close with the main process.
                self.listeners.close_fds();
                crate::health_check::run(crate::health_check::HealthCheckSetup {
                    node,
                    cfg: self.cfg.clone(),
                    shm: self.shm,
                    passwd_secret: secret,
                })
            }
            Err(e) => log::error!("fork of health check process {node} failed: {e}"),
        }
    }

    pub(super) fn spawn_pcp(&mut self) {
        match sys::fork() {
            Ok(Some(pid)) => {
                self.procs.insert(pid.as_raw(), Proc::Pcp);
            }
            Ok(None) => {
                // It serves no clients: the client ports must close with the main process.
                self.listeners.close_fds();
                crate::pcp::run(crate::pcp::PcpSetup {
                    cfg: self.cfg.clone(),
                    pcp_conf: self.opts.pcp_file.clone(),
                    shm: self.shm,
                    qcache: self.qcache,
                })
            }
            Err(e) => log::error!("fork of PCP process failed: {e}"),
        }
    }

    pub(super) fn spawn_sr_check(&mut self) {
        let secret = self.passwd_secret(&self.cfg.sr_check_user);
        match sys::fork() {
            Ok(Some(pid)) => {
                self.procs.insert(pid.as_raw(), Proc::SrCheck);
            }
            Ok(None) => {
                // It serves no clients: the client ports must close with the main process.
                self.listeners.close_fds();
                crate::sr_check::run(crate::sr_check::SrCheckSetup {
                    cfg: self.cfg.clone(),
                    shm: self.shm,
                    secret,
                })
            }
            Err(e) => log::error!("fork of sr_check worker failed: {e}"),
        }
    }

    pub(super) fn spawn_watchdog(&mut self) {
        let Some(node_id) = self.watchdog_id else {
            return;
        };
        match sys::fork() {
            Ok(Some(pid)) => {
                self.procs.insert(pid.as_raw(), Proc::Watchdog);
            }
            Ok(None) => {
                self.listeners.close_fds();
                crate::watchdog::run(crate::watchdog::WatchdogSetup {
                    cfg: self.cfg.clone(),
                    shm: self.shm,
                    qcache: self.qcache,
                    node_id,
                })
            }
            Err(e) => log::error!("fork of watchdog process failed: {e}"),
        }
    }
}
