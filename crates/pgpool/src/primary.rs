//! Finding out which backend is the primary: each live node is asked
//! `pg_is_in_recovery()` as sr_check_user; the first that is not in recovery is the
//! primary. An ALWAYS_PRIMARY node is the primary without asking.

use std::sync::atomic::Ordering;

use config::{ClusteringMode, Config};
use shmem::{BackendRole, BackendStatus, Shmem};

use crate::backend::{self, BackendError, MessageReader, NodeAddr, Secret};

/// Asks one node whether it is in recovery. `Ok(None)` when the answer is unusable.
pub fn is_in_recovery(
    cfg: &Config,
    node: usize,
    passwd: Option<Secret>,
) -> Result<bool, BackendError> {
    let addr = NodeAddr::of(cfg, node);
    let user = cfg.sr_check_user.clone();
    let db = if cfg.sr_check_database.is_empty() {
        "postgres".to_string()
    } else {
        cfg.sr_check_database.clone()
    };
    let mut reader = MessageReader::default();
    let mut password = |_| {
        if !cfg.sr_check_password.is_empty() {
            return Ok(Secret::Plain(cfg.sr_check_password.clone()));
        }
        passwd.clone().ok_or(BackendError::NeedPassword)
    };
    let mut conn = backend::connect(
        &addr,
        &[
            ("user", &user),
            ("database", &db),
            ("application_name", "pgpool_sr_check"),
        ],
        &mut reader,
        &mut password,
    )?;
    let r = conn.simple_query(&mut reader, "SELECT pg_is_in_recovery()")?;
    let mut out = Vec::new();
    protocol::build::terminate(&mut out);
    let _ = std::io::Write::write_all(&mut conn.stream, &out);
    match (
        r.error,
        r.rows
            .first()
            .and_then(|row| row.first())
            .cloned()
            .flatten(),
    ) {
        (None, Some(v)) => Ok(v == "t"),
        (Some(e), _) => Err(BackendError::Protocol(e.message)),
        _ => Err(BackendError::Protocol(
            "empty answer to pg_is_in_recovery()".into(),
        )),
    }
}

/// Probes every live node and records roles and the primary in shared memory.
pub fn detect(cfg: &Config, shm: &Shmem, secret_for: impl Fn(&str) -> Option<Secret>) {
    let n = cfg.backends.len();
    let replication = matches!(
        cfg.backend_clustering_mode,
        ClusteringMode::StreamingReplication | ClusteringMode::LogicalReplication
    );
    let mut primary: i32 = -1;
    for node in 0..n {
        let st = shm.backend(node);
        if !st.status().is_alive() {
            continue;
        }
        if !replication {
            st.set_role(BackendRole::Unknown);
            continue;
        }
        if cfg.backends[node].flag.always_primary {
            st.set_role(BackendRole::Primary);
            if primary < 0 {
                primary = node as i32;
            }
            continue;
        }
        match is_in_recovery(cfg, node, secret_for(&cfg.sr_check_user)) {
            Ok(in_recovery) => {
                if st.status() == BackendStatus::ConnectWait {
                    st.set_status(BackendStatus::Up);
                }
                if in_recovery
                    || (cfg.backend_clustering_mode == ClusteringMode::StreamingReplication
                        && primary >= 0)
                {
                    if !in_recovery {
                        log::warn!("node {node} is not in recovery but node {primary} is already the primary: treating node {node} as a standby");
                    }
                    st.set_role(BackendRole::Standby);
                } else {
                    st.set_role(BackendRole::Primary);
                    if primary < 0 {
                        primary = node as i32;
                    }
                }
            }
            Err(e) => log::warn!("could not determine the role of node {node}: {e}"),
        }
    }
    let main = (0..n)
        .find(|&i| shm.backend(i).status().is_alive())
        .map_or(-1, |i| i as i32);
    shm.cluster().main_node_id.store(main, Ordering::Release);
    if replication {
        shm.cluster().set_primary(usize::try_from(primary).ok());
        if primary >= 0 {
            log::info!("find_primary_node: primary node is {primary}");
        } else {
            log::warn!("find_primary_node: no primary node found");
        }
    }
}
