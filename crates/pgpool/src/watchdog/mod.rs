//! The watchdog process (`use_watchdog = on`): links to every other pgpool node of the
//! cluster (`hostnameN`, `wd_portN`; this node is the one `pgpool_node_id` names), a
//! Raft group over those links that elects the leader and orders backend decisions, the
//! cluster view PCP publishes from shared memory, and the leader's duties (virtual IP,
//! escalation commands), which a node takes up only after the previous leader's lease
//! can have expired and drops as soon as it is no longer the leader with a quorum.
//! Beacons on the links and, where `heartbeat_hostnameN` is set, UDP heartbeats are the
//! lifecheck: a peer not heard from within `wd_heartbeat_deadtime` is LOST; a peer that
//! stops says so first.

mod duties;
mod heartbeat;
mod ipc_server;
mod lifecheck;
mod links;
mod process;
mod view;

pub use process::{run, WatchdogSetup};
