//! Routing rules: the pgpool.conf knobs that change how a statement is classified
//! (`write_function_list`, `read_only_function_list`, `primary_routing_query_pattern_list`,
//! `allow_sql_comments`, `ignore_leading_white_space`). Patterns follow Pgpool-II: POSIX-like
//! extended regexes, case-insensitive, anchored to the whole function name (or the whole query
//! text for `primary_routing_query_pattern_list`). Each built [`Rules`] value carries a
//! generation number so a [`crate::ClassifierCache`] notices when the rules it cached under
//! have been replaced (e.g. after a reload).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use regex::{Regex, RegexBuilder};

static GENERATION: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// Functions judged read-only when both `write_function_list` and `read_only_function_list`
/// are empty and no catalog is at hand. Pgpool-II then asks the catalog for the function's
/// volatility, and so does the server (see [`crate::CatalogVerdicts`]); without one, every
/// function not listed here (unqualified or in `pg_catalog`) counts as volatile, i.e. a write. Kept short on purpose: aggregates, window functions and a
/// few immutable/stable built-ins that appear in ordinary read queries, plus the monitoring
/// functions pgpool users run against standbys.
pub const BUILTIN_READ_ONLY_FUNCTIONS: &[&str] = &[
    // aggregates and window functions
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "array_agg",
    "string_agg",
    "json_agg",
    "jsonb_agg",
    "bool_and",
    "bool_or",
    "every",
    "row_number",
    "rank",
    "dense_rank",
    "lag",
    "lead",
    "first_value",
    "last_value",
    // time and session information (stable)
    "now",
    "current_setting",
    "version",
    "pg_backend_pid",
    "pg_is_in_recovery",
    "inet_server_port",
    "inet_server_addr",
    "inet_client_addr",
    "inet_client_port",
    "current_database",
    "current_schema",
    "pg_postmaster_start_time",
    "pg_last_wal_replay_lsn",
    "pg_last_wal_receive_lsn",
    "pg_last_xact_replay_timestamp",
    "date_trunc",
    "date_part",
    "extract",
    "to_char",
    "to_date",
    "to_timestamp",
    "age",
    // strings, numbers, arrays, json (immutable)
    "lower",
    "upper",
    "length",
    "char_length",
    "substr",
    "substring",
    "position",
    "btrim",
    "ltrim",
    "rtrim",
    "replace",
    "split_part",
    "concat",
    "concat_ws",
    "format",
    "left",
    "right",
    "lpad",
    "rpad",
    "md5",
    "abs",
    "round",
    "floor",
    "ceil",
    "trunc",
    "mod",
    "array_length",
    "unnest",
    "generate_series",
    "to_json",
    "to_jsonb",
    "json_build_object",
    "jsonb_build_object",
];

/// How one called function counts for routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FunctionVerdict {
    /// Listed as a write (or always one: nextval, setval).
    Write,
    /// Listed as read-only.
    ReadOnly,
    /// No list applies: its volatility in the database decides; `builtin_read_only` is the
    /// guess of [`BUILTIN_READ_ONLY_FUNCTIONS`].
    Catalog { builtin_read_only: bool },
}

/// Functions that always count as writes, whatever the lists say.
pub const ALWAYS_WRITE_FUNCTIONS: &[&str] = &["nextval", "setval"];

/// An invalid pattern in one of the lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The pgpool.conf parameter the pattern came from.
    pub list: &'static str,
    /// The pattern as given.
    pub pattern: String,
    /// The regex compiler's message.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid pattern \"{}\" in {}: {}",
            self.pattern, self.list, self.message
        )
    }
}

impl std::error::Error for RuleError {}

/// The classification rules. Build with [`Rules::default`] and the `with_*` methods; every
/// method returns a new generation.
#[derive(Debug, Clone)]
pub struct Rules {
    pub(crate) write_function_list: Vec<Regex>,
    pub(crate) read_only_function_list: Vec<Regex>,
    pub(crate) primary_routing_query_pattern_list: Vec<Regex>,
    pub(crate) allow_sql_comments: bool,
    pub(crate) ignore_leading_white_space: bool,
    pub(crate) query_cache_facts: bool,
    generation: u64,
}

impl Default for Rules {
    /// Pgpool-II defaults: empty lists, `allow_sql_comments = off`,
    /// `ignore_leading_white_space = on`.
    fn default() -> Self {
        Rules {
            write_function_list: Vec::new(),
            read_only_function_list: Vec::new(),
            primary_routing_query_pattern_list: Vec::new(),
            allow_sql_comments: false,
            ignore_leading_white_space: true,
            query_cache_facts: false,
            generation: next_generation(),
        }
    }
}

/// Compiles Pgpool-II list entries: empty entries are skipped, each pattern is anchored with
/// `^(?:…)$` unless it already starts with `^` / ends with `$`, matching is case-insensitive.
fn compile_list<S: AsRef<str>>(
    list: &'static str,
    patterns: &[S],
) -> Result<Vec<Regex>, RuleError> {
    let mut out = Vec::with_capacity(patterns.len());
    for p in patterns {
        let p = p.as_ref().trim();
        if p.is_empty() {
            continue;
        }
        let body = p.strip_prefix('^').unwrap_or(p);
        let body = match body.strip_suffix('$') {
            Some(b) if !b.ends_with('\\') => b,
            _ => body,
        };
        let anchored = format!("^(?:{body})$");
        let re = RegexBuilder::new(&anchored)
            .case_insensitive(true)
            .dot_matches_new_line(true)
            .build()
            .map_err(|e| RuleError {
                list,
                pattern: p.to_string(),
                message: e.to_string(),
            })?;
        out.push(re);
    }
    Ok(out)
}

impl Rules {
    /// Sets `write_function_list` (regexes on function names).
    pub fn with_write_function_list<S: AsRef<str>>(
        mut self,
        patterns: &[S],
    ) -> Result<Self, RuleError> {
        self.write_function_list = compile_list("write_function_list", patterns)?;
        self.generation = next_generation();
        Ok(self)
    }

    /// Sets `read_only_function_list`; when non-empty it wins over `write_function_list`
    /// (every function not matching it is a write), as in Pgpool-II.
    pub fn with_read_only_function_list<S: AsRef<str>>(
        mut self,
        patterns: &[S],
    ) -> Result<Self, RuleError> {
        self.read_only_function_list = compile_list("read_only_function_list", patterns)?;
        self.generation = next_generation();
        Ok(self)
    }

    /// Sets `primary_routing_query_pattern_list` (regexes on the whole query text).
    pub fn with_primary_routing_query_pattern_list<S: AsRef<str>>(
        mut self,
        patterns: &[S],
    ) -> Result<Self, RuleError> {
        self.primary_routing_query_pattern_list =
            compile_list("primary_routing_query_pattern_list", patterns)?;
        self.generation = next_generation();
        Ok(self)
    }

    /// `allow_sql_comments` of these rules.
    pub fn allows_sql_comments(&self) -> bool {
        self.allow_sql_comments
    }

    /// Sets `allow_sql_comments`. When off (the default), a SELECT whose text does not start
    /// with `s`, `w`, `t` or `(` (e.g. starts with a comment) is not load balanced.
    pub fn with_allow_sql_comments(mut self, on: bool) -> Self {
        self.allow_sql_comments = on;
        self.generation = next_generation();
        self
    }

    /// Sets `ignore_leading_white_space` (default on).
    pub fn with_ignore_leading_white_space(mut self, on: bool) -> Self {
        self.ignore_leading_white_space = on;
        self.generation = next_generation();
        self
    }

    /// Whether classifications carry the query cache's facts
    /// ([`crate::Classification::cache`]); off (the default) spares the extra walk of the
    /// parse tree when `memory_cache_enabled` is off.
    pub fn with_query_cache_facts(mut self, on: bool) -> Self {
        self.query_cache_facts = on;
        self.generation = next_generation();
        self
    }

    /// Is primary_routing_query_pattern_list set?
    pub fn has_primary_routing_patterns(&self) -> bool {
        !self.primary_routing_query_pattern_list.is_empty()
    }

    /// Identifies this set of rules; caches drop their entries when it changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// How a called function counts: `name` is the name as written (maybe schema-qualified),
    /// `bare` its last component, `schema` its schema if written. With both lists empty the
    /// database's volatility decides (Pgpool-II asks pg_proc); the built-in list stands in for
    /// callers without a catalog.
    pub(crate) fn function_verdict(
        &self,
        name: &str,
        bare: &str,
        schema: Option<&str>,
    ) -> FunctionVerdict {
        if ALWAYS_WRITE_FUNCTIONS
            .iter()
            .any(|f| f.eq_ignore_ascii_case(bare))
        {
            return FunctionVerdict::Write;
        }
        let matches = |list: &[Regex]| list.iter().any(|re| re.is_match(name) || re.is_match(bare));
        let verdict = |write: bool| {
            if write {
                FunctionVerdict::Write
            } else {
                FunctionVerdict::ReadOnly
            }
        };
        if !self.read_only_function_list.is_empty() {
            return verdict(!matches(&self.read_only_function_list));
        }
        if !self.write_function_list.is_empty() {
            return verdict(matches(&self.write_function_list));
        }
        let builtin_schema = matches!(schema, None | Some("pg_catalog"));
        FunctionVerdict::Catalog {
            builtin_read_only: builtin_schema && BUILTIN_READ_ONLY_FUNCTIONS.contains(&bare),
        }
    }

    /// Whether a function (bare name) is a write when the lists or the always-write functions
    /// decide; `None` when its volatility in the database does.
    pub fn listed_function_is_write(&self, bare: &str) -> Option<bool> {
        match self.function_verdict(bare, bare, None) {
            FunctionVerdict::Write => Some(true),
            FunctionVerdict::ReadOnly => Some(false),
            FunctionVerdict::Catalog { .. } => None,
        }
    }

    /// Do function verdicts depend on the database's catalog (both function lists empty)?
    pub fn functions_need_catalog(&self) -> bool {
        self.read_only_function_list.is_empty() && self.write_function_list.is_empty()
    }

    /// Does the whole query text match `primary_routing_query_pattern_list`?
    pub(crate) fn query_forced_to_primary(&self, sql: &str) -> bool {
        self.primary_routing_query_pattern_list
            .iter()
            .any(|re| re.is_match(sql))
    }
}
