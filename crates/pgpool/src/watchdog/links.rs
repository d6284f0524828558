//! One TCP link to a watchdog peer: non-blocking, with an input buffer cut into frames
//! and an output buffer flushed as the socket takes it. A link is anonymous until the
//! peer's Hello names it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};

use mio::net::TcpStream;
use watchdog::wire::{Frame, MAX_FRAME};

/// Output a slow peer may leave unsent before its link is dropped (Raft resends).
const MAX_BACKLOG: usize = 4 * MAX_FRAME;

pub struct Link {
    pub stream: TcpStream,
    /// The watchdog node id, once its Hello was accepted.
    pub peer: Option<usize>,
    /// The node id this side dialled (outbound links), before any Hello.
    pub dialled: Option<usize>,
    pub opened: std::time::Instant,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
}

impl Link {
    pub fn new(stream: TcpStream, dialled: Option<usize>) -> Link {
        Link {
            stream,
            peer: None,
            dialled,
            opened: std::time::Instant::now(),
            inbuf: Vec::new(),
            outbuf: Vec::new(),
        }
    }

    pub fn send(&mut self, f: &Frame) {
        if self.outbuf.len() < MAX_BACKLOG {
            f.encode(&mut self.outbuf);
        }
    }

    /// Writes what the socket takes now.
    pub fn flush(&mut self) -> io::Result<()> {
        while !self.outbuf.is_empty() {
            match self.stream.write(&self.outbuf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.outbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads everything available; Err on EOF or a socket error.
    pub fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16384];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.inbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next whole frame received, if any.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        match Frame::decode(&self.inbuf)? {
            Some((f, used)) => {
                self.inbuf.drain(..used);
                Ok(Some(f))
            }
            None => Ok(None),
        }
    }
}

/// Where to listen: the first of `hosts` (4.7's `wd_listen_address`,
/// `wd_heartbeat_listen_addresses`) on `port` when set, else every address (also for
/// `*`) on the node's own port.
pub fn listen_address(host: &str, port: u16, default_port: u16) -> Result<SocketAddr, String> {
    let port = if port == 0 { default_port } else { port };
    let first = host.split(',').map(str::trim).find(|h| !h.is_empty());
    match first {
        None | Some("*") => Ok(([0, 0, 0, 0], port).into()),
        Some(h) => (h, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| format!("cannot resolve listen address \"{h}\"")),
    }
}
