//! The JSON document Pgpool-II's watchdog answers `pcp_watchdog_info` with (the same keys,
//! so Pgpool-II's own pcp_watchdog_info can read ours): the cluster line first, then the
//! local node and every remote node in configuration order.

use std::fmt::Write;

use crate::quorum::Quorum;
use crate::state::{Membership, NodeState};

/// One watchdog node as `pcp_watchdog_info` shows it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub id: i32,
    pub node_name: String,
    pub host_name: String,
    pub delegate_ip: String,
    pub pgpool_port: u16,
    pub wd_port: u16,
    pub priority: i32,
    pub state: NodeState,
    pub membership: Membership,
}

#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub remote_nodes: usize,
    pub votes_required: usize,
    pub quorum: Quorum,
    /// Live remote nodes following the leader.
    pub alive_standbys: usize,
    pub escalated: bool,
    /// (node name, host name) of the leader, if any.
    pub leader: Option<(String, String)>,
    /// Local node first.
    pub nodes: Vec<NodeInfo>,
}

fn quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn node_json(out: &mut String, n: &NodeInfo) {
    let _ = write!(
        out,
        "{{\"ID\":{},\"State\":{},\"Membership\":{},\"MembershipString\":",
        n.id, n.state as u8, n.membership as u8
    );
    quoted(out, n.membership.name());
    out.push_str(",\"NodeName\":");
    quoted(out, &n.node_name);
    out.push_str(",\"HostName\":");
    quoted(out, &n.host_name);
    out.push_str(",\"StateName\":");
    quoted(out, n.state.name());
    out.push_str(",\"DelegateIP\":");
    quoted(
        out,
        if n.delegate_ip.is_empty() {
            "Not_Set"
        } else {
            &n.delegate_ip
        },
    );
    let _ = write!(
        out,
        ",\"WdPort\":{},\"PgpoolPort\":{},\"Priority\":{}}}",
        n.wd_port, n.pgpool_port, n.priority
    );
}

impl ClusterInfo {
    /// The document for watchdog id `only` (None: all nodes).
    pub fn json(&self, only: Option<i32>) -> String {
        let (leader, leader_host) = match &self.leader {
            Some((n, h)) => (n.as_str(), h.as_str()),
            None => ("Not Set", "Not Set"),
        };
        let quorum = if self.leader.is_some() {
            self.quorum
        } else {
            Quorum::NoLeader
        };
        let mut out = String::new();
        let _ = write!(
            out,
            "{{\"RemoteNodeCount\":{},\"MemberRemoteNodeCount\":{},\"NodesRequireForQuorum\":{},\
             \"QuorumStatus\":{},\"AliveNodeCount\":{},\"Escalated\":{},\"LeaderNodeName\":",
            self.remote_nodes,
            self.remote_nodes,
            self.votes_required,
            quorum.code(),
            self.alive_standbys,
            u8::from(self.escalated)
        );
        quoted(&mut out, leader);
        out.push_str(",\"LeaderHostName\":");
        quoted(&mut out, leader_host);
        let nodes: Vec<&NodeInfo> = self
            .nodes
            .iter()
            .filter(|n| only.is_none_or(|id| n.id == id))
            .collect();
        let _ = write!(out, ",\"NodeCount\":{},\"WatchdogNodes\":[", nodes.len());
        for (i, n) in nodes.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            node_json(&mut out, n);
        }
        out.push_str("]}");
        out
    }
}

const SEP: char = '\u{1f}';

impl ClusterInfo {
    /// A compact form for shared memory: one line for the cluster, one per node.
    pub fn encode(&self) -> String {
        let clean = |s: &str| s.replace([SEP, '\n'], " ");
        let (leader, host) = self.leader.clone().unwrap_or_default();
        let mut out = format!(
            "{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}\n",
            self.remote_nodes,
            self.votes_required,
            self.quorum.code(),
            self.alive_standbys,
            u8::from(self.escalated),
            u8::from(self.leader.is_some()),
            clean(&leader),
            clean(&host)
        );
        for n in &self.nodes {
            let _ = writeln!(
                out,
                "{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}",
                n.id,
                clean(&n.node_name),
                clean(&n.host_name),
                clean(&n.delegate_ip),
                n.pgpool_port,
                n.wd_port,
                n.priority,
                n.state as u8
            );
        }
        out
    }

    pub fn decode(s: &str) -> Option<ClusterInfo> {
        let mut lines = s.lines();
        let head: Vec<&str> = lines.next()?.split(SEP).collect();
        if head.len() != 8 {
            return None;
        }
        let quorum = match head[2].parse::<i32>().ok()? {
            1 => Quorum::Exists,
            0 => Quorum::OnTheEdge,
            -1 => Quorum::Absent,
            _ => Quorum::NoLeader,
        };
        let mut info = ClusterInfo {
            remote_nodes: head[0].parse().ok()?,
            votes_required: head[1].parse().ok()?,
            quorum,
            alive_standbys: head[3].parse().ok()?,
            escalated: head[4] == "1",
            leader: (head[5] == "1").then(|| (head[6].to_string(), head[7].to_string())),
            nodes: Vec::new(),
        };
        for line in lines {
            let f: Vec<&str> = line.split(SEP).collect();
            if f.len() != 8 {
                return None;
            }
            info.nodes.push(NodeInfo {
                id: f[0].parse().ok()?,
                node_name: f[1].to_string(),
                host_name: f[2].to_string(),
                delegate_ip: f[3].to_string(),
                pgpool_port: f[4].parse().ok()?,
                wd_port: f[5].parse().ok()?,
                priority: f[6].parse().ok()?,
                state: NodeState::from_u8(f[7].parse().ok()?),
                membership: Membership::Member,
            });
        }
        Some(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_view_round_trips_into_pgpool_json() {
        let node = |id: i32, state| NodeInfo {
            id,
            node_name: format!("h:{} Linux h", 9999 + id),
            host_name: "h".into(),
            delegate_ip: String::new(),
            pgpool_port: 9999 + id as u16,
            wd_port: 9000,
            priority: 1,
            state,
            membership: Membership::Member,
        };
        let info = ClusterInfo {
            remote_nodes: 1,
            votes_required: 2,
            quorum: Quorum::Exists,
            alive_standbys: 1,
            escalated: true,
            leader: Some(("h:9999 Linux h".into(), "h".into())),
            nodes: vec![node(0, NodeState::Leader), node(1, NodeState::Standby)],
        };
        let back = ClusterInfo::decode(&info.encode()).unwrap();
        assert_eq!(back.json(None), info.json(None));
        let one = back.json(Some(1));
        assert!(one.contains("\"NodeCount\":1"), "{one}");
        assert!(one.contains("\"StateName\":\"STANDBY\""), "{one}");
        assert!(one.contains("\"DelegateIP\":\"Not_Set\""), "{one}");
        assert!(ClusterInfo::decode("garbage").is_none());
    }
}
