//! The sessions a multi-session child relays, and their sockets in one epoll set
//! (level-triggered; a socket's registration is changed only when what its session
//! waits for changes, so a wait costs one system call however many sessions there
//! are). Sessions keep a stable id while they live (a slab), which the epoll events
//! carry with the socket's place in its session.

use std::os::fd::BorrowedFd;
use std::time::Instant;

use nix::poll::{PollFlags, PollTimeout};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use super::session::LiveSession;

/// Events of the child's own sockets (the others carry a session id and socket place).
const WAKE: u64 = u64::MAX;
const SIGNALS: u64 = u64::MAX - 1;
const LISTENERS: u64 = u64::MAX - 2;

/// Which of the child's own sockets a wait found readable.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Own {
    /// A worker finished something.
    pub wake: bool,
    /// A signal came.
    pub signals: bool,
    /// A client is connecting.
    pub listeners: bool,
}

struct Entry<'a> {
    session: LiveSession<'a>,
    /// What each socket is registered for (None: not yet).
    registered: Vec<Option<EpollFlags>>,
    /// What the last wait reported per socket.
    events: Vec<PollFlags>,
    touched: bool,
}

pub(super) struct SessionSet<'a> {
    ep: Epoll,
    slots: Vec<Option<Entry<'a>>>,
    free: Vec<usize>,
    live: usize,
    /// The child's own registrations: listeners (on or off).
    listening: Option<bool>,
    events: Vec<EpollEvent>,
}

fn epoll_flags(p: PollFlags) -> EpollFlags {
    let mut e = EpollFlags::empty();
    if p.contains(PollFlags::POLLIN) {
        e |= EpollFlags::EPOLLIN;
    }
    if p.contains(PollFlags::POLLOUT) {
        e |= EpollFlags::EPOLLOUT;
    }
    e
}

fn poll_flags(e: EpollFlags) -> PollFlags {
    let mut p = PollFlags::empty();
    for (ef, pf) in [
        (EpollFlags::EPOLLIN, PollFlags::POLLIN),
        (EpollFlags::EPOLLOUT, PollFlags::POLLOUT),
        (EpollFlags::EPOLLERR, PollFlags::POLLERR),
        (EpollFlags::EPOLLHUP, PollFlags::POLLHUP),
        (EpollFlags::EPOLLPRI, PollFlags::POLLPRI),
    ] {
        if e.contains(ef) {
            p |= pf;
        }
    }
    p
}

fn token(id: usize, socket: usize) -> u64 {
    ((id as u64) << 16) | socket as u64
}

impl<'a> SessionSet<'a> {
    /// An empty set waiting on the child's wake-up socket and signal pipe.
    pub(super) fn new(wake: BorrowedFd<'_>, signals: BorrowedFd<'_>) -> nix::Result<Self> {
        let ep = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        ep.add(wake, EpollEvent::new(EpollFlags::EPOLLIN, WAKE))?;
        ep.add(signals, EpollEvent::new(EpollFlags::EPOLLIN, SIGNALS))?;
        Ok(SessionSet {
            ep,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            listening: None,
            events: vec![EpollEvent::empty(); 64],
        })
    }

    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// Waits on the listeners' epoll set too while `on`.
    pub(super) fn listen(&mut self, listeners: BorrowedFd<'_>, on: bool) -> nix::Result<()> {
        let flags = if on {
            EpollFlags::EPOLLIN
        } else {
            EpollFlags::empty()
        };
        match self.listening {
            None => self.ep.add(listeners, EpollEvent::new(flags, LISTENERS))?,
            Some(was) if was != on => self
                .ep
                .modify(listeners, &mut EpollEvent::new(flags, LISTENERS))?,
            Some(_) => {}
        }
        self.listening = Some(on);
        Ok(())
    }

    pub(super) fn insert(&mut self, session: LiveSession<'a>) {
        let entry = Entry {
            session,
            registered: Vec::new(),
            events: Vec::new(),
            touched: false,
        };
        match self.free.pop() {
            Some(id) => self.slots[id] = Some(entry),
            None => self.slots.push(Some(entry)),
        }
        self.live += 1;
    }

    /// Takes a session out (its sockets leave the epoll set).
    pub(super) fn remove(&mut self, id: usize) -> Option<LiveSession<'a>> {
        let entry = self.slots.get_mut(id)?.take()?;
        let mut sockets = Vec::new();
        entry.session.sockets(&mut sockets);
        for ((fd, _), reg) in sockets.iter().zip(&entry.registered) {
            if reg.is_some() {
                let _ = self.ep.delete(fd);
            }
        }
        self.free.push(id);
        self.live -= 1;
        Some(entry.session)
    }

    /// The ids of the sessions for which `pick` says yes.
    pub(super) fn ids_where(&self, pick: impl Fn(&LiveSession<'a>) -> bool) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].as_ref().is_some_and(|e| pick(&e.session)))
            .collect()
    }

    /// Brings every socket's registration up to what its session waits for now; the
    /// soonest idle deadline, and whether a session must be stepped without waiting.
    fn sync(&mut self) -> nix::Result<(Option<Instant>, bool)> {
        let mut soonest: Option<Instant> = None;
        let mut ready = false;
        let mut sockets = Vec::with_capacity(4);
        for (id, slot) in self.slots.iter_mut().enumerate() {
            let Some(e) = slot.as_mut() else { continue };
            e.session.sockets(&mut sockets);
            e.registered.resize(sockets.len(), None);
            e.events.resize(sockets.len(), PollFlags::empty());
            for (k, (fd, want)) in sockets.iter().enumerate() {
                let want = epoll_flags(*want);
                match e.registered[k] {
                    Some(r) if r == want => {}
                    Some(_) => self
                        .ep
                        .modify(fd, &mut EpollEvent::new(want, token(id, k)))?,
                    None => self.ep.add(fd, EpollEvent::new(want, token(id, k)))?,
                }
                e.registered[k] = Some(want);
            }
            ready |= e.session.ready();
            soonest = match (soonest, e.session.deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok((soonest, ready))
    }

    /// One wait (at most `limit`, shorter for an idle deadline, none when a session has
    /// bytes buffered); which of the child's own sockets (WAKE, SIGNALS, LISTENERS) had
    /// events.
    pub(super) fn wait(&mut self, limit: std::time::Duration) -> nix::Result<Own> {
        let (soonest, ready) = self.sync()?;
        let wait = if ready {
            std::time::Duration::ZERO
        } else {
            soonest.map_or(limit, |d| {
                d.saturating_duration_since(Instant::now()).min(limit)
            })
        };
        let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::ZERO);
        let n = match self.ep.wait(&mut self.events, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => return Err(e),
        };
        let mut own = Own::default();
        for ev in &self.events[..n] {
            let t = ev.data();
            match t {
                WAKE => own.wake = true,
                SIGNALS => own.signals = true,
                LISTENERS => own.listeners = true,
                _ => {}
            }
            if t >= LISTENERS {
                continue;
            }
            let (id, k) = ((t >> 16) as usize, (t & 0xffff) as usize);
            if let Some(Some(e)) = self.slots.get_mut(id) {
                if let Some(slot) = e.events.get_mut(k) {
                    *slot |= poll_flags(ev.events());
                    e.touched = true;
                }
            }
        }
        Ok(own)
    }

    /// The sessions to step after a wait, each handed to `step` once: those with
    /// events or bytes buffered get what the wait reported (the client's events, then
    /// the backends'; none for buffered bytes alone), those whose idle deadline passed
    /// get None.
    pub(super) fn each_due(
        &mut self,
        mut step: impl FnMut(usize, &mut LiveSession<'a>, Option<(PollFlags, &[PollFlags])>),
    ) {
        let now = Instant::now();
        for (id, slot) in self.slots.iter_mut().enumerate() {
            let Some(e) = slot.as_mut() else { continue };
            let due = e.touched || e.session.ready();
            if due {
                e.touched = false;
                if let Some((cev, bev)) = e.events.split_first() {
                    step(id, &mut e.session, Some((*cev, bev)));
                }
                e.events.iter_mut().for_each(|f| *f = PollFlags::empty());
            } else if e.session.deadline.is_some_and(|d| d <= now) {
                step(id, &mut e.session, None);
            }
        }
    }
}
