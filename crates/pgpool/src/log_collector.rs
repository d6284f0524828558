//! The logging collector (`logging_collector = on`, Pgpool-II 4.2+): every pgpool process
//! writes its log lines to a pipe that replaces its stderr, and one logger process
//! writes them to a file in `log_directory` named by `log_filename` (strftime escapes,
//! local time). The file is changed every `log_rotation_age` minutes (at multiples of
//! that age, local time), when it grows past `log_rotation_size` kilobytes, and when
//! `pcp_log_rotate` asks (SIGUSR1 to the logger); `log_truncate_on_rotation` empties a
//! file reused by a time-based change of name, `log_file_mode` sets new files' mode.
//! The main process keeps the pipe's read side, so a logger that died is forked again
//! on the same pipe and no process ever writes into a closed pipe; the logger leaves
//! when the last writer (the main process) has gone and the pipe is drained. Lines up
//! to the pipe's atomic size (4 KiB) never interleave. A log_directory that cannot be
//! written at start-up is reported on the original stderr, which stays the log; a
//! logger that loses its file later goes on draining the pipe (no process ever blocks
//! on its log) and tries again every few seconds.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use config::Config;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::sys;

/// The logging settings of pgpool.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    directory: PathBuf,
    filename: String,
    /// Minutes, 0: no time-based change.
    rotation_age: i64,
    /// Bytes, 0: no size-based change.
    rotation_size: u64,
    truncate_on_rotation: bool,
    mode: u32,
}

impl Settings {
    fn from_config(cfg: &Config) -> Self {
        let dir = PathBuf::from(&cfg.log_directory);
        Settings {
            // A relative log_directory is taken from the configuration file's directory.
            directory: if dir.is_relative() {
                cfg.config_file
                    .parent()
                    .map_or(dir.clone(), |p| p.join(&dir))
            } else {
                dir
            },
            filename: cfg.log_filename.clone(),
            rotation_age: cfg.log_rotation_age.max(0),
            rotation_size: u64::try_from(cfg.log_rotation_size.max(0)).unwrap_or(0) * 1024,
            truncate_on_rotation: cfg.log_truncate_on_rotation,
            mode: u32::try_from(cfg.log_file_mode).unwrap_or(0o600) & 0o777,
        }
    }

    /// The file name for the moment `secs` (Unix seconds, named in local time).
    fn file_for(&self, secs: i64) -> PathBuf {
        use std::fmt::Write as _;
        let mut name = String::new();
        let formatted = chrono::DateTime::from_timestamp(secs, 0).is_some_and(|t| {
            let local = t.with_timezone(&chrono::Local);
            write!(name, "{}", local.format(&self.filename)).is_ok()
        });
        // An escape chrono does not know: the name as written.
        if !formatted {
            name = self.filename.clone();
        }
        self.directory.join(name)
    }
}

/// The logger, as the main process sees it.
pub struct Collector {
    /// The pipe's read side, for a logger forked again.
    pipe: OwnedFd,
    pid: Pid,
    config_file: PathBuf,
}

impl Collector {
    /// With logging_collector on: forks the logger and points this process's stderr (and
    /// so every process forked later) at it. None when off; an error leaves stderr as it
    /// was.
    pub fn start(cfg: &Config) -> std::io::Result<Option<Collector>> {
        if !cfg.logging_collector {
            return Ok(None);
        }
        // A log_directory that cannot be written is said here, on the stderr still
        // in place, and pgpool goes on logging there.
        open_log(&Settings::from_config(cfg), shmem::now_secs(), false, None).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "could not open a log file in \"{}\": {e}",
                    cfg.log_directory
                ),
            )
        })?;
        // Commands pgpool runs (failover scripts) write to the pipe as their stderr,
        // but do not hold its read side.
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let pid = fork_logger(&read, cfg, || {
            // The logger keeps the original stderr (for its own failures); it must not
            // hold the pipe's write side, or it would never see the end.
            let _ = nix::unistd::close(write.as_raw_fd());
        })?;
        nix::unistd::dup2(write.as_raw_fd(), 2)?;
        drop(write);
        Ok(Some(Collector {
            pipe: read,
            pid,
            config_file: cfg.config_file.clone(),
        }))
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The logger exited: a new one takes over the pipe. `close_inherited` closes, in
    /// the new logger, what the main process opened since the start (client ports).
    pub fn restart(&mut self, close_inherited: impl FnOnce()) {
        let cfg = match Config::load(&self.config_file) {
            Ok(c) => c,
            Err(e) => {
                log::error!("logger not restarted: {e}");
                return;
            }
        };
        let in_child = || {
            close_inherited();
            // stderr is the pipe's write side by now: the logger's own goes nowhere.
            if let Ok(null) = OpenOptions::new().write(true).open("/dev/null") {
                let _ = nix::unistd::dup2(null.as_raw_fd(), 2);
            }
        };
        match fork_logger(&self.pipe, &cfg, in_child) {
            Ok(pid) => {
                log::info!("logger process restarted (pid {pid})");
                self.pid = pid;
            }
            Err(e) => log::error!("logger not restarted: {e}"),
        }
    }
}

fn fork_logger(read: &OwnedFd, cfg: &Config, in_child: impl FnOnce()) -> std::io::Result<Pid> {
    let settings = Settings::from_config(cfg);
    let config_file = cfg.config_file.clone();
    match sys::fork()? {
        Some(pid) => Ok(pid),
        None => {
            in_child();
            sys::set_title("pgpool: logger");
            sys::ignore(&[
                Signal::SIGTERM,
                Signal::SIGINT,
                Signal::SIGQUIT,
                Signal::SIGPIPE,
            ]);
            let waker = sys::enter_process(
                crate::logging::ProcessKind::Logger,
                &[Signal::SIGHUP, Signal::SIGUSR1],
            );
            let code = run_logger(read, settings, &config_file, &waker);
            sys::exit_now(code)
        }
    }
}

/// The file being written and when it changes next.
struct Current {
    file: File,
    path: PathBuf,
    written: u64,
    /// Unix seconds of the next time-based change.
    next_change: Option<i64>,
}

/// How the next file is opened: emptied only by a time-based change to another name.
fn truncates(s: &Settings, time_based: bool, previous: Option<&Path>, next: &Path) -> bool {
    s.truncate_on_rotation && time_based && previous.is_some_and(|p| p != next)
}

/// The next multiple of `age_minutes` after `now` in local time (offset seconds east).
fn next_change(now: i64, offset: i64, age_minutes: i64) -> Option<i64> {
    if age_minutes <= 0 {
        return None;
    }
    let interval = age_minutes * 60;
    let local = now + offset;
    Some(local - local.rem_euclid(interval) + interval - offset)
}

fn local_offset(secs: i64) -> i64 {
    use chrono::Offset;
    chrono::DateTime::from_timestamp(secs, 0).map_or(0, |t| {
        i64::from(
            t.with_timezone(&chrono::Local)
                .offset()
                .fix()
                .local_minus_utc(),
        )
    })
}

fn open_log(
    s: &Settings,
    now: i64,
    time_based: bool,
    previous: Option<&Path>,
) -> std::io::Result<Current> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&s.directory)?;
    let path = s.file_for(now);
    let truncate = truncates(s, time_based, previous, &path);
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(!truncate)
        .truncate(truncate)
        .mode(s.mode)
        .open(&path)?;
    let written = file.metadata().map_or(0, |m| m.len());
    Ok(Current {
        file,
        path,
        written,
        next_change: next_change(now, local_offset(now), s.rotation_age),
    })
}

/// How often a logger without a file tries to open one again.
const RETRY_SECS: i64 = 10;

/// The logger's life: copies the pipe to the current file until every writer is gone.
/// Without a file (the directory cannot be written) it goes on draining the pipe, so
/// that no process ever blocks on its log, and tries again every `RETRY_SECS`.
fn run_logger(pipe: &OwnedFd, mut s: Settings, config_file: &Path, waker: &sys::Waker) -> i32 {
    let opened = |s: &Settings, now: i64, time_based: bool, previous: Option<&Path>| {
        open_log(s, now, time_based, previous)
            .map_err(|e| {
                eprintln!(
                    "could not open a log file in \"{}\": {e}",
                    s.directory.display()
                )
            })
            .ok()
    };
    let mut current = opened(&s, shmem::now_secs(), false, None);
    let mut input = File::from(match pipe.try_clone() {
        Ok(p) => p,
        Err(_) => return 1,
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let now = shmem::now_secs();
        let next = match &current {
            Some(c) => c.next_change,
            None => Some(now + RETRY_SECS),
        };
        let wait_ms = next.map_or(-1, |t| ((t - now).max(0) * 1000).min(i64::from(i32::MAX)));
        let mut fds = [
            nix::poll::PollFd::new(pipe.as_fd(), nix::poll::PollFlags::POLLIN),
            nix::poll::PollFd::new(waker.fd(), nix::poll::PollFlags::POLLIN),
        ];
        let timeout = nix::poll::PollTimeout::try_from(wait_ms as i32)
            .unwrap_or(nix::poll::PollTimeout::NONE);
        let _ = nix::poll::poll(&mut fds, timeout);
        waker.drain();
        let now = shmem::now_secs();
        let signals = sys::take_pending();
        let mut change = None;
        if sys::has(signals, Signal::SIGHUP) {
            if let Ok(cfg) = Config::load(config_file) {
                let newer = Settings::from_config(&cfg);
                if newer.directory != s.directory || newer.filename != s.filename {
                    change = Some(false);
                }
                s = newer;
                if let Some(c) = current.as_mut() {
                    c.next_change = next_change(now, local_offset(now), s.rotation_age);
                }
            }
        }
        if sys::has(signals, Signal::SIGUSR1) {
            change = Some(false);
        }
        match &current {
            Some(c) if c.next_change.is_some_and(|t| now >= t) => change = Some(true),
            None if next.is_some_and(|t| now >= t) => change = Some(false),
            _ => {}
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            match input.read(&mut buf) {
                Ok(0) => return 0,
                Ok(n) => {
                    if let Some(c) = current.as_mut() {
                        let _ = c.file.write_all(&buf[..n]);
                        c.written += n as u64;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return 1,
            }
            // (A name that the moment does not change keeps the file: reopening it
            // would change nothing.)
            if let Some(c) = &current {
                if s.rotation_size > 0
                    && c.written >= s.rotation_size
                    && change.is_none()
                    && s.file_for(now) != c.path
                {
                    change = Some(false);
                }
            }
        }
        if let Some(time_based) = change {
            let previous = current.as_ref().map(|c| c.path.clone());
            match opened(&s, now, time_based, previous.as_deref()) {
                Some(next) => current = Some(next),
                // Going on with the old file, if any.
                None => {
                    if let Some(c) = current.as_mut() {
                        c.next_change = next_change(now, local_offset(now), s.rotation_age);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(truncate: bool) -> Settings {
        Settings {
            directory: PathBuf::from("/x"),
            filename: "pgpool-%Y-%m-%d_%H%M%S.log".into(),
            rotation_age: 1440,
            rotation_size: 0,
            truncate_on_rotation: truncate,
            mode: 0o600,
        }
    }

    #[test]
    fn only_a_time_based_change_to_another_name_truncates() {
        let (a, b) = (Path::new("/x/a"), Path::new("/x/b"));
        assert!(truncates(&settings(true), true, Some(a), b));
        assert!(!truncates(&settings(true), true, Some(a), a));
        assert!(!truncates(&settings(true), false, Some(a), b));
        assert!(!truncates(&settings(true), true, None, b));
        assert!(!truncates(&settings(false), true, Some(a), b));
    }

    #[test]
    fn changes_fall_on_multiples_of_the_age_in_local_time() {
        // 2026-12-03 10:17:00 UTC, one hour east of UTC, daily: next local midnight.
        let now = 1_796_293_020;
        let next = next_change(now, 3600, 1440).expect("a change");
        assert_eq!((next + 3600) % 86_400, 0);
        assert!(next > now && next - now <= 86_400);
        assert_eq!(next_change(now, 0, 60), Some(now - now % 3600 + 3600));
        assert_eq!(next_change(now, 0, 0), None);
    }

    #[test]
    fn the_file_name_takes_strftime_escapes() {
        let s = settings(false);
        let name = s.file_for(0);
        let text = name.to_string_lossy();
        assert!(text.starts_with("/x/pgpool-19"), "{text}");
        assert!(text.ends_with(".log"), "{text}");
        let odd = Settings {
            filename: "pgpool-%Q.log".into(),
            ..settings(false)
        };
        assert_eq!(odd.file_for(0), PathBuf::from("/x/pgpool-%Q.log"));
    }
}
