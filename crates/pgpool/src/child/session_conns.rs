//! The backend side of a session: logging in to a node (or confirming a refusal with a
//! failover), joining every live node, taking a pooled connection set and checking it
//! still fits the client (parameters re-applied), and resetting a set when the client
//! leaves so the next one finds it clean (reset_query_list, answers awaited).

use std::io::Write;
use std::time::{Duration, Instant};

use protocol::build;

use crate::backend::{
    self, BackendConn, BackendError, MessageReader, NodeAddr, PasswordAsked, Secret,
};
use crate::child::client_auth::{self, AuthFailure, ClientCredential};
use crate::child::pool::{PoolKey, PooledSet};
use crate::child::ChildContext;
use crate::net::Stream;

use super::session::*;

/// Returns a set to the pool after resetting it, or closes it.
pub(super) fn release(
    ctx: &mut ChildContext<'_>,
    slot: usize,
    mut set: PooledSet,
    reusable: bool,
    used: &[usize],
) {
    let keep = reusable && ctx.cfg.connection_cache && !ctx.shutdown_requested();
    if keep && reset_set(&mut set, &ctx.cfg.reset_query_list, used) {
        set.last_release = Instant::now();
        ctx.pool().publish(slot, &set, ctx.shm);
        ctx.pool().put(slot, set);
        return;
    }
    ctx.pool().discard(slot, ctx.shm);
}

/// True for reset queries that only end a transaction (useless when none is open).
pub(super) fn ends_transaction_only(q: &str) -> bool {
    let q = q.trim().trim_end_matches(';').trim();
    q.eq_ignore_ascii_case("abort") || q.eq_ignore_ascii_case("rollback")
}

/// Runs reset_query_list on the connections of the set the session used, all of them
/// at once (one write each, then the answers); false when one is unfit for reuse.
pub(super) fn reset_set(set: &mut PooledSet, queries: &[String], used: &[usize]) -> bool {
    let mut sent = Vec::with_capacity(used.len());
    for conn in used_conns(set, used) {
        let mut out = Vec::new();
        let mut count = 0;
        for q in queries {
            if conn.tx_status == b'I' && ends_transaction_only(q) {
                continue;
            }
            build::query(&mut out, q);
            count += 1;
        }
        if count > 0 && conn.stream.write_all(&out).is_err() {
            return false;
        }
        sent.push(count);
    }
    let mut reader = MessageReader::default();
    for (conn, count) in used_conns(set, used).zip(sent) {
        if !await_reset(conn, &mut reader, count) {
            return false;
        }
    }
    true
}

pub(super) fn used_conns<'a>(
    set: &'a mut PooledSet,
    used: &'a [usize],
) -> impl Iterator<Item = &'a mut BackendConn> + 'a {
    set.conns
        .iter_mut()
        .enumerate()
        .filter(move |(n, _)| used.contains(n))
        .filter_map(|(_, c)| c.as_mut())
}

/// Reads the answers to `count` reset queries.
pub(super) fn await_reset(
    conn: &mut BackendConn,
    reader: &mut MessageReader,
    count: usize,
) -> bool {
    if count == 0 {
        return true;
    }
    reader.clear();
    let _ = conn.stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut left = count;
    let mut fine = true;
    while left > 0 {
        match reader.read(&mut conn.stream) {
            Ok((b'Z', body)) => {
                conn.tx_status = body.first().copied().unwrap_or(b'I');
                left -= 1;
            }
            Ok((b'S', body)) => {
                let body = body.to_vec();
                conn.note_parameter(&body);
            }
            Ok((b'E', body)) => {
                let f = protocol::message::parse_error_fields(body);
                log::warn!("reset query failed on node {}: {}", conn.node, f.message);
                if f.severity != "ERROR" {
                    fine = false;
                }
            }
            Ok(_) => {}
            Err(e) => {
                log::debug!("reset of backend node {} failed: {e}", conn.node);
                return false;
            }
        }
    }
    let _ = conn.stream.set_read_timeout(None);
    fine && reader.pending().is_empty()
}

/// Finds or makes the backend set for this session, with the client's run-time
/// parameters applied.
pub(super) fn acquire(
    ctx: &mut ChildContext<'_>,
    stream: &mut Stream,
    reader: &mut MessageReader,
    s: &Session,
    key: &PoolKey,
    node: usize,
    cred: &mut ClientCredential,
) -> Result<(usize, PooledSet, bool), AuthFailure> {
    // (The pool's lock is not held while the set is checked: that talks to the client.)
    let pooled = ctx.pool().take(key);
    if let Some((slot, mut set)) = pooled {
        let has_node = match set.conns.get(node).and_then(Option::as_ref) {
            Some(c) if c.closed_while_idle() => {
                log::info!("pooled connection to node {node} was closed by the backend");
                false
            }
            Some(_) => true,
            None => false,
        };
        let credential_ok = match &set.credential {
            None => true,
            Some(stored) => verify_reuse(ctx, stream, reader, s, stored, cred)?,
        };
        if has_node && credential_ok {
            let conn = set.conns[node].as_mut().ok_or_else(|| AuthFailure {
                code: "XX000",
                message: "pooled connection vanished".into(),
                detail: None,
            })?;
            if apply_gucs(conn, reader, s).is_ok() {
                return Ok((slot, set, true));
            }
        }
        if !credential_ok {
            ctx.pool().put(slot, set);
            return Err(AuthFailure {
                code: "28P01",
                message: format!("password authentication failed for user \"{}\"", s.user),
                detail: None,
            });
        }
        ctx.pool().discard(slot, ctx.shm);
    }
    let free = ctx.pool().free_slot(ctx.shm);
    let Some(slot) = free else {
        return Err(AuthFailure {
            code: "53300",
            message: "sorry, too many clients already".into(),
            detail: Some("every pool slot of this child is serving a session".into()),
        });
    };
    match new_set(ctx, stream, reader, s, key, node, cred) {
        Ok(set) => Ok((slot, set, false)),
        Err(f) => {
            // The slot chosen for the set is free again.
            ctx.pool().discard(slot, ctx.shm);
            Err(f)
        }
    }
}

/// Logs a new set in to `node` for the session, its run-time parameters applied.
fn new_set(
    ctx: &mut ChildContext<'_>,
    stream: &mut Stream,
    reader: &mut MessageReader,
    s: &Session,
    key: &PoolKey,
    node: usize,
    cred: &mut ClientCredential,
) -> Result<PooledSet, AuthFailure> {
    let conn = connect_node(ctx, stream, reader, s, node, cred, false)?;
    let credential = if conn.password_required {
        cred.cleartext
            .clone()
            .map(Secret::Plain)
            .or_else(|| client_auth::backend_secret_from_passwd(ctx, &s.user))
    } else {
        None
    };
    let mut conns: Vec<Option<BackendConn>> = (0..ctx.cfg.backends.len()).map(|_| None).collect();
    let mut conn = conn;
    let mut r = MessageReader::default();
    apply_gucs(&mut conn, &mut r, s).map_err(|e| AuthFailure {
        code: "08006",
        message: format!("could not apply startup parameters on node {node}: {e}"),
        detail: None,
    })?;
    conns[node] = Some(conn);
    Ok(PooledSet {
        key: key.clone(),
        conns,
        credential,
        last_release: Instant::now(),
    })
}

/// A client that was not verified by pgpool may reuse a set logged in with a
/// password only if it knows that password.
pub(super) fn verify_reuse(
    ctx: &ChildContext<'_>,
    stream: &mut Stream,
    reader: &mut MessageReader,
    s: &Session,
    stored: &Secret,
    cred: &mut ClientCredential,
) -> Result<bool, AuthFailure> {
    if cred.verified {
        return Ok(true);
    }
    let given = match &cred.cleartext {
        Some(p) => p.clone(),
        None if cred.may_ask => {
            let p = client_auth::ask_cleartext(stream, reader)?;
            cred.cleartext = Some(p.clone());
            p
        }
        None => return Ok(false),
    };
    let _ = ctx;
    Ok(match stored {
        Secret::Plain(p) => *p == given,
        Secret::Md5Stored(h) => *h == protocol::auth::md5_stored(&s.user, &given),
    })
}

/// Sets the client's run-time parameters on a backend connection in one round trip,
/// skipping those the connection already has: reported by the server, or sent in its
/// start-up packet (the reset at release, DISCARD ALL, returns to those).
pub(super) fn apply_gucs(
    conn: &mut BackendConn,
    reader: &mut MessageReader,
    s: &Session,
) -> Result<(), String> {
    let mut sql = String::new();
    for (name, value) in s.gucs() {
        let reported = conn.parameter(name);
        if reported == Some(value.as_str()) {
            continue;
        }
        let at_startup = conn
            .startup_params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str());
        if reported.is_none() && at_startup == Some(value.as_str()) {
            continue;
        }
        sql.push_str(&format!(
            "SET {} = {};",
            quote_guc_name(name),
            sql::literal::quote(value)
        ));
    }
    if sql.is_empty() {
        return Ok(());
    }
    reader.clear();
    let r = conn.simple_query(reader, &sql).map_err(|e| e.to_string())?;
    match r.error {
        Some(e) => Err(e.message),
        None => Ok(()),
    }
}

pub(super) fn connect_node(
    ctx: &ChildContext<'_>,
    stream: &mut Stream,
    reader: &mut MessageReader,
    s: &Session,
    node: usize,
    cred: &mut ClientCredential,
    quick: bool,
) -> Result<BackendConn, AuthFailure> {
    let b = &ctx.cfg.backends[node];
    let hc = ctx.cfg.health_check(node);
    let addr = NodeAddr::of(&ctx.cfg, node);
    let mut startup: Vec<(&str, &str)> = vec![("user", &s.user), ("database", &s.database)];
    if !s.options().is_empty() {
        startup.push(("options", s.options()));
    }
    for (n, v) in s.gucs() {
        startup.push((n, v));
    }
    let mut backend_reader = MessageReader::default();
    let mut ask = |asked: PasswordAsked| -> Result<Secret, BackendError> {
        if let Some(p) = &cred.cleartext {
            return Ok(Secret::Plain(p.clone()));
        }
        if let Some(sec) = client_auth::backend_secret_from_passwd(ctx, &s.user) {
            return Ok(sec);
        }
        // A backend asking for md5 or SCRAM gets the client's password in clear text
        // only when allow_clear_text_frontend_auth says so (as Pgpool-II).
        let may_ask = cred.may_ask
            && (asked == PasswordAsked::Cleartext || ctx.cfg.allow_clear_text_frontend_auth);
        if may_ask {
            if asked != PasswordAsked::Cleartext {
                let method = if asked == PasswordAsked::Md5 {
                    "md5"
                } else {
                    "SCRAM"
                };
                log::info!(
                    "using clear text authentication with frontend\nDETAIL:  backend will still use {method} auth\nHINT:  you can disable this behavior by setting allow_clear_text_frontend_auth to off"
                );
            }
            let p = client_auth::ask_cleartext(stream, reader)
                .map_err(|f| BackendError::Protocol(f.message))?;
            cred.cleartext = Some(p.clone());
            return Ok(Secret::Plain(p));
        }
        Err(BackendError::NeedPassword)
    };
    // A load-balance node that does not answer quickly is skipped (the session
    // reads from the primary instead): a hung standby must not hang new sessions.
    let result = if quick {
        let limit = Duration::from_millis(hc.connect_timeout_ms.clamp(1000, 3000));
        backend::connect_with_deadline(
            &addr,
            &startup,
            &mut backend_reader,
            &mut ask,
            Instant::now() + limit,
        )
    } else {
        backend::connect(&addr, &startup, &mut backend_reader, &mut ask)
    };
    match result {
        Ok(c) => Ok(c),
        Err(BackendError::Server(fields, raw)) => {
            // Relay the backend's own refusal (wrong password, no such database...) when
            // the session cannot do without the node.
            if !quick {
                let _ = stream.write_all(&raw);
            }
            Err(AuthFailure {
                code: "",
                message: fields.message,
                detail: None,
            })
        }
        Err(BackendError::NeedPassword) => Err(AuthFailure {
            code: "28000",
            message: format!(
                "backend node {node} requires a password for user \"{}\" and pool_passwd has none",
                s.user
            ),
            detail: (!ctx.cfg.allow_clear_text_frontend_auth).then(|| {
                "allow_clear_text_frontend_auth = on lets pgpool ask the client for it".to_string()
            }),
        }),
        Err(e) => {
            log::warn!(
                "failed to connect to backend node {node} ({}:{}): {e}",
                b.hostname,
                b.port
            );
            if let BackendError::Io(io) = &e {
                if ctx.cfg.failover_on_backend_error {
                    let refused = matches!(
                        io.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                    );
                    ctx.report_node_failure(node, refused);
                }
            }
            // Pgpool-II's words, which scripts grep.
            let detail = if ctx.cfg.failover_on_backend_error {
                format!("executing failover on backend node {node}: {e}")
            } else {
                format!("backend node {node}: {e}")
            };
            Err(AuthFailure {
                code: "08006",
                message: "failed to create a backend connection".into(),
                detail: Some(detail),
            })
        }
    }
}

/// As in Pgpool-II, a session holds a connection to every live node (in the modes with
/// several nodes to read from), so a node that went away is noticed by the next session
/// even when no query would have gone there: a pooled connection the backend closed is
/// replaced, and a node that refuses a new one is reported (and its failover awaited, so
/// what the session sees next, SHOW POOL_NODES included, already reflects it).
#[allow(clippy::too_many_arguments)]
pub(super) fn join_live_nodes(
    ctx: &ChildContext<'_>,
    stream: &mut Stream,
    reader: &mut MessageReader,
    s: &Session,
    cred: &mut ClientCredential,
    set: &mut PooledSet,
    slot: usize,
    node: usize,
) {
    let mut changed = false;
    for n in 0..set.conns.len() {
        if n == node || !ctx.shm.backend(n).status().is_alive() {
            continue;
        }
        if let Some(c) = set.conns[n].as_ref() {
            if !c.closed_while_idle() {
                continue;
            }
            log::info!("pooled connection to node {n} was closed by the backend");
            set.conns[n] = None;
            changed = true;
        }
        match connect_node(ctx, stream, reader, s, n, cred, true) {
            Ok(c) => {
                set.conns[n] = Some(c);
                changed = true;
            }
            Err(f) => {
                log::warn!("node {n} not joined to the session: {}", f.message);
                ctx.await_failover(n, FAILOVER_WAIT);
            }
        }
    }
    if changed {
        ctx.pool().publish(slot, set, ctx.shm);
    }
}

/// Makes node `n` part of the session: its pooled connection (with the client's
/// parameters applied) or a new one. False, with a warning, when it cannot be used.
#[allow(clippy::too_many_arguments)]
pub(super) fn attach_node(
    ctx: &ChildContext<'_>,
    stream: &mut Stream,
    reader: &mut MessageReader,
    s: &Session,
    cred: &mut ClientCredential,
    set: &mut PooledSet,
    slot: usize,
    n: usize,
) -> bool {
    if let Some(c) = set.conns.get_mut(n).and_then(Option::as_mut) {
        return apply_gucs(c, reader, s).is_ok();
    }
    match connect_node(ctx, stream, reader, s, n, cred, true) {
        Ok(mut c) => {
            let mut r = MessageReader::default();
            match apply_gucs(&mut c, &mut r, s) {
                Ok(()) => {
                    if let Some(place) = set.conns.get_mut(n) {
                        *place = Some(c);
                    }
                    ctx.pool().publish(slot, set, ctx.shm);
                    true
                }
                Err(e) => {
                    log::warn!("load-balance node {n} unusable for this session: {e}");
                    false
                }
            }
        }
        Err(f) => {
            log::warn!(
                "load-balance node {n} unusable for this session: {}",
                f.message
            );
            false
        }
    }
}
