//! The node list every process works with. The main process owns it: it publishes the
//! configured nodes in shared memory at start-up and, on reload, applies Pgpool-II's rules
//! to what changed ([`plan_reload`]): a node new to the file joins as "down" (to be brought
//! in by pcp_attach_node or pcp_recovery_node), a node gone from the file is removed only
//! when it is out of service, weight / flag / application name change at once, and the
//! address of a node in service changes only with a restart (reported, not half-applied).
//! Other processes never take nodes from pgpool.conf: they copy the shared table
//! ([`adopt`], [`refresh`]).

use std::sync::atomic::{AtomicU64, Ordering};

use config::{BackendConfig, BackendFlag, Config};
use shmem::{BackendStatus, NodeSpec, Shmem, NODE_ALWAYS_PRIMARY, NODE_DISALLOW_TO_FAILOVER};

/// Generation of the shared table this process's `Config::backends` was taken from
/// (inherited through fork together with the configuration).
static SEEN: AtomicU64 = AtomicU64::new(0);

fn to_spec(b: &BackendConfig) -> NodeSpec {
    let mut flags = 0;
    if b.flag.disallow_to_failover {
        flags |= NODE_DISALLOW_TO_FAILOVER;
    }
    if b.flag.always_primary {
        flags |= NODE_ALWAYS_PRIMARY;
    }
    NodeSpec {
        configured: b.configured,
        hostname: b.hostname.clone(),
        port: b.port,
        data_directory: b.data_directory.clone(),
        application_name: b.application_name.clone(),
        weight: b.weight,
        flags,
    }
}

fn from_spec(s: NodeSpec) -> BackendConfig {
    BackendConfig {
        configured: s.configured,
        hostname: s.hostname,
        port: s.port,
        weight: s.weight,
        data_directory: s.data_directory,
        flag: BackendFlag {
            disallow_to_failover: s.flags & NODE_DISALLOW_TO_FAILOVER != 0,
            always_primary: s.flags & NODE_ALWAYS_PRIMARY != 0,
        },
        application_name: s.application_name,
    }
}

/// A node id the configuration skips (or no longer names).
fn unconfigured() -> BackendConfig {
    BackendConfig {
        configured: false,
        hostname: String::new(),
        port: 0,
        weight: 0.0,
        data_directory: String::new(),
        flag: BackendFlag::default(),
        application_name: String::new(),
    }
}

/// Main process: makes `nodes` the table every process sees.
pub fn publish(shm: &Shmem, nodes: &[BackendConfig]) {
    let specs: Vec<NodeSpec> = nodes.iter().map(to_spec).collect();
    shm.nodes().publish(&specs);
    SEEN.store(shm.nodes().generation(), Ordering::Release);
}

/// Replaces `cfg.backends` with the shared table (after re-reading pgpool.conf, whose
/// node lines are the main process's to apply).
pub fn adopt(cfg: &mut Config, shm: &Shmem) {
    let (generation, specs) = shm.nodes().snapshot();
    cfg.backends = specs.into_iter().map(from_spec).collect();
    SEEN.store(generation, Ordering::Release);
}

/// Takes the shared table if it changed since this process last took it; true then.
pub fn refresh(cfg: &mut Config, shm: &Shmem) -> bool {
    if shm.nodes().generation() == SEEN.load(Ordering::Acquire) {
        return false;
    }
    adopt(cfg, shm);
    true
}

/// What a reload does to the node list.
#[derive(Debug, Default)]
pub struct ReloadPlan {
    /// The node list from now on (node id = index).
    pub nodes: Vec<BackendConfig>,
    /// Node ids new to the configuration: they join as "down".
    pub added: Vec<usize>,
    /// Node ids no longer configured (they were out of service).
    pub removed: Vec<usize>,
    /// Changes the reload could not apply, one warning each.
    pub refused: Vec<String>,
}

/// Applies Pgpool-II's reload rules to the node list: `current` is in effect, `newer` was
/// just read, `status` tells each current node's state.
pub fn plan_reload(
    current: &[BackendConfig],
    newer: &[BackendConfig],
    status: impl Fn(usize) -> BackendStatus,
) -> ReloadPlan {
    let mut plan = ReloadPlan::default();
    let configured =
        |list: &[BackendConfig], i: usize| list.get(i).filter(|b| b.configured).cloned();
    for i in 0..current.len().max(newer.len()) {
        let in_service = !matches!(status(i), BackendStatus::Down | BackendStatus::Unused);
        let node = match (configured(current, i), configured(newer, i)) {
            (None, None) => unconfigured(),
            (None, Some(n)) => {
                plan.added.push(i);
                n
            }
            (Some(c), None) if in_service => {
                plan.refused.push(format!(
                    "backend node {i} is no longer in the configuration but is in service: \
                     detach it (pcp_detach_node) and reload again to remove it"
                ));
                c
            }
            (Some(_), None) => {
                plan.removed.push(i);
                unconfigured()
            }
            (Some(c), Some(n)) => {
                let mut kept = c.clone();
                if c.hostname != n.hostname {
                    plan.refused.push(format!(
                        "backend_hostname{i} changed but takes effect only after a restart"
                    ));
                }
                if c.port != n.port {
                    plan.refused.push(format!(
                        "backend_port{i} changed but takes effect only after a restart"
                    ));
                }
                if c.data_directory != n.data_directory {
                    if in_service {
                        plan.refused.push(format!(
                            "backend_data_directory{i} can be changed only while node {i} is down"
                        ));
                    } else {
                        kept.data_directory = n.data_directory.clone();
                    }
                }
                kept.weight = n.weight;
                kept.flag = n.flag;
                kept.application_name = n.application_name;
                kept
            }
        };
        plan.nodes.push(node);
    }
    while plan.nodes.last().is_some_and(|b| !b.configured) {
        plan.nodes.pop();
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: u16) -> BackendConfig {
        BackendConfig {
            configured: true,
            hostname: host.into(),
            port,
            weight: 1.0,
            data_directory: format!("/data/{port}"),
            flag: BackendFlag::default(),
            application_name: String::new(),
        }
    }

    #[test]
    fn new_nodes_join_and_gaps_stay_unconfigured() {
        let current = vec![node("h", 5000)];
        let newer = vec![node("h", 5000), unconfigured(), node("h", 5002)];
        let p = plan_reload(&current, &newer, |_| BackendStatus::Up);
        assert_eq!(p.added, vec![2]);
        assert_eq!(p.nodes.len(), 3);
        assert!(!p.nodes[1].configured);
        assert_eq!(p.nodes[2].port, 5002);
        assert!(p.refused.is_empty());
    }

    #[test]
    fn address_of_a_node_in_service_needs_a_restart() {
        let current = vec![node("h", 5000)];
        let mut changed = node("other", 5001);
        changed.weight = 3.0;
        let p = plan_reload(&current, &[changed], |_| BackendStatus::Up);
        assert_eq!(p.nodes[0].hostname, "h");
        assert_eq!(p.nodes[0].port, 5000);
        assert_eq!(p.nodes[0].weight, 3.0, "weight is reloadable");
        assert_eq!(p.refused.len(), 3, "{:?}", p.refused);
    }

    #[test]
    fn data_directory_changes_while_down() {
        let current = vec![node("h", 5000)];
        let mut moved = node("h", 5000);
        moved.data_directory = "/elsewhere".into();
        let p = plan_reload(&current, std::slice::from_ref(&moved), |_| {
            BackendStatus::Down
        });
        assert_eq!(p.nodes[0].data_directory, "/elsewhere");
        let p = plan_reload(&current, &[moved], |_| BackendStatus::Up);
        assert_eq!(p.nodes[0].data_directory, "/data/5000");
        assert_eq!(p.refused.len(), 1);
    }

    #[test]
    fn removal_only_out_of_service() {
        let current = vec![node("h", 5000), node("h", 5001)];
        let newer = vec![node("h", 5000)];
        let p = plan_reload(&current, &newer, |_| BackendStatus::Up);
        assert_eq!(p.nodes.len(), 2);
        assert!(p.removed.is_empty());
        assert_eq!(p.refused.len(), 1);
        let p = plan_reload(&current, &newer, |i| {
            if i == 1 {
                BackendStatus::Down
            } else {
                BackendStatus::Up
            }
        });
        assert_eq!(p.removed, vec![1]);
        assert_eq!(p.nodes.len(), 1, "trailing unconfigured slots are trimmed");
    }

    #[test]
    fn table_round_trip() {
        let shm = Shmem::create(shmem::Layout {
            num_children: 1,
            max_pool: 1,
        })
        .expect("shmem");
        let mut n = node("db1.example", 5433);
        n.flag.always_primary = true;
        n.weight = 0.25;
        let nodes = vec![n, unconfigured()];
        publish(&shm, &nodes);
        let mut cfg = Config::default();
        adopt(&mut cfg, &shm);
        assert_eq!(cfg.backends, nodes);
        assert!(!refresh(&mut cfg, &shm));
    }
}
