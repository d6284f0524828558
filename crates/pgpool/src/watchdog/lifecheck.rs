//! The watchdog's lifecheck beyond its links and heartbeats, on a thread of the watchdog
//! process so a slow node never stalls the event loop: every `wd_interval` it runs
//! `trusted_server_command` (`%h`: each of `trusted_servers`; none answering means this
//! node is cut off from the network) and, with `wd_lifecheck_method = query`, sends
//! `wd_lifecheck_query` through every node's pgpool port, itself included; a node failing
//! `wd_life_point` times in a row is dead, one success makes it alive again. Only
//! changes are reported. `wd_monitoring_interfaces_list` is checked by the loop itself
//! (a cheap interface listing): with every listed interface down the node is in network
//! trouble.

use std::collections::HashSet;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use config::{Config, LifecheckMethod};
use nix::net::if_::InterfaceFlags;

use crate::backend::{self, BackendError, MessageReader, NodeAddr, Secret};

/// What the lifecheck thread found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Watchdog node `id` (possibly this one) answers, or stopped answering, queries.
    Node { id: usize, alive: bool },
    /// Some trusted server answers (true), or none does.
    Upstream { reachable: bool },
}

/// The trusted-server command line for `host`: `%h` is the host, `%%` a percent.
fn server_command(template: &str, host: &str) -> String {
    crate::failover::expand_percent(template, |c| (c == 'h').then(|| host.to_string()))
}

/// The command that checks one trusted server: `trusted_server_command`, or, for a 4.3
/// configuration that moved `ping_path` and kept the default command, ping from there.
fn trusted_template(cfg: &Config) -> String {
    let default = "ping -q -c3 %h";
    if cfg.trusted_server_command == default && cfg.ping_path != "/bin" {
        format!("{}/ping -q -c3 %h", cfg.ping_path.trim_end_matches('/'))
    } else {
        cfg.trusted_server_command.clone()
    }
}

fn upstream_reachable(template: &str, servers: &[String]) -> bool {
    servers.iter().any(|host| {
        let line = server_command(template, host);
        std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&line)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// One lifecheck query through node `id`'s pgpool.
fn query_node(cfg: &Config, id: usize, secret: Option<&Secret>) -> Result<(), BackendError> {
    let node = &cfg.watchdog_nodes[id];
    let interval = u64::try_from(cfg.wd_interval).unwrap_or(10);
    let timeout = Duration::from_secs(interval / 2 + 1);
    let addr = NodeAddr {
        node: id,
        host: &node.hostname,
        port: node.pgpool_port,
        connect_timeout: timeout,
    };
    let mut reader = MessageReader::default();
    let mut password = |_| {
        if !cfg.wd_lifecheck_password.is_empty() {
            return Ok(Secret::Plain(cfg.wd_lifecheck_password.clone()));
        }
        secret.cloned().ok_or(BackendError::NeedPassword)
    };
    let mut conn = backend::connect_with_deadline(
        &addr,
        &[
            ("user", &cfg.wd_lifecheck_user),
            ("database", &cfg.wd_lifecheck_dbname),
            ("application_name", "lifecheck_ping"),
        ],
        &mut reader,
        &mut password,
        Instant::now() + timeout,
    )?;
    let _ = conn.stream.set_read_timeout(Some(timeout));
    let result = conn.simple_query(&mut reader, &cfg.wd_lifecheck_query)?;
    let mut bye = Vec::new();
    protocol::build::terminate(&mut bye);
    let _ = std::io::Write::write_all(&mut conn.stream, &bye);
    match result.error {
        Some(e) => Err(BackendError::Protocol(e.message)),
        None => Ok(()),
    }
}

/// The query lifecheck's memory of one node.
struct Lives {
    left: i64,
    alive: bool,
}

fn check_nodes(cfg: &Config, secret: Option<&Secret>, lives: &mut [Lives], tx: &Sender<Finding>) {
    let results: Vec<Result<(), BackendError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..lives.len())
            .map(|id| s.spawn(move || query_node(cfg, id, secret)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(BackendError::Protocol("lifecheck panicked".into())))
            })
            .collect()
    });
    for (id, (r, l)) in results.into_iter().zip(lives.iter_mut()).enumerate() {
        match r {
            Ok(()) => {
                l.left = cfg.wd_life_point;
                if !l.alive {
                    l.alive = true;
                    let _ = tx.send(Finding::Node { id, alive: true });
                }
            }
            Err(e) => {
                l.left -= 1;
                let n = &cfg.watchdog_nodes[id];
                log::debug!("watchdog lifecheck of node {id} failed: {e}");
                if l.left <= 0 && l.alive {
                    l.alive = false;
                    log::info!(
                        "checking pgpool status by query\nDETAIL:  lifecheck failed {} times. pgpool {id} ({}:{}) seems not to be working",
                        cfg.wd_life_point,
                        n.hostname,
                        n.pgpool_port
                    );
                    let _ = tx.send(Finding::Node { id, alive: false });
                }
            }
        }
    }
}

/// Starts the lifecheck thread when there is anything for it to do.
pub fn start(cfg: &Config) -> Option<Receiver<Finding>> {
    let servers: Vec<String> = cfg
        .trusted_servers
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let by_query = cfg.wd_lifecheck_method == LifecheckMethod::Query;
    if servers.is_empty() && !by_query {
        return None;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let cfg = cfg.clone();
    let secret = crate::passwd_secret(&cfg, &cfg.wd_lifecheck_user);
    let template = trusted_template(&cfg);
    let spawned = std::thread::Builder::new()
        .name("lifecheck".into())
        .spawn(move || {
            let interval = Duration::from_secs(u64::try_from(cfg.wd_interval).unwrap_or(10).max(1));
            let mut lives: Vec<Lives> = (0..cfg.watchdog_nodes.len())
                .map(|_| Lives {
                    left: cfg.wd_life_point,
                    alive: true,
                })
                .collect();
            let mut reachable = true;
            loop {
                let started = Instant::now();
                if !servers.is_empty() {
                    let now = upstream_reachable(&template, &servers);
                    if now != reachable {
                        reachable = now;
                        if !now {
                            log::warn!(
                                "watchdog lifecheck, failed to connect to any trusted servers"
                            );
                        }
                        if tx.send(Finding::Upstream { reachable: now }).is_err() {
                            return;
                        }
                    }
                }
                // While cut off, the nodes cannot be judged from here.
                if by_query && reachable {
                    check_nodes(&cfg, secret.as_ref(), &mut lives, &tx);
                }
                std::thread::sleep(interval.saturating_sub(started.elapsed()));
            }
        });
    if let Err(e) = spawned {
        log::error!("watchdog: could not start the lifecheck: {e}");
        return None;
    }
    Some(rx)
}

/// The interfaces `wd_monitoring_interfaces_list` names ("any": every one but loopback).
pub struct InterfaceWatch {
    names: Vec<String>,
    any: bool,
}

impl InterfaceWatch {
    pub fn new(cfg: &Config) -> Option<InterfaceWatch> {
        let names: Vec<String> = cfg
            .wd_monitoring_interfaces_list
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if names.is_empty() {
            return None;
        }
        let any = names.iter().any(|n| n.eq_ignore_ascii_case("any"));
        Some(InterfaceWatch { names, any })
    }

    /// The watched interfaces that are up and running now.
    pub fn active(&self) -> Vec<String> {
        let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
            return Vec::new();
        };
        let mut seen = HashSet::new();
        let want = InterfaceFlags::IFF_UP | InterfaceFlags::IFF_RUNNING;
        addrs
            .filter(|a| a.flags.contains(want))
            .filter(|a| {
                if self.any {
                    !a.flags.contains(InterfaceFlags::IFF_LOOPBACK)
                } else {
                    self.names.iter().any(|n| n == &a.interface_name)
                }
            })
            .filter_map(|a| {
                seen.insert(a.interface_name.clone())
                    .then_some(a.interface_name)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_server_command_takes_the_host() {
        assert_eq!(server_command("ping -q -c3 %h", "gw"), "ping -q -c3 gw");
        assert_eq!(
            server_command("test -e /x/%h.up && echo 100%%", "a"),
            "test -e /x/a.up && echo 100%"
        );
        assert_eq!(server_command("%q%", "a"), "%q%");
    }

    #[test]
    fn a_moved_ping_path_is_honoured_with_the_default_command() {
        let mut cfg = Config::default();
        assert_eq!(trusted_template(&cfg), "ping -q -c3 %h");
        cfg.ping_path = "/usr/bin/".into();
        assert_eq!(trusted_template(&cfg), "/usr/bin/ping -q -c3 %h");
        cfg.trusted_server_command = "true %h".into();
        assert_eq!(trusted_template(&cfg), "true %h");
    }

    #[test]
    fn upstream_needs_one_server_answering() {
        let t = "test %h = up";
        assert!(upstream_reachable(t, &["down".into(), "up".into()]));
        assert!(!upstream_reachable(t, &["down".into()]));
    }

    #[test]
    fn loopback_is_not_any_interface() {
        let mut cfg = Config::default();
        cfg.wd_monitoring_interfaces_list = vec!["lo".into()];
        let lo = InterfaceWatch::new(&cfg).expect("a list");
        assert_eq!(lo.active(), vec!["lo".to_string()]);
        cfg.wd_monitoring_interfaces_list = vec!["any".into()];
        let any = InterfaceWatch::new(&cfg).expect("a list");
        assert!(!any.active().contains(&"lo".to_string()));
        cfg.wd_monitoring_interfaces_list = vec![];
        assert!(InterfaceWatch::new(&cfg).is_none());
    }
}
