//! CancelRequest forwarding: the key a client presents is its main node backend's pid
//! with pgpool's own random secret; it is looked up in shared memory and the backends'
//! real keys of that session's connections (its child and pool slot) are sent to the
//! nodes running something for it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::backend::send_cancel;
use crate::child::ChildContext;

pub fn forward(ctx: &ChildContext<'_>, pid: u32, key: u32) {
    if ctx.cfg.log_client_messages {
        crate::child::client_log::cancel(pid);
    }
    let Some(target) = ctx.shm.find_cancel_target(pid, key) else {
        log::info!("cancel request for unknown process {pid} ignored");
        return;
    };
    let (target, slot) = target;
    let conns: Vec<_> = (0..ctx.cfg.backends.len())
        .map(|node| (node, ctx.shm.conn(target, slot, node)))
        .filter(|(_, c)| c.connected.load(Ordering::Acquire) != 0)
        .collect();
    // Only the connections running what the client waits for: a cancel sent to another
    // one would hit its next statement. None running: the session is idle, and
    // PostgreSQL ignores a cancel that finds nothing to cancel too.
    if !conns.iter().any(|(_, c)| c.is_busy()) {
        log::info!("cancel request for pgpool child {pid}: nothing running, ignored");
        return;
    }
    for (node, conn) in conns {
        if !conn.is_busy() {
            continue;
        }
        let b = &ctx.cfg.backends[node];
        let bpid = conn.pid.load(Ordering::Relaxed);
        let bkey = conn.key.load(Ordering::Relaxed);
        log::info!("forwarding cancel request to backend node {node} pid {bpid} (client of pgpool child {pid})");
        if let Err(e) = send_cancel(&b.hostname, b.port, bpid, bkey, Duration::from_secs(10)) {
            log::warn!("could not send cancel request to backend node {node}: {e}");
        }
    }
}
