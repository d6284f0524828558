//! The UDP heartbeat, Pgpool-II's default lifecheck (`wd_lifecheck_method =
//! heartbeat`): this node sends a signed datagram to every peer's
//! `heartbeat_hostnameN:heartbeat_portN` each `wd_heartbeat_keepalive` seconds and
//! listens on its own `heartbeat_portN`. A peer whose heartbeats stop for
//! `wd_heartbeat_deadtime` is LOST even while its TCP link still looks open: the second
//! path Pgpool-II users give a dedicated network.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use config::Config;
use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};
use watchdog::wire::{auth_digest, Heartbeat};

use super::links::listen_address;

pub struct HeartbeatLink {
    socket: UdpSocket,
    /// Where each node listens (None: not configured or unresolvable; own slot unused).
    targets: Vec<Option<SocketAddr>>,
    keepalive: Duration,
    last_sent: Option<Instant>,
}

fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.find(SocketAddr::is_ipv4))
}

impl HeartbeatLink {
    /// None when this node has no heartbeat port configured.
    pub fn open(
        cfg: &Config,
        me: usize,
        registry: &Registry,
        token: Token,
    ) -> Result<Option<HeartbeatLink>, String> {
        let Some(mine) = cfg.heartbeats.get(me).filter(|h| !h.hostname.is_empty()) else {
            return Ok(None);
        };
        let addr = listen_address(
            &cfg.wd_heartbeat_listen_addresses,
            cfg.wd_heartbeat_listen_port,
            mine.port,
        )?;
        let mut socket = UdpSocket::bind(addr)
            .map_err(|e| format!("could not listen for heartbeats on {addr}: {e}"))?;
        registry
            .register(&mut socket, token, Interest::READABLE)
            .map_err(|e| e.to_string())?;
        let targets = (0..cfg.watchdog_nodes.len())
            .map(|i| {
                let h = cfg
                    .heartbeats
                    .get(i)
                    .filter(|h| i != me && !h.hostname.is_empty())?;
                let t = resolve(&h.hostname, h.port);
                if t.is_none() {
                    log::warn!(
                        "watchdog: cannot resolve heartbeat_hostname{i} \"{}\"",
                        h.hostname
                    );
                }
                t
            })
            .collect();
        log::info!(
            "watchdog: sending and receiving heartbeats on port {}",
            addr.port()
        );
        Ok(Some(HeartbeatLink {
            socket,
            targets,
            keepalive: Duration::from_secs(u64::try_from(cfg.wd_heartbeat_keepalive).unwrap_or(2)),
            last_sent: None,
        }))
    }

    /// Whether peer `i` is expected to send heartbeats (it has a heartbeat address).
    pub fn expects(&self, i: usize) -> bool {
        self.targets.get(i).is_some_and(Option::is_some)
    }

    /// Sends the heartbeat when due, to every peer but those `skip` names.
    pub fn send_due(&mut self, beat: &Heartbeat, now: Instant, skip: impl Fn(usize) -> bool) {
        if self.last_sent.is_some_and(|t| now - t < self.keepalive) {
            return;
        }
        self.last_sent = Some(now);
        let bytes = beat.encode();
        for (i, t) in self.targets.iter().enumerate() {
            if let Some(t) = t.filter(|_| !skip(i)) {
                // Lost datagrams are what the deadtime is for.
                let _ = self.socket.send_to(&bytes, t);
            }
        }
    }

    /// Node ids whose valid heartbeats arrived.
    pub fn receive(&mut self, authkey: &str, total: usize, me: usize) -> Vec<usize> {
        let mut heard = Vec::new();
        let mut buf = [0u8; 128];
        while let Ok((n, _)) = self.socket.recv_from(&mut buf) {
            let Some(h) = Heartbeat::decode(&buf[..n]) else {
                continue;
            };
            let id = h.node_id as usize;
            if id < total && id != me && h.auth == auth_digest(authkey, h.node_id) {
                heard.push(id);
            }
        }
        heard
    }
}
