//! The fork and signal layer: the only module of the server with `unsafe`. Signals are
//! turned into bits in a process-wide mask plus one byte on a self-pipe, so every
//! process can wait for "a socket is ready or a signal came" in one poll. Also the
//! process title `ps` shows (rewritten in the argv area, as PostgreSQL and Pgpool-II do).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::{ForkResult, Pid};

static PENDING: AtomicU32 = AtomicU32::new(0);
/// The argv area (start address, length) from /proc/self/stat, read once at start-up.
static TITLE_AREA: std::sync::OnceLock<Option<(usize, usize)>> = std::sync::OnceLock::new();
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

fn bit(sig: Signal) -> u32 {
    1u32 << (sig as i32 as u32 & 31)
}

extern "C" fn on_signal(signo: libc::c_int) {
    PENDING.fetch_or(1u32 << (signo as u32 & 31), Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = [1u8];
        // SAFETY: write(2) is async-signal-safe; the buffer is a live local; errors
        // (a full pipe means a wake-up is already pending) are deliberately ignored.
        unsafe {
            libc::write(fd, byte.as_ptr() as *const libc::c_void, 1);
        }
    }
}

/// The read end of this process's self-pipe.
pub struct Waker {
    read: OwnedFd,
    _write: OwnedFd,
}

impl Waker {
    /// Creates the self-pipe for the current process (call again after fork).
    pub fn new() -> std::io::Result<Waker> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC)?;
        use std::os::fd::AsRawFd;
        WAKE_FD.store(write.as_raw_fd(), Ordering::SeqCst);
        Ok(Waker {
            read,
            _write: write,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Empties the pipe after a wake-up.
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        while let Ok(n) = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&self.read), &mut buf) {
            if n == 0 {
                break;
            }
        }
    }
}

/// Routes `signals` to the pending mask. Handlers are installed without SA_RESTART so
/// a blocking call returns EINTR and the caller looks at the mask.
pub fn catch(signals: &[Signal]) {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for &s in signals {
        // SAFETY: the handler only touches atomics and calls write(2), both
        // async-signal-safe.
        if let Err(e) = unsafe { signal::sigaction(s, &action) } {
            log::warn!("could not install handler for {s}: {e}");
        }
    }
}

/// Runs `spawn` (which starts a thread) with every signal blocked, so the new thread
/// inherits a mask that sends the process's signals to the calling thread: its
/// blocking calls never see EINTR, and the caller's poll is the one woken.
pub fn with_signals_blocked<T>(spawn: impl FnOnce() -> T) -> T {
    let mut old = SigSet::empty();
    let blocked = signal::pthread_sigmask(
        signal::SigmaskHow::SIG_BLOCK,
        Some(&SigSet::all()),
        Some(&mut old),
    );
    let r = spawn();
    if blocked.is_ok() {
        let _ = signal::pthread_sigmask(signal::SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
    r
}

/// Restores the default disposition of `signals` (in a freshly forked child).
pub fn reset(signals: &[Signal]) {
    let action = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for &s in signals {
        // SAFETY: installing SIG_DFL has no handler code to be unsafe about.
        let _ = unsafe { signal::sigaction(s, &action) };
    }
}

pub fn ignore(signals: &[Signal]) {
    let action = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    for &s in signals {
        // SAFETY: SIG_IGN runs no code.
        let _ = unsafe { signal::sigaction(s, &action) };
    }
}

/// Signals a worker process (child, health check) handles.
pub const WORKER_SIGNALS: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Start of a forked process's life: its kind for the logs, default SIGCHLD, its own
/// self-pipe and the signals it handles. Exits (status 1, re-forked) without a pipe.
pub fn enter_process(kind: crate::logging::ProcessKind, signals: &[Signal]) -> Waker {
    crate::logging::set_process_kind(kind);
    reset(&[Signal::SIGCHLD]);
    let waker = match Waker::new() {
        Ok(w) => w,
        Err(e) => {
            log::error!("could not create wake-up pipe: {e}");
            exit_now(1);
        }
    };
    catch(signals);
    waker
}

/// Tells the C allocator to keep freed heap for the next session instead of handing it
/// back to the kernel. A pooled child frees most of a session's memory when the client
/// leaves (and a large statement's parse tree as soon as it is classified) and needs it
/// again at the next connection; trimming and regrowing the heap costs syscalls and page
/// faults per session and makes the process size wander, which Pgpool-II's long-run
/// memory checks (`ps` VSZ before and after) read as a leak. With these settings the heap
/// only grows when a session needs more than any earlier one did.
pub fn keep_heap_between_sessions() {
    const KEEP: libc::c_int = 16 << 20;
    const PAD: libc::c_int = 1 << 20;
    // SAFETY: mallopt only changes glibc's malloc tuning parameters; it is called once,
    // before the child serves anything, with values inside the documented ranges.
    let ok = unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP) == 1
            && libc::mallopt(libc::M_TOP_PAD, PAD) == 1
            && libc::mallopt(libc::M_MMAP_THRESHOLD, PAD) == 1
    };
    if !ok {
        log::debug!("malloc tuning not accepted; the heap may shrink between sessions");
    }
}

/// Finds this process's argv area, where [`set_title`] writes; call once at start-up,
/// after the command line was parsed (the arguments are not read again), before forking.
pub fn init_title() {
    TITLE_AREA.get_or_init(|| {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may hold spaces): field 3 is index 0;
        // arg_start and arg_end are fields 48 and 49.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let start: usize = fields.get(45)?.parse().ok()?;
        let end: usize = fields.get(46)?.parse().ok()?;
        (start != 0 && end > start + 1).then_some((start, end - start))
    });
}

/// Where the status part of the title starts, and where the title ends.
static TITLE_STATUS_AT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static TITLE_END: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Writes `text` at `offset` of the argv area, cut to fit with a final NUL; returns the
/// offset after it.
fn write_title_at(offset: usize, text: &[u8]) -> usize {
    let Some(Some((start, len))) = TITLE_AREA.get().copied() else {
        return offset;
    };
    let offset = offset.min(len - 1);
    let n = text.len().min(len - 1 - offset);
    // SAFETY: [start, start + len) is this process's own argv area as the kernel reports
    // it (arg_start..arg_end): mapped, writable stack memory holding the original argument
    // strings, which nothing reads after start-up (init_title's contract). The bytes
    // written lie in [start + offset, start + len - 1), so the last byte stays as it is.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), (start + offset) as *mut u8, n);
    }
    offset + n
}

/// Clears the argv area from `from` to the end of the previous title.
fn clear_title_from(from: usize) {
    let Some(Some((start, len))) = TITLE_AREA.get().copied() else {
        return;
    };
    let end = TITLE_END.load(Ordering::Relaxed).max(from).min(len);
    if end > from {
        // SAFETY: as in write_title_at: [start + from, start + end) lies in the argv area.
        unsafe { std::ptr::write_bytes((start + from) as *mut u8, 0, end - from) };
    }
}

/// Sets the title `ps` shows for this process ("pgpool: ..."), cut to the length of the
/// original command line.
pub fn set_title(title: &str) {
    let Some(Some((_, len))) = TITLE_AREA.get().copied() else {
        return;
    };
    TITLE_END.store(len, Ordering::Relaxed);
    clear_title_from(0);
    let end = write_title_at(0, title.as_bytes());
    TITLE_STATUS_AT.store(end, Ordering::Relaxed);
    TITLE_END.store(end, Ordering::Relaxed);
}

/// Replaces what follows the title last set with [`set_title`] by " " + `status` (a
/// session's "idle", "idle in transaction", or the command running): two copies into
/// memory, cheap enough for every query.
pub fn set_title_status(status: &str) {
    let at = TITLE_STATUS_AT.load(Ordering::Relaxed);
    if TITLE_AREA.get().copied().flatten().is_none() {
        return;
    }
    let mid = write_title_at(at, b" ");
    let end = write_title_at(mid, status.as_bytes());
    clear_title_from(end);
    TITLE_END.store(end, Ordering::Relaxed);
}

/// The title status for a ReadyForQuery transaction state.
pub fn idle_status(tx: u8) -> &'static str {
    match tx {
        b'T' => "idle in transaction",
        b'E' => "idle in transaction (aborted)",
        _ => "idle",
    }
}

/// The title status for a statement about to run: its first word, upper-cased (at most 16
/// characters, ASCII letters only).
pub fn set_title_command(text: &[u8]) {
    let mut word = [0u8; 16];
    let t = text
        .iter()
        .skip_while(|b| b.is_ascii_whitespace() || **b == b'(');
    let mut n = 0;
    for &b in t.take_while(|b| b.is_ascii_alphabetic()).take(word.len()) {
        word[n] = b.to_ascii_uppercase();
        n += 1;
    }
    if n > 0 {
        set_title_status(std::str::from_utf8(&word[..n]).unwrap_or("?"));
    }
}

/// Takes and clears the set of signals received since the last call.
pub fn take_pending() -> u32 {
    PENDING.swap(0, Ordering::SeqCst)
}

/// True if `sig` is in a mask returned by [`take_pending`].
pub fn has(mask: u32, sig: Signal) -> bool {
    mask & bit(sig) != 0
}

/// Peeks at the pending mask without clearing it.
pub fn peek_pending() -> u32 {
    PENDING.load(Ordering::SeqCst)
}

/// Forks the current process. Callers are the single-threaded main process (children,
/// workers) and the daemonizing start-up path.
pub fn fork() -> nix::Result<Option<Pid>> {
    // SAFETY: pgpool's processes never start threads, so the child inherits a
    // consistent heap and no locks held by other threads.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { child } => Ok(Some(child)),
        ForkResult::Child => {
            PENDING.store(0, Ordering::SeqCst);
            WAKE_FD.store(-1, Ordering::SeqCst);
            Ok(None)
        }
    }
}

/// Ends a forked process at once, without running destructors or atexit handlers that
/// belong to the parent (shared memory must stay mapped for the others).
pub fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stderr().flush();
    // SAFETY: _exit is always safe to call; it never returns.
    unsafe { libc::_exit(code) }
}

/// Why a worker's wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// The time was up (or a signal that asks nothing of the worker came).
    Timeout,
    /// SIGHUP: read the configuration again.
    Reload,
}

/// A worker's sleep between rounds: waits up to `ms` milliseconds for a signal; exits
/// the process on SIGTERM, SIGINT or SIGQUIT.
pub fn wait_for_signals(waker: &Waker, ms: u64) -> Wakeup {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(waker.fd(), PollFlags::POLLIN)];
    let timeout =
        PollTimeout::try_from(ms.min(i32::MAX as u64) as i32).unwrap_or(PollTimeout::NONE);
    let _ = poll(&mut fds, timeout);
    waker.drain();
    let sigs = take_pending();
    if has(sigs, Signal::SIGTERM) || has(sigs, Signal::SIGINT) || has(sigs, Signal::SIGQUIT) {
        exit_now(0);
    }
    if has(sigs, Signal::SIGHUP) {
        Wakeup::Reload
    } else {
        Wakeup::Timeout
    }
}
