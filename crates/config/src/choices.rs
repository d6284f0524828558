//! Settings whose value is one of a fixed set of names, as Rust enums parsed once when
//! the file is read (`memqcache_method`, `disable_load_balance_on_write`,
//! `check_temp_table`, `wd_lifecheck_method`, `log_error_verbosity`, `log_standby_delay`,
//! `process_management_mode` / `_strategy`, `relcache_query_target`): the rest of the program matches on variants, never on strings.
//! Each enum lists its names in Pgpool-II's spelling; parsing ignores case, and the
//! name a value prints with is the one `PGPOOL SHOW` reports.

use crate::value::{FieldValue, Value};

macro_rules! choice {
    ($(#[$doc:meta])* $name:ident, $what:literal, { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            pub fn from_name(s: &str) -> Option<$name> {
                [$($name::$variant),+]
                    .into_iter()
                    .find(|v| v.name().eq_ignore_ascii_case(s.trim()))
            }
        }

        impl FieldValue for $name {
            fn from_value(v: &Value) -> Result<Self, String> {
                match v {
                    Value::Enum(s) | Value::Str(s) => $name::from_name(s)
                        .ok_or_else(|| format!(concat!("unsupported ", $what, " \"{}\""), s)),
                    other => Err(format!(concat!("expected a ", $what, ", got {:?}"), other)),
                }
            }
            fn to_value(&self) -> Value {
                Value::Enum(self.name().to_string())
            }
        }
    };
}

choice!(
    /// `memqcache_method`: where the query cache keeps its results.
    CacheMethod, "memqcache_method", {
        Shmem = "shmem",
        Memcached = "memcached",
    }
);

choice!(
    /// `disable_load_balance_on_write`: what a write does to the load balancing of the
    /// reads after it.
    LoadBalanceOnWrite, "disable_load_balance_on_write", {
        /// Reads stay load balanced.
        Off = "off",
        /// Reads after a write in an explicit transaction go to the primary until it ends.
        Transaction = "transaction",
        /// As `Transaction`, and after a write in any transaction of the session, reads
        /// in later transactions too.
        TransTransaction = "trans_transaction",
        /// After any write, every later read of the session goes to the primary.
        Always = "always",
        /// Decided per statement by the tables it reads (dml_adaptive.rs).
        DmlAdaptive = "dml_adaptive",
    }
);

choice!(
    /// `check_temp_table`: how a session's temporary tables are recognised.
    TempTableCheck, "check_temp_table", {
        Catalog = "catalog",
        Trace = "trace",
        None = "none",
        /// Old spelling of `catalog`.
        On = "on",
        /// Old spelling of `none`.
        Off = "off",
    }
);

impl TempTableCheck {
    /// Temporary tables are looked for at all.
    pub fn enabled(self) -> bool {
        !matches!(self, TempTableCheck::None | TempTableCheck::Off)
    }
}

choice!(
    /// `wd_lifecheck_method`: how the watchdog decides that a pgpool node is alive.
    LifecheckMethod, "wd_lifecheck_method", {
        /// UDP heartbeats between the nodes (Pgpool-II's default).
        Heartbeat = "heartbeat",
        /// `wd_lifecheck_query` through every node's pgpool port each `wd_interval`.
        Query = "query",
        /// An outside system reports node states with `wd_cli`.
        External = "external",
    }
);

choice!(
    /// `log_error_verbosity`: how much of an error pgpool's own log lines carry.
    ErrorVerbosity, "log_error_verbosity", {
        /// The message alone (no DETAIL or HINT lines).
        Terse = "terse",
        Default = "default",
        /// The source location too.
        Verbose = "verbose",
    }
);

choice!(
    /// `log_standby_delay`: which replication delays the streaming check logs.
    StandbyDelayLogging, "log_standby_delay", {
        /// Every delay above zero.
        Always = "always",
        /// Delays beyond delay_threshold (or delay_threshold_by_time).
        IfOverThreshold = "if_over_threshold",
        None = "none",
    }
);

choice!(
    /// `process_management_mode`: whether the number of children follows the load.
    ProcessManagementMode, "process_management_mode", {
        /// num_init_children children, always.
        Static = "static",
        /// Between min_spare_children and max_spare_children idle ones.
        Dynamic = "dynamic",
    }
);

choice!(
    /// `process_management_strategy`: how fast dynamic mode retires idle children.
    ProcessManagementStrategy, "process_management_strategy", {
        Aggressive = "aggressive",
        Gentle = "gentle",
        Lazy = "lazy",
    }
);

choice!(
    /// `relcache_query_target`: which node answers the catalog queries routing needs.
    RelcacheTarget, "relcache_query_target", {
        Primary = "primary",
        /// The session's load-balance node (a primary far away is spared them).
        LoadBalanceNode = "load_balance_node",
    }
);
