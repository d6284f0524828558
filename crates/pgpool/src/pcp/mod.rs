//! The PCP process: listens on `pcp_listen_addresses:pcp_port` and the Unix socket
//! `<pcp_socket_dir>/.s.PGSQL.<pcp_port>` (bound here, removed at exit), forks one
//! worker per connection ([`worker`]) and reaps them, logging both with
//! `log_pcp_processes` (a fatal or abnormal exit always). SIGHUP re-reads pgpool.conf;
//! SIGTERM/SIGINT/SIGQUIT end the process (workers get the same signal).

mod handlers;
mod worker;

use std::collections::HashSet;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::time::Duration;

use config::Config;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use shmem::Shmem;

use crate::net::{Listeners, Stream};
use crate::sys::{self, Waker};

pub struct PcpSetup<'a> {
    pub cfg: Config,
    pub pcp_conf: PathBuf,
    pub shm: &'a Shmem,
    pub qcache: Option<&'a shmem::QueryCache>,
}

const STOP_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT];

pub fn run(setup: PcpSetup<'_>) -> ! {
    crate::logging::set_process_kind(crate::logging::ProcessKind::Pcp);
    sys::set_title("pgpool: PCP: wait for connection request");
    let waker = Waker::new().unwrap_or_else(|_| sys::exit_now(1));
    sys::catch(&[
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ]);
    let mut cfg = setup.cfg;
    let listeners = match Listeners::bind(
        &cfg.pcp_listen_addresses,
        cfg.pcp_port,
        &cfg.pcp_socket_dir,
        &crate::net::UnixSocketMode::default(),
        (cfg.listen_backlog_multiplier as i32).saturating_mul(16),
    ) {
        Ok(l) => l,
        Err(e) => {
            log::error!("PCP: could not listen on port {}: {e}", cfg.pcp_port);
            // Do not let the supervisor respawn us in a tight loop.
            std::thread::sleep(Duration::from_secs(5));
            sys::exit_now(1);
        }
    };
    log::debug!("PCP process listening on port {}", cfg.pcp_port);
    let mut workers: HashSet<i32> = HashSet::new();
    loop {
        let ready: Vec<usize> = {
            let mut fds = vec![PollFd::new(waker.fd(), PollFlags::POLLIN)];
            for l in &listeners.tcp {
                fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
            }
            for (l, _) in &listeners.unix {
                fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
            }
            let _ = poll(&mut fds, PollTimeout::NONE);
            fds.iter()
                .enumerate()
                .skip(1)
                .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
                .map(|(i, _)| i - 1)
                .collect()
        };
        waker.drain();
        let sigs = sys::take_pending();
        if let Some(&sig) = STOP_SIGNALS.iter().find(|&&s| sys::has(sigs, s)) {
            for &pid in &workers {
                let _ = kill(Pid::from_raw(pid), sig);
            }
            listeners.remove_socket_files();
            sys::exit_now(0);
        }
        if sys::has(sigs, Signal::SIGHUP) {
            match Config::load(&cfg.config_file) {
                Ok(c) => {
                    crate::logging::configure(&c);
                    cfg = c;
                }
                Err(e) => log::warn!("PCP: reloading {} failed: {e}", cfg.config_file.display()),
            }
            crate::node_table::adopt(&mut cfg, setup.shm);
        }
        if sys::has(sigs, Signal::SIGCHLD) {
            reap(&mut workers, cfg.log_pcp_processes);
        }
        for i in ready {
            let stream = if i < listeners.tcp.len() {
                listeners.tcp[i].accept().map(|(s, _)| Stream::Tcp(s))
            } else {
                listeners.unix[i - listeners.tcp.len()]
                    .0
                    .accept()
                    .map(|(s, _)| Stream::Unix(s))
            };
            let stream = match stream {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    log::warn!("PCP: accept failed: {e}");
                    continue;
                }
            };
            let socket = stream.as_raw_fd();
            match sys::fork() {
                Ok(Some(pid)) => {
                    if cfg.log_pcp_processes {
                        log::info!("forked new pcp worker, pid={pid} socket={socket}");
                    }
                    workers.insert(pid.as_raw());
                    drop(stream);
                }
                Ok(None) => {
                    sys::set_title("pgpool: PCP: processing a request");
                    crate::logging::set_process_kind(crate::logging::ProcessKind::PcpWorker);
                    // The worker keeps only its connection; it never returns to this
                    // loop, so the listener objects are not used again.
                    listeners.close_fds();
                    sys::reset(&[
                        Signal::SIGTERM,
                        Signal::SIGINT,
                        Signal::SIGQUIT,
                        Signal::SIGCHLD,
                    ]);
                    sys::ignore(&[Signal::SIGHUP]);
                    // The request may follow a reload whose signal is still on its way.
                    crate::node_table::refresh(&mut cfg, setup.shm);
                    let code =
                        worker::serve(stream, &cfg, &setup.pcp_conf, setup.shm, setup.qcache);
                    sys::exit_now(code);
                }
                Err(e) => log::error!("PCP: fork of worker failed: {e}"),
            }
        }
    }
}

/// Exit code of a worker that failed fatally (Pgpool-II's POOL_EXIT_FATAL).
const EXIT_FATAL: i32 = 3;

fn reap(workers: &mut HashSet<i32>, log_processes: bool) {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(st) => {
                if let Some(pid) = st.pid() {
                    workers.remove(&pid.as_raw());
                    log_exit(&st, log_processes);
                }
            }
        }
    }
}

/// Pgpool-II's messages about an ended worker; the status printed is the raw wait status.
fn log_exit(st: &WaitStatus, log_processes: bool) {
    match *st {
        WaitStatus::Exited(pid, code) => {
            if code == EXIT_FATAL {
                log::info!("PCP worker process with pid: {pid} exit with FATAL ERROR.");
            } else if log_processes {
                log::info!("PCP process with pid: {pid} exit with SUCCESS.");
            }
            let status = code << 8;
            if log_processes || status != 0 {
                log::info!("PCP process with pid: {pid} exits with status {status}");
            }
        }
        WaitStatus::Signaled(pid, sig, core) => {
            let status = sig as i32 | if core { 0x80 } else { 0 };
            if sig == Signal::SIGSEGV {
                log::warn!("PCP process with pid: {pid} was terminated by segmentation fault");
            } else if log_processes {
                log::info!(
                    "PCP process with pid: {pid} exits with status {status} by signal {}",
                    sig as i32
                );
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod wire_tests;
