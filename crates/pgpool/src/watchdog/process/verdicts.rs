//! What the lifecheck and the command socket tell the event loop about who is alive:
//! a peer the lifecheck (query or `wd_cli`) reports dead is condemned, its links cut
//! and refused until it is reported alive; a local node that is cut off (no trusted
//! server, its own pgpool not answering, every monitored interface down, or `wd_cli`
//! saying so) cuts every link and stops its heartbeats, so the rest of the cluster
//! sees it gone and elects without it, while it resigns the virtual IP. The command
//! socket's requests are answered here too.

use std::time::{Duration, Instant};

use mio::Token;
use watchdog::ipc::{self, Packet, Request, RuntimeVariable};

use super::Watchdog;
use crate::watchdog::lifecheck::Finding;
use crate::watchdog::view::Trouble;

/// How often the monitored interfaces are listed.
const INTERFACES_EVERY: Duration = Duration::from_secs(1);

/// The local node's own troubles, by source.
#[derive(Debug, Default)]
pub struct LocalHealth {
    upstream_lost: bool,
    self_lost: bool,
    interfaces_down: bool,
    last_interfaces: Option<Instant>,
}

impl LocalHealth {
    fn trouble(&self) -> Option<Trouble> {
        if self.interfaces_down {
            Some(Trouble::NetworkDown)
        } else if self.upstream_lost || self.self_lost {
            Some(Trouble::Lost)
        } else {
            None
        }
    }
}

impl Watchdog<'_> {
    /// Whether links to peer `i` must stay cut.
    pub(super) fn shunned(&self, i: usize) -> bool {
        self.view.trouble.is_some() || self.view.peers[i].condemned
    }

    pub(super) fn check_lifecheck(&mut self, now: Instant) {
        let findings: Vec<Finding> = self
            .lifecheck
            .as_ref()
            .map(|rx| rx.try_iter().collect())
            .unwrap_or_default();
        for f in findings {
            match f {
                Finding::Upstream { reachable } => self.health.upstream_lost = !reachable,
                Finding::Node { id, alive } => self.judge(id, alive),
            }
        }
        if let Some(watch) = &self.interfaces {
            if self
                .health
                .last_interfaces
                .is_none_or(|t| now - t >= INTERFACES_EVERY)
            {
                self.health.last_interfaces = Some(now);
                let active = watch.active();
                let down = active.is_empty();
                if down && !self.health.interfaces_down {
                    log::warn!("network event has occurred and all monitored interfaces are down\nDETAIL:  changing the state to in network trouble");
                } else if !down && self.health.interfaces_down {
                    log::info!(
                        "network interface \"{}\" is up and we can continue",
                        active[0]
                    );
                }
                self.health.interfaces_down = down;
            }
        }
        self.apply_trouble();
    }

    /// The lifecheck's verdict on node `id` (this node or a peer).
    fn judge(&mut self, id: usize, alive: bool) {
        if id == self.view.me {
            self.health.self_lost = !alive;
            return;
        }
        let Some(p) = self.view.peers.get_mut(id) else {
            return;
        };
        if p.condemned != alive {
            return;
        }
        p.condemned = !alive;
        if alive {
            log::info!(
                "watchdog lifecheck reports node \"{}\" alive again",
                self.view.node_name(id)
            );
        } else {
            let cut: Vec<Token> = self
                .links
                .iter()
                .filter(|(_, l)| l.peer == Some(id) || l.dialled == Some(id))
                .map(|(t, _)| *t)
                .collect();
            for t in cut {
                self.drop_link(t, "the lifecheck reports it dead");
            }
        }
    }

    fn apply_trouble(&mut self) {
        let trouble = self.health.trouble();
        if trouble == self.view.trouble {
            return;
        }
        match trouble {
            Some(Trouble::Lost) => log::warn!(
                "watchdog life-check reported, we are disconnected from the network\nDETAIL:  changing the state to LOST"
            ),
            Some(Trouble::NetworkDown) => {}
            None => log::info!("watchdog lifecheck: the local node is reachable again, rejoining the cluster"),
        }
        self.view.trouble = trouble;
        if trouble.is_some() {
            let all: Vec<Token> = self.links.keys().copied().collect();
            for t in all {
                self.drop_link(t, "the local node is cut off");
            }
        }
    }

    pub(super) fn ipc_event(&mut self, token: Token) {
        let Some(ipc) = &mut self.ipc else {
            return;
        };
        let Some(packet) = ipc.event(token, self.poll.registry(), &mut self.next_token) else {
            return;
        };
        let answer = match ipc::parse_request(&packet, &self.cfg.wd_authkey) {
            Ok(r) => self.serve(r),
            Err(e) => {
                log::info!("watchdog: IPC command refused: {e}");
                Packet::error(&e)
            }
        };
        if let Some(ipc) = &mut self.ipc {
            ipc.answer(token, &answer, self.poll.registry());
        }
    }

    fn serve(&mut self, r: Request) -> Packet {
        let now = Instant::now();
        let auth = self.authority(now);
        match r {
            Request::NodeList { node_id } => {
                let info = self.view.info(auth, self.duties.escalated(), now);
                Packet::ok_text(&info.json((node_id >= 0).then_some(node_id as i32)))
            }
            Request::NodeStatus {
                node_id,
                alive,
                message,
            } => {
                if let Some(m) = message {
                    log::info!("received node status change ipc message\nDETAIL:  {m}");
                }
                let Some(id) = usize::try_from(node_id)
                    .ok()
                    .filter(|&i| i < self.view.total())
                else {
                    log::info!("failed to process node status change event\nDETAIL:  invalid Node ID in the event");
                    return Packet::error("invalid Node ID in the event");
                };
                self.judge(id, alive);
                self.apply_trouble();
                Packet::ok_text("{}")
            }
            Request::Variable(var) => {
                let value = match var {
                    RuntimeVariable::State => self.state as i64,
                    RuntimeVariable::Quorum => match auth.leader() {
                        Some(_) => self.view.quorum(now).code() as i64,
                        None => -2,
                    },
                    RuntimeVariable::Escalated => i64::from(self.duties.escalated()),
                };
                ipc::variable_answer(var, value)
            }
        }
    }
}
