//! `PGPOOL SHOW` / `PGPOOL SET` / `PGPOOL RESET` on a loaded [`Config`]: one row per
//! parameter (item, value, description) formatted the way Pgpool-II prints it, the per-node
//! groups (`backend`, `watchdog`, `heartbeat`, `health_check`), `ALL`, and the session-level
//! changes of the parameters whose context allows them.

use crate::params::{self, Context, Group, Kind, ParamDef, PARAMS};
use crate::value::{format_g, format_value, parse_value, Value};
use crate::{
    def, find_param, resolve_name, Config, ShowRow, BACKEND_PARAMS, HEALTH_CHECK_PARAMS,
    HEARTBEAT_PARAMS, WATCHDOG_PARAMS,
};

impl Config {
    fn plain_row(&self, d: &ParamDef) -> ShowRow {
        let v = self
            .get_by_name(d.name)
            .unwrap_or_else(|| Value::Str(String::new()));
        let value = match (&v, d.kind) {
            // lists print as written in the file, like Pgpool-II
            (Value::List(_), Kind::List(_)) => match self.raw.get(d.name) {
                Some(r) if !d.hidden_value() => r.to_string(),
                _ => format_value(d, &v, true),
            },
            (Value::Int(n), _) if d.flags & params::OCTAL != 0 => format!("{n:04o}"),
            _ => format_value(d, &v, !d.accepts_suffix()),
        };
        ShowRow {
            item: d.display_name().to_string(),
            value,
            description: d.description.to_string(),
        }
    }

    /// The row of an old parameter name: the value of the parameter it was renamed to.
    fn alias_row(&self, a: &params::Alias) -> ShowRow {
        let mut row = self.plain_row(def(a.new));
        row.item = a.old.to_string();
        row.description = format!("Old config parameter for {}.", a.new);
        row
    }

    fn indexed_row(&self, name: &str, i: usize) -> ShowRow {
        let d = def(name);
        let value = if d.hidden_value() {
            "*****".to_string()
        } else if d.group == Group::Backend {
            match self.backends.get(i) {
                Some(b) => match name {
                    "backend_hostname" => b.hostname.clone(),
                    "backend_port" => b.port.to_string(),
                    "backend_weight" => (b.weight as i64).to_string(),
                    "backend_data_directory" => b.data_directory.clone(),
                    "backend_application_name" => b.application_name.clone(),
                    _ => b.flag.to_string(),
                },
                None => String::new(),
            }
        } else if d.group == Group::None {
            format_value(d, &self.hc_value(name, Some(i)), false)
        } else {
            let v = self
                .node_value(name, i)
                .cloned()
                .or_else(|| parse_value(d, d.default).ok())
                .unwrap_or(Value::Str(String::new()));
            match v {
                Value::Real(r) => format_g(r),
                v => format_value(d, &v, false),
            }
        };
        ShowRow {
            item: format!("{}{}", d.display_name(), i),
            value,
            description: d.description.to_string(),
        }
    }

    fn group_rows(&self, group: &str) -> Vec<ShowRow> {
        let mut rows = Vec::new();
        match group {
            "backend" => {
                for i in 0..self.backends.len() {
                    rows.extend(BACKEND_PARAMS.iter().map(|n| self.indexed_row(n, i)));
                }
            }
            "watchdog" => {
                for i in 0..self.watchdog_nodes.len() {
                    rows.extend(WATCHDOG_PARAMS.iter().map(|n| self.indexed_row(n, i)));
                }
            }
            "heartbeat" => {
                for i in 0..self.heartbeats.len() {
                    rows.extend(HEARTBEAT_PARAMS.iter().map(|n| self.indexed_row(n, i)));
                }
            }
            _ => {
                rows.extend(HEALTH_CHECK_PARAMS.iter().map(|n| self.plain_row(def(n))));
                for i in 0..self.backends.len() {
                    rows.extend(HEALTH_CHECK_PARAMS.iter().map(|n| self.indexed_row(n, i)));
                }
            }
        }
        rows
    }

    /// `PGPOOL SHOW name`: `name` is a parameter (`port`, `backend_port1`,
    /// `health_check_period0`), a group (`backend`, `watchdog`, `heartbeat`, `health_check`) or
    /// `all`. None when unknown (Pgpool-II answers `config variable "NAME" not found`). For a
    /// single parameter Pgpool-II prints one column named after it holding `value`.
    pub fn show(&self, name: &str) -> Option<Vec<ShowRow>> {
        let lname = name.trim().to_ascii_lowercase();
        match lname.as_str() {
            "backend" | "watchdog" | "heartbeat" | "health_check" => {
                return Some(self.group_rows(&lname))
            }
            "all" => {
                let mut rows = Vec::new();
                for g in ["backend", "watchdog", "heartbeat", "health_check"] {
                    rows.extend(self.group_rows(g));
                }
                for d in PARAMS.iter().filter(|d| {
                    d.group == Group::None
                        && !d.accepts_suffix()
                        && d.flags & params::HIDE_IN_ALL == 0
                }) {
                    rows.push(self.plain_row(d));
                    // an old name the releases before the rename listed (logdir)
                    for a in params::ALIASES
                        .iter()
                        .filter(|a| a.in_show_all && a.new == d.name)
                    {
                        rows.push(self.alias_row(a));
                    }
                }
                return Some(rows);
            }
            _ => {}
        }
        if let Some(a) = params::alias(name.trim()) {
            if !a.old.eq_ignore_ascii_case(a.new) {
                return Some(vec![self.alias_row(a)]);
            }
        }
        let (d, idx) = resolve_name(&lname)?;
        Some(vec![match idx {
            None => self.plain_row(d),
            Some(i) => self.indexed_row(d.name, i),
        }])
    }

    /// `PGPOOL SET name = value`: only session-settable parameters.
    pub fn set_session(&mut self, name: &str, value: &str) -> Result<(), String> {
        let d =
            find_param(name).ok_or_else(|| format!("config variable \"{}\" not found", name))?;
        if d.context != Context::Session {
            return Err(format!(
                "invalid Context, value for parameter \"{}\" cannot be changed",
                d.display_name()
            ));
        }
        let v = parse_value(d, value)?;
        self.set_by_name(d.name, &v)
    }

    /// `PGPOOL RESET name|ALL`: put session-settable parameters back to `base`'s values.
    pub fn reset_session(&mut self, name: &str, base: &Config) -> Result<(), String> {
        let targets: Vec<&ParamDef> = if name.eq_ignore_ascii_case("all") {
            PARAMS
                .iter()
                .filter(|d| d.context == Context::Session && d.group == Group::None)
                .collect()
        } else {
            let d = find_param(name)
                .ok_or_else(|| format!("config variable \"{}\" not found", name))?;
            if d.context != Context::Session {
                return Err(format!(
                    "invalid Context, value for parameter \"{}\" cannot be changed",
                    d.display_name()
                ));
            }
            vec![d]
        };
        for d in targets {
            if let Some(v) = base.get_by_name(d.name) {
                self.set_by_name(d.name, &v)?;
            }
        }
        Ok(())
    }
}

/// `pgpool --describe-config`: one tab-separated line per parameter (name, context, kind,
/// default, min, max, allowed values, implemented by pgpool-rs, description), then the old
/// names of renamed parameters, in the spirit of `postgres --describe-config`.
pub fn describe_config() -> String {
    let mut out =
        String::from("name\tcontext\tkind\tdefault\tmin\tmax\tvalues\timplemented\tdescription\n");
    for d in PARAMS {
        let context = match d.context {
            Context::Restart => "restart",
            Context::Reload => "reload",
            Context::Session => "session",
        };
        let (kind, min, max, values) = match d.kind {
            Kind::Bool => ("bool", String::new(), String::new(), "on,off".to_string()),
            Kind::Int(lo, hi, unit) => {
                let k = match unit {
                    params::Unit::None => "integer",
                    params::Unit::Ms => "integer (ms)",
                    params::Unit::S => "integer (s)",
                    params::Unit::Min => "integer (min)",
                    params::Unit::Byte => "integer (bytes)",
                    params::Unit::Kb => "integer (kB)",
                };
                (k, lo.to_string(), hi.to_string(), String::new())
            }
            Kind::Real(lo, hi) => ("real", format_g(lo), format_g(hi), String::new()),
            Kind::Str => ("string", String::new(), String::new(), String::new()),
            Kind::List(sep) => (
                "list",
                String::new(),
                String::new(),
                format!("separated by '{sep}'"),
            ),
            Kind::Enum(v) => ("enum", String::new(), String::new(), v.join(",")),
        };
        let name = match d.group {
            Group::None if d.accepts_suffix() => format!("{}[N]", d.name),
            Group::None => d.name.to_string(),
            _ => format!("{}N", d.name),
        };
        out.push_str(&format!(
            "{name}\t{context}\t{kind}\t{}\t{min}\t{max}\t{values}\t{}\t{}\n",
            d.default,
            if d.implemented { "yes" } else { "no" },
            d.description
        ));
    }
    for a in params::ALIASES {
        out.push_str(&format!(
            "{}\t\talias\t\t\t\t{}\t\tOld config parameter for {}.\n",
            a.old, a.new, a.new
        ));
    }
    out
}
