//! The last step of a session: what the client is told about how the relay ended, a
//! failure reported for the node that failed (failover_on_backend_error,
//! failover_on_backend_shutdown, not for a pg_terminate_backend sent through pgpool), and
//! the backend set released (kept in the pool when it can be reused).

use super::backends::SessionBackends;
use super::send_fatal;
use crate::child::relay::RelayOutcome;
use crate::child::relay_shared::RelayEnd;
use crate::child::session_conns::release;
use crate::child::ChildContext;
use crate::net::Stream;

pub(super) fn end_session(
    ctx: &mut ChildContext<'_>,
    stream: &mut Stream,
    b: SessionBackends,
    end: RelayEnd,
    mut outcome: RelayOutcome,
) {
    let node = b.node;
    let info = ctx.shm.pool(ctx.index, b.slot);
    // A session that ends mid-step leaves no mark behind.
    ctx.shm.snapshot_step_done(ctx.index);
    info.end_session();
    let failed = outcome.failed_node.unwrap_or(node);
    let reusable = match &end {
        RelayEnd::ClientClosed => outcome.reusable,
        RelayEnd::ClientError(e) => {
            log::debug!("client connection failed: {e}");
            outcome.reusable
        }
        RelayEnd::ClientProtocol(e) => {
            log::info!("closing client connection: invalid message from frontend: {e}");
            send_fatal(stream, "08P01", &format!("invalid frontend message: {e}"));
            false
        }
        RelayEnd::IdleTimeout => {
            log::info!(
                "closing client connection: idle for {} seconds (client_idle_limit)",
                ctx.cfg.client_idle_limit
            );
            send_fatal(
                stream,
                "57P01",
                "terminating connection due to client_idle_limit",
            );
            outcome.reusable
        }
        RelayEnd::NodeDetached => {
            log::info!("node {node} was detached: closing the client session that used it");
            send_fatal(
                stream,
                "57P01",
                &format!(
                    "terminating connection because backend node {node} was detached (failover)"
                ),
            );
            false
        }
        RelayEnd::BackendFailed(e) => {
            log::warn!("backend node {failed} failed during session: {e}");
            // A backend that said FATAL first (e.g. pg_terminate_backend) ended this
            // session only; the node itself is fine.
            if ctx.cfg.failover_on_backend_error && !outcome.backend_fatal {
                ctx.report_node_failure(failed, false);
            }
            if !outcome.backend_fatal {
                send_fatal(
                    stream,
                    "08006",
                    &format!("unable to forward data to backend node {failed}: {e}"),
                );
            }
            false
        }
        RelayEnd::Shutdown => {
            send_fatal(
                stream,
                "57P01",
                "terminating connection due to administrator command",
            );
            false
        }
    };
    // A pg_terminate_backend() sent through pgpool ended this session, not the node.
    if outcome.backend_shutdown && ctx.terminated_on_request(b.slot, failed) {
        log::info!("backend node {failed} ended this session on a pg_terminate_backend request");
        outcome.backend_shutdown = false;
    }
    if outcome.backend_shutdown && ctx.cfg.failover_on_backend_shutdown {
        log::warn!("backend node {failed} reported an administrator shutdown (57P01)");
        ctx.report_node_failure(failed, false);
    }
    release(ctx, b.slot, b.set, reusable, &b.nodes);
}
