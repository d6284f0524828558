//! The watchdog's logic without its I/O: the node states and quorum arithmetic Pgpool-II
//! reports (`state`, `quorum`), the frames peers exchange (`wire`), the Raft log that
//! elects the leader and records backend decisions (`consensus`, over TiKV's sans-IO
//! `raft` crate, its hard state and log kept in a file so a restarted node never votes
//! twice in one term), the decisions themselves (`decision`), the JSON document
//! `pcp_watchdog_info` reads (`info`) and the local command socket `wd_cli` talks to
//! (`ipc`). The pgpool crate drives it from its watchdog process's event loop.

pub mod consensus;
pub mod decision;
pub mod info;
pub mod ipc;
pub mod quorum;
pub mod state;
pub mod wire;
