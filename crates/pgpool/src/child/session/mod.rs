//! One client session from its first byte to its last, as a straight line of steps,
//! a module each: the start-up packet and admission (`startup`; a CancelRequest is
//! forwarded instead), client authentication (`client_auth`), the backend set taken
//! from the pool or logged in and the start-up reply (`backends`, over `session_conns`),
//! the relay (`relay_step`), and the end: what the client is told, failures reported,
//! the set released (`ending`).

use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use protocol::build;
use protocol::startup::StartupPacket;
use shmem::ChildState;

use crate::backend::MessageReader;
use crate::child::client_auth::{self, AuthFailure};
use crate::child::relay::RelayOutcome;
use crate::child::relay_shared::RelayEnd;
use crate::child::ChildContext;
use crate::net::Stream;

mod backends;
mod ending;
mod live;
mod relay_step;
mod startup;

pub use live::{LiveSession, StepShare};

use backends::SessionBackends;

/// Sends a FATAL error to the client (best effort: it may already be gone).
pub fn send_fatal(stream: &mut Stream, code: &str, message: &str) {
    send_fatal_detail(stream, code, message, None);
}

pub fn send_fatal_detail(stream: &mut Stream, code: &str, message: &str, detail: Option<&str>) {
    let mut out = Vec::new();
    build::error_with_detail(&mut out, "FATAL", code, message, detail);
    let _ = stream.write_all(&out);
}

pub(super) fn read_exact_timeout(stream: &mut Stream, buf: &mut [u8]) -> std::io::Result<()> {
    stream.read_exact(buf)
}

/// Entry point for an accepted connection, served by this thread from its first byte
/// to its last.
pub fn handle_connection(ctx: &mut ChildContext<'_>, stream: Stream) {
    let Some(mut open) = open_session(ctx, stream) else {
        return;
    };
    let relayed =
        relay_step::relay_session(ctx, &mut open.stream, &open.s, &mut open.b, &open.initial);
    if let Err(e) = &relayed {
        log::debug!("session ended: {e}");
    }
    close_session(ctx, open, relayed.ok());
}

/// A session between its start-up reply and its end: what set-up hands to the relay.
pub struct OpenSession {
    stream: Stream,
    s: Session,
    b: SessionBackends,
    /// Client bytes that came with the start-up (the relay's first input).
    initial: Vec<u8>,
    started: Instant,
    host: String,
    port: String,
}

/// The set-up of a session: start-up packet, admission, client authentication, the
/// backend set, the start-up reply. None when the connection ended there (a cancel
/// request forwarded, a client refused): its end is accounted for already.
pub fn open_session(ctx: &mut ChildContext<'_>, stream: Stream) -> Option<OpenSession> {
    let (host, port) = stream.peer();
    let (mut stream, packet) = startup::read_startup(ctx, stream);
    let packet = match packet {
        Ok(p) => p,
        Err(e) => {
            log::info!("invalid startup packet from host={host} port={port}: {e}");
            send_fatal(&mut stream, "08P01", &e);
            return None;
        }
    };
    let (major, minor, params) = match packet {
        StartupPacket::Cancel { pid, key } => {
            crate::child::cancel::forward(ctx, pid, key);
            return None;
        }
        StartupPacket::SslRequest | StartupPacket::GssEncRequest => return None,
        StartupPacket::Startup {
            major,
            minor,
            params,
        } => (major, minor, params),
    };
    let started = Instant::now();
    let slot = ctx.shm.child(ctx.index);
    slot.client_host.set(&host);
    slot.client_port.set(&port);
    if ctx.serves_alone {
        // (A child serving several sessions keeps its state itself.)
        slot.set_state(ChildState::Active);
    }
    // Pgpool-II's debug lines (its regression tests compare their counts).
    log::debug!(
        "connection_count_up: number of connected children: {}",
        ctx.connected_children()
    );
    slot.client_connection_count.fetch_add(1, Ordering::Relaxed);
    if ctx.cfg.log_connections {
        log::info!("new connection received: host={host} port={port}");
    }
    let user = params
        .iter()
        .find(|(n, _)| n == "user")
        .map(|(_, v)| v.clone())
        .filter(|u| !u.is_empty());
    let Some(user) = user else {
        send_fatal(
            &mut stream,
            "28000",
            "no PostgreSQL user name specified in startup packet",
        );
        end_connection(ctx, None, None);
        return None;
    };
    let database = params
        .iter()
        .find(|(n, _)| n == "database")
        .map(|(_, v)| v.clone())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| user.clone());
    let s = Session {
        user,
        database,
        major,
        minor,
        params,
    };
    if ctx.serves_alone {
        let client = if port.is_empty() {
            host.clone()
        } else {
            format!("{host}({port})")
        };
        crate::sys::set_title(&format!("pgpool: {} {} {client}", s.user, s.database));
        crate::logging::set_session(Some((s.param("application_name"), &s.database, &s.user)));
        crate::sys::set_title_status("idle");
    }
    match set_up(ctx, &mut stream, &s) {
        Ok((b, initial)) => Some(OpenSession {
            stream,
            s,
            b,
            initial,
            started,
            host,
            port,
        }),
        Err(e) => {
            log::debug!("session ended: {e}");
            end_connection(ctx, Some((&s, started, &host, &port)), None);
            None
        }
    }
}

/// The end of a session the relay served (`relayed`: how it ended; None when the relay
/// could not start): what the client is told, failures reported, the set released.
pub fn close_session(
    ctx: &mut ChildContext<'_>,
    open: OpenSession,
    relayed: Option<(RelayEnd, RelayOutcome)>,
) {
    let OpenSession {
        mut stream,
        s,
        b,
        started,
        host,
        port,
        ..
    } = open;
    let slot = b.slot;
    match relayed {
        Some((end, outcome)) => ending::end_session(ctx, &mut stream, b, end, outcome),
        None => ctx.pool().discard(b.slot, ctx.shm),
    }
    end_connection(ctx, Some((&s, started, &host, &port)), Some(slot));
}

/// A client connection has ended: the disconnection logged (with the session's user,
/// start and address when it got that far), the child's record idle again (`slot`: the
/// pool slot the session held).
fn end_connection(
    ctx: &ChildContext<'_>,
    session: Option<(&Session, Instant, &str, &str)>,
    slot: Option<usize>,
) {
    if let Some((s, started, host, port)) = session.filter(|_| ctx.cfg.log_disconnections) {
        let t = started.elapsed();
        log::info!(
            "frontend disconnection: session time: {}:{:02}:{:02}.{:03} user={} database={} host={host} port={port}",
            t.as_secs() / 3600,
            t.as_secs() / 60 % 60,
            t.as_secs() % 60,
            t.subsec_millis(),
            s.user,
            s.database
        );
    }
    let child = ctx.shm.child(ctx.index);
    if ctx.serves_alone {
        child.current_pool.store(-1, Ordering::Release);
        child.set_state(ChildState::WaitForConnection);
    } else if let Some(p) = slot.and_then(|p| i32::try_from(p).ok()) {
        // Another session of the child may be the one shown now.
        let _ = child
            .current_pool
            .compare_exchange(p, -1, Ordering::AcqRel, Ordering::Relaxed);
    }
    if ctx.serves_alone {
        crate::logging::set_session(None);
        crate::sys::set_title(crate::child::WAITING_TITLE);
    }
    log::debug!(
        "connection_count_down: number of connected children: {}",
        ctx.connected_children()
    );
}

pub(super) struct Session {
    pub(super) user: String,
    pub(super) database: String,
    pub(super) major: u16,
    pub(super) minor: u16,
    pub(super) params: Vec<(String, String)>,
}

impl Session {
    /// A start-up parameter's value ("" when the client did not send it).
    pub(super) fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub(super) fn options(&self) -> &str {
        self.param("options")
    }

    /// Run-time parameters the client asked for, applied with SET on the backend.
    pub(super) fn gucs(&self) -> impl Iterator<Item = &(String, String)> {
        self.params.iter().filter(|(n, _)| {
            !matches!(n.as_str(), "user" | "database" | "options" | "replication")
                && !n.starts_with("_pq_.")
        })
    }
}

/// Double-quotes each dot-separated part of a parameter name.
pub(super) fn quote_guc_name(name: &str) -> String {
    name.split('.')
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// Tells a refused client why (an empty code: the backend's own error was relayed
/// already) and returns the reason, as the session's end.
pub(super) fn refuse(stream: &mut Stream, f: AuthFailure) -> String {
    if !f.code.is_empty() {
        send_fatal_detail(stream, f.code, &f.message, f.detail.as_deref());
    }
    f.message
}

/// How long a session start waits for a failover it caused.
pub(super) const FAILOVER_WAIT: Duration = Duration::from_secs(10);

/// Picks the node sessions are sent to (foundation: the primary, else the main node).
pub(super) fn session_node(ctx: &ChildContext<'_>) -> Option<usize> {
    ctx.target_node()
}

/// Admission, client authentication, the backend set and the start-up reply; the set
/// and the client bytes that came with the start-up.
fn set_up(
    ctx: &mut ChildContext<'_>,
    stream: &mut Stream,
    s: &Session,
) -> Result<(SessionBackends, Vec<u8>), String> {
    startup::admit(ctx, stream, s)?;
    let mut reader = MessageReader::default();
    let mut cred = match client_auth::authenticate(ctx, stream, &mut reader, &s.user, &s.database) {
        Ok(c) => c,
        Err(f) => {
            log::info!(
                "authentication failed for user \"{}\" database \"{}\": {}",
                s.user,
                s.database,
                f.message
            );
            return Err(refuse(stream, f));
        }
    };
    let b = backends::open(ctx, stream, &mut reader, s, &mut cred)?;
    let b = backends::greet(ctx, stream, b)?;
    Ok((b, reader.pending().to_vec()))
}
