//! CancelRequest forwarding: the key a client presents is its main node backend's pid
//! with pgpool's own random secret; it is looked up in shared memory and the backends'
//! real keys of that child's current session are sent to each connected node.

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
    let slot = ctx.shm.child(target).current_pool.load(Ordering::Acquire);
    if slot < 0 {
        return;
    }
    for (node, b) in ctx.cfg.backends.iter().enumerate() {
        let conn = ctx.shm.conn(target, slot as usize, node);
        if conn.connected.load(Ordering::Acquire) == 0 {
            continue;
        }
        let bpid = conn.pid.load(Ordering::Relaxed);
        let bkey = conn.key.load(Ordering::Relaxed);
        log::info!("forwarding cancel request to backend node {node} pid {bpid} (client of pgpool child {pid})");
        if let Err(e) = send_cancel(&b.hostname, b.port, bpid, bkey, Duration::from_secs(10)) {
            log::warn!("could not send cancel request to backend node {node}: {e}");
        }
    }
}
