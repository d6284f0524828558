//! Backend requests as cluster decisions. The main process hands the watchdog every
//! failover, failback and promotion; a failover that a health check asked for needs the
//! quorum (`failover_when_quorum_exists`) and, with `failover_require_consensus`, the
//! votes of a majority of nodes, counted by the Raft leader; what is decided goes into
//! the Raft log and every node applies it, only the leader running the commands. A
//! failure only this node sees, or seen without a quorum, quarantines the backend here
//! alone. Log lines are Pgpool-II's, which its regression suite greps.

use std::time::{Duration, Instant};

use shmem::{
    RequestKind, REQUEST_CONFIRMED, REQUEST_FROM_HEALTH_CHECK, REQUEST_FROM_PCP,
    REQUEST_NO_COMMANDS,
};
use watchdog::decision::{Ballot, Decision, Outcome};
use watchdog::quorum::votes_required;
use watchdog::wire::Frame;

use super::Watchdog;
use crate::watchdog::view::Authority;

/// How long a request waits for an election to end before it is settled locally.
const WAIT_FOR_LEADER: Duration = Duration::from_secs(10);

/// What the main process is asked to do; a quarantine is never a cluster decision.
fn kind_of(d: &Decision) -> Option<RequestKind> {
    RequestKind::from_u8(d.kind).filter(|k| *k != RequestKind::Quarantine)
}

/// A failover a health check (or a child) asked for: it takes the cluster's votes; an
/// administrator's detach, failback and promotion do not.
fn needs_votes(d: &Decision) -> bool {
    d.kind == RequestKind::Detach as u8 && d.flags & REQUEST_FROM_PCP == 0
}

fn what(d: &Decision) -> &'static str {
    match d.kind {
        2 => "failback",
        3 => "promote backend",
        _ => "degenerate backend",
    }
}

impl Watchdog<'_> {
    fn to_main(&self, kind: RequestKind, node: i32, flags: u32) {
        if self
            .shm
            .request(kind, node, flags | REQUEST_CONFIRMED)
            .is_none()
        {
            log::error!("watchdog: the request queue of the main process is full");
        }
    }

    fn quarantine(&self, d: &Decision, why: &str) {
        log::info!(
            "{} request for {} node(s) from pid [{}], is changed to quarantine node request by watchdog\nDETAIL:  {why}",
            what(d),
            1,
            std::process::id()
        );
        self.to_main(RequestKind::Quarantine, d.node, d.flags);
    }

    /// Requests the main process passed on.
    pub(super) fn take_proposals(&mut self) {
        for r in self.shm.watchdog().proposals.take_all() {
            let d = Decision {
                kind: r.kind as u8,
                node: r.node,
                flags: r.flags,
                from: self.view.me as u32,
            };
            self.request(d, Instant::now() + WAIT_FOR_LEADER);
        }
    }

    /// Requests that waited for an election.
    pub(super) fn retry_waiting(&mut self) {
        for (d, until) in std::mem::take(&mut self.waiting) {
            self.request(d, until);
        }
    }

    /// Asks again for the failover of every node quarantined here: after the quorum
    /// returned or a new leader took over (its count of votes starts empty).
    pub(super) fn revote_quarantined(&mut self) {
        for node in 0..self.cfg.backends.len() {
            if self.shm.backend(node).quarantined() {
                log::info!("watchdog: asking again for the failover of quarantined node {node}");
                let d = Decision {
                    kind: RequestKind::Detach as u8,
                    node: node as i32,
                    flags: REQUEST_FROM_HEALTH_CHECK,
                    from: self.view.me as u32,
                };
                self.request(d, Instant::now() + WAIT_FOR_LEADER);
            }
        }
    }

    fn request(&mut self, d: Decision, until: Instant) {
        let Some(kind) = kind_of(&d) else {
            return;
        };
        let now = Instant::now();
        let quorum = self.view.quorum(now);
        if needs_votes(&d) && self.cfg.failover_when_quorum_exists && !quorum.holds() {
            log::info!("failover requires the quorum to hold, which is not present at the moment\nDETAIL:  Rejecting the failover request");
            self.quarantine(&d, "watchdog does not holds the quorum");
            return;
        }
        let me = self.view.me;
        match self.authority(now) {
            Authority::Raft(l) if l == me => self.as_leader(d),
            Authority::Raft(l) => {
                log::info!(
                    "watchdog: sending the {} request (failover decision) for node {} to the leader \"{}\"",
                    what(&d),
                    d.node,
                    self.view.node_name(l)
                );
                self.send_to(l, &Frame::Request(Ballot::Vote(d).encode()));
            }
            Authority::Visible(l) if quorum.holds() || !needs_votes(&d) => {
                // No majority to order it: Pgpool-II's rule, applied here; the node
                // that leads what is visible runs the commands.
                let flags = if l == me {
                    d.flags
                } else {
                    d.flags | REQUEST_NO_COMMANDS
                };
                self.to_main(kind, d.node, flags);
            }
            _ if now < until => self.waiting.push((d, until)),
            _ if needs_votes(&d) => self.quarantine(&d, "no watchdog leader was elected in time"),
            _ => self.to_main(kind, d.node, d.flags),
        }
    }

    /// The leader's side: count the vote, append what is decided, answer the asker.
    fn as_leader(&mut self, d: Decision) {
        let consensus = needs_votes(&d) && self.cfg.failover_require_consensus;
        let (mut outcome, votes) = if consensus {
            let required = votes_required(self.view.total(), self.view.half_votes);
            self.tally.vote(
                d,
                required,
                self.cfg.allow_multiple_failover_requests_from_node,
                Instant::now(),
            )
        } else {
            (Outcome::Proceed, 1)
        };
        match outcome {
            Outcome::Proceed => {
                if consensus {
                    log::info!("we have got the consensus to perform the failover\nDETAIL:  {votes} node(s) voted in the favor");
                }
                if !self.raft.propose(d.encode()) {
                    outcome = Outcome::Retry;
                }
            }
            Outcome::Building | Outcome::MayFail => {
                log::info!("failover requires the majority vote, waiting for consensus\nDETAIL:  failover request noted");
            }
            Outcome::Retry => {}
        }
        if d.from as usize == self.view.me {
            self.verdict(d, outcome);
        } else {
            self.send_to(
                d.from as usize,
                &Frame::Request(Ballot::Verdict(d, outcome).encode()),
            );
        }
    }

    /// The leader's answer to a request of ours.
    fn verdict(&mut self, d: Decision, outcome: Outcome) {
        let pid = std::process::id();
        match outcome {
            Outcome::Proceed => log::info!(
                "{} request for 1 node(s) from pid [{pid}], will be handled by watchdog",
                what(&d)
            ),
            Outcome::Building => log::info!(
                "{} request for node_id: {} from pid [{pid}], will be handled by watchdog, which is building consensus for request",
                what(&d),
                d.node
            ),
            Outcome::MayFail => self.quarantine(&d, "watchdog is taking time to build consensus"),
            Outcome::Retry => self.waiting.push((d, Instant::now() + WAIT_FOR_LEADER)),
        }
    }

    /// A ballot from peer `from`.
    pub(super) fn on_ballot(&mut self, from: usize, bytes: &[u8]) {
        match Ballot::decode(bytes) {
            Some(Ballot::Vote(d)) if d.from as usize == from => {
                if self.raft.is_leader() {
                    self.as_leader(d);
                } else {
                    self.send_to(
                        from,
                        &Frame::Request(Ballot::Verdict(d, Outcome::Retry).encode()),
                    );
                }
            }
            Some(Ballot::Verdict(d, o)) if d.from as usize == self.view.me => self.verdict(d, o),
            _ => log::warn!("watchdog: malformed request from node {from} ignored"),
        }
    }

    /// A decision committed to the log: every node applies it, the leader alone runs
    /// failover_command and the others.
    pub(super) fn apply(&mut self, entry: &[u8]) {
        let Some(d) = Decision::decode(entry) else {
            log::warn!("watchdog: unreadable entry in the Raft log skipped");
            return;
        };
        let Some(kind) = kind_of(&d) else {
            return;
        };
        let leader = self.raft.is_leader();
        log::info!(
            "watchdog: the cluster decided: {:?} of backend node {} (asked by watchdog node {}){}",
            kind,
            d.node,
            d.from,
            if leader {
                "; this node runs the commands"
            } else {
                ""
            }
        );
        let flags = if leader {
            d.flags
        } else {
            d.flags | REQUEST_NO_COMMANDS
        };
        self.to_main(kind, d.node, flags);
    }
}
