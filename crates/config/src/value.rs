//! Typed parameter values: parsing a pgpool.conf value text according to its [`Kind`]
//! (booleans, integers with optional time/memory units, reals, strings, lists, enums),
//! converting to and from the typed [`Config`](crate::Config) fields (with the two parameters
//! that have a Rust type of their own, [`ClusteringMode`] and [`BackendFlag`]), and formatting
//! a value the way `PGPOOL SHOW` prints it.

use std::fmt;

use crate::params::{Kind, ParamDef, Unit};

/// A parsed parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Real(f64),
    Str(String),
    List(Vec<String>),
    Enum(String),
}

impl Value {
    /// Enum values compare equal to the same string.
    pub fn normalized(self) -> Value {
        match self {
            Value::Enum(s) => Value::Str(s),
            v => v,
        }
    }
}

/// Conversion between a [`Value`] and a typed `Config` field.
pub trait FieldValue: Sized {
    fn from_value(v: &Value) -> Result<Self, String>;
    fn to_value(&self) -> Value;
}

impl FieldValue for bool {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Bool(b) => Ok(*b),
            other => Err(format!("expected a boolean, got {:?}", other)),
        }
    }
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}

macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            fn from_value(v: &Value) -> Result<Self, String> {
                match v {
                    Value::Int(i) => <$t>::try_from(*i)
                        .map_err(|_| format!("{} is outside the valid range", i)),
                    other => Err(format!("expected an integer, got {:?}", other)),
                }
            }
            fn to_value(&self) -> Value {
                Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_field!(i64, u16, u32, u64);

impl FieldValue for f64 {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Real(r) => Ok(*r),
            Value::Int(i) => Ok(*i as f64),
            other => Err(format!("expected a number, got {:?}", other)),
        }
    }
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl FieldValue for String {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Str(s) | Value::Enum(s) => Ok(s.clone()),
            other => Err(format!("expected a string, got {:?}", other)),
        }
    }
    fn to_value(&self) -> Value {
        Value::Str(self.clone())
    }
}

impl FieldValue for Vec<String> {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::List(l) => Ok(l.clone()),
            other => Err(format!("expected a list, got {:?}", other)),
        }
    }
    fn to_value(&self) -> Value {
        Value::List(self.clone())
    }
}

impl FieldValue for ClusteringMode {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Enum(s) | Value::Str(s) => ClusteringMode::from_name(s)
                .ok_or_else(|| format!("unsupported clustering mode \"{}\"", s)),
            other => Err(format!("expected a clustering mode, got {:?}", other)),
        }
    }
    fn to_value(&self) -> Value {
        Value::Enum(self.name().to_string())
    }
}

fn invalid(def: &ParamDef, text: &str) -> String {
    format!(
        "invalid value for parameter \"{}\": \"{}\"",
        def.display_name(),
        text
    )
}

/// Parse a boolean the way PostgreSQL does (on/off, true/false, yes/no, 1/0, case-insensitive).
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" | "t" | "y" => Some(true),
        "off" | "false" | "no" | "0" | "f" | "n" => Some(false),
        _ => None,
    }
}

const MEMORY_UNITS: &[(&str, f64)] = &[
    ("TB", 1024.0 * 1024.0 * 1024.0 * 1024.0),
    ("GB", 1024.0 * 1024.0 * 1024.0),
    ("MB", 1024.0 * 1024.0),
    ("kB", 1024.0),
    ("B", 1.0),
];
const TIME_UNITS: &[(&str, f64)] = &[
    ("d", 86_400_000.0),
    ("h", 3_600_000.0),
    ("min", 60_000.0),
    ("s", 1000.0),
    ("ms", 1.0),
    ("us", 0.001),
];

/// Size of one storage unit, in the unit family's smallest measure (bytes or milliseconds).
fn base_size(unit: Unit) -> f64 {
    match unit {
        Unit::None => 1.0,
        Unit::Byte => 1.0,
        Unit::Kb => 1024.0,
        Unit::Ms => 1.0,
        Unit::S => 1000.0,
        Unit::Min => 60_000.0,
    }
}

fn unit_table(unit: Unit) -> &'static [(&'static str, f64)] {
    match unit {
        Unit::Byte | Unit::Kb => MEMORY_UNITS,
        Unit::Ms | Unit::S | Unit::Min => TIME_UNITS,
        Unit::None => &[],
    }
}

/// Parse an integer: decimal, `0x` hex or leading-zero octal, optionally followed by a unit
/// when the parameter has one (`1min`, `64MB`, `400kB`, `0s`). Returns the value in the
/// parameter's storage unit.
pub fn parse_int(text: &str, unit: Unit) -> Option<i64> {
    let t = text.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (radix, digits_start) = if body.starts_with("0x") || body.starts_with("0X") {
        (16, 2)
    } else if body.len() > 1 && body.starts_with('0') && body.as_bytes()[1].is_ascii_digit() {
        (8, 1)
    } else {
        (10, 0)
    };
    let rest = &body[digits_start..];
    let end = rest
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(rest.len());
    let (digits, suffix) = rest.split_at(end);
    if digits.is_empty() {
        return None;
    }
    let mut n = i64::from_str_radix(digits, radix).ok()?;
    if neg {
        n = -n;
    }
    let suffix = suffix.trim();
    if suffix.is_empty() {
        return Some(n);
    }
    let (_, mult) = unit_table(unit).iter().find(|(u, _)| *u == suffix)?;
    let v = (n as f64) * mult / base_size(unit);
    if !v.is_finite() || v.abs() > i64::MAX as f64 {
        return None;
    }
    Some(v.round() as i64)
}

/// Parse `text` (already unquoted) as a value of parameter `def`.
pub fn parse_value(def: &ParamDef, text: &str) -> Result<Value, String> {
    match def.kind {
        Kind::Bool => parse_bool(text)
            .map(Value::Bool)
            .ok_or_else(|| invalid(def, text)),
        Kind::Int(min, max, unit) => {
            let n = parse_int(text, unit).ok_or_else(|| {
                let hint = match unit {
                    Unit::Byte | Unit::Kb => {
                        " (valid units for this parameter are \"B\", \"kB\", \"MB\", \"GB\", and \"TB\")"
                    }
                    Unit::Ms | Unit::S | Unit::Min => {
                        " (valid units for this parameter are \"us\", \"ms\", \"s\", \"min\", \"h\", and \"d\")"
                    }
                    Unit::None => "",
                };
                format!("{}{}", invalid(def, text), hint)
            })?;
            if n < min || n > max {
                return Err(format!(
                    "{} is outside the valid range for parameter \"{}\" ({} .. {})",
                    n,
                    def.display_name(),
                    min,
                    max
                ));
            }
            Ok(Value::Int(n))
        }
        Kind::Real(min, max) => {
            let r: f64 = text.trim().parse().map_err(|_| invalid(def, text))?;
            if !(min..=max).contains(&r) {
                return Err(format!(
                    "{} is outside the valid range for parameter \"{}\" ({} .. {})",
                    r,
                    def.display_name(),
                    min,
                    max
                ));
            }
            Ok(Value::Real(r))
        }
        Kind::Str => Ok(Value::Str(text.to_string())),
        // Regexes may hold the separator itself, escaped with a backslash (Pgpool-II).
        Kind::List(sep) if def.name == "primary_routing_query_pattern_list" => {
            Ok(Value::List(split_escaped_list(text, sep)))
        }
        Kind::List(sep) => Ok(Value::List(split_list(text, sep))),
        Kind::Enum(options) => {
            let t = text.trim();
            options
                .iter()
                .find(|o| o.eq_ignore_ascii_case(t))
                .map(|o| Value::Enum((*o).to_string()))
                .ok_or_else(|| {
                    format!(
                        "{} (available values: {})",
                        invalid(def, text),
                        options.join(", ")
                    )
                })
        }
    }
}

/// Split a list value on `sep`, trimming blanks and dropping empty items.
/// Splits at every `sep` not preceded by a backslash; escapes stay in the items (they are
/// regexes: `\;` matches a semicolon) except `\'`, which becomes a quote.
pub fn split_escaped_list(text: &str, sep: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut item = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\'') => item.push('\''),
                Some(n) => {
                    item.push('\\');
                    item.push(n);
                }
                None => item.push('\\'),
            }
        } else if sep.starts_with(c) {
            out.push(std::mem::take(&mut item));
        } else {
            item.push(c);
        }
    }
    out.push(item);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

pub fn split_list(text: &str, sep: &str) -> Vec<String> {
    text.split(sep)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Print an integer in its storage unit as Pgpool-II does: with the largest unit that divides
/// it evenly (`300` seconds -> `5min`), or plain when 0 / unitless.
pub fn format_int_with_unit(n: i64, unit: Unit) -> String {
    if n <= 0 || unit == Unit::None {
        return n.to_string();
    }
    let base = base_size(unit);
    for (name, mult) in unit_table(unit) {
        // only units the storage unit converts to exactly (not smaller than it)
        let m = mult / base;
        if m < 1.0 {
            // a unit smaller than the storage unit is never needed: m == 1 matched first
            continue;
        }
        let m = m as i64;
        if m > 0 && n % m == 0 {
            return format!("{}{}", n / m, name);
        }
    }
    n.to_string()
}

/// Format a value for `PGPOOL SHOW`. `with_units` is false for per-node style parameters,
/// which Pgpool-II prints as plain numbers.
pub fn format_value(def: &ParamDef, v: &Value, with_units: bool) -> String {
    if def.hidden_value() {
        return "*****".to_string();
    }
    match v {
        Value::Bool(b) => if *b { "on" } else { "off" }.to_string(),
        Value::Int(n) => match def.kind {
            Kind::Int(_, _, unit) if with_units => format_int_with_unit(*n, unit),
            _ => n.to_string(),
        },
        Value::Real(r) => format_g(*r),
        Value::Str(s) | Value::Enum(s) => s.clone(),
        Value::List(l) => match def.kind {
            Kind::List(sep) => l.join(sep),
            _ => l.join(","),
        },
    }
}

/// C's `%g` for the values that occur here (weights, plain reals).
pub fn format_g(r: f64) -> String {
    if r.fract() == 0.0 && r.abs() < 1e15 {
        format!("{}", r as i64)
    } else {
        let s = format!("{:.6}", r);
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    }
}

/// `backend_clustering_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusteringMode {
    StreamingReplication,
    NativeReplication,
    LogicalReplication,
    SnapshotIsolation,
    Raw,
    /// Accepted for old configurations (Slony-I replication).
    Slony,
}

impl ClusteringMode {
    pub fn name(self) -> &'static str {
        match self {
            ClusteringMode::StreamingReplication => "streaming_replication",
            ClusteringMode::NativeReplication => "native_replication",
            ClusteringMode::LogicalReplication => "logical_replication",
            ClusteringMode::SnapshotIsolation => "snapshot_isolation",
            ClusteringMode::Raw => "raw",
            ClusteringMode::Slony => "slony",
        }
    }
    pub fn from_name(s: &str) -> Option<ClusteringMode> {
        [
            ClusteringMode::StreamingReplication,
            ClusteringMode::NativeReplication,
            ClusteringMode::LogicalReplication,
            ClusteringMode::SnapshotIsolation,
            ClusteringMode::Raw,
            ClusteringMode::Slony,
        ]
        .into_iter()
        .find(|m| m.name().eq_ignore_ascii_case(s.trim()))
    }
}

/// `backend_flagN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackendFlag {
    pub disallow_to_failover: bool,
    pub always_primary: bool,
}

impl BackendFlag {
    /// Parse `ALLOW_TO_FAILOVER | DISALLOW_TO_FAILOVER | ALWAYS_PRIMARY` joined with `|`.
    pub fn parse(s: &str) -> Result<BackendFlag, String> {
        let mut f = BackendFlag::default();
        for part in s.split('|').map(str::trim).filter(|p| !p.is_empty()) {
            match part.to_ascii_uppercase().as_str() {
                "ALLOW_TO_FAILOVER" => f.disallow_to_failover = false,
                "DISALLOW_TO_FAILOVER" => f.disallow_to_failover = true,
                "ALWAYS_PRIMARY" => f.always_primary = true,
                _ => return Err(format!("invalid backend flag \"{}\"", part)),
            }
        }
        Ok(f)
    }
}

impl fmt::Display for BackendFlag {
    /// As `PGPOOL SHOW backend` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.disallow_to_failover {
            "DISALLOW_TO_FAILOVER"
        } else {
            "ALLOW_TO_FAILOVER"
        })?;
        if self.always_primary {
            f.write_str("|ALWAYS_PRIMARY")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_with_units() {
        assert_eq!(parse_int("60", Unit::S), Some(60));
        assert_eq!(parse_int("1min", Unit::S), Some(60));
        assert_eq!(parse_int("5min", Unit::S), Some(300));
        assert_eq!(parse_int("1d", Unit::Min), Some(1440));
        assert_eq!(parse_int("10MB", Unit::Kb), Some(10240));
        assert_eq!(parse_int("64MB", Unit::Byte), Some(67_108_864));
        assert_eq!(parse_int("400kB", Unit::Byte), Some(409_600));
        assert_eq!(parse_int("0s", Unit::S), Some(0));
        assert_eq!(parse_int("2s", Unit::Ms), Some(2000));
        assert_eq!(parse_int("0600", Unit::None), Some(0o600));
        assert_eq!(parse_int("0x10", Unit::None), Some(16));
        assert_eq!(parse_int("-1", Unit::S), Some(-1));
        assert_eq!(parse_int("5min", Unit::None), None);
        assert_eq!(parse_int("abc", Unit::None), None);
        assert_eq!(parse_int("5 parsecs", Unit::S), None);
    }

    #[test]
    fn show_units() {
        assert_eq!(format_int_with_unit(300, Unit::S), "5min");
        assert_eq!(format_int_with_unit(60, Unit::S), "1min");
        assert_eq!(format_int_with_unit(90, Unit::S), "90s");
        assert_eq!(format_int_with_unit(1440, Unit::Min), "1d");
        assert_eq!(format_int_with_unit(10240, Unit::Kb), "10MB");
        assert_eq!(format_int_with_unit(67_108_864, Unit::Byte), "64MB");
        assert_eq!(format_int_with_unit(0, Unit::S), "0");
        assert_eq!(format_g(1.0), "1");
        assert_eq!(format_g(0.5), "0.5");
    }

    #[test]
    fn bools() {
        for t in ["on", "ON", "true", "yes", "1"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for t in ["off", "false", "No", "0"] {
            assert_eq!(parse_bool(t), Some(false), "{t}");
        }
        assert_eq!(parse_bool("maybe"), None);
    }
}
