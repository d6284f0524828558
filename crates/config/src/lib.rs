//! pgpool-rs configuration: loads `pgpool.conf` into a typed [`Config`] (every Pgpool-II 4.3-4.7
//! parameter, table-driven from [`params::PARAMS`], per-node `backend_*N` / `wd_portN` /
//! `heartbeat_*N` groups and health-check suffix overrides), answers `PGPOOL SHOW` / `PGPOOL SET`,
//! ([`show`]), tells which changes need a restart on reload, and parses the companion files
//! `pool_hba.conf` ([`hba`]), `pool_passwd` ([`passwd`]) and `pcp.conf` ([`pcpconf`]).
//!
//! The line format is PostgreSQL's, which the `ini` crate cannot express with line numbers, so a
//! small tokenizer ([`lexer`]) reads the file and the effective raw values are kept in an
//! [`ini::Ini`] (see [`Config::raw_ini`]) for dumping and diffing.

pub mod choices;
pub mod compat;
pub mod hba;
pub mod lexer;
pub mod node_id;
pub mod params;
pub mod passwd;
pub mod pcpconf;
mod show;
pub mod value;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use choices::{
    CacheMethod, ErrorVerbosity, LifecheckMethod, LoadBalanceOnWrite, ProcessManagementMode,
    ProcessManagementStrategy, RelcacheTarget, StandbyDelayLogging, TempTableCheck,
};
pub use params::{Config, Context, Group, Kind, ParamDef, Unit, PARAMS};
pub use show::describe_config;
pub use value::{BackendFlag, ClusteringMode, Value};

use value::parse_value;

/// Maximum node index accepted in `backend_*N`, `hostnameN`, `heartbeat_*N`, `..._N` suffixes.
pub const MAX_NODES: usize = 128;

/// An error in a configuration file. `line` is 1-based; 0 means the whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl ConfigError {
    pub fn new(file: &Path, line: usize, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Read a whole configuration file, mapping I/O errors to a line-0 [`ConfigError`].
pub(crate) fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(path, 0, format!("could not read configuration file: {}", e)))
}

/// One backend node (`backend_*N`). A node id below the highest configured one that the
/// file does not name is kept as an unconfigured slot (`configured == false`), as Pgpool-II
/// keeps such a slot "unused".
#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    pub configured: bool,
    pub hostname: String,
    pub port: u16,
    pub weight: f64,
    pub data_directory: String,
    pub flag: BackendFlag,
    pub application_name: String,
}

/// One watchdog node (`hostnameN`, `wd_portN`, `pgpool_portN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchdogNode {
    pub hostname: String,
    pub wd_port: u16,
    pub pgpool_port: u16,
}

/// One heartbeat destination (`heartbeat_hostnameN`, `heartbeat_portN`, `heartbeat_deviceN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatDest {
    pub hostname: String,
    pub port: u16,
    pub device: String,
}

/// Effective health-check parameters of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckParams {
    pub period: u64,
    pub timeout: u64,
    pub user: String,
    pub password: String,
    pub database: String,
    pub max_retries: u32,
    pub retry_delay: u64,
    pub connect_timeout_ms: u64,
}

/// A warning about a configuration file, logged once it is loaded (as Pgpool-II does while
/// reading it): `message` and `detail` in Pgpool-II's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub line: usize,
    /// Only for a file written for this 4.x release or a later one.
    pub(crate) since: u32,
    pub message: String,
    pub detail: String,
}

/// One row of `PGPOOL SHOW` output (columns item, value, description).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShowRow {
    pub item: String,
    pub value: String,
    pub description: String,
}

/// Effective raw values as written in the file, with their line numbers.
#[derive(Debug, Clone, Default)]
pub struct RawValues {
    ini: ini::Ini,
    lines: HashMap<String, usize>,
}

impl RawValues {
    fn set(&mut self, key: &str, value: &str, line: usize) {
        self.ini.with_general_section().set(key, value);
        self.lines.insert(key.to_string(), line);
    }
    /// Raw text of `key` (canonical name, with node suffix for indexed parameters).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.ini.general_section().get(key)
    }
    /// Line `key` was last set on.
    pub fn line(&self, key: &str) -> Option<usize> {
        self.lines.get(key).copied()
    }
}

/// Health-check parameters that accept a node suffix, in `PGPOOL SHOW health_check` order.
pub(crate) const HEALTH_CHECK_PARAMS: [&str; 8] = [
    "health_check_period",
    "health_check_timeout",
    "health_check_user",
    "health_check_password",
    "health_check_database",
    "health_check_max_retries",
    "health_check_retry_delay",
    "connect_timeout",
];
pub(crate) const BACKEND_PARAMS: [&str; 6] = [
    "backend_hostname",
    "backend_port",
    "backend_weight",
    "backend_data_directory",
    "backend_application_name",
    "backend_flag",
];
pub(crate) const WATCHDOG_PARAMS: [&str; 3] = ["hostname", "wd_port", "pgpool_port"];
pub(crate) const HEARTBEAT_PARAMS: [&str; 3] =
    ["heartbeat_hostname", "heartbeat_port", "heartbeat_device"];

/// Find the definition of a plain (non-indexed) parameter, accepting old aliases.
pub fn find_param(name: &str) -> Option<&'static ParamDef> {
    let lname = name.to_ascii_lowercase();
    let canon = params::alias(name).map(|a| a.new).unwrap_or(lname.as_str());
    PARAMS
        .iter()
        .find(|d| d.name == canon && d.group == Group::None)
}

/// Resolve `name` or `nameN` to its definition and node index (None for a plain parameter).
pub fn resolve_name(name: &str) -> Option<(&'static ParamDef, Option<usize>)> {
    if let Some(d) = find_param(name) {
        return Some((d, None));
    }
    let lname = name.to_ascii_lowercase();
    let base = lname.trim_end_matches(|c: char| c.is_ascii_digit());
    let digits = &lname[base.len()..];
    if digits.is_empty() || digits.len() > 3 {
        return None;
    }
    let idx: usize = digits.parse().ok()?;
    if idx >= MAX_NODES {
        return None;
    }
    PARAMS
        .iter()
        .find(|d| d.name == base && (d.group != Group::None || d.accepts_suffix()))
        .map(|d| (d, Some(idx)))
}

pub(crate) fn def(name: &str) -> &'static ParamDef {
    // Only called with names from this crate's constant lists, all of which are in the table.
    PARAMS.iter().find(|d| d.name == name).unwrap_or(&PARAMS[0])
}

impl Default for Config {
    fn default() -> Config {
        Config::from_defaults()
    }
}

impl Config {
    /// How many client sessions a child serves at once: sessions_per_child, at most one
    /// per pool slot (max_pool), and 1 in snapshot isolation mode (whose step marks are
    /// per child).
    pub fn child_sessions(&self) -> usize {
        if self.backend_clustering_mode == ClusteringMode::SnapshotIsolation {
            return 1;
        }
        (self.sessions_per_child.max(1) as usize).min(self.max_pool.max(1) as usize)
    }

    /// Read and parse a pgpool.conf file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_file(path)?;
        Config::parse(&text, path)
    }

    /// Parse pgpool.conf text; `file_name` is used in error messages and as `config_file`.
    pub fn parse(text: &str, file_name: &Path) -> Result<Config, ConfigError> {
        let err = |line: usize, msg: String| ConfigError::new(file_name, line, msg);
        let mut cfg = Config::from_defaults();
        cfg.config_file = file_name.to_path_buf();
        let assignments = lexer::tokenize(text).map_err(|(l, m)| err(l, m))?;
        for a in &assignments {
            if let Some(al) = params::alias(&a.spelled) {
                if let Some(since) = al.warns_since {
                    cfg.notices.push(Notice {
                        line: a.line,
                        since,
                        message: format!("{} is changed to {}", al.old, al.new),
                        detail: format!(
                            "if {} is specified, the value will be set to {}",
                            al.old, al.new
                        ),
                    });
                }
            }
            let (d, idx) = resolve_name(&a.name).ok_or_else(|| {
                err(
                    a.line,
                    format!("unrecognized configuration parameter \"{}\"", a.name),
                )
            })?;
            let v = parse_value(d, &a.value).map_err(|m| err(a.line, m))?;
            match idx {
                None => {
                    cfg.set_by_name(d.name, &v).map_err(|m| {
                        err(
                            a.line,
                            format!("invalid value for parameter \"{}\": {}", d.name, m),
                        )
                    })?;
                    cfg.raw.set(d.name, &a.value, a.line);
                }
                Some(i) => {
                    if d.name == "backend_flag" {
                        BackendFlag::parse(&a.value).map_err(|m| {
                            err(a.line, format!("{} for parameter \"backend_flag{}\"", m, i))
                        })?;
                    }
                    cfg.node_values.insert((d.name, i), v);
                    cfg.raw.set(&format!("{}{}", d.name, i), &a.value, a.line);
                }
            }
        }
        // parameters set under their own name (an old name says nothing about newer releases)
        let used: Vec<&'static str> = assignments
            .iter()
            .filter(|a| params::alias(&a.spelled).is_none())
            .filter_map(|a| find_param(&a.name).map(|d| d.name))
            .collect();
        cfg.apply_release_defaults(text, used)
            .map_err(|(l, m)| err(l, m))?;
        let written_for = cfg.written_for;
        cfg.notices.retain(|n| n.since <= written_for);
        cfg.build_groups().map_err(|(l, m)| err(l, m))?;
        Ok(cfg)
    }

    /// Decide which release the file was written for and fill in what that release implies
    /// for the parameters it leaves out (see [`compat`]).
    fn apply_release_defaults(
        &mut self,
        text: &str,
        used: Vec<&'static str>,
    ) -> Result<(), (usize, String)> {
        self.named_in_header = compat::header_version(text);
        self.written_for = self
            .named_in_header
            .unwrap_or_else(|| compat::implied_by(used));
        for name in compat::versioned_defaults() {
            if self.raw.get(name).is_some() {
                continue;
            }
            if let Some(text) = compat::old_default(name, self.written_for) {
                let v = parse_value(def(name), text).map_err(|m| (0, m))?;
                self.set_by_name(name, &v).map_err(|m| (0, m))?;
            }
        }
        let by_time = "delay_threshold_by_time";
        if compat::by_time_in_seconds(self.written_for) {
            if let Some(raw) = self.raw.get(by_time) {
                if !raw.trim().is_empty() && raw.trim().chars().all(|c| c.is_ascii_digit()) {
                    let line = self.raw.line(by_time).unwrap_or(0);
                    let ms = self.delay_threshold_by_time.saturating_mul(1000);
                    let v = parse_value(def(by_time), &format!("{ms}")).map_err(|m| (line, m))?;
                    self.set_by_name(by_time, &v).map_err(|m| (line, m))?;
                }
            }
        }
        Ok(())
    }

    /// The Pgpool-II release the file was written for, as (major, minor).
    pub fn written_for(&self) -> (u32, u32) {
        (4, self.written_for)
    }

    /// The release the file's header comment names (`# Pgpool-II 4.5 configuration file`,
    /// as every Pgpool-II sample since 4.4 starts), as (major, minor); None without one
    /// (4.3's sample has none). Wire formats that changed between releases where the
    /// peer cannot say which it speaks (pcp_node_info's record) follow it.
    pub fn named_release(&self) -> Option<(u32, u32)> {
        self.named_in_header.map(|m| (4, m))
    }

    /// Warnings about the file (old parameter names), to be logged once it is loaded.
    pub fn notices(&self) -> &[Notice] {
        &self.notices
    }

    /// client_min_messages lets pgpool's own NOTICEs reach the client (PostgreSQL's order
    /// for clients: DEBUG5 .. DEBUG1, LOG, NOTICE, WARNING, ERROR; INFO always goes).
    pub fn client_sees_notices(&self) -> bool {
        !["warning", "error", "fatal", "panic"]
            .iter()
            .any(|l| self.client_min_messages.eq_ignore_ascii_case(l))
    }

    /// The limit a standby's replication delay is compared with (sr_check, load balancing):
    /// `delay_threshold_by_time` in microseconds when it is set (the delay is then the
    /// primary's replay_lag), else `delay_threshold` in bytes; 0 = no limit.
    pub fn delay_limit(&self) -> u64 {
        if self.delay_by_time() {
            u64::try_from(self.delay_threshold_by_time)
                .unwrap_or(0)
                .saturating_mul(1000)
        } else {
            u64::try_from(self.delay_threshold).unwrap_or(0)
        }
    }

    /// Whether replication delay is measured in time (`delay_threshold_by_time` > 0).
    pub fn delay_by_time(&self) -> bool {
        self.delay_threshold_by_time > 0
    }

    /// Default of `d` for the release this file was written for.
    pub fn default_text(&self, d: &ParamDef) -> &'static str {
        compat::old_default(d.name, self.written_for).unwrap_or(d.default)
    }

    fn node_value(&self, name: &str, i: usize) -> Option<&Value> {
        self.node_values
            .iter()
            .find(|((n, j), _)| *n == name && *j == i)
            .map(|(_, v)| v)
    }

    fn node_or_default<T: value::FieldValue>(&self, name: &str, i: usize) -> T {
        let d = def(name);
        let v = match self.node_value(name, i) {
            Some(v) => v.clone(),
            None => parse_value(d, d.default).unwrap_or(Value::Str(String::new())),
        };
        match T::from_value(&v) {
            Ok(t) => t,
            // table defaults always convert; a mismatch is a bug caught by the tests
            Err(_) => T::from_value(&parse_value(d, d.default).unwrap_or(Value::Int(0)))
                .unwrap_or_else(|_| panic!("default of {name} does not convert")),
        }
    }

    fn indices_of(&self, names: &[&str]) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .node_values
            .keys()
            .filter(|(n, _)| names.contains(n))
            .map(|(_, i)| *i)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    fn build_groups(&mut self) -> Result<(), (usize, String)> {
        // Backends: a node exists when its hostname or port is set; ids it skips are
        // unconfigured slots.
        let present = self.indices_of(&["backend_hostname", "backend_port"]);
        if let Some(&max) = present.last() {
            self.backends = (0..=max)
                .map(|i| {
                    let flag_text: String = self.node_or_default("backend_flag", i);
                    BackendConfig {
                        configured: present.contains(&i),
                        hostname: self.node_or_default("backend_hostname", i),
                        port: self.node_or_default("backend_port", i),
                        weight: self.node_or_default("backend_weight", i),
                        data_directory: self.node_or_default("backend_data_directory", i),
                        flag: BackendFlag::parse(&flag_text).unwrap_or_default(),
                        application_name: self.node_or_default("backend_application_name", i),
                    }
                })
                .collect();
        }
        if let Some(&max) = self.indices_of(&WATCHDOG_PARAMS).last() {
            self.watchdog_nodes = (0..=max)
                .map(|i| WatchdogNode {
                    hostname: self.node_or_default("hostname", i),
                    wd_port: self.node_or_default("wd_port", i),
                    pgpool_port: self.node_or_default("pgpool_port", i),
                })
                .collect();
        }
        if let Some(&max) = self.indices_of(&HEARTBEAT_PARAMS).last() {
            self.heartbeats = (0..=max)
                .map(|i| HeartbeatDest {
                    hostname: self.node_or_default("heartbeat_hostname", i),
                    port: self.node_or_default("heartbeat_port", i),
                    device: self.node_or_default("heartbeat_device", i),
                })
                .collect();
        }
        Ok(())
    }

    /// Value of a plain parameter, or of a health-check parameter for `node` (its suffixed
    /// override if set, else the global value).
    fn hc_value(&self, name: &str, node: Option<usize>) -> Value {
        if let Some(n) = node {
            if let Some(v) = self.node_value(name, n) {
                return v.clone();
            }
        }
        self.get_by_name(name)
            .unwrap_or_else(|| Value::Str(String::new()))
    }

    /// Effective health-check parameters of backend `node`.
    pub fn health_check(&self, node: usize) -> HealthCheckParams {
        let int = |name: &str| match self.hc_value(name, Some(node)) {
            Value::Int(i) => u64::try_from(i).unwrap_or(0),
            _ => 0,
        };
        let string = |name: &str| match self.hc_value(name, Some(node)) {
            Value::Str(s) => s,
            _ => String::new(),
        };
        HealthCheckParams {
            period: int("health_check_period"),
            timeout: int("health_check_timeout"),
            user: string("health_check_user"),
            password: string("health_check_password"),
            database: string("health_check_database"),
            max_retries: u32::try_from(int("health_check_max_retries")).unwrap_or(u32::MAX),
            retry_delay: int("health_check_retry_delay"),
            connect_timeout_ms: int("connect_timeout"),
        }
    }

    /// Names of parameters set to a non-default value that pgpool-rs does not implement yet
    /// (to be reported once at startup).
    pub fn unsupported_in_use(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for d in PARAMS.iter().filter(|d| !d.implemented) {
            let default = parse_value(d, self.default_text(d))
                .ok()
                .map(Value::normalized);
            let differs = if d.group == Group::None {
                self.get_by_name(d.name).map(Value::normalized) != default
            } else {
                self.node_values
                    .iter()
                    .any(|((n, _), v)| *n == d.name && Some(v.clone().normalized()) != default)
            };
            if differs {
                out.push(d.display_name());
            }
        }
        out
    }

    /// Restart-only parameters whose value differs in `newer` (a reload cannot apply them).
    pub fn restart_required_changes(&self, newer: &Config) -> Vec<&'static str> {
        let mut out = Vec::new();
        for d in PARAMS.iter().filter(|d| d.context == Context::Restart) {
            let changed = if d.group == Group::None {
                self.get_by_name(d.name) != newer.get_by_name(d.name)
            } else {
                let mine: Vec<_> = self
                    .node_values
                    .iter()
                    .filter(|((n, _), _)| *n == d.name)
                    .collect();
                let theirs: Vec<_> = newer
                    .node_values
                    .iter()
                    .filter(|((n, _), _)| *n == d.name)
                    .collect();
                mine != theirs
            };
            if changed {
                out.push(d.display_name());
            }
        }
        out
    }

    /// Current value of a parameter (`name` or `nameN`), unformatted.
    pub fn value(&self, name: &str) -> Option<Value> {
        let (d, idx) = resolve_name(name)?;
        match (d.group, idx) {
            (Group::None, None) => self.get_by_name(d.name),
            (Group::None, Some(i)) => Some(self.hc_value(d.name, Some(i))),
            (_, Some(i)) => self.node_value(d.name, i).cloned(),
            (_, None) => None,
        }
    }

    /// The raw values as set in the file (with where they came from).
    pub fn raw_values(&self) -> &RawValues {
        &self.raw
    }

    /// The effective raw values as an [`ini::Ini`] (general section, canonical names).
    pub fn raw_ini(&self) -> &ini::Ini {
        &self.raw.ini
    }

    /// Path of the pool_passwd file (`pool_passwd`, relative to pgpool.conf's directory), or
    /// None when the parameter is empty (pool_passwd disabled).
    pub fn pool_passwd_path(&self) -> Option<PathBuf> {
        self.relative_to_config(&self.pool_passwd)
    }

    /// Resolve a path parameter relative to the directory of pgpool.conf.
    pub fn relative_to_config(&self, p: &str) -> Option<PathBuf> {
        if p.is_empty() {
            return None;
        }
        let path = Path::new(p);
        if path.is_absolute() {
            return Some(path.to_path_buf());
        }
        let dir = self.config_file.parent().unwrap_or(Path::new(""));
        Some(dir.join(path))
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_releases;
