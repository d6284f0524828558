//! The `pgpool_node_id` file (next to pgpool.conf, Pgpool-II 4.2+): which `hostnameN`
//! entry is this node.

use std::path::Path;

use crate::Config;

/// The watchdog id of this node, checked against the configured watchdog nodes.
pub fn read_node_id(cfg: &Config) -> Result<usize, String> {
    let dir = cfg.config_file.parent().unwrap_or(Path::new("."));
    let path = dir.join("pgpool_node_id");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "failed to read pgpool_node_id file \"{}\": {e}",
            path.display()
        )
    })?;
    let first = text.lines().next().unwrap_or("").trim();
    let id: usize = first.parse().map_err(|_| {
        format!(
            "{}:1: invalid pgpool_node_id \"{first}\": it must be a number",
            path.display()
        )
    })?;
    let configured = cfg
        .watchdog_nodes
        .get(id)
        .is_some_and(|w| w.pgpool_port != 0 || w.wd_port != 0);
    if !configured {
        return Err(format!(
            "{}:1: pgpool_node_id {id} has no hostname{id} / wd_port{id} in {}",
            path.display(),
            cfg.config_file.display()
        ));
    }
    Ok(id)
}
