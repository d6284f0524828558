//! Log output in Pgpool-II's spirit: one line per event, prefixed with a timestamp, the
//! kind of process (main, child, health_check, ...) and its pid, so that a line in a
//! mixed log says which process saw what. The process kind is set again after fork.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

static KIND: AtomicUsize = AtomicUsize::new(0);
const KINDS: &[&str] = &[
    "main",
    "child",
    "health_check",
    "sr_check",
    "pcp",
    "watchdog",
    "cache_feed",
    "logger",
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
}

pub fn set_process_kind(kind: ProcessKind) {
    KIND.store(kind as usize, Ordering::Relaxed);
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
pub fn init(level: log::LevelFilter) {
    let mut b = env_logger::Builder::new();
    b.filter_level(level);
    b.format(|buf, record| {
        let now = chrono_like_now();
        let kind = KINDS
            .get(KIND.load(Ordering::Relaxed))
            .copied()
            .unwrap_or("?");
        let pid = std::process::id();
        let text = record.args().to_string();
        let mut lines = text.split('\n');
        let first = lines.next().unwrap_or("");
        writeln!(
            buf,
            "{now}: {kind} pid {pid}: {}:  {first}",
            level_word(record.level())
        )?;
        // Further lines (a DETAIL or HINT, as Pgpool-II writes them) carry the same
        // prefix, so that each line of the log says who wrote it.
        for line in lines {
            writeln!(buf, "{now}: {kind} pid {pid}: {line}")?;
        }
        Ok(())
    });
    // A second init (only possible in tests) keeps the first logger.
    let _ = b.try_init();
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
