//! Connections pgpool opens to backend nodes: connect, start up, authenticate (trust,
//! cleartext, md5, SCRAM-SHA-256), collect ParameterStatus and BackendKeyData, and a
//! blocking message reader used outside the relay hot path (start-up, session reset,
//! the queries pgpool issues itself).

use std::fmt;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use protocol::message::{parse_error_fields, parse_parameter_status, ErrorFields};
use protocol::scram::{ScramClient, MECHANISM as SCRAM};
use protocol::{build, scan_header};

use crate::net::{connect_backend, Stream};

/// A secret to log in to a backend with.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Plain(String),
    /// `md5<hex>` as PostgreSQL stores it: enough for md5 authentication only.
    Md5Stored(String),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(*****)")
    }
}

#[derive(Debug)]
pub enum BackendError {
    /// The node could not be reached or the socket failed.
    Io(io::Error),
    /// The backend refused us with an ErrorResponse; `raw` is the whole message,
    /// ready to relay to the client.
    Server(ErrorFields, Vec<u8>),
    /// The backend wants a password and none is available.
    NeedPassword,
    /// Anything else that makes the exchange impossible.
    Protocol(String),
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::Io(e) => write!(f, "{e}"),
            BackendError::Server(fields, _) => {
                write!(
                    f,
                    "{}: {} ({})",
                    fields.severity, fields.message, fields.code
                )
            }
            BackendError::NeedPassword => f.write_str("backend requires a password"),
            BackendError::Protocol(m) => f.write_str(m),
        }
    }
}

impl From<io::Error> for BackendError {
    fn from(e: io::Error) -> Self {
        BackendError::Io(e)
    }
}

/// Reads whole messages from a stream through a reusable buffer.
pub struct MessageReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Default for MessageReader {
    fn default() -> Self {
        MessageReader {
            buf: vec![0; 8192],
            start: 0,
            end: 0,
        }
    }
}

impl MessageReader {
    /// Reads the next message; returns its tag and body.
    pub fn read<'a>(&'a mut self, stream: &mut Stream) -> Result<(u8, &'a [u8]), BackendError> {
        loop {
            let avail = &self.buf[self.start..self.end];
            if let Some(h) =
                scan_header(avail).map_err(|e| BackendError::Protocol(e.to_string()))?
            {
                if avail.len() >= h.total_len() {
                    let body_start = self.start + 5;
                    self.start += h.total_len();
                    return Ok((h.tag, &self.buf[body_start..body_start + h.body_len]));
                }
                if h.total_len() > self.buf.len() - self.start {
                    // Make room: move the partial message to the front, grow if needed.
                    self.buf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                    if h.total_len() > self.buf.len() {
                        self.buf.resize(h.total_len(), 0);
                    }
                }
            } else if self.start > 0 && self.buf.len() - self.start < 5 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            // Signals interrupt blocking calls (handlers run without SA_RESTART so the
            // relays notice them): just read again.
            let n = match stream.read(&mut self.buf[self.end..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Err(BackendError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed by backend",
                )));
            }
            self.end += n;
        }
    }

    /// Bytes read past the last returned message (must be empty at hand-over points).
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

/// An authenticated backend connection, idle (ReadyForQuery seen).
pub struct BackendConn {
    pub stream: Stream,
    pub node: usize,
    pub pid: u32,
    pub key: u32,
    /// ParameterStatus values as last reported by the backend.
    pub params: Vec<(String, String)>,
    /// True when the backend asked for a password when this connection was made.
    pub password_required: bool,
    /// Run-time parameters sent in the start-up packet (what RESET ALL returns to).
    pub startup_params: Vec<(String, String)>,
    /// Transaction status of the last ReadyForQuery ('I', 'T' or 'E').
    pub tx_status: u8,
}

impl BackendConn {
    /// Records a ParameterStatus body; the parameter as now recorded, when the body is
    /// one.
    pub fn note_parameter(&mut self, body: &[u8]) -> Option<(&str, &str)> {
        let (name, value) = parse_parameter_status(body)?;
        let name = String::from_utf8_lossy(name);
        let value = String::from_utf8_lossy(value).into_owned();
        let at = match self.params.iter().position(|(n, _)| *n == name) {
            Some(i) => {
                self.params[i].1 = value;
                i
            }
            None => {
                self.params.push((name.into_owned(), value));
                self.params.len() - 1
            }
        };
        let (n, v) = &self.params[at];
        Some((n.as_str(), v.as_str()))
    }

    /// A pooled connection has nothing to say while no query is running: anything
    /// readable (a FATAL from a server shutting down, or end of file) means it is gone.
    pub fn closed_while_idle(&self) -> bool {
        use std::os::fd::AsFd;
        if self.stream.has_buffered_input() {
            return true;
        }
        let mut fds = [nix::poll::PollFd::new(
            self.stream.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO) {
            Ok(0) => false,
            Ok(_) => true,
            Err(_) => true,
        }
    }

    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sends `sql` as one simple Query and reads until ReadyForQuery, keeping
    /// ParameterStatus changes. Returns the data rows (text) and the first error.
    pub fn simple_query(
        &mut self,
        reader: &mut MessageReader,
        sql: &str,
    ) -> Result<QueryResult, BackendError> {
        let mut out = Vec::with_capacity(sql.len() + 6);
        build::query(&mut out, sql);
        self.stream.write_all(&out)?;
        let mut result = QueryResult::default();
        loop {
            let (tag, body) = reader.read(&mut self.stream)?;
            match tag {
                b'D' => result.rows.push(parse_data_row(body)),
                b'E' if result.error.is_none() => {
                    result.error = Some(parse_error_fields(body));
                }
                b'S' => {
                    let body = body.to_vec();
                    self.note_parameter(&body);
                }
                b'Z' => {
                    result.status = body.first().copied().unwrap_or(b'I');
                    return Ok(result);
                }
                _ => {}
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct QueryResult {
    pub rows: Vec<Vec<Option<String>>>,
    pub error: Option<ErrorFields>,
    pub status: u8,
}

fn parse_data_row(body: &[u8]) -> Vec<Option<String>> {
    protocol::message::DataRowFields::new(body)
        .map(|f| f.map(|v| String::from_utf8_lossy(v).into_owned()))
        .collect()
}

/// Where to reach a node and how long to wait for it.
pub struct NodeAddr<'a> {
    pub node: usize,
    pub host: &'a str,
    pub port: u16,
    pub connect_timeout: Duration,
}

impl<'a> NodeAddr<'a> {
    /// Node `node` of the configuration, with its (per-node) connect_timeout.
    pub fn of(cfg: &'a config::Config, node: usize) -> Self {
        let b = &cfg.backends[node];
        NodeAddr {
            node,
            host: &b.hostname,
            port: b.port,
            connect_timeout: Duration::from_millis(cfg.health_check(node).connect_timeout_ms),
        }
    }
}

/// How a backend asked for the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordAsked {
    Cleartext,
    Md5,
    Scram,
}

/// Connects to a node and logs in. `startup` holds the StartupMessage parameters
/// (`user` first). `password` is asked only if the backend requests one.
pub fn connect(
    addr: &NodeAddr<'_>,
    startup: &[(&str, &str)],
    reader: &mut MessageReader,
    password: &mut dyn FnMut(PasswordAsked) -> Result<Secret, BackendError>,
) -> Result<BackendConn, BackendError> {
    // Bounded waits during start-up: a backend that accepts but never answers must
    // not hang the child forever.
    let startup_timeout = if addr.connect_timeout.is_zero() {
        Duration::from_secs(60)
    } else {
        addr.connect_timeout.max(Duration::from_secs(10))
    };
    connect_with_deadline(
        addr,
        startup,
        reader,
        password,
        Instant::now() + startup_timeout,
    )
}

/// Like [`connect`], with the whole log-in (connect included) bounded by `deadline`.
pub fn connect_with_deadline(
    addr: &NodeAddr<'_>,
    startup: &[(&str, &str)],
    reader: &mut MessageReader,
    password: &mut dyn FnMut(PasswordAsked) -> Result<Secret, BackendError>,
    deadline: Instant,
) -> Result<BackendConn, BackendError> {
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| BackendError::Io(io::Error::new(io::ErrorKind::TimedOut, "timed out")))
    };
    let connect_timeout = if addr.connect_timeout.is_zero() {
        remaining()?
    } else {
        addr.connect_timeout.min(remaining()?)
    };
    let mut stream = connect_backend(addr.host, addr.port, connect_timeout)?;
    stream.set_read_timeout(Some(remaining()?))?;
    if let (Stream::Tcp(_), Some(tls)) = (&stream, crate::tls::backend_config()) {
        stream = start_backend_tls(stream, addr.host, tls)?;
    }
    stream.write_all(&protocol::startup::encode_startup(startup))?;
    reader.clear();
    let user = startup
        .iter()
        .find(|(n, _)| *n == "user")
        .map(|(_, v)| *v)
        .unwrap_or("");
    let mut conn = BackendConn {
        stream,
        node: addr.node,
        pid: 0,
        key: 0,
        params: Vec::new(),
        password_required: false,
        tx_status: b'I',
        startup_params: startup
            .iter()
            .filter(|(n, _)| !matches!(*n, "user" | "database" | "options" | "replication"))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    };
    let mut scram: Option<ScramClient> = None;
    loop {
        let (tag, body) = reader.read(&mut conn.stream)?;
        match tag {
            b'R' => {
                if body.len() < 4 {
                    return Err(BackendError::Protocol(
                        "short authentication request".into(),
                    ));
                }
                let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let extra = body[4..].to_vec();
                let mut out = Vec::new();
                match code {
                    0 => continue,
                    3 => {
                        conn.password_required = true;
                        match password(PasswordAsked::Cleartext)? {
                            Secret::Plain(p) => {
                                let mut payload = p.into_bytes();
                                payload.push(0);
                                build::password_message(&mut out, &payload);
                            }
                            Secret::Md5Stored(_) => {
                                return Err(BackendError::Protocol(
                                    "backend asks for a clear-text password but only an md5 hash is known".into(),
                                ))
                            }
                        }
                    }
                    5 => {
                        conn.password_required = true;
                        if extra.len() < 4 {
                            return Err(BackendError::Protocol("short md5 salt".into()));
                        }
                        let salt = [extra[0], extra[1], extra[2], extra[3]];
                        let resp = match password(PasswordAsked::Md5)? {
                            Secret::Plain(p) => protocol::auth::md5_response(user, &p, salt),
                            Secret::Md5Stored(h) => {
                                protocol::auth::md5_response_from_stored(&h, salt)
                            }
                        };
                        let mut payload = resp.into_bytes();
                        payload.push(0);
                        build::password_message(&mut out, &payload);
                    }
                    10 => {
                        conn.password_required = true;
                        let offered = extra.split(|&b| b == 0).any(|m| m == SCRAM.as_bytes());
                        if !offered {
                            return Err(BackendError::Protocol(
                                "backend offers no supported SASL mechanism".into(),
                            ));
                        }
                        let client = match password(PasswordAsked::Scram)? {
                            Secret::Plain(p) => ScramClient::new(&p),
                            Secret::Md5Stored(_) => {
                                return Err(BackendError::Protocol(
                                    "backend requires SCRAM-SHA-256 but only an md5 hash of the password is known".into(),
                                ))
                            }
                        };
                        build::sasl_initial_response(&mut out, SCRAM, &client.client_first());
                        scram = Some(client);
                    }
                    11 => {
                        let client = scram.as_mut().ok_or_else(|| {
                            BackendError::Protocol("unexpected SASLContinue".into())
                        })?;
                        let fin = client
                            .client_final(&extra)
                            .map_err(|e| BackendError::Protocol(e.to_string()))?;
                        build::password_message(&mut out, &fin);
                    }
                    12 => {
                        let client = scram
                            .as_ref()
                            .ok_or_else(|| BackendError::Protocol("unexpected SASLFinal".into()))?;
                        client
                            .verify_server_final(&extra)
                            .map_err(|e| BackendError::Protocol(e.to_string()))?;
                        continue;
                    }
                    other => {
                        return Err(BackendError::Protocol(format!(
                            "unsupported authentication method {other} requested by backend"
                        )))
                    }
                }
                conn.stream.write_all(&out)?;
            }
            b'S' => {
                let body = body.to_vec();
                conn.note_parameter(&body);
            }
            b'K' => {
                if body.len() >= 8 {
                    conn.pid = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                    conn.key = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                }
            }
            b'E' => {
                let fields = parse_error_fields(body);
                let mut raw = Vec::with_capacity(body.len() + 5);
                let s = build::begin(&mut raw, b'E');
                raw.extend_from_slice(body);
                build::finish(&mut raw, s);
                return Err(BackendError::Server(fields, raw));
            }
            b'N' => {}
            b'Z' => {
                conn.stream.set_read_timeout(None)?;
                if !reader.pending().is_empty() {
                    return Err(BackendError::Protocol(
                        "backend sent data after ReadyForQuery during start-up".into(),
                    ));
                }
                return Ok(conn);
            }
            other => {
                return Err(BackendError::Protocol(format!(
                    "unexpected message '{}' during backend start-up",
                    char::from(other).escape_default()
                )))
            }
        }
    }
}

/// SSLRequest to a backend: TLS when it answers 'S', the plain stream when 'N'.
fn start_backend_tls(
    mut stream: Stream,
    host: &str,
    tls: std::sync::Arc<rustls::ClientConfig>,
) -> Result<Stream, BackendError> {
    stream.write_all(&protocol::startup::encode_ssl_request())?;
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer)?;
    // Pgpool-II's words (its regression suite greps them).
    log::debug!(
        "client->server SSL response: {}",
        char::from(answer[0]).escape_default()
    );
    match answer[0] {
        b'S' => {
            // The name only matters for SNI: the certificate is not verified.
            let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap_or(
                rustls::pki_types::ServerName::IpAddress(
                    std::net::IpAddr::from(std::net::Ipv4Addr::LOCALHOST).into(),
                ),
            );
            let conn = rustls::ClientConnection::new(tls, name)
                .map_err(|e| BackendError::Protocol(format!("TLS: {e}")))?;
            let mut stream = stream.into_tls_client(conn);
            // Handshake now, so that its errors are reported as such.
            stream.flush()?;
            Ok(stream)
        }
        b'N' => Ok(stream),
        other => Err(BackendError::Protocol(format!(
            "unexpected answer '{}' to SSLRequest",
            char::from(other).escape_default()
        ))),
    }
}

/// Sends a CancelRequest for (pid, key) to a node.
pub fn send_cancel(host: &str, port: u16, pid: u32, key: u32, timeout: Duration) -> io::Result<()> {
    let mut s = connect_backend(host, port, timeout)?;
    s.write_all(&protocol::startup::encode_cancel(pid, key))?;
    // PostgreSQL closes the socket without a reply; wait for that so the cancel has
    // been processed before our caller reports back.
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut b = [0u8; 1];
    let _ = s.read(&mut b);
    Ok(())
}
