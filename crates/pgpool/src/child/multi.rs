//! A child serving several client sessions at once (`sessions_per_child` > 1, a
//! pgpool-rs option; the default is Pgpool-II's one client per child). One thread
//! relays every session from one poll, so one wake-up carries what several clients and
//! backends sent. Set-up (start-up packet, TLS, authentication, backend log-in) and the
//! end step (reset, release) run on worker threads: a client that says nothing, or a
//! slow log-in, holds no other session. Each session has its own pool slot, cancel key
//! and pool statistics; the process title and the log prefix's %a/%d/%u are the child's.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam::channel::{unbounded, Receiver, Sender};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use shmem::ChildState;

use super::relay::RelayOutcome;
use super::relay_shared::{RelayEnd, READABLE};
use super::session::{self, LiveSession, OpenSession, StepShare};
use super::{listener_epoll, reload, try_accept, ChildContext};
use crate::net::{Listeners, Stream};
use crate::sys;

/// Work for the set-up and end threads.
enum Job {
    Open(Stream),
    Close(Box<(OpenSession, Option<(RelayEnd, RelayOutcome)>)>),
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
    let (jobs_tx, jobs_rx) = unbounded::<Job>();
    let (done_tx, done_rx) = unbounded::<Done>();
    let (wake_rx, wake_tx) = UnixStream::pair().map_err(io_errno)?;
    wake_rx.set_nonblocking(true).map_err(io_errno)?;
    let reloads = AtomicU64::new(0);
    let workers: Vec<ChildContext<'_>> = (0..limit).map(|_| ctx.for_worker()).collect();
    std::thread::scope(|scope| {
        for mut w in workers {
            let (jobs, done, reloads) = (jobs_rx.clone(), done_tx.clone(), &reloads);
            let wake = wake_tx.try_clone();
            sys::with_signals_blocked(|| {
                scope.spawn(move || {
                    if let Ok(wake) = wake {
                        work(&mut w, &jobs, &done, &wake, reloads);
                    }
                })
            });
        }
        drop(jobs_rx);
        let code = drive(
            ctx, listeners, limit, &jobs_tx, &done_rx, &wake_rx, &reloads,
        );
        // The workers leave when the queue closes (they are idle: nothing is in flight).
        drop(jobs_tx);
        code
    })
}

/// A worker thread: set-up and end steps, one at a time, with its own context.
fn work(
    ctx: &mut ChildContext<'_>,
    jobs: &Receiver<Job>,
    done: &Sender<Done>,
    mut wake: &UnixStream,
    reloads: &AtomicU64,
) {
    let mut seen = 0;
    while let Ok(job) = jobs.recv() {
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
/// in one poll.
fn drive<'a>(
    ctx: &mut ChildContext<'a>,
    listeners: &Listeners,
    limit: usize,
    jobs: &Sender<Job>,
    done: &Receiver<Done>,
    mut wake: &UnixStream,
    reloads: &AtomicU64,
) -> nix::Result<i32> {
    let ep = listener_epoll(listeners)?;
    let mut sessions: Vec<LiveSession<'a>> = Vec::new();
    // Connections a worker holds (being set up or ended).
    let mut in_flight = 0usize;
    let mut served: u64 = 0;
    let mut accepting = true;
    let mut exit_code = 0;
    let mut idle_since = Instant::now();
    let close = |s: LiveSession<'a>, end: RelayEnd, in_flight: &mut usize| {
        let (open, end, outcome) = s.finish(end);
        if jobs
            .send(Job::Close(Box::new((open, Some((end, outcome))))))
            .is_ok()
        {
            *in_flight += 1;
        }
    };
    loop {
        let pending = sys::take_pending();
        if sys::has(pending, Signal::SIGINT) || sys::has(pending, Signal::SIGQUIT) {
            for s in sessions.drain(..) {
                let (open, end, outcome) = s.finish(RelayEnd::Shutdown);
                session::close_session(ctx, open, Some((end, outcome)));
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
            let mut k = 0;
            while k < sessions.len() {
                if sessions[k].node_detached() {
                    close(
                        sessions.swap_remove(k),
                        RelayEnd::NodeDetached,
                        &mut in_flight,
                    );
                } else {
                    k += 1;
                }
            }
        }
        ctx.pool().expire(ctx.cfg.connection_life_time, ctx.shm);
        let busy = !sessions.is_empty() || in_flight > 0;
        let state = if busy {
            ChildState::Active
        } else {
            ChildState::WaitForConnection
        };
        ctx.shm.child(ctx.index).set_state(state);
        if busy {
            idle_since = Instant::now();
        } else if !accepting {
            return Ok(exit_code);
        } else {
            let life = ctx.cfg.child_life_time;
            if life > 0 && idle_since.elapsed().as_secs() >= life {
                log::debug!("child_life_time ({life} s) expired; exiting to be replaced");
                return Ok(1);
            }
        }
        let room = accepting && sessions.len() + in_flight < limit;

        // One wait for everything.
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(3 + sessions.len() * 3);
        fds.push(PollFd::new(wake.as_fd(), PollFlags::POLLIN));
        fds.push(PollFd::new(ctx.waker.fd(), PollFlags::POLLIN));
        fds.push(PollFd::new(
            ep.0.as_fd(),
            if room {
                PollFlags::POLLIN
            } else {
                PollFlags::empty()
            },
        ));
        let mut spans = Vec::with_capacity(sessions.len());
        let mut soonest: Option<Instant> = None;
        let mut ready = false;
        for s in &sessions {
            let at = fds.len();
            spans.push((at, s.poll_fds(&mut fds)));
            ready |= s.ready();
            soonest = match (soonest, s.deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let wait = if ready {
            Duration::ZERO
        } else {
            let timer = Duration::from_secs(1);
            soonest.map_or(timer, |d| {
                d.saturating_duration_since(Instant::now()).min(timer)
            })
        };
        let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::ZERO);
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
        let events: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        if !events[1].is_empty() {
            ctx.waker.drain();
        }

        // New clients go to the workers.
        if room && events[2].intersects(READABLE) {
            while accepting && sessions.len() + in_flight < limit {
                let Some(stream) = try_accept(listeners) else {
                    break;
                };
                if crate::node_table::refresh(std::sync::Arc::make_mut(&mut ctx.cfg), ctx.shm) {
                    let n = ctx.cfg.backends.len();
                    ctx.pool().resize_nodes(n, ctx.shm);
                }
                if jobs.send(Job::Open(stream)).is_err() {
                    break;
                }
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

        // The sessions that had something to do.
        let now = Instant::now();
        let mut ended: Vec<(usize, RelayEnd)> = Vec::new();
        for (k, &(at, n)) in spans.iter().enumerate() {
            let s = &mut sessions[k];
            let cev = events[at];
            let bev = &events[at + 1..at + n];
            let happened = !cev.is_empty() || bev.iter().any(|e| !e.is_empty());
            if happened || s.ready() {
                let mut share = share_of(ctx);
                if let Err(end) = s.step(&mut share, Some((cev, bev))) {
                    ended.push((k, end));
                }
            } else if s.deadline.is_some_and(|d| d <= now) {
                ended.push((k, RelayEnd::IdleTimeout));
            }
        }
        for (k, end) in ended.into_iter().rev() {
            close(sessions.swap_remove(k), end, &mut in_flight);
        }

        // What the workers finished.
        if events[0].intersects(READABLE) {
            let mut sink = [0u8; 64];
            while matches!(wake.read(&mut sink), Ok(n) if n > 0) {}
        }
        while let Ok(d) = done.try_recv() {
            in_flight = in_flight.saturating_sub(1);
            if let Done::Opened(open) = d {
                let mut s = LiveSession::start(ctx, *open);
                let mut share = share_of(ctx);
                match s.step(&mut share, None) {
                    Ok(()) => sessions.push(s),
                    Err(end) => close(s, end, &mut in_flight),
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
