//! Sockets: the listening endpoints (TCP addresses from listen_addresses and the Unix
//! socket `.s.PGSQL.<port>` in each unix_socket_directories entry, owned by
//! unix_socket_group and with unix_socket_permissions) and a stream type
//! that is TCP, Unix or (clients that asked for SSL) TLS over TCP, used for clients and
//! backends alike. A TLS stream can hold decrypted input and encrypted output that a
//! poll on its socket does not show: relays ask [`Stream::has_buffered_input`] and
//! [`Stream::has_pending_output`] and call [`Stream::flush_pending`].

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A TLS session over TCP: a client's (pgpool is the server) or a backend's (pgpool is
/// the client).
pub enum TlsStream {
    Server(rustls::StreamOwned<rustls::ServerConnection, TcpStream>),
    Client(rustls::StreamOwned<rustls::ClientConnection, TcpStream>),
}

/// Runs `$body` with `$s` bound to the inner StreamOwned of either side.
macro_rules! either_side {
    ($t:expr, $s:ident => $body:expr) => {
        match $t {
            TlsStream::Server($s) => $body,
            TlsStream::Client($s) => $body,
        }
    };
}

impl TlsStream {
    fn sock(&self) -> &TcpStream {
        either_side!(self, s => &s.sock)
    }

    fn wants_read(&self) -> bool {
        either_side!(self, s => s.conn.wants_read())
    }

    fn wants_write(&self) -> bool {
        either_side!(self, s => s.conn.wants_write())
    }

    fn write_tls(&mut self) -> io::Result<usize> {
        either_side!(self, s => s.conn.write_tls(&mut s.sock))
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        either_side!(self, s => s.read(buf))
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        either_side!(self, s => s.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        either_side!(self, s => s.flush())
    }
}

pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<TlsStream>),
}

impl Stream {
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(on),
            Stream::Unix(s) => s.set_nonblocking(on),
            Stream::Tls(s) => s.sock().set_nonblocking(on),
        }
    }

    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(d),
            Stream::Unix(s) => s.set_read_timeout(d),
            Stream::Tls(s) => s.sock().set_read_timeout(d),
        }
    }

    /// Starts TLS on a TCP client that sent SSLRequest and was answered 'S' (the
    /// handshake runs on the first read). Other streams are returned as they are.
    pub fn into_tls(self, conn: rustls::ServerConnection) -> Stream {
        match self {
            Stream::Tcp(sock) => Stream::Tls(Box::new(TlsStream::Server(
                rustls::StreamOwned::new(conn, sock),
            ))),
            other => other,
        }
    }

    /// Starts TLS towards a backend that answered 'S' to SSLRequest.
    pub fn into_tls_client(self, conn: rustls::ClientConnection) -> Stream {
        match self {
            Stream::Tcp(sock) => Stream::Tls(Box::new(TlsStream::Client(
                rustls::StreamOwned::new(conn, sock),
            ))),
            other => other,
        }
    }

    /// The certificate a TLS client presented (verified against ssl_ca_cert).
    pub fn client_certificate(&self) -> Option<rustls::pki_types::CertificateDer<'static>> {
        match self {
            Stream::Tls(t) => match t.as_ref() {
                TlsStream::Server(s) => s.conn.peer_certificates()?.first().cloned(),
                TlsStream::Client(_) => None,
            },
            _ => None,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Decrypted bytes are waiting in the TLS layer (a read will return them).
    pub fn has_buffered_input(&self) -> bool {
        matches!(self, Stream::Tls(s) if !s.wants_read())
    }

    /// Encrypted bytes wait in the TLS layer for the socket to take them.
    pub fn has_pending_output(&self) -> bool {
        matches!(self, Stream::Tls(s) if s.wants_write())
    }

    /// Writes what the TLS layer holds, as far as the socket takes it now.
    pub fn flush_pending(&mut self) -> io::Result<()> {
        if let Stream::Tls(s) = self {
            while s.wants_write() {
                match s.write_tls() {
                    Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "peer closed")),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Client address for logs and SHOW POOL_POOLS: (host, port); Unix sockets give
    /// ("[local]", "").
    pub fn peer(&self) -> (String, String) {
        match self {
            Stream::Tcp(s) => Stream::tcp_peer(s),
            Stream::Unix(_) => ("[local]".into(), String::new()),
            Stream::Tls(s) => Stream::tcp_peer(s.sock()),
        }
    }

    fn tcp_peer(s: &TcpStream) -> (String, String) {
        match s.peer_addr() {
            Ok(a) => (a.ip().to_string(), a.port().to_string()),
            Err(_) => ("unknown".into(), String::new()),
        }
    }

    pub fn peer_ip(&self) -> Option<std::net::IpAddr> {
        match self {
            Stream::Tcp(s) => s.peer_addr().ok().map(|a| a.ip()),
            Stream::Tls(s) => s.sock().peer_addr().ok().map(|a| a.ip()),
            Stream::Unix(_) => None,
        }
    }

    pub fn is_unix(&self) -> bool {
        matches!(self, Stream::Unix(_))
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    /// Blocking streams: everything the TLS layer holds is written.
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tls(s) => s.flush(),
            _ => Ok(()),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Tls(s) => s.sock().as_raw_fd(),
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
            Stream::Tls(s) => s.sock().as_fd(),
        }
    }
}

/// Where a backend node is reached: a host name/address, or a Unix socket directory
/// when the host name starts with '/' (as libpq does).
pub fn connect_backend(host: &str, port: u16, timeout: Duration) -> io::Result<Stream> {
    if host.starts_with('/') {
        let path = Path::new(host).join(format!(".s.PGSQL.{port}"));
        let s = UnixStream::connect(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        return Ok(Stream::Unix(s));
    }
    let host = if host.is_empty() { "localhost" } else { host };
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("no address for {host}"));
    for addr in (host, port).to_socket_addrs()? {
        let deadline = std::time::Instant::now() + timeout;
        let r = loop {
            let r = if timeout.is_zero() {
                TcpStream::connect(addr)
            } else {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection timed out",
                    ));
                }
                TcpStream::connect_timeout(&addr, left)
            };
            // A signal interrupted the wait: try again within the same deadline.
            match r {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match r {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(Stream::Tcp(s));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Group and mode given to the Unix sockets after they are bound (`unix_socket_group`,
/// `unix_socket_permissions`; the PCP sockets keep the defaults, as in Pgpool-II).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixSocketMode {
    /// Group name or numeric id; empty: the group the process creates files with.
    pub group: String,
    pub permissions: u32,
}

impl Default for UnixSocketMode {
    fn default() -> UnixSocketMode {
        UnixSocketMode {
            group: String::new(),
            permissions: 0o777,
        }
    }
}

impl UnixSocketMode {
    /// Applies group and mode to the socket file at `path`.
    fn apply(&self, path: &Path) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let bind_error = |call: &str, e: io::Error| {
            io::Error::new(
                e.kind(),
                format!(
                    "failed to bind a socket: \"{}\": system call {call} failed with error: \"{e}\"",
                    path.display()
                ),
            )
        };
        if !self.group.is_empty() {
            let gid = match self.group.parse::<u32>() {
                Ok(id) => nix::unistd::Gid::from_raw(id),
                Err(_) => match nix::unistd::Group::from_name(&self.group) {
                    Ok(Some(g)) => g.gid,
                    _ => {
                        return Err(io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("unix_socket_group \"{}\" does not exist", self.group),
                        ))
                    }
                },
            };
            nix::unistd::chown(path, None, Some(gid))
                .map_err(|e| bind_error("chown", io::Error::from(e)))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(self.permissions))
            .map_err(|e| bind_error("chmod", e))
    }
}

/// The sockets the main process listens on, inherited by every child.
pub struct Listeners {
    pub tcp: Vec<TcpListener>,
    pub unix: Vec<(UnixListener, PathBuf)>,
}

impl Listeners {
    /// Closes the listening sockets in a forked process that serves no clients on them
    /// (the objects stay, unused): a process that outlives pgpool's main process must not
    /// keep its port bound.
    pub fn close_fds(&self) {
        for l in &self.tcp {
            let _ = nix::unistd::close(l.as_raw_fd());
        }
        for (l, _) in &self.unix {
            let _ = nix::unistd::close(l.as_raw_fd());
        }
    }

    /// Binds `listen_addresses` ('*' = all IPv4 and IPv6, '' = none, else a comma list
    /// of host names/addresses) and the Unix sockets.
    pub fn bind(
        listen_addresses: &str,
        port: u16,
        socket_dirs: &[String],
        mode: &UnixSocketMode,
        backlog: i32,
    ) -> io::Result<Listeners> {
        let mut tcp = Vec::new();
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for item in listen_addresses
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            if item == "*" {
                addrs.push(SocketAddr::from(([0, 0, 0, 0], port)));
                addrs.push(SocketAddr::from(([0u16; 8], port)));
            } else {
                for a in (item, port).to_socket_addrs().map_err(|e| {
                    io::Error::new(e.kind(), format!("could not resolve \"{item}\": {e}"))
                })? {
                    if !addrs.contains(&a) {
                        addrs.push(a);
                    }
                }
            }
        }
        for a in addrs {
            match bind_tcp(a, backlog) {
                Ok(l) => tcp.push(l),
                // "*" binds both families; a v4-mapped v6 socket clashes with the v4
                // one on some systems, so only the first error matters.
                Err(e) if a.is_ipv6() && !tcp.is_empty() => {
                    log::debug!("not listening on {a}: {e}");
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("could not bind to {a}: {e}"),
                    ))
                }
            }
        }
        let mut unix = Vec::new();
        for dir in socket_dirs.iter().filter(|d| !d.is_empty()) {
            let path = Path::new(dir).join(format!(".s.PGSQL.{port}"));
            if path.exists() {
                // A socket file left by a crashed pgpool: nobody accepts on it if a
                // connect fails, so it is safe to remove.
                if UnixStream::connect(&path).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("{} is in use by another server", path.display()),
                    ));
                }
                let _ = std::fs::remove_file(&path);
            }
            let l = UnixListener::bind(&path).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("could not bind to {}: {e}", path.display()),
                )
            })?;
            if let Err(e) = mode.apply(&path) {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
            unix.push((l, path));
        }
        for l in &tcp {
            l.set_nonblocking(true)?;
        }
        for (l, _) in &unix {
            l.set_nonblocking(true)?;
        }
        Ok(Listeners { tcp, unix })
    }

    pub fn remove_socket_files(&self) {
        for (_, p) in &self.unix {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn bind_tcp(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    use nix::sys::socket::{
        bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
        SockaddrStorage,
    };
    let family = if addr.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if addr.is_ipv6() {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    let backlog = Backlog::new(backlog.clamp(1, 65535)).unwrap_or(Backlog::MAXCONN);
    listen(&fd, backlog)?;
    Ok(TcpListener::from(fd))
}
