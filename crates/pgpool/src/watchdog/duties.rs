//! The leader's duties: escalation (clear the shared query cache if
//! `clear_memqcache_on_escalation`, `wd_escalation_command`, bring up `delegate_ip` with
//! `if_up_cmd` and announce it with `arping_cmd`) and resignation (`if_down_cmd`,
//! `wd_de_escalation_command`). Commands run one after another in the background, so
//! the watchdog's event loop keeps answering its peers while they run; resigning after
//! escalating queues behind it, so the address is never left up by a race.

use std::collections::VecDeque;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use config::Config;

/// `$_IP_$` replaced, and a bare program name looked up in `path` (Pgpool-II's
/// `if_cmd_path` / `arping_path`).
fn vip_command(template: &str, path: &str, ip: &str) -> String {
    let cmd = template.replace("$_IP_$", ip);
    let trimmed = cmd.trim_start();
    if trimmed.starts_with('/') || path.is_empty() || trimmed.is_empty() {
        cmd
    } else {
        format!("{}/{}", path.trim_end_matches('/'), trimmed)
    }
}

pub struct Duties {
    escalated: bool,
    queue: VecDeque<(&'static str, String)>,
    running: Option<(&'static str, Child)>,
}

impl Duties {
    pub fn new() -> Duties {
        Duties {
            escalated: false,
            queue: VecDeque::new(),
            running: None,
        }
    }

    pub fn escalated(&self) -> bool {
        self.escalated
    }

    pub fn escalate(&mut self, cfg: &Config, qcache: Option<&shmem::QueryCache>) {
        if self.escalated {
            return;
        }
        self.escalated = true;
        if cfg.clear_memqcache_on_escalation {
            if let Some(c) = qcache {
                c.invalidate_all();
                log::info!("watchdog escalation: query cache cleared");
            }
        }
        if !cfg.wd_escalation_command.is_empty() {
            self.queue
                .push_back(("wd_escalation_command", cfg.wd_escalation_command.clone()));
        }
        if !cfg.delegate_ip.is_empty() {
            let ip = &cfg.delegate_ip;
            if !cfg.if_up_cmd.is_empty() {
                let c = vip_command(&cfg.if_up_cmd, &cfg.if_cmd_path, ip);
                self.queue.push_back(("if_up_cmd", c));
            }
            if !cfg.arping_cmd.is_empty() {
                let c = vip_command(&cfg.arping_cmd, &cfg.arping_path, ip);
                self.queue.push_back(("arping_cmd", c));
            }
        }
        self.poll();
    }

    pub fn resign(&mut self, cfg: &Config) {
        if !self.escalated {
            return;
        }
        self.escalated = false;
        log::info!("watchdog: resigning from the leader duties (de-escalation)");
        if !cfg.delegate_ip.is_empty() && !cfg.if_down_cmd.is_empty() {
            let c = vip_command(&cfg.if_down_cmd, &cfg.if_cmd_path, &cfg.delegate_ip);
            self.queue.push_back(("if_down_cmd", c));
        }
        if !cfg.wd_de_escalation_command.is_empty() {
            self.queue.push_back((
                "wd_de_escalation_command",
                cfg.wd_de_escalation_command.clone(),
            ));
        }
        self.poll();
    }

    /// Reaps a finished command and starts the next one.
    pub fn poll(&mut self) {
        loop {
            if let Some((what, child)) = &mut self.running {
                match child.try_wait() {
                    Ok(None) => return,
                    Ok(Some(st)) if st.success() => {
                        log::info!("watchdog: {what} succeeded");
                    }
                    Ok(Some(st)) => log::warn!("watchdog: {what} failed: {st}"),
                    Err(e) => log::warn!("watchdog: waiting for {what} failed: {e}"),
                }
                self.running = None;
            }
            let Some((what, cmd)) = self.queue.pop_front() else {
                return;
            };
            log::info!("watchdog: running {what}: {cmd}");
            match Command::new("/bin/sh").arg("-c").arg(&cmd).spawn() {
                Ok(child) => self.running = Some((what, child)),
                Err(e) => log::warn!("watchdog: could not start {what}: {e}"),
            }
        }
    }

    /// At shutdown: resign and wait (at most `limit`) for the commands to finish.
    pub fn finish(&mut self, cfg: &Config, limit: Duration) {
        self.resign(cfg);
        let start = Instant::now();
        while (self.running.is_some() || !self.queue.is_empty()) && start.elapsed() < limit {
            self.poll();
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::vip_command;

    #[test]
    fn vip_commands_get_the_address_and_the_path() {
        assert_eq!(
            vip_command("ip addr add $_IP_$/24 dev eth0", "/sbin", "10.0.0.9"),
            "/sbin/ip addr add 10.0.0.9/24 dev eth0"
        );
        assert_eq!(
            vip_command(
                "/usr/bin/sudo /sbin/ip addr del $_IP_$/24 dev eth0",
                "/sbin",
                "1.2.3.4"
            ),
            "/usr/bin/sudo /sbin/ip addr del 1.2.3.4/24 dev eth0"
        );
    }
}
