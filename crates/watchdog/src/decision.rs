//! Backend decisions the watchdog cluster agrees on (node down, node up, promote): what a
//! node sends its leader as a vote and what the leader appends to the Raft log once the
//! votes suffice. `kind` uses the numbers of the shared-memory request queue, so the
//! main process applies a committed decision as one more request.

/// One decision about backend `node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub kind: u8,
    pub node: i32,
    /// Request flags (graceful, switchover, from PCP...).
    pub flags: u32,
    /// Watchdog node id that asked for it.
    pub from: u32,
}

impl Decision {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(13);
        out.push(self.kind);
        out.extend_from_slice(&self.node.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.extend_from_slice(&self.from.to_be_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Option<Decision> {
        if b.len() != 13 {
            return None;
        }
        let word = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
        Some(Decision {
            kind: b[0],
            node: i32::from_be_bytes(word(1)),
            flags: u32::from_be_bytes(word(5)),
            from: u32::from_be_bytes(word(9)),
        })
    }

    /// Two votes are for the same decision when they ask the same of the same node.
    pub fn same_question(&self, other: &Decision) -> bool {
        self.kind == other.kind && self.node == other.node
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_round_trip() {
        let d = Decision {
            kind: 1,
            node: 1,
            flags: 4,
            from: 2,
        };
        assert_eq!(Decision::decode(&d.encode()), Some(d));
        assert_eq!(Decision::decode(&[1, 2]), None);
    }
}

/// What the leader answers a node that asked for a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Enough votes (or none needed): appended to the log, every node will apply it.
    Proceed = 1,
    /// Noted; more nodes must see the same before it is decided.
    Building = 2,
    /// This node already voted and may not vote again
    /// (`allow_multiple_failover_requests_from_node = off`): quarantine locally.
    MayFail = 3,
    /// The leader could not append it (it lost the lead meanwhile): ask again.
    Retry = 4,
}

impl Outcome {
    fn from_u8(v: u8) -> Option<Outcome> {
        match v {
            1 => Some(Outcome::Proceed),
            2 => Some(Outcome::Building),
            3 => Some(Outcome::MayFail),
            4 => Some(Outcome::Retry),
            _ => None,
        }
    }
}

/// A request to the leader or its answer, as carried in a `Frame::Request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ballot {
    Vote(Decision),
    Verdict(Decision, Outcome),
}

impl Ballot {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Ballot::Vote(d) => [&[b'V'][..], &d.encode()].concat(),
            Ballot::Verdict(d, o) => [&[b'A', *o as u8][..], &d.encode()].concat(),
        }
    }

    pub fn decode(b: &[u8]) -> Option<Ballot> {
        match b.first()? {
            b'V' => Decision::decode(&b[1..]).map(Ballot::Vote),
            b'A' => {
                let o = Outcome::from_u8(*b.get(1)?)?;
                Decision::decode(&b[2..]).map(|d| Ballot::Verdict(d, o))
            }
            _ => None,
        }
    }
}

/// The leader's count of votes for pending decisions. A vote lapses when nobody has
/// repeated the question for `LAPSE`.
#[derive(Debug, Default)]
pub struct Tally {
    pending: Vec<(Decision, Vec<u32>, usize, std::time::Instant)>,
}

pub const LAPSE: std::time::Duration = std::time::Duration::from_secs(60);

impl Tally {
    /// Counts `d`'s vote; Proceed once `required` votes are in (the entry is then
    /// forgotten: the log has it).
    pub fn vote(
        &mut self,
        d: Decision,
        required: usize,
        allow_multiple: bool,
        now: std::time::Instant,
    ) -> (Outcome, usize) {
        self.pending
            .retain(|(_, _, _, t)| now.duration_since(*t) < LAPSE);
        let at = match self.pending.iter().position(|(q, ..)| q.same_question(&d)) {
            Some(i) => i,
            None => {
                self.pending.push((d, Vec::new(), 0, now));
                self.pending.len() - 1
            }
        };
        let (_, voters, count, last) = &mut self.pending[at];
        *last = now;
        let again = voters.contains(&d.from);
        if again && !allow_multiple {
            return (Outcome::MayFail, *count);
        }
        if !again {
            voters.push(d.from);
        }
        *count += 1;
        if *count >= required {
            let n = *count;
            self.pending.remove(at);
            (Outcome::Proceed, n)
        } else {
            (Outcome::Building, *count)
        }
    }
}

#[cfg(test)]
mod tally_tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn vote(from: u32) -> Decision {
        Decision {
            kind: 1,
            node: 1,
            flags: 4,
            from,
        }
    }

    #[test]
    fn majority_of_distinct_nodes_decides() {
        let now = Instant::now();
        let mut t = Tally::default();
        assert_eq!(t.vote(vote(1), 2, false, now).0, Outcome::Building);
        assert_eq!(t.vote(vote(1), 2, false, now).0, Outcome::MayFail);
        assert_eq!(t.vote(vote(2), 2, false, now), (Outcome::Proceed, 2));
        // decided: a new question starts from zero
        assert_eq!(t.vote(vote(2), 2, false, now).0, Outcome::Building);
        // lapsed votes do not count
        let later = now + LAPSE + Duration::from_secs(1);
        assert_eq!(t.vote(vote(1), 2, false, later).0, Outcome::Building);
        // with allow_multiple_failover_requests_from_node one node may repeat itself
        let mut m = Tally::default();
        assert_eq!(m.vote(vote(1), 2, true, now).0, Outcome::Building);
        assert_eq!(m.vote(vote(1), 2, true, now).0, Outcome::Proceed);
    }

    #[test]
    fn ballots_round_trip() {
        for b in [
            Ballot::Vote(vote(3)),
            Ballot::Verdict(vote(3), Outcome::MayFail),
        ] {
            assert_eq!(Ballot::decode(&b.encode()), Some(b));
        }
        assert_eq!(Ballot::decode(b"Zx"), None);
    }
}
