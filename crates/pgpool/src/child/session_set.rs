//! The sessions a multi-session child relays, and their sockets in one epoll set
//! (level-triggered; a socket's registration is changed only when what its session
//! waits for changes, so a wait costs one system call however many sessions there
//! are). Sessions keep a stable id while they live (a slab), which the epoll events
//! carry with the socket's place in its session. Only the sessions a wait reported
//! (or that hold bytes already) are stepped, and only the ones stepped are looked at
//! again before the next wait: the cost of a wake-up follows what happened, not how
//! many sessions there are.

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
    /// In `due` (reported by a wait, or bytes buffered).
    touched: bool,
    /// In `stepped` (its registrations may be out of date).
    stepped: bool,
}

pub(super) struct SessionSet<'a> {
    ep: Epoll,
    slots: Vec<Option<Entry<'a>>>,
    free: Vec<usize>,
    live: usize,
    /// The child's own registrations: listeners (on or off).
    listening: Option<bool>,
    events: Vec<EpollEvent>,
    /// Sessions to step after this wait, in the order the wait reported them.
    due: Vec<usize>,
    /// Sessions stepped (or inserted) since their registrations were last brought up
    /// to date.
    stepped: Vec<usize>,
    /// Sessions with a client_idle_limit deadline (the deadlines are looked at only
    /// when there are any).
    with_deadline: usize,
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
            due: Vec::new(),
            stepped: Vec::new(),
            with_deadline: 0,
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
        self.with_deadline += usize::from(session.deadline.is_some());
        let entry = Entry {
            session,
            registered: Vec::new(),
            events: Vec::new(),
            touched: false,
            stepped: true,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id] = Some(entry);
                id
            }
            None => {
                self.slots.push(Some(entry));
                self.slots.len() - 1
            }
        };
        self.stepped.push(id);
        self.live += 1;
    }

    /// Takes a session out (its sockets leave the epoll set).
    pub(super) fn remove(&mut self, id: usize) -> Option<LiveSession<'a>> {
        let entry = self.slots.get_mut(id)?.take()?;
        let ep = &self.ep;
        let _ = entry.session.each_socket(|k, fd, _| {
            if entry.registered.get(k).is_some_and(Option::is_some) {
                let _ = ep.delete(fd);
            }
            Ok::<(), ()>(())
        });
        self.free.push(id);
        self.live -= 1;
        self.with_deadline -= usize::from(entry.session.deadline.is_some());
        // (An id in `due` or `stepped` may be reused before those lists are next read;
        // a stale entry only makes a live session looked at once more.)
        Some(entry.session)
    }

    /// The ids of the sessions for which `pick` says yes.
    pub(super) fn ids_where(&self, pick: impl Fn(&LiveSession<'a>) -> bool) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].as_ref().is_some_and(|e| pick(&e.session)))
            .collect()
    }

    /// Brings the registrations of the sessions stepped since the last wait up to what
    /// each waits for now; whether a session must be stepped without waiting.
    fn sync(&mut self) -> nix::Result<bool> {
        let SessionSet {
            ep,
            slots,
            due,
            stepped,
            ..
        } = self;
        let mut ready = false;
        for id in stepped.drain(..) {
            let Some(Some(e)) = slots.get_mut(id) else {
                continue;
            };
            if !std::mem::take(&mut e.stepped) {
                continue;
            }
            let Entry {
                session,
                registered,
                events,
                touched,
                ..
            } = e;
            session.each_socket(|k, fd, want| {
                if registered.len() <= k {
                    registered.resize(k + 1, None);
                    events.resize(k + 1, PollFlags::empty());
                }
                let want = epoll_flags(want);
                match registered[k] {
                    Some(r) if r == want => {}
                    Some(_) => ep.modify(fd, &mut EpollEvent::new(want, token(id, k)))?,
                    None => ep.add(fd, EpollEvent::new(want, token(id, k)))?,
                }
                registered[k] = Some(want);
                Ok(())
            })?;
            if session.ready() {
                ready = true;
                if !*touched {
                    *touched = true;
                    due.push(id);
                }
            }
        }
        Ok(ready || !due.is_empty())
    }

    /// The soonest client_idle_limit deadline of any session.
    fn soonest_deadline(&self) -> Option<Instant> {
        if self.with_deadline == 0 {
            return None;
        }
        self.slots
            .iter()
            .flatten()
            .filter_map(|e| e.session.deadline)
            .min()
    }

    /// One wait (at most `limit`, shorter for an idle deadline, none when a session has
    /// bytes buffered); which of the child's own sockets (WAKE, SIGNALS, LISTENERS) had
    /// events.
    pub(super) fn wait(&mut self, limit: std::time::Duration) -> nix::Result<Own> {
        let ready = self.sync()?;
        let wait = if ready {
            std::time::Duration::ZERO
        } else {
            self.soonest_deadline().map_or(limit, |d| {
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
                    if !e.touched {
                        e.touched = true;
                        self.due.push(id);
                    }
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
        let mut due = std::mem::take(&mut self.due);
        for &id in &due {
            let Some(Some(e)) = self.slots.get_mut(id) else {
                continue;
            };
            if !std::mem::take(&mut e.touched) {
                continue;
            }
            let had_deadline = e.session.deadline.is_some();
            if let Some((cev, bev)) = e.events.split_first() {
                step(id, &mut e.session, Some((*cev, bev)));
            }
            e.events.iter_mut().for_each(|f| *f = PollFlags::empty());
            self.note_stepped(id, had_deadline);
        }
        due.clear();
        self.due = due;
        if self.with_deadline > 0 {
            let now = Instant::now();
            for id in 0..self.slots.len() {
                let Some(Some(e)) = self.slots.get_mut(id) else {
                    continue;
                };
                if e.session.deadline.is_some_and(|d| d <= now) {
                    step(id, &mut e.session, None);
                    self.note_stepped(id, true);
                }
            }
        }
    }

    /// A session was stepped: its registrations are looked at before the next wait,
    /// and its deadline may have come or gone.
    fn note_stepped(&mut self, id: usize, had_deadline: bool) {
        if let Some(Some(e)) = self.slots.get_mut(id) {
            let has = e.session.deadline.is_some();
            self.with_deadline = self.with_deadline + usize::from(has) - usize::from(had_deadline);
            if !e.stepped {
                e.stepped = true;
                self.stepped.push(id);
            }
        }
    }
}
