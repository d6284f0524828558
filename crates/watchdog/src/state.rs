//! Watchdog node states and cluster membership, with the numbers and names Pgpool-II
//! prints (`pcp_watchdog_info`, its log lines), so scripts that parse them keep working.

/// A watchdog node's state as Pgpool-II numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Dead = 0,
    Loading = 1,
    Joining = 2,
    Initializing = 3,
    Leader = 4,
    ParticipatingInElection = 5,
    StandingForLeader = 6,
    Standby = 7,
    Lost = 8,
    InNetworkTrouble = 9,
    Shutdown = 10,
    AddMessageSent = 11,
    NetworkIsolation = 12,
}

impl NodeState {
    pub fn name(self) -> &'static str {
        match self {
            NodeState::Dead => "DEAD",
            NodeState::Loading => "LOADING",
            NodeState::Joining => "JOINING",
            NodeState::Initializing => "INITIALIZING",
            NodeState::Leader => "LEADER",
            NodeState::ParticipatingInElection => "PARTICIPATING IN ELECTION",
            NodeState::StandingForLeader => "STANDING FOR LEADER",
            NodeState::Standby => "STANDBY",
            NodeState::Lost => "LOST",
            NodeState::InNetworkTrouble => "IN NETWORK TROUBLE",
            NodeState::Shutdown => "SHUTDOWN",
            NodeState::AddMessageSent => "ADD MESSAGE SENT",
            NodeState::NetworkIsolation => "NETWORK ISOLATION",
        }
    }

    pub fn from_u8(v: u8) -> NodeState {
        use NodeState::*;
        [
            Dead,
            Loading,
            Joining,
            Initializing,
            Leader,
            ParticipatingInElection,
            StandingForLeader,
            Standby,
            Lost,
            InNetworkTrouble,
            Shutdown,
            AddMessageSent,
            NetworkIsolation,
        ]
        .get(usize::from(v))
        .copied()
        .unwrap_or(Dead)
    }
}

/// Cluster membership of a node (Pgpool-II's `wd_remove_shutdown_nodes` and the
/// removal timeouts revoke it; pgpool-rs keeps every configured node a member).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    Member = 0,
}

impl Membership {
    pub fn name(self) -> &'static str {
        match self {
            Membership::Member => "MEMBER",
        }
    }
}
