//! A PCP connection: connect over TCP (IPv4, as Pgpool-II's library does) or the Unix
//! socket `<dir>/.s.PGSQL.<port>` (dir `/tmp` when no host is given), authenticate,
//! send requests and collect the reply packets. Errors are returned as the text
//! Pgpool-II's tools print.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;

use crate::auth;
use crate::error::Report;
use crate::frame::{self, Body, FrameError};

/// Unix socket directory used without -h.
pub const DEFAULT_SOCKET_DIR: &str = "/tmp";
/// RAND_MAX of glibc: Pgpool-II sends node weights multiplied by it.
pub const RAND_MAX: f64 = 2147483647.0;

enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Sock {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(b),
            Sock::Unix(s) => s.read(b),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(b),
            Sock::Unix(s) => s.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// strerror-like text of an I/O error (without Rust's " (os error N)").
pub fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(p) => s[..p].to_string(),
        None => s,
    }
}

/// Parameters of a connection.
#[derive(Debug, Clone, Default)]
pub struct ConnectParams {
    pub host: Option<String>,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    pub debug: bool,
}

/// An authenticated PCP connection.
pub struct Connection {
    sock: Sock,
    debug: bool,
}

/// One backend node as pcp_node_info reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub hostname: String,
    pub port: i64,
    pub status: i64,
    pub quarantine: bool,
    pub pg_status: String,
    /// Normalized weight (already divided by RAND_MAX).
    pub weight: f64,
    pub role: i64,
    pub pg_role: String,
    /// Replication delay as the server sent it: bytes, or seconds with six decimals when
    /// it measures the delay in time (delay_threshold_by_time).
    pub delay: String,
    pub replication_state: String,
    pub replication_sync_state: String,
    pub status_changed: i64,
}

/// Fields of a pcp_proc_info record as Pgpool-II 4.7 sends them (4.3 sends the first 17).
pub const PROC_INFO_FIELDS: usize = 21;

impl NodeInfo {
    /// Decodes a NodeInfo record ("NodeInfo" and at least 12 more fields). Pgpool-II
    /// 4.3 sends 13 fields; 4.4 and later 14, with a "delay by time" flag before the
    /// delay, which is then in microseconds (shown as seconds with six decimals).
    pub fn from_fields(s: &[String]) -> NodeInfo {
        let get = |i: usize| s.get(i).cloned().unwrap_or_default();
        let (delay, rest) = if s.len() >= 14 {
            let value = get(10).trim().parse::<u64>().unwrap_or(0);
            let by_time = frame::atoi(&get(9)) != 0;
            let delay = if by_time {
                format!("{:.6}", value as f32 / 1_000_000.0)
            } else {
                value.to_string()
            };
            (delay, 11)
        } else {
            (get(9).trim().to_string(), 10)
        };
        NodeInfo {
            hostname: get(1),
            port: frame::atoi(&get(2)),
            status: frame::atoi(&get(3)),
            quarantine: frame::atoi(&get(4)) != 0,
            pg_status: get(5),
            weight: get(6).trim().parse::<f64>().unwrap_or(0.0) / RAND_MAX,
            role: frame::atoi(&get(7)),
            pg_role: get(8),
            delay,
            replication_state: get(rest),
            replication_sync_state: get(rest + 1),
            status_changed: frame::atoi(&get(rest + 2)),
        }
    }
}

/// The OS user name (the default PCP user).
pub fn os_user() -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
}

impl Connection {
    /// Connects and authenticates.
    pub fn connect(p: &ConnectParams) -> Result<Connection, String> {
        let host = p.host.clone().unwrap_or_default();
        let (sock, lookup_host) = if host.is_empty() || host.starts_with('/') {
            let dir = if host.is_empty() {
                DEFAULT_SOCKET_DIR
            } else {
                host.as_str()
            };
            let path = format!("{dir}/.s.PGSQL.{}", p.port);
            let s = UnixStream::connect(&path).map_err(|e| {
                format!(
                    "ERROR: connection to socket \"{path}\" failed with error \"{}\"",
                    strerror(&e)
                )
            })?;
            let lh = if dir == DEFAULT_SOCKET_DIR {
                "localhost".to_string()
            } else {
                dir.to_string()
            };
            (Sock::Unix(s), lh)
        } else {
            let addr = (host.as_str(), p.port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.find(|a| a.is_ipv4()))
                .ok_or_else(|| {
                    "ERROR: could not retrieve hostname. gethostbyname failed with error \"Success\""
                        .to_string()
                })?;
            let s = TcpStream::connect(addr).map_err(|e| {
                format!(
                    "ERROR: connection to host \"{host}\" failed with error \"{}\"",
                    strerror(&e)
                )
            })?;
            let _ = s.set_nodelay(true);
            (Sock::Tcp(s), host.clone())
        };
        let mut conn = Connection {
            sock,
            debug: p.debug,
        };
        let user = p.user.clone().or_else(os_user).unwrap_or_default();
        let password = match p.password.as_deref() {
            Some(pw) if !pw.is_empty() => pw.to_string(),
            _ => crate::pcppass::lookup(&lookup_host, &p.port.to_string(), &user, p.debug)
                .unwrap_or_default(),
        };
        conn.authenticate(&user, &password)?;
        Ok(conn)
    }

    fn authenticate(&mut self, user: &str, password: &str) -> Result<(), String> {
        if user.len() >= 128 {
            return Err("ERROR: PCP authorization failed. username too long.".into());
        }
        let replies = self.request(b'M', &[], b'm')?;
        let salt_body = replies.first().ok_or("command failed. invalid response")?;
        let salt: [u8; 4] = salt_body
            .get(..4)
            .and_then(|s| s.try_into().ok())
            .ok_or("command failed. invalid response")?;
        let digest = auth::client_digest(password, user, &salt);
        let body = Body::new().str(user).str(&digest);
        let replies = self.request(b'R', &body.0, b'r')?;
        match replies.first() {
            Some(b) if frame::first_str(b) == "AuthenticationOK" => Ok(()),
            Some(b) => Err(format!(
                "ERROR: authentication failed. reason=\"{}\"",
                frame::first_str(b)
            )),
            None => Err("Unknown Error".into()),
        }
    }

    fn send(&mut self, tag: u8, body: &[u8]) -> Result<(), String> {
        frame::write_packet(&mut self.sock, tag, body).map_err(|e| {
            format!(
                "ERROR: sending data to backend failed with error \"{}\"",
                strerror(&e)
            )
        })?;
        if self.debug {
            println!(
                "DEBUG: send: tos=\"{}\", len={}",
                tag as char,
                body.len() + 4
            );
        }
        Ok(())
    }

    /// Sends one request and collects the bodies of the `reply` packets until one
    /// that starts with "CommandComplete" (or a salt / auth answer). Notices are
    /// skipped, an error report ends the exchange with its text.
    pub fn request(&mut self, tag: u8, body: &[u8], reply: u8) -> Result<Vec<Vec<u8>>, String> {
        self.send(tag, body)?;
        let mut out = Vec::new();
        loop {
            let (t, b) = match frame::read_packet(&mut self.sock, frame::MAX_REPLY_LEN) {
                Ok(p) => p,
                Err(FrameError::Io(_)) | Err(FrameError::BadLength(_)) => {
                    return Err("ERROR: unable to read data from socket.".into())
                }
            };
            if self.debug {
                println!("DEBUG: recv: tos=\"{}\", len={}", t as char, b.len() + 4);
            }
            match t {
                b'E' => {
                    return Err(Report::decode(&b)
                        .map(|r| r.client_text())
                        .unwrap_or_else(|| "Unknown Error".into()))
                }
                b'N' => {
                    if self.debug {
                        if let Some(r) = Report::decode(&b) {
                            print!("BACKEND {}", r.client_text());
                        }
                    }
                    continue;
                }
                t if t == reply => {
                    let done =
                        matches!(reply, b'm' | b'r') || frame::first_str(&b) == "CommandComplete";
                    out.push(b);
                    if done {
                        return Ok(out);
                    }
                }
                b'r' | b'm' | b'i' | b'h' | b'l' | b'c' | b'd' | b'a' | b'z' | b'w' | b'p'
                | b'n' | b'b' | b't' | b'v' | b'g' => return Err("Unknown Error".into()),
                other => {
                    return Err(format!(
                        "ERROR: invalid PCP packet type =\"{}\"",
                        other as char
                    ))
                }
            }
        }
    }

    /// Sends 'X' and closes.
    pub fn disconnect(mut self) {
        let _ = self.send(b'X', &[]);
    }

    /// A request answered by one bare "CommandComplete".
    fn simple(&mut self, tag: u8, body: &[u8], reply: u8) -> Result<(), String> {
        let r = self.request(tag, body, reply)?;
        match r.last() {
            Some(b) if frame::first_str(b) == "CommandComplete" => Ok(()),
            Some(b) => Err(format!(
                "command failed with reason: \"{}\"",
                frame::first_str(b)
            )),
            None => Err("Unknown Error".into()),
        }
    }

    pub fn node_count(&mut self) -> Result<i64, String> {
        let r = self.request(b'L', &[], b'l')?;
        let s = frame::strings(r.last().map(Vec::as_slice).unwrap_or_default());
        match s.get(1) {
            Some(n) => Ok(frame::atoi(n)),
            None => Err("command failed. invalid response".into()),
        }
    }

    pub fn node_info(&mut self, node: i64) -> Result<Vec<NodeInfo>, String> {
        let r = self.request(b'I', &Body::new().str(&node.to_string()).0, b'i')?;
        let mut out = Vec::new();
        for b in &r {
            let s = frame::strings(b);
            if s.first().map(String::as_str) != Some("NodeInfo") {
                continue;
            }
            if s.len() < 13 {
                return Err("command failed. invalid response".into());
            }
            out.push(NodeInfo::from_fields(&s));
        }
        Ok(out)
    }

    /// The 20 fields of pcp_health_check_stats.
    pub fn health_check_stats(&mut self, node: i64) -> Result<Vec<String>, String> {
        let r = self.request(b'H', &Body::new().str(&node.to_string()).0, b'h')?;
        let mut s = frame::strings(r.last().map(Vec::as_slice).unwrap_or_default());
        if s.is_empty() {
            return Err("command failed. invalid response".into());
        }
        s.remove(0);
        s.resize(20, String::new());
        Ok(s)
    }

    pub fn proc_count(&mut self) -> Result<Vec<i64>, String> {
        let r = self.request(b'N', &[], b'n')?;
        let s = frame::strings(r.last().map(Vec::as_slice).unwrap_or_default());
        let n = s.get(1).map(|v| frame::atoi(v)).unwrap_or(0).max(0) as usize;
        Ok(s.iter().skip(2).take(n).map(|v| frame::atoi(v)).collect())
    }

    /// The fields (SHOW POOL_POOLS order, 17 from Pgpool-II 4.3, 21 from 4.7: missing
    /// ones empty) of every reported connection slot.
    pub fn proc_info(&mut self, pid: i64) -> Result<Vec<Vec<String>>, String> {
        let r = self.request(b'P', &Body::new().str(&pid.to_string()).0, b'p')?;
        let mut out = Vec::new();
        for b in &r {
            let mut s = frame::strings(b);
            if s.first().map(String::as_str) != Some("ProcessInfo") {
                continue;
            }
            s.remove(0);
            s.resize(PROC_INFO_FIELDS, String::new());
            out.push(s);
        }
        Ok(out)
    }

    /// (name, value, description) rows of pcp_pool_status.
    pub fn pool_status(&mut self) -> Result<Vec<(String, String, String)>, String> {
        let r = self.request(b'B', &[], b'b')?;
        let mut out = Vec::new();
        for b in &r {
            let s = frame::strings(b);
            if s.first().map(String::as_str) != Some("ProcessConfig") {
                continue;
            }
            let get = |i: usize| s.get(i).cloned().unwrap_or_default();
            out.push((get(1), get(2), get(3)));
        }
        Ok(out)
    }

    pub fn attach_node(&mut self, node: i64) -> Result<(), String> {
        self.simple(b'C', &Body::new().str(&node.to_string()).0, b'c')
    }

    pub fn detach_node(&mut self, node: i64, gracefully: bool) -> Result<(), String> {
        let tag = if gracefully { b'd' } else { b'D' };
        self.simple(tag, &Body::new().str(&node.to_string()).0, b'd')
    }

    pub fn promote_node(
        &mut self,
        node: i64,
        gracefully: bool,
        switchover: bool,
    ) -> Result<(), String> {
        let tag = if gracefully { b'j' } else { b'J' };
        let opt: &[u8] = if switchover { b"s" } else { b"n" };
        let body = Body::new().str(&format!("{node} ")).raw(opt);
        self.simple(tag, &body.0, b'd')
    }

    pub fn recovery_node(&mut self, node: i64) -> Result<(), String> {
        self.simple(b'O', &Body::new().str(&node.to_string()).0, b'c')
    }

    /// `mode` 's', 'f' or 'i'; `scope` 'l' (local, 'T') or 'c' (cluster, 't').
    pub fn stop_pgpool(&mut self, mode: u8, scope: u8) -> Result<(), String> {
        let tag = if scope == b'l' { b'T' } else { b't' };
        self.simple(tag, &[mode], b't')
    }

    pub fn reload_config(&mut self, scope: u8) -> Result<(), String> {
        self.simple(b'Z', &[scope], b'z')
    }

    pub fn log_rotate(&mut self, scope: u8) -> Result<(), String> {
        self.simple(b'V', &[scope], b'v')
    }

    pub fn invalidate_query_cache(&mut self) -> Result<(), String> {
        self.simple(b'G', &[], b'g')
    }

    /// The JSON document describing the watchdog cluster.
    pub fn watchdog_info(&mut self, id: i64) -> Result<String, String> {
        let r = self.request(b'W', &Body::new().str(&id.to_string()).0, b'w')?;
        let s = frame::strings(r.last().map(Vec::as_slice).unwrap_or_default());
        s.get(1)
            .cloned()
            .ok_or_else(|| "command failed. invalid response\n".to_string())
    }
}
