//! `log_destination = 'syslog'` (alone or with `stderr`): each log line also goes, as one
//! datagram, to the local syslog socket (`/dev/log`), in the form the C library's
//! syslog() sends (`<PRI>Mmm dd hh:mm:ss ident[pid]: text`), with `syslog_facility`
//! (LOCAL0..LOCAL7) and `syslog_ident`. Severities follow PostgreSQL's (and Pgpool-II's)
//! mapping: ERROR is sent as warning, WARNING as notice, LOG as info, DEBUG as debug.
//! The socket is connected on first use and again after a failure, so a syslog daemon
//! started later is found.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Where the local syslog daemon listens.
const SOCKET: &str = "/dev/log";

struct Target {
    socket: Option<UnixDatagram>,
    path: PathBuf,
    facility: u8,
    ident: String,
}

static TARGET: Mutex<Option<Target>> = Mutex::new(None);
static STDERR: AtomicBool = AtomicBool::new(true);

fn lock() -> std::sync::MutexGuard<'static, Option<Target>> {
    TARGET
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The destinations `log_destination` names: (stderr, syslog).
fn destinations(log_destination: &str) -> (bool, bool) {
    let has = |d: &str| {
        log_destination
            .split(',')
            .any(|x| x.trim().eq_ignore_ascii_case(d))
    };
    let (stderr, syslog) = (has("stderr"), has("syslog"));
    // Nothing recognised: stderr, as the default.
    (stderr || !syslog, syslog)
}

/// LOCAL0..LOCAL7 are facilities 16..23.
fn facility_code(name: &str) -> u8 {
    name.trim()
        .to_ascii_uppercase()
        .strip_prefix("LOCAL")
        .and_then(|n| n.parse::<u8>().ok())
        .filter(|n| *n <= 7)
        .map_or(16, |n| 16 + n)
}

fn severity(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 4,
        log::Level::Warn => 5,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// Applies log_destination, syslog_facility and syslog_ident.
pub fn configure(cfg: &config::Config) {
    let (stderr, syslog) = destinations(&cfg.log_destination);
    STDERR.store(stderr, Ordering::Relaxed);
    let facility = facility_code(&cfg.syslog_facility);
    let mut target = lock();
    match target.as_mut() {
        // Called again on every PGPOOL SET: the connected socket is kept.
        Some(t) if syslog => {
            t.facility = facility;
            t.ident.clone_from(&cfg.syslog_ident);
        }
        _ => {
            *target = syslog.then(|| Target {
                socket: None,
                path: PathBuf::from(SOCKET),
                facility,
                ident: cfg.syslog_ident.clone(),
            })
        }
    }
}

/// Whether log lines go to stderr.
pub fn to_stderr() -> bool {
    STDERR.load(Ordering::Relaxed)
}

/// Sends a record's lines to syslog, when it is a destination.
pub fn send(level: log::Level, lines: &[String]) {
    let mut guard = lock();
    let Some(t) = guard.as_mut() else {
        return;
    };
    let pri = t.facility * 8 + severity(level);
    let stamp = chrono::Local::now().format("%b %e %H:%M:%S");
    let pid = std::process::id();
    for line in lines {
        if t.socket.is_none() {
            t.socket = UnixDatagram::unbound()
                .and_then(|s| s.connect(&t.path).map(|()| s))
                .ok();
        }
        let Some(s) = &t.socket else {
            return;
        };
        let datagram = format!("<{pri}>{stamp} {}[{pid}]: {line}", t.ident);
        if s.send(datagram.as_bytes()).is_err() {
            // The daemon went away: connect again for the next line.
            t.socket = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_and_facilities() {
        assert_eq!(destinations("stderr"), (true, false));
        assert_eq!(destinations("syslog"), (false, true));
        assert_eq!(destinations("stderr, SYSLOG"), (true, true));
        assert_eq!(destinations("eventlog"), (true, false));
        assert_eq!(facility_code("LOCAL0"), 16);
        assert_eq!(facility_code("local7"), 23);
        assert_eq!(facility_code("LOCAL9"), 16);
        assert_eq!(16 * 8 + severity(log::Level::Info), 134);
    }

    #[test]
    fn lines_reach_the_socket_in_syslog_form() {
        let dir = std::env::temp_dir().join(format!("pgpool-rs-syslog-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("log");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).expect("bind");
        *lock() = Some(Target {
            socket: None,
            path: path.clone(),
            facility: facility_code("LOCAL3"),
            ident: "pgtest".into(),
        });
        send(
            log::Level::Warn,
            &["WARNING:  first".into(), "DETAIL:  second".into()],
        );
        *lock() = None;
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).expect("first datagram");
        let first = String::from_utf8_lossy(&buf[..n]).to_string();
        let n = server.recv(&mut buf).expect("second datagram");
        let second = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(first.starts_with("<157>"), "{first}");
        assert!(
            first.ends_with(&format!(" pgtest[{}]: WARNING:  first", std::process::id())),
            "{first}"
        );
        assert!(second.ends_with("DETAIL:  second"), "{second}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
