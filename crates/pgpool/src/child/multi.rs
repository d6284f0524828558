//! A child serving several client sessions at once (`sessions_per_child` > 1, a
//! pgpool-rs option; the default is Pgpool-II's one client per child). One thread
//! relays every session from one poll, so one wake-up carries what several clients and
//! backends sent. Set-up (start-up packet, TLS, authentication, backend log-in) and the
//! end step (reset, release) run on worker threads: a client that says nothing, or a
//! slow log-in, holds no other session. Each session has its own pool slot, cancel key
//! and pool statistics; the process title and the log prefix's %a/%d/%u are the child's.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam::channel::{unbounded, Receiver, Sender};
use nix::sys::signal::Signal;
use shmem::ChildState;

use super::relay::{RelayBuffers, RelayOutcome};
use super::relay_shared::RelayEnd;
use super::session::{self, LiveSession, OpenSession, StepShare};
use super::session_set::SessionSet;
use super::{listener_epoll, reload, try_accept, ChildContext};
use crate::net::{Listeners, Stream};
use crate::sys;

/// Work for the set-up and end threads.
enum Job {
    Open(Stream),
    Close(Box<(OpenSession, Option<(RelayEnd, RelayOutcome)>)>),
}

/// The workers' queue of jobs. A job wakes one sleeping worker, and a worker that finds
/// the queue empty sleeps at once: a channel's receivers spin and yield before they
/// sleep, which costs a child that accepts many short sessions more than the jobs do.
#[derive(Default)]
struct JobQueue {
    jobs: Mutex<(VecDeque<Job>, bool)>,
    posted: Condvar,
}

impl JobQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, (VecDeque<Job>, bool)> {
        // (A worker that panicked holding the lock left the queue whole.)
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, job: Job) {
        self.lock().0.push_back(job);
        self.posted.notify_one();
    }

    /// No more jobs: the workers leave once the queue is empty.
    fn close(&self) {
        self.lock().1 = true;
        self.posted.notify_all();
    }

    /// The next job, waiting for one; None once the queue is closed and empty.
    fn pop(&self) -> Option<Job> {
        let mut q = self.lock();
        loop {
            if let Some(job) = q.0.pop_front() {
                return Some(job);
            }
            if q.1 {
                return None;
            }
            q = self.posted.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// What a worker hands back: a session ready for the relay, or a connection done with.
enum Done {
    Opened(Box<OpenSession>),
    Ended,
}

/// Serves up to `limit` sessions at once until the child must leave; its exit code
/// (0: shutdown, 1: replace me).
pub(super) fn serve_many(
    ctx: &mut ChildContext<'_>,
    listeners: &Listeners,
    limit: usize,
) -> nix::Result<i32> {
    let jobs = JobQueue::default();
    let (done_tx, done_rx) = unbounded::<Done>();
    let (wake_rx, wake_tx) = UnixStream::pair().map_err(io_errno)?;
    wake_rx.set_nonblocking(true).map_err(io_errno)?;
    let reloads = AtomicU64::new(0);
    let workers: Vec<ChildContext<'_>> = (0..limit).map(|_| ctx.for_worker()).collect();
    std::thread::scope(|scope| {
        for mut w in workers {
            let (jobs, done, reloads) = (&jobs, done_tx.clone(), &reloads);
            let wake = wake_tx.try_clone();
            sys::with_signals_blocked(|| {
                scope.spawn(move || {
                    if let Ok(wake) = wake {
                        work(&mut w, jobs, &done, &wake, reloads);
                    }
                })
            });
        }
        let code = drive(ctx, listeners, limit, &jobs, &done_rx, &wake_rx, &reloads);
        // The workers leave when the queue closes (they are idle: nothing is in flight).
        jobs.close();
        code
    })
}

/// A worker thread: set-up and end steps, one at a time, with its own context.
fn work(
    ctx: &mut ChildContext<'_>,
    jobs: &JobQueue,
    done: &Sender<Done>,
    mut wake: &UnixStream,
    reloads: &AtomicU64,
) {
    let mut seen = 0;
    while let Some(job) = jobs.pop() {
        let now = reloads.load(Ordering::Acquire);
        if now != seen {
            seen = now;
            reload(ctx);
        }
        let d = match job {
            Job::Open(stream) => match session::open_session(ctx, stream) {
                Some(open) => Done::Opened(Box::new(open)),
                None => Done::Ended,
            },
            Job::Close(closing) => {
                let (open, relayed) = *closing;
                session::close_session(ctx, open, relayed);
                Done::Ended
            }
        };
        if done.send(d).is_err() {
            return;
        }
        let _ = wake.write(&[1]);
    }
}

/// The relay thread's loop: listeners, signals, workers' results and every session
/// in one epoll set.
fn drive<'a>(
    ctx: &mut ChildContext<'a>,
    listeners: &Listeners,
    limit: usize,
    jobs: &JobQueue,
    done: &Receiver<Done>,
    mut wake: &UnixStream,
    reloads: &AtomicU64,
) -> nix::Result<i32> {
    let lep = listener_epoll(listeners)?;
    let mut sessions = SessionSet::new(wake.as_fd(), ctx.waker.fd())?;
    // Connections a worker holds (being set up or ended).
    let mut in_flight = 0usize;
    let mut served: u64 = 0;
    let mut accepting = true;
    let mut exit_code = 0;
    let mut idle_since = Instant::now();
    let mut was_busy = false;
    // connection_life_time is looked at once a second, not per wake-up.
    let mut expired_at = Instant::now();
    // Buffers of ended sessions, for the next ones (at most one per session place).
    let mut spare = Vec::with_capacity(limit);
    let close = |s: LiveSession<'a>,
                 end: RelayEnd,
                 in_flight: &mut usize,
                 spare: &mut Vec<RelayBuffers>| {
        let (open, end, outcome) = s.finish(end, spare);
        jobs.push(Job::Close(Box::new((open, Some((end, outcome))))));
        *in_flight += 1;
    };
    loop {
        let pending = sys::take_pending();
        if sys::has(pending, Signal::SIGINT) || sys::has(pending, Signal::SIGQUIT) {
            for id in sessions.ids_where(|_| true) {
                if let Some(s) = sessions.remove(id) {
                    let (open, end, outcome) = s.finish(RelayEnd::Shutdown, &mut spare);
                    session::close_session(ctx, open, Some((end, outcome)));
                }
            }
            super::leave(ctx, 0);
        }
        if sys::has(pending, Signal::SIGTERM) {
            ctx.smart_shutdown = true;
        }
        if ctx.shutdown_requested() {
            accepting = false;
        }
        if sys::has(pending, Signal::SIGHUP) {
            reload(ctx);
            reloads.fetch_add(1, Ordering::AcqRel);
        }
        if sys::has(pending, Signal::SIGUSR1) {
            let shm = ctx.shm;
            ctx.pool()
                .drop_dead_nodes(|n| shm.backend(n).status().is_alive(), shm);
            for id in sessions.ids_where(LiveSession::node_detached) {
                if let Some(s) = sessions.remove(id) {
                    close(s, RelayEnd::NodeDetached, &mut in_flight, &mut spare);
                }
            }
        }
        if ctx.cfg.connection_life_time > 0 && expired_at.elapsed() >= Duration::from_secs(1) {
            expired_at = Instant::now();
            ctx.pool().expire(ctx.cfg.connection_life_time, ctx.shm);
        }
        let busy = sessions.len() > 0 || in_flight > 0;
        let state = if busy {
            ChildState::Active
        } else {
            ChildState::WaitForConnection
        };
        ctx.shm.child(ctx.index).set_state(state);
        if busy {
            was_busy = true;
        } else if !accepting {
            return Ok(exit_code);
        } else {
            if std::mem::take(&mut was_busy) {
                idle_since = Instant::now();
            }
            let life = ctx.cfg.child_life_time;
            if life > 0 && idle_since.elapsed().as_secs() >= life {
                log::debug!("child_life_time ({life} s) expired; exiting to be replaced");
                return Ok(1);
            }
        }
        let room = accepting && sessions.len() + in_flight < limit;
        sessions.listen(lep.0.as_fd(), room)?;

        // One wait for everything (at most a second: the timers above).
        let own = sessions.wait(Duration::from_secs(1))?;
        if own.signals {
            ctx.waker.drain();
        }

        // New clients go to the workers.
        if room && own.listeners {
            while accepting && sessions.len() + in_flight < limit {
                let Some(stream) = try_accept(listeners) else {
                    break;
                };
                if crate::node_table::refresh(std::sync::Arc::make_mut(&mut ctx.cfg), ctx.shm) {
                    let n = ctx.cfg.backends.len();
                    ctx.pool().resize_nodes(n, ctx.shm);
                }
                jobs.push(Job::Open(stream));
                in_flight += 1;
                served += 1;
                let max = ctx.cfg.child_max_connections;
                if max > 0 && served >= max {
                    log::info!("child_max_connections ({max}) reached; exiting to be replaced");
                    accepting = false;
                    exit_code = 1;
                }
            }
        }

        // The sessions that had something to do, or whose idle time ran out.
        let mut ended: Vec<(usize, RelayEnd)> = Vec::new();
        sessions.each_due(|id, s, events| {
            let end = match events {
                Some(events) => s.step(&mut share_of(ctx), Some(events)).err(),
                None => Some(RelayEnd::IdleTimeout),
            };
            if let Some(end) = end {
                ended.push((id, end));
            }
        });
        for (id, end) in ended {
            if let Some(s) = sessions.remove(id) {
                close(s, end, &mut in_flight, &mut spare);
            }
        }

        // What the workers finished.
        // (A worker sends its result before it writes the wake-up byte: with the byte
        // read, every result it stands for is in the channel.)
        if !own.wake {
            continue;
        }
        let mut sink = [0u8; 64];
        while matches!(wake.read(&mut sink), Ok(n) if n > 0) {}
        while let Ok(d) = done.try_recv() {
            in_flight = in_flight.saturating_sub(1);
            if let Done::Opened(open) = d {
                let mut s = LiveSession::start(ctx, *open, &mut spare);
                match s.step(&mut share_of(ctx), None) {
                    Ok(()) => sessions.insert(s),
                    Err(end) => close(s, end, &mut in_flight, &mut spare),
                }
            }
        }
    }
}

/// What a session borrows from the relay thread's context for a step.
fn share_of<'w, 'a>(ctx: &'w mut ChildContext<'a>) -> StepShare<'w, 'a> {
    StepShare {
        rules: &ctx.rules,
        dml_relations: &ctx.dml_relations,
        qcache: ctx.qcache,
        memcached: ctx.memcached.as_ref(),
        classifier: &mut ctx.classifier,
        shm: ctx.shm,
    }
}

fn io_errno(e: std::io::Error) -> nix::errno::Errno {
    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

impl<'a> ChildContext<'a> {
    /// A context for a worker thread of this child: the same configuration, files and
    /// pool; caches and buffers of its own.
    fn for_worker(&self) -> ChildContext<'a> {
        ChildContext {
            index: self.index,
            cfg: self.cfg.clone(),
            shm: self.shm,
            qcache: self.qcache,
            memcached: None,
            hba: self.hba.clone(),
            passwd: self.passwd.clone(),
            aes_key: self.aes_key.clone(),
            tls: self.tls.clone(),
            pool: self.pool,
            bufs: super::relay::RelayBuffers::default(),
            waker: self.waker,
            classifier: sql::ClassifierCache::new(16),
            rules: self.rules.clone(),
            catalog: super::catalog::Catalog::default(),
            app_redirects: self.app_redirects.clone(),
            db_redirects: self.db_redirects.clone(),
            user_redirects: self.user_redirects.clone(),
            dml_relations: self.dml_relations.clone(),
            failover_requested: std::cell::Cell::new(None),
            serves_alone: false,
            smart_shutdown: false,
        }
    }
}
