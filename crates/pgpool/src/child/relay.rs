//! The hot path: relaying one client session to its backend connection. Both sockets
//! are non-blocking and served by one poll; each side is read into a reused buffer in
//! large chunks, only message headers are inspected (plus the bodies of the few kinds
//! that change session state), and the same bytes are written on with one write. A
//! side whose output is not yet drained is not read from, so a slow reader applies
//! back-pressure instead of growing memory, and neither side can deadlock the other.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use protocol::message::parse_error_fields;

use crate::backend::BackendConn;
use crate::child::scanner::Scanner;
use crate::net::Stream;
use crate::sys::{self, Waker};

const CLIENT_BUF: usize = 64 * 1024;
const BACKEND_BUF: usize = 128 * 1024;

/// Buffers reused by every session of a child.
pub struct RelayBuffers {
    to_backend: Vec<u8>,
    to_client: Vec<u8>,
}

impl RelayBuffers {
    pub fn new() -> Self {
        RelayBuffers {
            to_backend: vec![0; CLIENT_BUF],
            to_client: vec![0; BACKEND_BUF],
        }
    }
}

/// What the relay learned about the session, used to decide whether the backend
/// connection can go back to the pool.
#[derive(Debug)]
pub struct SessionState {
    /// ReadyForQuery messages still owed by the backend (one per Query, Sync,
    /// FunctionCall sent).
    pub outstanding: u32,
    /// Extended-protocol messages sent since the last Sync.
    pub unsynced: bool,
    /// Transaction status of the last ReadyForQuery.
    pub tx_status: u8,
    /// The backend sent FATAL/PANIC: the connection is finished.
    pub backend_fatal: bool,
    /// The backend reported admin shutdown (SQLSTATE 57P01).
    pub backend_shutdown: bool,
    /// A Terminate arrived split across reads and part of it reached the backend.
    pub torn_terminate: bool,
    client: Scanner,
    backend: Scanner,
}

impl Default for SessionState {
    fn default() -> Self {
        SessionState {
            outstanding: 0,
            unsynced: false,
            tx_status: b'I',
            backend_fatal: false,
            backend_shutdown: false,
            torn_terminate: false,
            client: Scanner::default(),
            backend: Scanner::default(),
        }
    }
}

impl SessionState {
    /// The backend is between requests and owes nothing: safe to reset and reuse.
    pub fn backend_reusable(&self) -> bool {
        self.outstanding == 0
            && !self.unsynced
            && !self.backend_fatal
            && !self.torn_terminate
            && self.client.at_boundary()
            && self.backend.at_boundary()
    }
}

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
}

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

fn read_some(stream: &mut Stream, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        match stream.read(buf) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

fn is_sync_point(tag: u8) -> bool {
    matches!(tag, b'Q' | b'S' | b'F')
}

fn is_extended(tag: u8) -> bool {
    matches!(tag, b'P' | b'B' | b'E' | b'D' | b'C' | b'H')
}

/// Relays until the session ends. `initial` holds client bytes already read during
/// start-up. Both sockets are left in blocking mode on return.
pub fn relay(
    client: &mut Stream,
    backend: &mut BackendConn,
    bufs: &mut RelayBuffers,
    initial: &[u8],
    st: &mut SessionState,
    waker: &Waker,
    client_idle_limit: u64,
) -> RelayEnd {
    if let Err(e) = client
        .set_nonblocking(true)
        .and_then(|_| backend.stream.set_nonblocking(true))
    {
        return RelayEnd::BackendFailed(format!("could not set non-blocking mode: {e}"));
    }
    let end = relay_loop(client, backend, bufs, initial, st, waker, client_idle_limit);
    let _ = client.set_nonblocking(false);
    let _ = backend.stream.set_nonblocking(false);
    end
}

/// Scans client bytes `buf[..n]`; returns how many of them go to the backend and
/// whether the client terminated.
fn scan_client(st: &mut SessionState, buf: &[u8]) -> Result<(usize, bool), String> {
    let mut forward = buf.len();
    let mut terminated = false;
    let mut outstanding = st.outstanding;
    let mut unsynced = st.unsynced;
    let mut torn = false;
    st.client
        .feed(
            buf,
            |t| t == b'X',
            |tag| {
                if is_sync_point(tag) {
                    outstanding += 1;
                    if tag == b'S' {
                        unsynced = false;
                    }
                } else if is_extended(tag) {
                    unsynced = true;
                }
            },
            |m| {
                terminated = true;
                match m.start {
                    Some(s) => forward = s,
                    None => torn = true,
                }
                false
            },
        )
        .map_err(|e| e.to_string())?;
    st.outstanding = outstanding;
    st.unsynced = unsynced;
    st.torn_terminate |= torn;
    if terminated && !torn {
        // Terminate itself is not a sync point; undo nothing: it was never counted.
    }
    Ok((forward, terminated))
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

fn relay_loop(
    client: &mut Stream,
    backend: &mut BackendConn,
    bufs: &mut RelayBuffers,
    initial: &[u8],
    st: &mut SessionState,
    waker: &Waker,
    client_idle_limit: u64,
) -> RelayEnd {
    let mut to_backend = Pending::default();
    let mut to_client = Pending::default();
    let mut client_done = false;
    if !initial.is_empty() {
        let n = initial.len().min(bufs.to_backend.len());
        bufs.to_backend[..n].copy_from_slice(&initial[..n]);
        match scan_client(st, &bufs.to_backend[..n]) {
            Ok((fwd, term)) => {
                to_backend = Pending { from: 0, to: fwd };
                client_done = term;
            }
            Err(e) => return RelayEnd::ClientProtocol(e),
        }
    }
    loop {
        if !to_backend.is_empty() {
            if let Err(e) = write_some(&mut backend.stream, &bufs.to_backend, &mut to_backend) {
                return RelayEnd::BackendFailed(format!(
                    "unable to forward message to backend: {e}"
                ));
            }
        }
        if !to_client.is_empty() {
            if let Err(e) = write_some(client, &bufs.to_client, &mut to_client) {
                return RelayEnd::ClientError(e);
            }
        }
        if client_done && to_backend.is_empty() {
            return RelayEnd::ClientClosed;
        }
        let client_flags = {
            let mut f = PollFlags::empty();
            if to_backend.is_empty() {
                f |= PollFlags::POLLIN;
            }
            if !to_client.is_empty() {
                f |= PollFlags::POLLOUT;
            }
            f
        };
        let backend_flags = {
            let mut f = PollFlags::empty();
            if to_client.is_empty() {
                f |= PollFlags::POLLIN;
            }
            if !to_backend.is_empty() {
                f |= PollFlags::POLLOUT;
            }
            f
        };
        let idle = st.outstanding == 0 && to_backend.is_empty() && to_client.is_empty();
        let timeout = if client_idle_limit > 0 && idle {
            PollTimeout::try_from(client_idle_limit.saturating_mul(1000).min(i32::MAX as u64) as i32)
                .unwrap_or(PollTimeout::NONE)
        } else {
            PollTimeout::NONE
        };
        let (client_ev, backend_ev) = {
            let mut fds = [
                PollFd::new(client.as_fd(), client_flags),
                PollFd::new(backend.stream.as_fd(), backend_flags),
                PollFd::new(waker.fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, timeout) {
                Ok(0) => return RelayEnd::IdleTimeout,
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
        let pending = sys::peek_pending();
        if sys::has(pending, Signal::SIGINT) || sys::has(pending, Signal::SIGQUIT) {
            return RelayEnd::Shutdown;
        }
        let readable = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
        if to_backend.is_empty() && client_ev.intersects(readable) {
            match read_some(client, &mut bufs.to_backend) {
                Ok(Some(0)) => return RelayEnd::ClientClosed,
                Ok(Some(n)) => match scan_client(st, &bufs.to_backend[..n]) {
                    Ok((fwd, term)) => {
                        to_backend = Pending { from: 0, to: fwd };
                        client_done = term;
                    }
                    Err(e) => return RelayEnd::ClientProtocol(e),
                },
                Ok(None) => {}
                Err(e) => return RelayEnd::ClientError(e),
            }
        }
        if to_client.is_empty() && backend_ev.intersects(readable) {
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
