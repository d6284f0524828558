//! A child's connection to memcached (`memqcache_method = memcached`): get, set and
//! delete in memcached's text protocol over one TCP connection, opened when first
//! needed. memcached only holds entries; whether an entry may be served is decided by
//! the invalidation counters in pgpool's shared memory (shmem::QueryCache), so a
//! memcached that is slow, restarted or gone can cost hits but never serve a stale
//! answer. A failed exchange drops the connection, and for a few seconds every lookup
//! is a miss and every store is skipped, so a dead memcached adds no wait per query.

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// How long one exchange (or connecting) may take before memcached counts as down.
const IO_TIMEOUT: Duration = Duration::from_millis(500);
/// How long memcached is left alone after a failure.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// memcached's default item size limit (-I); larger entries are not sent.
pub const MAX_ITEM: usize = 1024 * 1024 - 512;

pub struct Memcached {
    host: String,
    port: u16,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    conn: Option<BufReader<TcpStream>>,
    down_until: Option<Instant>,
    /// The outage was logged (one line per outage, one when it ends).
    reported: bool,
}

impl Memcached {
    /// The memcached of memqcache_method = memcached (None with shmem).
    pub fn configured(cfg: &config::Config) -> Option<Memcached> {
        (cfg.memqcache_method == config::CacheMethod::Memcached).then(|| {
            Memcached::new(
                &cfg.memqcache_memcached_host,
                u16::try_from(cfg.memqcache_memcached_port).unwrap_or(11211),
            )
        })
    }

    pub fn new(host: &str, port: u16) -> Memcached {
        Memcached {
            host: host.to_string(),
            port,
            state: RefCell::new(State::default()),
        }
    }

    /// The value stored under `key`, into `out`; false on a miss or when memcached
    /// cannot be asked.
    pub fn get(&self, key: &str, out: &mut Vec<u8>) -> bool {
        self.exchange(|conn| {
            conn.get_mut()
                .write_all(format!("get {key}\r\n").as_bytes())?;
            let line = read_line(conn)?;
            if line == "END" {
                return Ok(false);
            }
            let len = value_length(&line, key)?;
            out.clear();
            out.resize(len + 2, 0);
            conn.read_exact(out)?;
            if !out.ends_with(b"\r\n") {
                return Err(protocol_error("a value not ended by CRLF"));
            }
            out.truncate(len);
            match read_line(conn)?.as_str() {
                "END" => Ok(true),
                other => Err(protocol_error(other)),
            }
        })
        .unwrap_or(false)
    }

    /// Stores `value` under `key` for `expire` seconds (0: until evicted).
    pub fn set(&self, key: &str, value: &[u8], expire: u32) -> bool {
        if value.len() > MAX_ITEM {
            return false;
        }
        self.exchange(|conn| {
            // One write: a command split over several segments costs a round of
            // delayed ACKs on some stacks.
            let mut cmd = format!("set {key} 0 {expire} {}\r\n", value.len()).into_bytes();
            cmd.reserve(value.len() + 2);
            cmd.extend_from_slice(value);
            cmd.extend_from_slice(b"\r\n");
            conn.get_mut().write_all(&cmd)?;
            match read_line(conn)?.as_str() {
                "STORED" => Ok(true),
                // The server said no (too large, out of memory): the connection is fine.
                l if l.starts_with("SERVER_ERROR") || l == "NOT_STORED" => Ok(false),
                other => Err(protocol_error(other)),
            }
        })
        .unwrap_or(false)
    }

    /// Forgets `key`; true when memcached had it.
    pub fn delete(&self, key: &str) -> bool {
        self.exchange(|conn| {
            conn.get_mut()
                .write_all(format!("delete {key}\r\n").as_bytes())?;
            match read_line(conn)?.as_str() {
                "DELETED" => Ok(true),
                "NOT_FOUND" => Ok(false),
                other => Err(protocol_error(other)),
            }
        })
        .unwrap_or(false)
    }

    /// Runs one request/answer exchange, connecting first when needed; None when
    /// memcached is (or just went) unreachable.
    fn exchange<T>(&self, f: impl FnOnce(&mut BufReader<TcpStream>) -> io::Result<T>) -> Option<T> {
        let mut st = self.state.borrow_mut();
        if st.conn.is_none() {
            if st.down_until.is_some_and(|t| Instant::now() < t) {
                return None;
            }
            match self.connect() {
                Ok(c) => {
                    st.conn = Some(c);
                    st.down_until = None;
                    if std::mem::take(&mut st.reported) {
                        log::info!(
                            "memcached {}:{} is reachable again: query cache entries are stored and served",
                            self.host,
                            self.port
                        );
                    }
                }
                Err(e) => {
                    self.fail(&mut st, &e);
                    return None;
                }
            }
        }
        let conn = st.conn.as_mut()?;
        match f(conn) {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(&mut st, &e);
                None
            }
        }
    }

    fn fail(&self, st: &mut State, e: &io::Error) {
        st.conn = None;
        st.down_until = Some(Instant::now() + RETRY_AFTER);
        if !std::mem::replace(&mut st.reported, true) {
            log::warn!(
                "memcached {}:{} failed: {e}; the query cache misses (queries go to the backends) until it answers again",
                self.host,
                self.port
            );
        }
    }

    fn connect(&self) -> io::Result<BufReader<TcpStream>> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in (self.host.as_str(), self.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
                Ok(s) => {
                    s.set_nodelay(true)?;
                    s.set_read_timeout(Some(IO_TIMEOUT))?;
                    s.set_write_timeout(Some(IO_TIMEOUT))?;
                    return Ok(BufReader::with_capacity(64 * 1024, s));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

fn protocol_error(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected answer from memcached: {what:.80}"),
    )
}

fn read_line(conn: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut line = String::new();
    let n = conn.by_ref().take(1024).read_line(&mut line)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "memcached closed the connection",
        ));
    }
    if !line.ends_with("\r\n") {
        return Err(protocol_error(&line));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

/// The length in `VALUE <key> <flags> <bytes>`.
fn value_length(line: &str, key: &str) -> io::Result<usize> {
    let mut words = line.split(' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("VALUE"), Some(k), Some(_flags), Some(len)) if k == key => len
            .parse::<usize>()
            .ok()
            .filter(|&n| n <= MAX_ITEM * 2)
            .ok_or_else(|| protocol_error(line)),
        _ => Err(protocol_error(line)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_lines() {
        assert_eq!(value_length("VALUE k 0 12", "k").ok(), Some(12));
        assert!(value_length("VALUE other 0 12", "k").is_err());
        assert!(value_length("VALUE k 0 x", "k").is_err());
        assert!(value_length("SERVER_ERROR out of memory", "k").is_err());
        assert!(value_length("VALUE k 0 999999999999", "k").is_err());
    }

    /// Against a real memcached (Debian's `memcached`, which `scripts/check_deps test`
    /// installs), on a port of its own, stopped by pid.
    #[test]
    fn against_memcached() {
        let bin = std::path::Path::new("/usr/bin/memcached");
        assert!(
            bin.exists(),
            "/usr/bin/memcached is missing: run scripts/check_deps test"
        );
        let port = 19211;
        let mut cmd = std::process::Command::new(bin);
        cmd.args([
            "-l",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "0",
            "-m",
            "8",
        ]);
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } == 0 {
            cmd.args(["-u", "nobody"]);
        }
        let Ok(mut child) = cmd.spawn() else {
            panic!("could not start memcached");
        };
        let m = Memcached::new("127.0.0.1", port);
        let mut ok = false;
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(100));
            m.state.borrow_mut().down_until = None;
            if m.set("k1", b"value\r\nwith CRLF", 0) {
                ok = true;
                break;
            }
        }
        let mut out = Vec::new();
        let results = (
            ok,
            m.get("k1", &mut out),
            out.clone(),
            m.get("missing", &mut out),
            m.set("big", &vec![7u8; MAX_ITEM + 1], 0),
            m.delete("k1"),
            m.get("k1", &mut out),
            m.delete("k1"),
        );
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            results,
            (
                true,
                true,
                b"value\r\nwith CRLF".to_vec(),
                false,
                false,
                true,
                false,
                false
            )
        );
        // Gone: a miss at once, and no wait on the next lookups either.
        let t = Instant::now();
        assert!(!m.get("k1", &mut out));
        assert!(!m.get("k1", &mut out));
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
