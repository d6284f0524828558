//! The PCP process: Pgpool-II's administrative protocol on pcp_port and the Unix
//! socket `.s.PGSQL.<pcp_port>`. (Being implemented; until then the process only
//! waits for shutdown so the supervisor has nothing to respawn.)

use std::path::PathBuf;

use config::Config;
use nix::sys::signal::Signal;
use shmem::Shmem;

use crate::sys::{self, Waker};

pub struct PcpSetup<'a> {
    pub cfg: Config,
    pub pcp_conf: PathBuf,
    pub shm: &'a Shmem,
}

pub fn run(setup: PcpSetup<'_>) -> ! {
    crate::logging::set_process_kind(crate::logging::ProcessKind::Pcp);
    let _ = (&setup.cfg, &setup.pcp_conf, setup.shm);
    let waker = Waker::new().unwrap_or_else(|_| sys::exit_now(1));
    sys::catch(&[
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGHUP,
    ]);
    loop {
        let mut fds = [nix::poll::PollFd::new(
            waker.fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE);
        waker.drain();
        let sigs = sys::take_pending();
        if sys::has(sigs, Signal::SIGTERM)
            || sys::has(sigs, Signal::SIGINT)
            || sys::has(sigs, Signal::SIGQUIT)
        {
            sys::exit_now(0);
        }
    }
}
