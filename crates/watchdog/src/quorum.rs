//! Quorum as Pgpool-II defines it: more than half of all configured watchdog nodes alive;
//! with an even count exactly half counts ("on the edge") only with
//! `enable_consensus_with_half_votes`, Pgpool-II's documented and weaker rule (two halves
//! of a partition can then both believe they hold it).

/// Pgpool-II's quorum states, with the numbers `pcp_watchdog_info` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quorum {
    Exists,
    OnTheEdge,
    Absent,
    NoLeader,
}

impl Quorum {
    /// `alive` counts the local node; `total` is every configured watchdog node.
    pub fn of(total: usize, alive: usize, half_votes: bool) -> Quorum {
        if alive * 2 > total {
            Quorum::Exists
        } else if alive * 2 == total && half_votes {
            Quorum::OnTheEdge
        } else {
            Quorum::Absent
        }
    }

    pub fn code(self) -> i32 {
        match self {
            Quorum::Exists => 1,
            Quorum::OnTheEdge => 0,
            Quorum::Absent => -1,
            Quorum::NoLeader => -2,
        }
    }

    /// A leader may escalate (hold the VIP, decide failovers) with this quorum.
    pub fn holds(self) -> bool {
        matches!(self, Quorum::Exists | Quorum::OnTheEdge)
    }
}

/// Votes a backend failover needs (`NodesRequireForQuorum`): a majority, or exactly half
/// of an even count with `enable_consensus_with_half_votes`.
pub fn votes_required(total: usize, half_votes: bool) -> usize {
    if total.is_multiple_of(2) && half_votes {
        total / 2
    } else {
        total / 2 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpool_quorum_arithmetic() {
        assert_eq!(Quorum::of(3, 2, false), Quorum::Exists);
        assert_eq!(Quorum::of(3, 1, true), Quorum::Absent);
        assert_eq!(Quorum::of(2, 1, false), Quorum::Absent);
        assert_eq!(Quorum::of(2, 1, true), Quorum::OnTheEdge);
        assert_eq!(Quorum::of(4, 2, true), Quorum::OnTheEdge);
        assert_eq!(Quorum::of(4, 3, false), Quorum::Exists);
        assert_eq!(votes_required(3, false), 2);
        assert_eq!(votes_required(4, false), 3);
        assert_eq!(votes_required(4, true), 2);
        assert_eq!(votes_required(1, false), 1);
    }
}
