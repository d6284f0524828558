//! The local node's view of the watchdog cluster: which peers are alive (a greeted link
//! heard from within `wd_heartbeat_deadtime`, no shutdown notice), who leads and with
//! what quorum, and the states `pcp_watchdog_info` shows. Leadership comes from Raft
//! whenever a majority can be reached; without one, Pgpool-II's rule names a leader among
//! the nodes still visible (highest wd_priority, then the oldest start), which may hold
//! the virtual IP only when exactly half the cluster is visible and
//! `enable_consensus_with_half_votes` allows it: Pgpool-II's documented, weaker mode.

use std::time::{Duration, Instant};

use watchdog::info::{ClusterInfo, NodeInfo};
use watchdog::quorum::{votes_required, Quorum};
use watchdog::state::{Membership, NodeState};
use watchdog::wire::{Beacon, Hello};

/// One configured watchdog node other than the local one, as seen from here.
#[derive(Debug, Clone)]
pub struct Peer {
    pub host: String,
    pub wd_port: u16,
    pub pgpool_port: u16,
    pub hello: Option<Hello>,
    pub beacon: Option<Beacon>,
    pub last_heard: Option<Instant>,
    pub link_up: bool,
    pub shut_down: bool,
    /// When its current link was greeted.
    pub link_since: Option<Instant>,
    /// Its UDP heartbeats, when it is expected to send them.
    pub heartbeat_expected: bool,
    pub last_heartbeat: Option<Instant>,
    /// The lifecheck (query or external) says it is dead: links to it are cut.
    pub condemned: bool,
}

impl Peer {
    /// A configured node not heard from yet.
    pub fn configured(host: &str, wd_port: u16, pgpool_port: u16) -> Peer {
        Peer {
            host: host.to_string(),
            wd_port,
            pgpool_port,
            hello: None,
            beacon: None,
            last_heard: None,
            link_up: false,
            shut_down: false,
            link_since: None,
            heartbeat_expected: false,
            last_heartbeat: None,
            condemned: false,
        }
    }
}

/// Who leads the part of the cluster this node can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    /// The Raft leader (a majority follows it).
    Raft(usize),
    /// Pgpool-II's choice among the visible minority (or exact half).
    Visible(usize),
    /// A majority is visible but Raft has not elected yet.
    Electing,
}

impl Authority {
    pub fn leader(self) -> Option<usize> {
        match self {
            Authority::Raft(l) | Authority::Visible(l) => Some(l),
            Authority::Electing => None,
        }
    }
}

/// Why the local node cannot take part in the cluster (it cuts its links until the
/// trouble is over).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// The lifecheck says this node is cut off (no trusted server answers, its own
    /// pgpool does not answer the lifecheck query, or `wd_cli` said so).
    Lost,
    /// Every interface of `wd_monitoring_interfaces_list` is down.
    NetworkDown,
}

pub struct View {
    pub me: usize,
    pub trouble: Option<Trouble>,
    /// Indexed by watchdog node id; the local node's entry is unused.
    pub peers: Vec<Peer>,
    pub local: Hello,
    pub half_votes: bool,
    pub deadtime: Duration,
}

impl View {
    pub fn total(&self) -> usize {
        self.peers.len()
    }

    pub fn alive(&self, i: usize, now: Instant) -> bool {
        if i == self.me {
            return true;
        }
        let p = &self.peers[i];
        let fresh = |t: Option<Instant>| {
            t.is_some_and(|t| now.saturating_duration_since(t) < self.deadtime)
        };
        // A new link gets one deadtime for the first heartbeat to arrive.
        let heartbeat_ok = !p.heartbeat_expected || fresh(p.last_heartbeat) || fresh(p.link_since);
        p.link_up
            && !p.shut_down
            && !p.condemned
            && p.hello.is_some()
            && fresh(p.last_heard)
            && heartbeat_ok
    }

    pub fn alive_count(&self, now: Instant) -> usize {
        (0..self.total()).filter(|&i| self.alive(i, now)).count()
    }

    pub fn quorum(&self, now: Instant) -> Quorum {
        Quorum::of(self.total(), self.alive_count(now), self.half_votes)
    }

    fn hello(&self, i: usize) -> Option<&Hello> {
        if i == self.me {
            Some(&self.local)
        } else {
            self.peers[i].hello.as_ref()
        }
    }

    /// Pgpool-II's election order among the alive nodes: higher wd_priority, then the
    /// older start, then the lower id.
    fn best_alive(&self, now: Instant) -> usize {
        (0..self.total())
            .filter(|&i| self.alive(i, now))
            .filter_map(|i| self.hello(i).map(|h| (i, h)))
            .min_by_key(|(i, h)| (-(h.priority as i64), h.start_time, *i))
            .map_or(self.me, |(i, _)| i)
    }

    /// The node that should lead by priority among the alive ones, for leadership
    /// transfer (only when it is not the current leader).
    pub fn preferred_leader(&self, now: Instant) -> usize {
        self.best_alive(now)
    }

    pub fn authority(&self, raft_leader: Option<usize>, raft_me: bool, now: Instant) -> Authority {
        match raft_leader {
            Some(l) if l == self.me && raft_me => return Authority::Raft(l),
            Some(l) if l != self.me && self.alive(l, now) => return Authority::Raft(l),
            _ => {}
        }
        if self.alive_count(now) * 2 <= self.total() {
            Authority::Visible(self.best_alive(now))
        } else {
            Authority::Electing
        }
    }

    /// May the leader `auth` names hold the virtual IP and decide failovers?
    pub fn may_escalate(&self, auth: Authority, now: Instant) -> bool {
        if self.trouble.is_some() {
            return false;
        }
        match auth {
            Authority::Raft(l) => l == self.me,
            Authority::Visible(l) => l == self.me && self.quorum(now) == Quorum::OnTheEdge,
            Authority::Electing => false,
        }
    }

    pub fn local_state(&self, auth: Authority) -> NodeState {
        match self.trouble {
            Some(Trouble::Lost) => return NodeState::Lost,
            Some(Trouble::NetworkDown) => return NodeState::InNetworkTrouble,
            None => {}
        }
        match auth.leader() {
            Some(l) if l == self.me => NodeState::Leader,
            Some(_) => NodeState::Standby,
            None => NodeState::ParticipatingInElection,
        }
    }

    fn remote_state(&self, i: usize, auth: Authority, now: Instant) -> NodeState {
        let p = &self.peers[i];
        if self.alive(i, now) {
            if auth.leader() == Some(i) {
                return NodeState::Leader;
            }
            return p
                .beacon
                .map_or(NodeState::Joining, |b| NodeState::from_u8(b.state));
        }
        if p.shut_down {
            NodeState::Shutdown
        } else if p.hello.is_some() || p.condemned {
            NodeState::Lost
        } else {
            NodeState::Dead
        }
    }

    pub fn node_name(&self, i: usize) -> String {
        self.hello(i)
            .map_or_else(|| "Not_Set".to_string(), |h| h.node_name.clone())
    }

    /// What `pcp_watchdog_info` shows from this node.
    pub fn info(&self, auth: Authority, escalated: bool, now: Instant) -> ClusterInfo {
        let leader = auth.leader();
        let mut nodes = Vec::with_capacity(self.total());
        let order = std::iter::once(self.me).chain((0..self.total()).filter(|&i| i != self.me));
        for i in order {
            let (host, wd_port, pgpool_port, priority, delegate_ip) = match self.hello(i) {
                Some(h) => (
                    h.host_name.clone(),
                    h.wd_port,
                    h.pgpool_port,
                    h.priority,
                    h.delegate_ip.clone(),
                ),
                None => {
                    let p = &self.peers[i];
                    (p.host.clone(), p.wd_port, p.pgpool_port, 0, String::new())
                }
            };
            let state = if i == self.me {
                self.local_state(auth)
            } else {
                self.remote_state(i, auth, now)
            };
            nodes.push(NodeInfo {
                id: i as i32,
                node_name: self.node_name(i),
                host_name: host,
                delegate_ip,
                pgpool_port,
                wd_port,
                priority,
                state,
                membership: Membership::Member,
            });
        }
        let alive_standbys = match leader {
            Some(_) => self.alive_count(now) - 1,
            None => 0,
        };
        ClusterInfo {
            remote_nodes: self.total() - 1,
            votes_required: votes_required(self.total(), self.half_votes),
            quorum: self.quorum(now),
            alive_standbys,
            escalated,
            leader: leader.map(|l| {
                let host = self
                    .hello(l)
                    .map_or_else(|| self.peers[l].host.clone(), |h| h.host_name.clone());
                (self.node_name(l), host)
            }),
            nodes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(id: u32, priority: i32) -> Hello {
        Hello {
            node_id: id,
            priority,
            start_time: 100,
            pgpool_port: 9999,
            wd_port: 9000,
            auth: [0; 32],
            node_name: format!("n{id}"),
            host_name: "h".into(),
            delegate_ip: String::new(),
        }
    }

    fn view(total: usize, half_votes: bool) -> View {
        let peer = Peer::configured("h", 9000, 9999);
        View {
            me: 0,
            trouble: None,
            peers: vec![peer; total],
            local: hello(0, 1),
            half_votes,
            deadtime: Duration::from_secs(30),
        }
    }

    fn greet(v: &mut View, i: usize, priority: i32, now: Instant) {
        let p = &mut v.peers[i];
        p.hello = Some(hello(i as u32, priority));
        p.link_up = true;
        p.last_heard = Some(now);
        p.link_since = Some(now);
    }

    #[test]
    fn lone_node_leads_without_quorum_and_never_escalates() {
        let now = Instant::now();
        let v = view(3, true);
        let auth = v.authority(None, false, now);
        assert_eq!(auth, Authority::Visible(0));
        assert_eq!(v.quorum(now), Quorum::Absent);
        assert!(!v.may_escalate(auth, now));
        let info = v.info(auth, false, now);
        assert_eq!(info.nodes[1].state, NodeState::Dead);
        assert_eq!(info.nodes[0].state, NodeState::Leader);
    }

    #[test]
    fn half_of_two_escalates_only_with_half_votes() {
        let now = Instant::now();
        for (half, escalates) in [(true, true), (false, false)] {
            let mut v = view(2, half);
            greet(&mut v, 1, 5, now);
            v.peers[1].shut_down = true;
            let auth = v.authority(None, false, now);
            assert_eq!(auth, Authority::Visible(0));
            assert_eq!(v.may_escalate(auth, now), escalates);
            assert_eq!(v.info(auth, false, now).nodes[1].state, NodeState::Shutdown);
        }
    }

    #[test]
    fn majority_waits_for_raft_and_follows_its_leader() {
        let now = Instant::now();
        let mut v = view(3, false);
        greet(&mut v, 1, 5, now);
        assert_eq!(v.authority(None, false, now), Authority::Electing);
        assert_eq!(v.preferred_leader(now), 1, "higher priority is preferred");
        let auth = v.authority(Some(1), false, now);
        assert_eq!(auth, Authority::Raft(1));
        assert_eq!(v.local_state(auth), NodeState::Standby);
        assert!(!v.may_escalate(auth, now));
        // a leader nobody here hears from is no authority
        let later = now + Duration::from_secs(31);
        assert_eq!(v.authority(Some(1), false, later), Authority::Visible(0));
        assert_eq!(v.info(auth, false, later).nodes[1].state, NodeState::Lost);
    }

    #[test]
    fn silent_heartbeat_loses_a_peer_whose_link_looks_fine() {
        let now = Instant::now();
        let mut v = view(3, false);
        greet(&mut v, 1, 1, now);
        v.peers[1].heartbeat_expected = true;
        assert!(
            v.alive(1, now),
            "a new link waits one deadtime for heartbeats"
        );
        let later = now + Duration::from_secs(31);
        v.peers[1].last_heard = Some(later);
        assert!(!v.alive(1, later), "no heartbeat for a deadtime: lost");
        v.peers[1].last_heartbeat = Some(later);
        assert!(v.alive(1, later));
    }

    #[test]
    fn condemned_peers_and_local_trouble() {
        let now = Instant::now();
        let mut v = view(3, false);
        greet(&mut v, 1, 1, now);
        greet(&mut v, 2, 1, now);
        v.peers[2].condemned = true;
        assert!(!v.alive(2, now), "the lifecheck overrules a live link");
        assert_eq!(
            v.info(Authority::Raft(0), false, now).nodes[2].state,
            NodeState::Lost
        );
        assert!(v.may_escalate(Authority::Raft(0), now));
        v.trouble = Some(Trouble::NetworkDown);
        assert!(!v.may_escalate(Authority::Raft(0), now));
        assert_eq!(
            v.local_state(Authority::Raft(0)),
            NodeState::InNetworkTrouble
        );
        v.trouble = Some(Trouble::Lost);
        assert_eq!(v.local_state(Authority::Raft(0)), NodeState::Lost);
    }
}
