//! Log output in Pgpool-II's spirit: one line per event, prefixed as `log_line_prefix`
//! says (by default `%m: %a pid %p: `: the time, the process's application name and its
//! pid), so that a line in a mixed log says which process saw what. The process kind
//! is set again after fork; a child serving a client takes the client's application
//! name, database and user for `%a`, `%d` and `%u` while the session lasts. A reload
//! applies a new `log_line_prefix` and `log_min_messages` ([`configure`]).

use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

static KIND: AtomicUsize = AtomicUsize::new(0);
/// Process names (`%P`, and `%a` outside a session), Pgpool-II's where it has one.
const KINDS: &[&str] = &[
    "main",
    "child",
    "health_check",
    "sr_check_worker",
    "pcp_main",
    "watchdog",
    "cache_feed",
    "logger",
    "pcp_child",
    "follow_child",
];

#[derive(Debug, Clone, Copy)]
#[repr(usize)]
pub enum ProcessKind {
    Main = 0,
    Child = 1,
    HealthCheck = 2,
    SrCheck = 3,
    Pcp = 4,
    Watchdog = 5,
    CacheFeed = 6,
    Logger = 7,
    PcpWorker = 8,
    FollowPrimary = 9,
}

/// One part of `log_line_prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    AppName,
    Pid,
    ProcessName,
    Time,
    TimeMs,
    Database,
    User,
    LineNumber,
}

/// What `%a`, `%d` and `%u` print: the process's own name outside a session.
#[derive(Default)]
struct Names {
    application: Option<String>,
    database: String,
    user: String,
}

static PREFIX: Mutex<Vec<Piece>> = Mutex::new(Vec::new());
static NAMES: Mutex<Names> = Mutex::new(Names {
    application: None,
    database: String::new(),
    user: String::new(),
});
static LINE: AtomicU64 = AtomicU64::new(0);

/// Parses a `log_line_prefix`; unknown escapes are dropped (as Pgpool-II does).
fn parse_prefix(template: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            text.push(c);
            continue;
        }
        let piece = match chars.next() {
            Some('%') => {
                text.push('%');
                continue;
            }
            Some('a') => Piece::AppName,
            Some('p') => Piece::Pid,
            Some('P') => Piece::ProcessName,
            Some('t') => Piece::Time,
            Some('m') => Piece::TimeMs,
            Some('d') => Piece::Database,
            Some('u') => Piece::User,
            Some('l') => Piece::LineNumber,
            _ => continue,
        };
        if !text.is_empty() {
            out.push(Piece::Text(std::mem::take(&mut text)));
        }
        out.push(piece);
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `pgpool -d`: debug messages whatever log_min_messages says.
static DEBUG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// log_error_verbosity: 0 terse (no DETAIL or HINT lines), 1 default, 2 verbose (the
/// source location too).
static VERBOSITY: AtomicUsize = AtomicUsize::new(1);

/// Applies the logging settings of a (re)loaded configuration in this process (or of
/// a session's PGPOOL SET).
pub fn configure(cfg: &config::Config) {
    *lock(&PREFIX) = parse_prefix(&cfg.log_line_prefix);
    let verbosity = match cfg.log_error_verbosity {
        config::ErrorVerbosity::Terse => 0,
        config::ErrorVerbosity::Default => 1,
        config::ErrorVerbosity::Verbose => 2,
    };
    VERBOSITY.store(verbosity, Ordering::Relaxed);
    crate::syslog::configure(cfg);
    log::set_max_level(level_from_config(
        &cfg.log_min_messages,
        DEBUG.load(Ordering::Relaxed),
    ));
}

pub fn set_process_kind(kind: ProcessKind) {
    KIND.store(kind as usize, Ordering::Relaxed);
    LINE.store(0, Ordering::Relaxed);
    *lock(&NAMES) = Names::default();
}

/// A process name of its own for `%a` (e.g. `health_check1`).
pub fn set_application_name(name: &str) {
    lock(&NAMES).application = Some(name.to_string());
}

/// The client session a child serves (None: it ended): `%a`, `%d`, `%u`.
pub fn set_session(session: Option<(&str, &str, &str)>) {
    let mut n = lock(&NAMES);
    match session {
        Some((application, database, user)) => {
            n.application = Some(application.to_string()).filter(|a| !a.is_empty());
            n.database = database.to_string();
            n.user = user.to_string();
        }
        None => *n = Names::default(),
    }
}

fn process_name() -> &'static str {
    KINDS
        .get(KIND.load(Ordering::Relaxed))
        .copied()
        .unwrap_or("?")
}

/// The prefix of one log line.
fn render_prefix(pieces: &[Piece], names: &Names, line: u64) -> String {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::AppName => out.push_str(names.application.as_deref().unwrap_or(process_name())),
            Piece::Pid => out.push_str(&std::process::id().to_string()),
            Piece::ProcessName => out.push_str(process_name()),
            Piece::Time => out.push_str(&chrono_like_now()[..19]),
            Piece::TimeMs => out.push_str(&chrono_like_now()),
            Piece::Database => out.push_str(&names.database),
            Piece::User => out.push_str(&names.user),
            Piece::LineNumber => out.push_str(&line.to_string()),
        }
    }
    out
}

fn level_word(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "ERROR",
        log::Level::Warn => "WARNING",
        log::Level::Info => "LOG",
        log::Level::Debug => "DEBUG",
        log::Level::Trace => "DEBUG5",
    }
}

/// Maps Pgpool-II's log_min_messages to a `log` filter. `LOG` level events (connection
/// and failover records) are `info!`, which Pgpool-II prints at every setting but debug.
pub fn level_from_config(log_min_messages: &str, debug: bool) -> log::LevelFilter {
    if debug {
        return log::LevelFilter::Debug;
    }
    match log_min_messages.to_ascii_lowercase().as_str() {
        s if s.starts_with("debug") => log::LevelFilter::Debug,
        "error" | "fatal" | "panic" => log::LevelFilter::Error,
        _ => log::LevelFilter::Info,
    }
}

/// Installs the logger once, in the main process before any fork.
pub fn init(cfg: &config::Config, debug: bool) {
    DEBUG.store(debug, Ordering::Relaxed);
    let mut b = env_logger::Builder::new();
    // The level is the `log` crate's, so that a reload can change it.
    b.filter_level(log::LevelFilter::Trace);
    b.format(|buf, record| {
        let line = LINE.fetch_add(1, Ordering::Relaxed) + 1;
        let prefix = {
            let pieces = lock(&PREFIX);
            let names = lock(&NAMES);
            render_prefix(&pieces, &names, line)
        };
        let text = record.args().to_string();
        let mut parts = text.split('\n');
        let first = parts.next().unwrap_or("");
        let mut lines = vec![format!("{prefix}{}:  {first}", level_word(record.level()))];
        let verbosity = VERBOSITY.load(Ordering::Relaxed);
        // Further lines (a DETAIL or HINT, as Pgpool-II writes them) carry the same
        // prefix, so that each line of the log says who wrote it.
        lines.extend(
            parts
                .filter(|_| verbosity > 0)
                .map(|line| format!("{prefix}{line}")),
        );
        if verbosity > 1 {
            if let (Some(file), Some(n)) = (record.file(), record.line()) {
                lines.push(format!("{prefix}LOCATION:  {file}:{n}"));
            }
        }
        crate::syslog::send(record.level(), &lines);
        if crate::syslog::to_stderr() {
            for line in &lines {
                writeln!(buf, "{line}")?;
            }
        }
        Ok(())
    });
    // A second init (only possible in tests) keeps the first logger.
    let _ = b.try_init();
    configure(cfg);
}

/// Local time as `YYYY-MM-DD HH:MM:SS.mmm`.
pub fn chrono_like_now() -> String {
    chrono::Local::now()
        .format("%Y-%m-%d %H:%M:%S%.3f")
        .to_string()
}

/// Formats Unix seconds as local `YYYY-MM-DD HH:MM:SS` (the form SHOW POOL_NODES and
/// pcp_node_info print).
pub fn format_time(secs: i64) -> String {
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(t) => t
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        None => secs.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_takes_pgpool_escapes_and_drops_unknown_ones() {
        assert_eq!(
            parse_prefix("%m: %a pid %p: "),
            vec![
                Piece::TimeMs,
                Piece::Text(": ".into()),
                Piece::AppName,
                Piece::Text(" pid ".into()),
                Piece::Pid,
                Piece::Text(": ".into()),
            ]
        );
        assert_eq!(
            parse_prefix("%%%q[%P %u@%d %l]%"),
            vec![
                Piece::Text("%[".into()),
                Piece::ProcessName,
                Piece::Text(" ".into()),
                Piece::User,
                Piece::Text("@".into()),
                Piece::Database,
                Piece::Text(" ".into()),
                Piece::LineNumber,
                Piece::Text("]".into()),
            ]
        );
    }

    #[test]
    fn a_session_names_the_line_and_its_end_gives_the_process_name_back() {
        let pieces = parse_prefix("%a|%P|%u|%d|%l");
        let names = Names {
            application: Some("psql".into()),
            database: "test".into(),
            user: "alice".into(),
        };
        let kind = process_name();
        assert_eq!(
            render_prefix(&pieces, &names, 7),
            format!("psql|{kind}|alice|test|7")
        );
        assert_eq!(
            render_prefix(&pieces, &Names::default(), 8),
            format!("{kind}|{kind}|||8")
        );
        let t = render_prefix(&parse_prefix("%t"), &Names::default(), 1);
        assert_eq!(t.len(), 19, "{t}");
    }
}
