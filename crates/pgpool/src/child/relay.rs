//! The hot path: relaying one client session to its backend connection. Both sockets
//! are non-blocking and served by one poll; each side is read into a reused buffer in
//! large chunks, only message headers are inspected (plus the bodies of the few kinds
//! that change session state), and the same bytes are written on with one write. A
//! side whose output is not yet drained is not read from, so a slow reader applies
//! back-pressure instead of growing memory, and neither side can deadlock the other.

use std::io::{self, Write};
use std::ops::Range;
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use protocol::message::parse_error_fields;

use crate::backend::BackendConn;
use crate::child::local_ext;
use crate::child::relay_shared::{
    aborted_answer, ends_failed_transaction, idle_timeout, prepare_poll, read_some, signalled_end,
    LocalAnswer, LocalCommands, RelayEnd, READABLE,
};
use crate::child::session_state::{RelayBuffers, SessionState};
use crate::net::Stream;
use crate::sys::Waker;

/// Bytes waiting to be written from a buffer.
#[derive(Default, Clone, Copy)]
struct Pending {
    from: usize,
    to: usize,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.from == self.to
    }
}

/// Writes as much as the socket takes now; `Ok(())` also when it would block.
fn write_some(stream: &mut Stream, buf: &[u8], p: &mut Pending) -> io::Result<()> {
    while !p.is_empty() {
        match stream.write(&buf[p.from..p.to]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "peer closed")),
            Ok(n) => p.from += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    *p = Pending::default();
    Ok(())
}

fn is_extended(tag: u8) -> bool {
    matches!(tag, b'P' | b'B' | b'E' | b'D' | b'C' | b'H')
}

/// What the walk over client bytes found.
enum ClientStep {
    /// Forward `forward`, keep the rest for the next read.
    Forward { forward: Range<usize> },
    /// Forward `forward`, then answer `query` here (the Query body, or for an extended
    /// batch the whole batch of messages); continue after `resume`.
    Local {
        forward: Range<usize>,
        query: Range<usize>,
        resume: usize,
        answer: LocalAnswer,
    },
    /// Forward `forward`; the client sent Terminate.
    Terminate { forward: Range<usize> },
}

/// Walks complete client messages in `buf[from..to]`, counting the requests that owe
/// a ReadyForQuery. A message cut by the end of the buffer is forwarded as far as
/// it goes unless its kind must be seen whole (Query, Terminate), in which case it is
/// held back until the rest arrives.
fn walk_client(
    st: &mut SessionState,
    buf: &[u8],
    from: usize,
    to: usize,
    local: &mut dyn LocalCommands,
) -> Result<(ClientStep, usize), String> {
    let mut i = from;
    if st.client_remaining > 0 {
        let take = st.client_remaining.min(to - i);
        st.client_remaining -= take;
        i += take;
    }
    while i < to {
        let avail = to - i;
        if avail < 5 {
            break; // hold back a partial header
        }
        let h = match protocol::scan_header(&buf[i..to]) {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(e) => return Err(e.to_string()),
        };
        let whole = avail >= h.total_len();
        if let Some(l) = st.client_log.as_mut() {
            if whole || !matches!(h.tag, b'Q' | b'X') {
                l.one(h.tag, &buf[i + 5..i + h.total_len().min(avail)]);
            }
        }
        match h.tag {
            b'Q' | b'X' if !whole => {
                if h.total_len() <= buf.len() {
                    break; // wait for the rest of it
                }
                // A query larger than the buffer: stream it; it is not ours.
                st.outstanding += u32::from(h.tag == b'Q');
                st.client_remaining = h.total_len() - avail;
                return Ok((ClientStep::Forward { forward: from..to }, to));
            }
            b'X' => return Ok((ClientStep::Terminate { forward: from..i }, to)),
            b'Q' => {
                let body = i + 5..i + h.total_len();
                // A failed transaction with nothing in flight: its state is certain.
                let refused = st.tx_status == b'E'
                    && st.outstanding == 0
                    && i == from
                    && !ends_failed_transaction(&buf[body.clone()]);
                if refused || local.is_local(&buf[body.clone()]) {
                    return Ok((
                        ClientStep::Local {
                            forward: from..i,
                            query: body,
                            resume: i + h.total_len(),
                            answer: if refused {
                                LocalAnswer::Aborted
                            } else {
                                LocalAnswer::Simple
                            },
                        },
                        i + h.total_len(),
                    ));
                }
                st.outstanding += 1;
                local.count_statement(sql::leading_kind(&buf[body.clone()]));
                local.note_query(&buf[body.clone()]);
                crate::sys::set_title_command(&buf[body.clone()]);
                local.note_sent_here(b"", &buf[body.clone()]);
                st.note_statement(&buf[body]);
            }
            b'S' => {
                st.outstanding += 1;
                st.unsynced = false;
            }
            b'F' => st.outstanding += 1,
            // A batch of local commands in the extended protocol is answered here.
            b'P' | b'B' if !st.unsynced && st.client_remaining == 0 => {
                match local_ext::scan(&buf[i..to], local) {
                    local_ext::Batch::Local(n) => {
                        return Ok((
                            ClientStep::Local {
                                forward: from..i,
                                query: i..i + n,
                                resume: i + n,
                                answer: LocalAnswer::Extended,
                            },
                            i + n,
                        ))
                    }
                    local_ext::Batch::Incomplete if avail < buf.len() => break,
                    _ => {}
                }
                if whole {
                    note_extended(st, h.tag, &buf[i + 5..i + h.total_len()], local);
                }
                st.unsynced = true;
            }
            b'P' | b'B' if whole => {
                note_extended(st, h.tag, &buf[i + 5..i + h.total_len()], local);
                st.unsynced = true;
            }
            t if is_extended(t) => st.unsynced = true,
            t if !protocol::message::is_frontend_tag(t) => {
                return Err(protocol::message::invalid_frontend_tag(t));
            }
            _ => {}
        }
        if !whole {
            st.client_remaining = h.total_len() - avail;
            return Ok((ClientStep::Forward { forward: from..to }, to));
        }
        i += h.total_len();
    }
    Ok((ClientStep::Forward { forward: from..i }, i))
}

/// Bookkeeping for a whole Parse or Bind on the single-node path: local statement
/// names, per-node statement logging, and statement counts (a Bind is one execution
/// of the statement kind its Parse named).
fn note_extended(st: &mut SessionState, tag: u8, body: &[u8], local: &mut dyn LocalCommands) {
    let name_end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    let rest = body.get(name_end + 1..).unwrap_or(&[]);
    if tag == b'P' {
        local_ext::note_parse(body, local);
        local.note_sent_here(b"Parse: ", rest);
        st.note_statement(rest);
        let kind = sql::leading_kind(rest);
        let text = &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())];
        match st.statement_kinds.get_mut(&body[..name_end]) {
            Some((k, t)) => {
                *k = kind;
                t.clear();
                t.extend_from_slice(text);
            }
            None => {
                let entry = (kind, text.to_vec());
                st.statement_kinds.insert(body[..name_end].to_vec(), entry);
            }
        }
    } else {
        let stmt_end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        if let Some((kind, text)) = st.statement_kinds.get(&rest[..stmt_end]) {
            local.count_statement(*kind);
            // The single-node path does not look at Execute messages: the Execute that
            // follows a Bind is what Pgpool-II 4.7 would show last.
            local.note_sent_here(b"Execute: ", text);
        }
    }
}

fn scan_backend(
    st: &mut SessionState,
    backend: &mut BackendConn,
    buf: &[u8],
) -> Result<(), String> {
    let SessionState {
        outstanding,
        tx_status,
        backend_fatal,
        backend_shutdown,
        backend: scanner,
        ..
    } = st;
    scanner
        .feed(
            buf,
            |t| matches!(t, b'Z' | b'S' | b'E'),
            |_| {},
            |m| {
                match m.tag {
                    b'Z' => {
                        *outstanding = outstanding.saturating_sub(1);
                        *tx_status = m.body.first().copied().unwrap_or(b'I');
                        backend.tx_status = *tx_status;
                        if *outstanding == 0 {
                            crate::sys::set_title_status(crate::sys::idle_status(*tx_status));
                        }
                    }
                    b'S' => backend.note_parameter(m.body),
                    b'E' => {
                        let f = parse_error_fields(m.body);
                        if f.severity == "FATAL" || f.severity == "PANIC" {
                            *backend_fatal = true;
                        }
                        if f.code == "57P01" {
                            *backend_shutdown = true;
                        }
                    }
                    _ => {}
                }
                true
            },
        )
        .map_err(|e| e.to_string())
}

/// Relays until the session ends. `initial` holds client bytes already read during
/// start-up. Both sockets are left in blocking mode on return.
#[allow(clippy::too_many_arguments)]
pub fn relay(
    client: &mut Stream,
    backend: &mut BackendConn,
    bufs: &mut RelayBuffers,
    initial: &[u8],
    st: &mut SessionState,
    waker: &Waker,
    client_idle_limit: u64,
    local: &mut dyn LocalCommands,
) -> RelayEnd {
    if let Err(e) = client
        .set_nonblocking(true)
        .and_then(|_| backend.stream.set_nonblocking(true))
    {
        return RelayEnd::BackendFailed(format!("could not set non-blocking mode: {e}"));
    }
    let end = relay_loop(
        client,
        backend,
        bufs,
        initial,
        st,
        waker,
        client_idle_limit,
        local,
    );
    let _ = client.set_nonblocking(false);
    let _ = backend.stream.set_nonblocking(false);
    end
}

/// Client-side buffer bookkeeping: `pending` goes to the backend, `unscanned` was
/// read but not yet walked (held back or after a local command).
struct ClientSide {
    pending: Pending,
    unscanned: Range<usize>,
    /// A local command waiting for its turn, and whether it is an extended batch.
    local: Option<(Range<usize>, LocalAnswer)>,
    terminated: bool,
}

impl ClientSide {
    fn apply(&mut self, step: ClientStep, next: usize, filled: usize) {
        match step {
            ClientStep::Forward { forward } => {
                self.pending = Pending {
                    from: forward.start,
                    to: forward.end,
                };
                self.unscanned = next..filled;
            }
            ClientStep::Local {
                forward,
                query,
                resume,
                answer,
            } => {
                self.pending = Pending {
                    from: forward.start,
                    to: forward.end,
                };
                self.local = Some((query, answer));
                self.unscanned = resume..filled;
            }
            ClientStep::Terminate { forward } => {
                self.pending = Pending {
                    from: forward.start,
                    to: forward.end,
                };
                self.unscanned = filled..filled;
                self.terminated = true;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn relay_loop(
    client: &mut Stream,
    backend: &mut BackendConn,
    bufs: &mut RelayBuffers,
    initial: &[u8],
    st: &mut SessionState,
    waker: &Waker,
    client_idle_limit: u64,
    local: &mut dyn LocalCommands,
) -> RelayEnd {
    let mut cs = ClientSide {
        pending: Pending::default(),
        unscanned: 0..0,
        local: None,
        terminated: false,
    };
    let mut to_client = Pending::default();
    if !initial.is_empty() {
        let n = initial.len().min(bufs.to_backend.len());
        bufs.to_backend[..n].copy_from_slice(&initial[..n]);
        cs.unscanned = 0..n;
    }
    let mut rescan = !cs.unscanned.is_empty();
    loop {
        // Walk bytes left over from an earlier read once the backend took the rest.
        if rescan && cs.pending.is_empty() && cs.local.is_none() && !cs.terminated {
            rescan = false;
            let range = cs.unscanned.clone();
            match walk_client(st, &bufs.to_backend, range.start, range.end, local) {
                Ok((step, next)) => cs.apply(step, next, range.end),
                Err(e) => return RelayEnd::ClientProtocol(e),
            }
        }
        if !cs.pending.is_empty() {
            if let Err(e) = write_some(&mut backend.stream, &bufs.to_backend, &mut cs.pending) {
                return RelayEnd::BackendFailed(format!(
                    "unable to forward message to backend: {e}"
                ));
            }
        }
        // A local command is answered in its place in the response stream: after the
        // backend has answered everything sent before it.
        if cs.pending.is_empty() && to_client.is_empty() && st.outstanding == 0 {
            if let Some((q, answer)) = cs.local.take() {
                let query = bufs.to_backend[q].to_vec();
                bufs.reply.clear();
                match answer {
                    LocalAnswer::Extended => {
                        local_ext::answer(&query, local, &mut bufs.reply, st.tx_status)
                    }
                    LocalAnswer::Aborted => aborted_answer(&query, &mut bufs.reply),
                    LocalAnswer::Simple => {
                        local.answer(&query, &mut bufs.reply);
                        protocol::build::ready_for_query(&mut bufs.reply, st.tx_status);
                    }
                }
                if bufs.to_client.len() < bufs.reply.len() {
                    bufs.to_client.resize(bufs.reply.len(), 0);
                }
                bufs.to_client[..bufs.reply.len()].copy_from_slice(&bufs.reply);
                to_client = Pending {
                    from: 0,
                    to: bufs.reply.len(),
                };
                rescan = true;
                continue;
            }
        }
        if !st.notices.is_empty() && to_client.is_empty() && st.backend.at_boundary() {
            // Statement notices go out between the backend's messages.
            let n = st.notices.len();
            if bufs.to_client.len() < n {
                bufs.to_client.resize(n, 0);
            }
            bufs.to_client[..n].copy_from_slice(&st.notices);
            st.notices.clear();
            to_client = Pending { from: 0, to: n };
        }
        if !to_client.is_empty() {
            if let Err(e) = write_some(client, &bufs.to_client, &mut to_client) {
                return RelayEnd::ClientError(e);
            }
        }
        if cs.terminated && cs.pending.is_empty() {
            return RelayEnd::ClientClosed;
        }
        if rescan && cs.pending.is_empty() && cs.local.is_none() {
            continue;
        }
        // A local command read behind another one's answer: its turn came when that answer
        // went out, and no socket event will say so.
        if cs.local.is_some()
            && cs.pending.is_empty()
            && to_client.is_empty()
            && st.outstanding == 0
        {
            continue;
        }
        // Read from the client only when everything it sent was dealt with.
        let client_can_read = cs.pending.is_empty() && cs.local.is_none();
        let mut client_flags = PollFlags::empty();
        if client_can_read {
            client_flags |= PollFlags::POLLIN;
        }
        if !to_client.is_empty() {
            client_flags |= PollFlags::POLLOUT;
        }
        let mut backend_flags = PollFlags::empty();
        if to_client.is_empty() {
            backend_flags |= PollFlags::POLLIN;
        }
        if !cs.pending.is_empty() {
            backend_flags |= PollFlags::POLLOUT;
        }
        let idle = st.outstanding == 0 && cs.pending.is_empty() && to_client.is_empty();
        let client_ready = match prepare_poll(client, &mut client_flags) {
            Ok(r) => r,
            Err(e) => return RelayEnd::ClientError(e),
        };
        let backend_ready = match prepare_poll(&mut backend.stream, &mut backend_flags) {
            Ok(r) => r,
            Err(e) => return RelayEnd::BackendFailed(format!("unable to write to backend: {e}")),
        };
        let ready = client_ready || backend_ready;
        let timeout = if ready {
            PollTimeout::ZERO
        } else {
            idle_timeout(client_idle_limit, idle)
        };
        let (mut client_ev, mut backend_ev) = {
            let mut fds = [
                PollFd::new(client.as_fd(), client_flags),
                PollFd::new(backend.stream.as_fd(), backend_flags),
                PollFd::new(waker.fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, timeout) {
                Ok(0) if !ready => return RelayEnd::IdleTimeout,
                Ok(_) => {}
                Err(Errno::EINTR) => {}
                Err(e) => return RelayEnd::BackendFailed(format!("poll failed: {e}")),
            }
            if fds[2].revents().is_some_and(|r| !r.is_empty()) {
                waker.drain();
            }
            (
                fds[0].revents().unwrap_or(PollFlags::empty()),
                fds[1].revents().unwrap_or(PollFlags::empty()),
            )
        };
        if client_ready {
            client_ev |= PollFlags::POLLIN;
        }
        if backend_ready {
            backend_ev |= PollFlags::POLLIN;
        }
        if let Some(end) = signalled_end(local) {
            return end;
        }
        if client_can_read && client_ev.intersects(READABLE) {
            // Move held-back bytes to the front, then read after them.
            let held = cs.unscanned.clone();
            let held_len = held.len();
            if held.start > 0 {
                bufs.to_backend.copy_within(held, 0);
            }
            match read_some(client, &mut bufs.to_backend[held_len..]) {
                Ok(Some(0)) => return RelayEnd::ClientClosed,
                Ok(Some(n)) => {
                    let filled = held_len + n;
                    match walk_client(st, &bufs.to_backend, 0, filled, local) {
                        Ok((step, next)) => cs.apply(step, next, filled),
                        Err(e) => return RelayEnd::ClientProtocol(e),
                    }
                    rescan = !cs.unscanned.is_empty();
                }
                Ok(None) => cs.unscanned = 0..held_len,
                Err(e) => return RelayEnd::ClientError(e),
            }
        }
        if to_client.is_empty() && backend_ev.intersects(READABLE) {
            match read_some(&mut backend.stream, &mut bufs.to_client) {
                Ok(Some(0)) => {
                    return RelayEnd::BackendFailed("backend closed the connection".into())
                }
                Ok(Some(n)) => {
                    if let Err(e) = scan_backend(st, backend, &bufs.to_client[..n]) {
                        return RelayEnd::BackendFailed(format!("invalid data from backend: {e}"));
                    }
                    to_client = Pending { from: 0, to: n };
                }
                Ok(None) => {}
                Err(e) => {
                    return RelayEnd::BackendFailed(format!(
                        "unable to read data from backend: {e}"
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
