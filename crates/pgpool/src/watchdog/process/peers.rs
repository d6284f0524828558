//! The watchdog's links to its peers: accepting and dialling them (each pair once:
//! the lower id dials), greeting with Hello, cutting frames and dispatching them,
//! closing a link whose peer fell silent so it is dialled afresh, and the UDP
//! heartbeats received.

use std::net::ToSocketAddrs;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Token};
use watchdog::wire::{auth_digest, Frame};

use super::Watchdog;
use crate::watchdog::links::Link;

impl Watchdog<'_> {
    pub(super) fn add_link(&mut self, mut stream: TcpStream, dialled: Option<usize>) {
        let token = Token(self.next_token);
        self.next_token += 1;
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("watchdog: could not watch a peer link: {e}");
            return;
        }
        let mut link = Link::new(stream, dialled);
        link.send(&Frame::Hello(self.view.local.clone()));
        self.links.insert(token, link);
    }

    pub(super) fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => self.add_link(stream, None),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::warn!("watchdog: accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Dials every peer with a higher id that has no link (lower ids dial us).
    pub(super) fn dial(&mut self) {
        let linked: Vec<usize> = self
            .links
            .values()
            .filter_map(|l| l.peer.or(l.dialled))
            .collect();
        for i in self.view.me + 1..self.view.total() {
            if linked.contains(&i) || self.shunned(i) {
                continue;
            }
            let p = &self.view.peers[i];
            let addr = (p.host.as_str(), p.wd_port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.find(|a| a.is_ipv4()).or_else(|| a.next()));
            let Some(addr) = addr else {
                log::warn!("watchdog: cannot resolve \"{}\" (hostname{i})", p.host);
                continue;
            };
            match TcpStream::connect(addr) {
                Ok(s) => self.add_link(s, Some(i)),
                Err(e) => log::debug!("watchdog: connecting to node {i} failed: {e}"),
            }
        }
    }

    pub(super) fn drop_link(&mut self, token: Token, why: &str) {
        let Some(mut link) = self.links.remove(&token) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut link.stream);
        if let Some(i) = link.peer {
            let still_linked = self.links.values().any(|l| l.peer == Some(i));
            let p = &mut self.view.peers[i];
            if !still_linked {
                p.link_up = false;
                if !p.shut_down {
                    log::info!(
                        "remote node \"{}\" is lost: {why}",
                        p.hello.as_ref().map_or("?", |h| h.node_name.as_str())
                    );
                }
            }
        }
    }

    pub(super) fn link_event(&mut self, token: Token) {
        let Some(link) = self.links.get_mut(&token) else {
            return;
        };
        if let Ok(Some(e)) | Err(e) = link.stream.take_error() {
            let why = e.to_string();
            self.drop_link(token, &why);
            return;
        }
        let read = link.fill();
        loop {
            let Some(link) = self.links.get_mut(&token) else {
                return;
            };
            match link.next_frame() {
                Ok(Some(f)) => self.on_frame(token, f),
                Ok(None) => break,
                Err(e) => {
                    log::warn!("watchdog: bad frame from a peer: {e}");
                    self.drop_link(token, &e);
                    return;
                }
            }
        }
        if let Err(e) = read {
            let why = e.to_string();
            self.drop_link(token, &why);
        }
    }

    pub(super) fn on_frame(&mut self, token: Token, frame: Frame) {
        let now = Instant::now();
        let Some(link) = self.links.get_mut(&token) else {
            return;
        };
        let Some(peer) = link.peer else {
            let Frame::Hello(h) = frame else {
                self.drop_link(token, "spoke before its Hello");
                return;
            };
            let id = h.node_id as usize;
            let valid = id < self.view.total() && id != self.view.me;
            if !valid || h.auth != auth_digest(&self.cfg.wd_authkey, h.node_id) {
                log::warn!(
                    "watchdog: refusing a link from \"{}\": unknown node id or wrong wd_authkey",
                    h.node_name
                );
                self.drop_link(token, "refused");
                return;
            }
            if self.shunned(id) {
                self.drop_link(token, "refused while the lifecheck reports a node dead");
                return;
            }
            let Some(link) = self.links.get_mut(&token) else {
                return;
            };
            link.peer = Some(id);
            // A newer link replaces an older one to the same peer.
            let stale: Vec<Token> = self
                .links
                .iter()
                .filter(|(t, l)| **t != token && l.peer == Some(id))
                .map(|(t, _)| *t)
                .collect();
            for t in stale {
                self.drop_link(t, "replaced by a new link");
            }
            let p = &mut self.view.peers[id];
            let first = p.hello.is_none() || p.shut_down || !p.link_up;
            p.hello = Some(h);
            p.link_up = true;
            p.shut_down = false;
            p.last_heard = Some(now);
            p.link_since = Some(now);
            if first {
                log::info!(
                    "new watchdog node connection is received from \"{}\"",
                    self.view.node_name(id)
                );
            }
            return;
        };
        self.view.peers[peer].last_heard = Some(now);
        match frame {
            Frame::Hello(_) => {}
            Frame::Raft(bytes) => {
                if let Err(e) = self.raft.step(&bytes) {
                    log::debug!("watchdog: Raft message from node {peer} refused: {e}");
                }
            }
            Frame::Beacon(b) => self.view.peers[peer].beacon = Some(b),
            Frame::Shutdown => {
                log::info!(
                    "remote node \"{}\" is shutting down",
                    self.view.node_name(peer)
                );
                self.view.peers[peer].shut_down = true;
                self.drop_link(token, "shut down");
            }
            Frame::Request(bytes) => self.on_ballot(peer, &bytes),
        }
    }

    pub(super) fn send_to(&mut self, peer: usize, f: &Frame) {
        if let Some(l) = self.links.values_mut().find(|l| l.peer == Some(peer)) {
            l.send(f);
        }
    }

    /// A link whose peer fell silent for `wd_heartbeat_deadtime` (or that never said
    /// Hello) is closed, so that the peer is dialled afresh: a cut cable leaves TCP
    /// connections that look established for minutes.
    pub(super) fn drop_silent_links(&mut self, now: Instant) {
        let deadtime = self.view.deadtime;
        let silent: Vec<Token> = self
            .links
            .iter()
            .filter(|(_, l)| match l.peer {
                Some(i) => self.view.peers[i]
                    .last_heard
                    .is_none_or(|t| now.saturating_duration_since(t) >= deadtime),
                None => now.saturating_duration_since(l.opened) >= deadtime,
            })
            .map(|(t, _)| *t)
            .collect();
        for t in silent {
            self.drop_link(t, "no heartbeat within wd_heartbeat_deadtime");
        }
    }

    pub(super) fn receive_heartbeats(&mut self) {
        let Some(hb) = &mut self.heartbeat else {
            return;
        };
        let now = Instant::now();
        for id in hb.receive(&self.cfg.wd_authkey, self.view.total(), self.view.me) {
            self.view.peers[id].last_heartbeat = Some(now);
        }
    }

    pub(super) fn flush_all(&mut self) {
        let mut broken = Vec::new();
        for (t, l) in &mut self.links {
            if let Err(e) = l.flush() {
                broken.push((*t, e.to_string()));
            }
        }
        for (t, why) in broken {
            self.drop_link(t, &why);
        }
    }
}
