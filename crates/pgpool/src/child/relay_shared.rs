//! What both relays (the single-connection one and the load-balancing one) share: how a
//! relayed session ends, the commands pgpool answers itself and how, the refusal of
//! queries in a failed transaction, statement logging in Pgpool-II's words, and the
//! poll helpers (TLS-buffered bytes, client_idle_limit, signals that end a session).

use std::io::{self, Read};

use nix::poll::{PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use crate::net::Stream;
use crate::sys;

#[derive(Debug)]
pub enum RelayEnd {
    /// The client sent Terminate or closed its socket.
    ClientClosed,
    /// Reading from or writing to the client failed.
    ClientError(io::Error),
    /// The client sent bytes that are not a valid message stream.
    ClientProtocol(String),
    /// The backend closed, failed or sent an invalid stream.
    BackendFailed(String),
    /// client_idle_limit expired.
    IdleTimeout,
    /// A fast or immediate shutdown was requested.
    Shutdown,
    /// The session's backend node was detached by a failover.
    NodeDetached,
}

/// Reads what the socket has now: None when it would block, Some(0) at end of file.
pub(crate) fn read_some(stream: &mut Stream, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        match stream.read(buf) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// What kind of answer pgpool gives itself in place of a backend's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalAnswer {
    /// A local command (SHOW POOL_*, PGPOOL ...) as a simple query.
    Simple,
    /// A batch of local commands in the extended protocol.
    Extended,
    /// A query in a transaction that already failed: refused as Pgpool-II does, with the
    /// statement in a DETAIL line.
    Aborted,
    /// A query the query cache answers: the stored answer.
    Cached,
}

/// Does `query` (a simple Query body) end a failed transaction (COMMIT, END, ROLLBACK
/// [TO], ABORT, PREPARE TRANSACTION)? Anything else is refused while it is failed.
pub fn ends_failed_transaction(query: &[u8]) -> bool {
    let q = String::from_utf8_lossy(crate::child::admin::skip_noise(query));
    let mut words = q
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty());
    match words.next() {
        Some(w) if w.eq_ignore_ascii_case("prepare") => words
            .next()
            .is_some_and(|t| t.eq_ignore_ascii_case("transaction")),
        Some(w) => ["commit", "end", "rollback", "abort"]
            .iter()
            .any(|k| w.eq_ignore_ascii_case(k)),
        None => false,
    }
}

#[cfg(test)]
#[test]
fn failed_transaction_enders() {
    for q in [
        "ROLLBACK",
        " -- x\nrollback to s1",
        "END;",
        "commit",
        "abort",
        "PREPARE TRANSACTION 'x'",
    ] {
        assert!(ends_failed_transaction(q.as_bytes()), "{q}");
    }
    for q in [
        "SELECT 1",
        "/* commit */ select 1",
        "PREPARE p AS SELECT 1",
        "begin",
        "",
    ] {
        assert!(!ends_failed_transaction(q.as_bytes()), "{q}");
    }
}

/// The refusal of a query in a failed transaction: ErrorResponse and ReadyForQuery 'E'.
pub fn aborted_answer(query: &[u8], out: &mut Vec<u8>) {
    let query = protocol::message::until_nul(query);
    let text = String::from_utf8_lossy(query);
    protocol::build::error_with_detail(
        out,
        "ERROR",
        "25P02",
        "current transaction is aborted, commands ignored until end of transaction block",
        Some(&format!("statement: {text}")),
    );
    protocol::build::ready_for_query(out, b'E');
}

/// Answers the statements pgpool handles itself (SHOW POOL_*, PGPOOL ...): given the
/// text of a simple Query, appends the complete reply (without ReadyForQuery) to the
/// buffer and returns true; returns false for statements meant for the backend.
pub trait LocalCommands {
    fn is_local(&self, query: &[u8]) -> bool;
    fn answer(&mut self, query: &[u8], out: &mut Vec<u8>);
    /// A statement about to be sent to `nodes`: a Query's text (`prefix` empty) or an
    /// extended-protocol message's ("Parse: ", "Bind: ", "Execute: " and the statement's
    /// text); the last one shows in SHOW POOL_POOLS / pcp_proc_info.
    fn note_sent(&self, prefix: &[u8], text: &[u8], nodes: &mut dyn Iterator<Item = usize>) {
        let _ = (prefix, text, nodes);
    }

    /// True when the node this session uses was detached (failover).
    fn node_detached(&self) -> bool {
        false
    }
    /// Whether the command returns rows (so Describe answers a RowDescription).
    fn returns_rows(&self, _query: &[u8]) -> bool {
        false
    }
    /// Statements prepared by a locally answered Parse (extended protocol).
    fn has_local_statements(&self) -> bool {
        false
    }
    fn local_statement(&self, _name: &[u8]) -> Option<&[u8]> {
        None
    }
    fn remember_statement(&mut self, _name: &[u8], _query: &[u8]) {}
    fn forget_statement(&mut self, _name: &[u8]) {}
    /// The session's relay settings, once after a PGPOOL SET / RESET changed them.
    fn take_changed_settings(&mut self) -> Option<crate::child::relay::SessionSettings> {
        None
    }
}

/// The log line Pgpool-II writes with log_per_node_statement (scripts grep it).
pub fn log_statement(node: usize, pid: u32, text: &[u8]) {
    let text = protocol::message::until_nul(text);
    log::info!(
        "DB node id: {node} backend pid: {pid} statement: {}",
        String::from_utf8_lossy(text)
    );
}

/// The log line of log_statement.
pub fn log_statement_text(text: &[u8]) {
    let text = protocol::message::until_nul(text);
    log::info!("statement: {}", String::from_utf8_lossy(text));
}

/// The NoticeResponse of notice_per_node_statement (no backend pid: it is meant for
/// tests, and pids differ from run to run).
pub fn statement_notice(out: &mut Vec<u8>, node: usize, text: &[u8]) {
    let text = protocol::message::until_nul(text);
    let message = format!(
        "DB node id: {node} statement: {}",
        String::from_utf8_lossy(text)
    );
    protocol::build::notice_or_error(out, b'N', "NOTICE", "00000", &message);
}

/// Poll results after which a read will not block (data, end of file or an error).
pub(crate) const READABLE: PollFlags = PollFlags::POLLIN
    .union(PollFlags::POLLHUP)
    .union(PollFlags::POLLERR);

/// TLS bookkeeping before a relay's poll (client or backend stream): writes what the
/// TLS layer holds, wants POLLOUT while some stays, and says whether the stream must be
/// read without waiting (decrypted bytes are buffered, which its socket does not show).
pub(crate) fn prepare_poll(stream: &mut Stream, flags: &mut PollFlags) -> io::Result<bool> {
    if !stream.is_tls() {
        return Ok(false);
    }
    stream.flush_pending()?;
    if stream.has_pending_output() {
        *flags |= PollFlags::POLLOUT;
    }
    Ok(flags.contains(PollFlags::POLLIN) && stream.has_buffered_input())
}

/// How long a relay waits: client_idle_limit while the session is idle, else forever.
pub(crate) fn idle_timeout(client_idle_limit: u64, idle: bool) -> PollTimeout {
    if client_idle_limit == 0 || !idle {
        return PollTimeout::NONE;
    }
    PollTimeout::try_from(client_idle_limit.saturating_mul(1000).min(i32::MAX as u64) as i32)
        .unwrap_or(PollTimeout::NONE)
}

/// Signals that end a relayed session: fast/immediate shutdown, or a failover that
/// detached the session's node.
pub(crate) fn signalled_end(local: &dyn LocalCommands) -> Option<RelayEnd> {
    let pending = sys::peek_pending();
    if sys::has(pending, Signal::SIGINT) || sys::has(pending, Signal::SIGQUIT) {
        return Some(RelayEnd::Shutdown);
    }
    if sys::has(pending, Signal::SIGUSR1) && local.node_detached() {
        return Some(RelayEnd::NodeDetached);
    }
    None
}
