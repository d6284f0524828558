//! The SQL commands a child answers itself instead of sending them to a backend:
//! `SHOW POOL_NODES`, `SHOW POOL_VERSION`, `SHOW POOL_PROCESSES`, `SHOW POOL_POOLS`,
//! `SHOW POOL_STATUS`, `SHOW POOL_HEALTH_CHECK_STATS`, `SHOW POOL_BACKEND_STATS`,
//! `SHOW POOL_CACHE`, `PGPOOL SHOW name|group|ALL`, `PGPOOL SET name = value`,
//! `PGPOOL RESET name|ALL`. Column names and value formats are Pgpool-II's (rows come
//! from [`crate::report`], shared with PCP), so scripts that parse them work. The
//! extended-protocol form is handled by [`crate::child::local_ext`], which keeps the
//! statements it prepared here.

use std::sync::Arc;

use config::Config;
use protocol::build;
use shmem::Shmem;

use crate::child::relay_shared::LocalCommands;
use crate::report;

/// Per-session view used to answer local commands.
pub struct Admin<'a> {
    pub cfg: Arc<Config>,
    /// PGPOOL SET values of this session (a copy of `cfg` once something is set).
    pub session_cfg: Option<Config>,
    pub shm: &'a Shmem,
    /// The node this session's queries go to.
    pub session_node: usize,
    /// Statements prepared by locally answered Parse messages: (name, query text).
    pub statements: Vec<(Vec<u8>, Vec<u8>)>,
    /// This child's index (its slot in shared memory).
    pub child: usize,
    /// The query cache (SHOW POOL_CACHE).
    pub qcache: Option<&'a shmem::QueryCache>,
    /// A PGPOOL SET / RESET changed the session's settings since the relay last asked.
    settings_changed: bool,
}

impl<'a> Admin<'a> {
    /// The local side of a session whose reads go to `session_node` (its load-balance
    /// node, reported as such in SHOW POOL_POOLS / pcp_proc_info).
    pub fn new(cfg: Arc<Config>, shm: &'a Shmem, child: usize, session_node: usize) -> Admin<'a> {
        shm.child(child)
            .activity
            .set_load_balance_node(Some(session_node));
        Admin {
            cfg,
            session_cfg: None,
            shm,
            session_node,
            statements: Vec::new(),
            child,
            qcache: None,
            settings_changed: false,
        }
    }
}

impl Admin<'_> {
    /// After a PGPOOL SET / RESET: this process logs as the session now says
    /// (log_min_messages, log_error_verbosity), and the relay takes the new settings.
    fn session_settings_changed(&mut self) {
        crate::logging::configure(self.cfg());
        self.settings_changed = true;
    }
}

/// Skips blanks and SQL comments at the start of a query.
pub(crate) fn skip_noise(mut q: &[u8]) -> &[u8] {
    loop {
        while let Some((&c, rest)) = q.split_first() {
            if c.is_ascii_whitespace() {
                q = rest;
            } else {
                break;
            }
        }
        if q.starts_with(b"--") {
            q = match q.iter().position(|&c| c == b'\n') {
                Some(p) => &q[p + 1..],
                None => &[],
            };
        } else if q.starts_with(b"/*") {
            q = match q.windows(2).position(|w| w == b"*/") {
                Some(p) => &q[p + 2..],
                None => &[],
            };
        } else {
            return q;
        }
    }
}

fn starts_with_ci(q: &[u8], prefix: &[u8]) -> bool {
    q.len() >= prefix.len() && q[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// The command text without the trailing NUL, blanks and semicolon.
fn command_text(query: &[u8]) -> String {
    let q = skip_noise(query);
    let q = protocol::message::until_nul(q);
    String::from_utf8_lossy(q)
        .trim()
        .trim_end_matches(';')
        .trim()
        .to_string()
}

const SHOW_COMMANDS: &[&str] = &[
    "pool_nodes",
    "pool_version",
    "pool_processes",
    "pool_pools",
    "pool_status",
    "pool_health_check_stats",
    "pool_backend_stats",
    "pool_cache",
];

impl LocalCommands for Admin<'_> {
    fn take_changed_settings(&mut self) -> Option<crate::child::relay::SessionSettings> {
        std::mem::take(&mut self.settings_changed)
            .then(|| crate::child::relay::SessionSettings::of(self.cfg()))
    }

    fn is_local(&self, query: &[u8]) -> bool {
        let q = skip_noise(query);
        if starts_with_ci(q, b"pgpool") {
            return q.get(6).is_some_and(|c| c.is_ascii_whitespace());
        }
        if !starts_with_ci(q, b"show") || !q.get(4).is_some_and(|c| c.is_ascii_whitespace()) {
            return false;
        }
        let rest = skip_noise(&q[4..]);
        SHOW_COMMANDS.iter().any(|c| {
            starts_with_ci(rest, c.as_bytes())
                && rest
                    .get(c.len())
                    .is_none_or(|&b| b == 0 || b == b';' || b.is_ascii_whitespace())
        })
    }

    fn node_detached(&self) -> bool {
        !self.shm.backend(self.session_node).status().is_alive()
    }

    fn note_sent(&self, prefix: &[u8], text: &[u8], nodes: &mut dyn Iterator<Item = usize>) {
        let activity = &self.shm.child(self.child).activity;
        activity.set_statement_as(prefix, text, nodes);
    }

    fn returns_rows(&self, query: &[u8]) -> bool {
        let q = skip_noise(query);
        if starts_with_ci(q, b"show") {
            return true;
        }
        starts_with_ci(q, b"pgpool") && starts_with_ci(skip_noise(&q[6..]), b"show")
    }

    fn has_local_statements(&self) -> bool {
        !self.statements.is_empty()
    }

    fn local_statement(&self, name: &[u8]) -> Option<&[u8]> {
        self.statements
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, q)| q.as_slice())
    }

    fn remember_statement(&mut self, name: &[u8], query: &[u8]) {
        self.forget_statement(name);
        let mut q = query.to_vec();
        q.push(0);
        self.statements.push((name.to_vec(), q));
    }

    fn forget_statement(&mut self, name: &[u8]) {
        self.statements.retain(|(n, _)| n != name);
    }

    fn answer(&mut self, query: &[u8], out: &mut Vec<u8>) {
        let text = command_text(query);
        let words: Vec<&str> = text.split_whitespace().collect();
        let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
        match lower.as_slice() {
            [show, what] if show == "show" => match what.as_str() {
                "pool_nodes" => table(
                    out,
                    &report::NODES_COLUMNS,
                    report::pool_nodes(self.cfg(), self.shm, Some(self.session_node)),
                ),
                "pool_version" => table(out, &["pool_version"], vec![vec![version_string()]]),
                "pool_processes" => self.pool_processes(out),
                "pool_pools" => self.pool_pools(out),
                "pool_status" => table(
                    out,
                    &report::STATUS_COLUMNS,
                    report::pool_status(self.cfg(), self.shm)
                        .into_iter()
                        .map(Vec::from)
                        .collect(),
                ),
                "pool_health_check_stats" => table(
                    out,
                    &report::HEALTH_CHECK_STATS_COLUMNS,
                    report::health_check_rows(self.cfg(), self.shm),
                ),
                "pool_backend_stats" => table(
                    out,
                    &report::BACKEND_STATS_COLUMNS,
                    report::backend_stats(self.cfg(), self.shm),
                ),
                "pool_cache" => table(
                    out,
                    &report::CACHE_COLUMNS,
                    report::pool_cache(self.qcache.map(|c| c.stats())),
                ),
                _ => error(
                    out,
                    "42704",
                    &format!("unrecognized configuration parameter \"{what}\""),
                ),
            },
            [p, show, ..] if p == "pgpool" && show == "show" && words.len() >= 3 => {
                let name = words[2..].join(" ");
                self.pgpool_show(&name, out)
            }
            [p, set, ..] if p == "pgpool" && set == "set" => self.pgpool_set(&text, out),
            [p, reset, rest @ ..] if p == "pgpool" && reset == "reset" => {
                let name = rest.first().map(String::as_str).unwrap_or("all");
                let base = &*self.cfg;
                let cfg = self.session_cfg.get_or_insert_with(|| base.clone());
                match cfg.reset_session(name, base) {
                    Ok(()) => {
                        self.session_settings_changed();
                        build::command_complete(out, "RESET")
                    }
                    Err(e) => error(out, "XX000", &e),
                }
            }
            _ => error(
                out,
                "42601",
                &format!("syntax error in pgpool command \"{text}\""),
            ),
        }
    }
}

/// Adds `n` statements of `kind` to a node's counters (select_cnt and the
/// SHOW POOL_BACKEND_STATS columns).
pub fn count_kind(state: &shmem::BackendState, kind: sql::StatementKind, n: u64) {
    use sql::StatementKind as K;
    use std::sync::atomic::Ordering::Relaxed;
    if n == 0 {
        return;
    }
    let s = &state.stats;
    match kind {
        K::Select => state.select_cnt.fetch_add(n, Relaxed),
        K::Insert => s.insert_cnt.fetch_add(n, Relaxed),
        K::Update => s.update_cnt.fetch_add(n, Relaxed),
        K::Delete => s.delete_cnt.fetch_add(n, Relaxed),
        K::Ddl => s.ddl_cnt.fetch_add(n, Relaxed),
        _ => s.other_cnt.fetch_add(n, Relaxed),
    };
}

pub fn version_string() -> String {
    format!("4.3.5 (pgpool-rs {})", env!("CARGO_PKG_VERSION"))
}

fn error(out: &mut Vec<u8>, code: &str, message: &str) {
    build::error_response(out, "ERROR", code, message);
}

/// RowDescription, DataRows and CommandComplete for an all-text result.
fn table(out: &mut Vec<u8>, columns: &[&str], rows: Vec<Vec<String>>) {
    build::row_description(out, columns);
    for r in &rows {
        build::data_row(out, r);
    }
    build::command_complete(out, &format!("SELECT {}", rows.len()));
}

impl Admin<'_> {
    fn cfg(&self) -> &Config {
        self.session_cfg.as_ref().unwrap_or(&self.cfg)
    }

    fn pool_processes(&self, out: &mut Vec<u8>) {
        let rows = report::processes(self.cfg(), self.shm);
        table(
            out,
            &[
                "pool_pid",
                "start_time",
                "client_connection_count",
                "database",
                "username",
                "backend_connection_time",
                "pool_counter",
                "status",
            ],
            rows,
        );
    }

    fn pool_pools(&self, out: &mut Vec<u8>) {
        let rows = report::pools(self.cfg(), self.shm);
        table(
            out,
            &[
                "pool_pid",
                "start_time",
                "client_connection_count",
                "pool_id",
                "backend_id",
                "database",
                "username",
                "backend_connection_time",
                "client_connection_time",
                "client_disconnection_time",
                "client_idle_duration",
                "majorversion",
                "minorversion",
                "pool_counter",
                "pool_backendpid",
                "pool_connected",
                "status",
                "load_balance_node",
                "client_host",
                "client_port",
                "statement",
            ],
            rows,
        );
    }

    fn pgpool_show(&self, name: &str, out: &mut Vec<u8>) {
        let lname = name.to_ascii_lowercase();
        let Some(rows) = self.cfg().show(&lname) else {
            return error(
                out,
                "XX000",
                &format!("config variable \"{name}\" not found"),
            );
        };
        let is_group = matches!(
            lname.as_str(),
            "all" | "backend" | "watchdog" | "heartbeat" | "health_check"
        );
        if is_group {
            let data = rows
                .into_iter()
                .map(|r| vec![r.item, r.value, r.description])
                .collect();
            table(out, &["item", "value", "description"], data);
        } else {
            let value = rows.into_iter().next().map(|r| r.value).unwrap_or_default();
            table(out, &[lname.as_str()], vec![vec![value]]);
        }
    }

    /// `PGPOOL SET name {=|TO} value|DEFAULT`.
    fn pgpool_set(&mut self, text: &str, out: &mut Vec<u8>) {
        let rest = text[6..].trim_start()[3..].trim();
        let (name, value) = match rest.split_once('=') {
            Some((n, v)) => (n.trim(), v.trim()),
            None => match rest.split_once(char::is_whitespace) {
                Some((n, v)) => {
                    let v = v.trim();
                    let v = if starts_with_ci(v.as_bytes(), b"to ") {
                        v[3..].trim()
                    } else {
                        v
                    };
                    (n.trim(), v)
                }
                None => return error(out, "42601", "syntax error in PGPOOL SET"),
            },
        };
        let unquoted;
        let value = if value.starts_with('\'') {
            match sql::literal::unquote(value) {
                Some(v) => {
                    unquoted = v;
                    unquoted.as_str()
                }
                None => return error(out, "42601", "unterminated quoted string in PGPOOL SET"),
            }
        } else {
            value
        };
        let base = &*self.cfg;
        let cfg = self.session_cfg.get_or_insert_with(|| base.clone());
        let r = if value.eq_ignore_ascii_case("default") {
            cfg.reset_session(name, base)
        } else {
            cfg.set_session(name, value)
        };
        match r {
            Ok(()) => {
                self.session_settings_changed();
                build::command_complete(out, "SET")
            }
            Err(e) => error(out, "XX000", &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin_is_local(q: &str) -> bool {
        let shm = Shmem::create(shmem::Layout {
            num_children: 1,
            max_pool: 1,
        })
        .unwrap();
        let a = Admin::new(Arc::new(Config::default()), &shm, 0, 0);
        let mut body = q.as_bytes().to_vec();
        body.push(0);
        a.is_local(&body)
    }

    #[test]
    fn recognises_local_commands() {
        assert!(admin_is_local("SHOW POOL_NODES"));
        assert!(admin_is_local("  show pool_nodes;"));
        assert!(admin_is_local("/* x */ show\tpool_version"));
        assert!(admin_is_local("PGPOOL SHOW port"));
        assert!(admin_is_local("show pool_health_check_stats"));
        assert!(admin_is_local("SHOW POOL_BACKEND_STATS"));
        assert!(admin_is_local("SHOW POOL_STATUS"));
        assert!(admin_is_local("SHOW POOL_CACHE;"));
        assert!(admin_is_local("pgpool set client_min_messages = debug1"));
        assert!(!admin_is_local("SHOW work_mem"));
        assert!(!admin_is_local("show pool_nodesx"));
        assert!(!admin_is_local("select 'show pool_nodes'"));
        assert!(!admin_is_local("pgpoolx"));
    }

    #[test]
    fn command_text_strips_noise() {
        assert_eq!(
            command_text(b"  -- c\n SHOW POOL_NODES ;\0"),
            "SHOW POOL_NODES"
        );
    }
}
