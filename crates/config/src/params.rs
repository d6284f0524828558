//! The static table of every pgpool.conf parameter pgpool-rs recognises (those of Pgpool-II
//! 4.3 to 4.7, with 4.7's defaults, ranges and contexts; older defaults that a configuration
//! written for an older release implies are in [`crate::compat`]): name, kind, default,
//! reload context, the one-line description shown by `PGPOOL SHOW`, and whether pgpool-rs
//! implements it yet. The `config_params!` macro turns the table into the
//! typed [`Config`] struct fields plus the by-name accessors the loader and `PGPOOL SHOW/SET` use.

use crate::choices::{
    CacheMethod, ErrorVerbosity, LifecheckMethod, LoadBalanceOnWrite, ProcessManagementMode,
    ProcessManagementStrategy, RelcacheTarget, StandbyDelayLogging, TempTableCheck,
};
use crate::value::{FieldValue, Value};
use crate::ClusteringMode;
use Kind as K;
use Unit as U;

/// Unit in which an integer parameter is stored (values in the file may carry a unit suffix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    None,
    Ms,
    S,
    Min,
    Byte,
    Kb,
}

/// Value kind of a parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Bool,
    /// min, max, storage unit
    Int(i64, i64, Unit),
    /// min, max
    Real(f64, f64),
    Str,
    /// separator of the items inside the (quoted) value
    List(&'static str),
    /// allowed values (matched case-insensitively)
    Enum(&'static [&'static str]),
}

/// When a change of the parameter takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Only at server start.
    Restart,
    /// On reload (SIGHUP / `pgpool reload` / pcp_reload_config).
    Reload,
    /// On reload, and per session with `PGPOOL SET`.
    Session,
}

/// Which per-node group an indexed parameter (`nameN`) belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Plain parameter (no node index).
    None,
    Backend,
    Watchdog,
    Heartbeat,
}

/// The value is a secret: `PGPOOL SHOW` prints `*****`.
pub const HIDE_VALUE: u32 = 1;
/// Not listed by `PGPOOL SHOW ALL`.
pub const HIDE_IN_ALL: u32 = 2;
/// Health-check style parameter: also accepted with a node suffix (`health_check_period1`),
/// which overrides the global value for that node.
pub const SUFFIX: u32 = 4;
/// A file mode: `PGPOOL SHOW` prints it in octal with four digits (`0777`).
pub const OCTAL: u32 = 8;

/// One row of the parameter table.
#[derive(Debug, Clone, Copy)]
pub struct ParamDef {
    /// Canonical (lower-case) name.
    pub name: &'static str,
    pub kind: Kind,
    /// Default, written as it would be in pgpool.conf.
    pub default: &'static str,
    pub context: Context,
    pub implemented: bool,
    pub flags: u32,
    pub group: Group,
    pub description: &'static str,
}

impl ParamDef {
    /// Name as Pgpool-II spells it in `PGPOOL SHOW` (since 4.4 always the canonical name).
    pub fn display_name(&self) -> &'static str {
        self.name
    }
    pub fn hidden_value(&self) -> bool {
        self.flags & HIDE_VALUE != 0
    }
    pub fn accepts_suffix(&self) -> bool {
        self.flags & SUFFIX != 0
    }
}

/// An old name still accepted in pgpool.conf (and by `PGPOOL SHOW`) for a renamed parameter.
#[derive(Debug, Clone, Copy)]
pub struct Alias {
    /// The old spelling (matched case-insensitively unless it differs from `new` only in case).
    pub old: &'static str,
    /// Canonical name of the parameter it sets.
    pub new: &'static str,
    /// From which 4.x release on Pgpool-II warns when the old name is used (`logdir is
    /// changed to work_dir`); a file written for an older release gets no warning.
    pub warns_since: Option<u32>,
    /// Also listed by `PGPOOL SHOW ALL`, as the releases before the rename did.
    pub in_show_all: bool,
}

/// Renamed parameters: `socket_dir` (4.3) is `unix_socket_directories` since 4.4,
/// `delegate_IP` is `delegate_ip` since 4.4, `logdir` is `work_dir` since 4.7.
pub const ALIASES: &[Alias] = &[
    Alias {
        old: "socket_dir",
        new: "unix_socket_directories",
        warns_since: None,
        in_show_all: false,
    },
    Alias {
        old: "fail_over_on_backend_error",
        new: "failover_on_backend_error",
        warns_since: Some(0),
        in_show_all: false,
    },
    Alias {
        old: "delegate_IP",
        new: "delegate_ip",
        warns_since: Some(4),
        in_show_all: false,
    },
    Alias {
        old: "logdir",
        new: "work_dir",
        warns_since: Some(7),
        in_show_all: true,
    },
];

/// The alias `name` is, if any.
pub fn alias(name: &str) -> Option<&'static Alias> {
    ALIASES.iter().find(|a| {
        if a.old.eq_ignore_ascii_case(a.new) {
            name == a.old
        } else {
            name.eq_ignore_ascii_case(a.old)
        }
    })
}

pub const CLUSTERING_MODES: [&str; 6] = [
    "streaming_replication",
    "native_replication",
    "logical_replication",
    "slony",
    "raw",
    "snapshot_isolation",
];
pub const SYSLOG_FACILITIES: [&str; 8] = [
    "LOCAL0", "LOCAL1", "LOCAL2", "LOCAL3", "LOCAL4", "LOCAL5", "LOCAL6", "LOCAL7",
];
pub const MESSAGE_LEVELS: [&str; 13] = [
    "debug", "debug5", "debug4", "debug3", "debug2", "debug1", "info", "notice", "warning",
    "error", "log", "fatal", "panic",
];
pub const BACKEND_MESSAGE_LOGGING: [&str; 3] = ["none", "terse", "verbose"];

/// Index of `name` in [`PARAMS`]; panics on a name that is not in the table (only used with
/// names taken from the table itself).
fn param_index(name: &str) -> usize {
    PARAMS
        .iter()
        .position(|d| d.name == name)
        .unwrap_or(usize::MAX)
}

const I32MAX: i64 = i32::MAX as i64;
const I64MAX: i64 = i64::MAX;

macro_rules! config_params {
    (
        fields { $( $field:ident : $ty:ty = [$kind:expr, $def:expr, $ctx:ident, $imp:expr, $flags:expr, $desc:expr] ),* $(,)? }
        indexed { $( $iname:ident = [$ikind:expr, $idef:expr, $ictx:ident, $iimp:expr, $iflags:expr, $igroup:ident, $idesc:expr] ),* $(,)? }
    ) => {
        /// Every parameter definition: plain parameters first (in Pgpool-II's order), then the
        /// per-node ones (`backend_hostnameN`, `wd_portN`, `heartbeat_hostnameN`, ...).
        pub static PARAMS: &[ParamDef] = &[
            $( ParamDef { name: stringify!($field), kind: $kind, default: $def, context: Context::$ctx,
                          implemented: $imp, flags: $flags, group: Group::None, description: $desc }, )*
            $( ParamDef { name: stringify!($iname), kind: $ikind, default: $idef, context: Context::$ictx,
                          implemented: $iimp, flags: $iflags, group: Group::$igroup, description: $idesc }, )*
        ];

        /// A loaded pgpool.conf: one field per plain parameter, named exactly like it, plus the
        /// per-node groups. Build it with [`Config::load`] / [`Config::parse`] / `Config::default()`.
        #[derive(Debug, Clone)]
        pub struct Config {
            $( pub $field: $ty, )*
            /// Backend nodes; index = node id (dense: nodes 0..n all configured).
            pub backends: Vec<crate::BackendConfig>,
            /// Watchdog nodes (`hostnameN`, `wd_portN`, `pgpool_portN`); index = watchdog node id.
            pub watchdog_nodes: Vec<crate::WatchdogNode>,
            /// Heartbeat destinations (`heartbeat_hostnameN`, ...); index = N.
            pub heartbeats: Vec<crate::HeartbeatDest>,
            /// The file this configuration was read from (empty for `Config::default()`).
            pub config_file: std::path::PathBuf,
            /// Per-node values as set in the file: (canonical name, node) -> value.
            pub(crate) node_values: std::collections::BTreeMap<(&'static str, usize), Value>,
            /// Effective raw text of every parameter set in the file (canonical name, with the
            /// node suffix for indexed ones), and where it came from.
            pub(crate) raw: crate::RawValues,
            /// Pgpool-II 4.x minor version the file was written for (see [`crate::compat`]).
            pub(crate) written_for: u32,
            /// The 4.x minor version the file's header comment names, if it has one.
            pub(crate) named_in_header: Option<u32>,
            /// Warnings about the file (old parameter names), in file order.
            pub(crate) notices: Vec<crate::Notice>,
        }

        impl Config {
            /// All parameters at their defaults, built from [`PARAMS`].
            pub(crate) fn from_defaults() -> Config {
                Config {
                    $( $field: <$ty as FieldValue>::from_value(
                        &crate::value::parse_value(&PARAMS[param_index(stringify!($field))], $def)
                            .expect("table default parses"))
                        .expect("table default fits its field"), )*
                    backends: Vec::new(),
                    watchdog_nodes: Vec::new(),
                    heartbeats: Vec::new(),
                    config_file: std::path::PathBuf::new(),
                    node_values: std::collections::BTreeMap::new(),
                    raw: crate::RawValues::default(),
                    written_for: crate::compat::NEWEST,
                    named_in_header: None,
                    notices: Vec::new(),
                }
            }

            /// Assign a parsed value to the field called `name` (canonical name).
            pub(crate) fn set_by_name(&mut self, name: &str, v: &Value) -> Result<(), String> {
                match name {
                    $( stringify!($field) => { self.$field = <$ty as FieldValue>::from_value(v)?; Ok(()) } )*
                    _ => Err(format!("unrecognized configuration parameter \"{}\"", name)),
                }
            }
            /// Current value of the field called `name` (canonical name).
            pub(crate) fn get_by_name(&self, name: &str) -> Option<Value> {
                match name {
                    $( stringify!($field) => Some(self.$field.to_value()), )*
                    _ => None,
                }
            }
        }
    };
}

config_params! {
  fields {
    serialize_accept: bool = [K::Bool, "off", Restart, true, 0, "whether to serialize accept() call to avoid thundering herd problem"],
    failover_when_quorum_exists: bool = [K::Bool, "on", Restart, true, 0, "Do failover only when cluster has the quorum."],
    failover_require_consensus: bool = [K::Bool, "on", Restart, true, 0, "Only do failover when majority aggrees."],
    allow_multiple_failover_requests_from_node: bool = [K::Bool, "off", Restart, true, 0, "A Pgpool-II node can send multiple failover requests to build consensus."],
    enable_consensus_with_half_votes: bool = [K::Bool, "off", Restart, true, 0, "apply majority rule for consensus and quorum computation at 50% of votes in a cluster with an even number of nodes."],
    wd_remove_shutdown_nodes: bool = [K::Bool, "off", Reload, false, 0, "Revoke the cluster membership of properly shutdown watchdog nodes."],
    log_connections: bool = [K::Bool, "off", Reload, true, 0, "Logs each successful connection."],
    log_disconnections: bool = [K::Bool, "off", Reload, true, 0, "Logs end of a session."],
    log_pcp_processes: bool = [K::Bool, "off", Reload, true, 0, "Logs PCP process forks and a normal exit status to the log"],
    log_hostname: bool = [K::Bool, "off", Reload, false, 0, "Logs the host name in the connection logs."],
    enable_pool_hba: bool = [K::Bool, "off", Reload, true, 0, "Use pool_hba.conf for client authentication."],
    replication_mode: bool = [K::Bool, "off", Restart, false, 0, "Enables replication mode."],
    load_balance_mode: bool = [K::Bool, "on", Restart, true, 0, "Enables load balancing of queries."],
    replication_stop_on_mismatch: bool = [K::Bool, "off", Reload, false, 0, "Starts degeneration and stops replication, If there's a data mismatch between primary and secondary."],
    failover_if_affected_tuples_mismatch: bool = [K::Bool, "off", Reload, false, 0, "Starts degeneration, If there's a data mismatch between primary and secondary."],
    replicate_select: bool = [K::Bool, "off", Reload, false, 0, "Replicate SELECT statements when load balancing is disabled."],
    prefer_lower_delay_standby: bool = [K::Bool, "off", Reload, true, 0, "If the load balance node is delayed over delay_threshold on SR, pgpool find another standby node which is lower delayed."],
    connection_cache: bool = [K::Bool, "on", Restart, true, 0, "Caches connections to backends."],
    failover_on_backend_error: bool = [K::Bool, "on", Reload, true, 0, "Triggers fail over when reading/writing to backend socket fails."],
    failover_on_backend_shutdown: bool = [K::Bool, "on", Reload, true, 0, "Triggers fail over when backend is shutdown."],
    detach_false_primary: bool = [K::Bool, "off", Reload, true, 0, "Automatically detaches false primary node."],
    insert_lock: bool = [K::Bool, "on", Reload, true, 0, "Automatically locks table with INSERT to keep SERIAL data consistency"],
    ignore_leading_white_space: bool = [K::Bool, "on", Reload, true, 0, "Ignores leading white spaces of each query string."],
    log_statement: bool = [K::Bool, "off", Session, true, 0, "Logs all statements in the pgpool logs."],
    log_per_node_statement: bool = [K::Bool, "off", Session, true, 0, "Logs per node detailed SQL statements."],
    notice_per_node_statement: bool = [K::Bool, "off", Session, true, 0, "Logs notice message for per node detailed SQL statements."],
    log_client_messages: bool = [K::Bool, "off", Session, true, 0, "Logs any client messages in the pgpool logs."],
    use_watchdog: bool = [K::Bool, "off", Restart, true, 0, "Enables the pgpool-II watchdog."],
    clear_memqcache_on_escalation: bool = [K::Bool, "on", Reload, true, 0, "Clears the query cache in the shared memory when pgpool-II escalates to leader watchdog node."],
    ssl: bool = [K::Bool, "off", Restart, true, 0, "Enables SSL support for frontend and backend connections"],
    ssl_prefer_server_ciphers: bool = [K::Bool, "off", Restart, false, 0, "Use server's SSL cipher preferences, rather than the client's"],
    check_unlogged_table: bool = [K::Bool, "on", Session, true, 0, "Enables unlogged table check."],
    memory_cache_enabled: bool = [K::Bool, "off", Restart, true, 0, "Enables the memory cache functionality."],
    enable_shared_relcache: bool = [K::Bool, "on", Restart, true, 0, "relation cache stored in memory cache."],
    memqcache_auto_cache_invalidation: bool = [K::Bool, "on", Reload, true, 0, "Automatically deletes the cache related to the updated tables."],
    allow_sql_comments: bool = [K::Bool, "off", Session, true, 0, "Ignore SQL comments, while judging if load balance or query cache is possible."],
    allow_clear_text_frontend_auth: bool = [K::Bool, "off", Reload, true, 0, "allow to use clear text password authentication with clients, when pool_passwd does not contain the user password."],
    statement_level_load_balance: bool = [K::Bool, "off", Reload, true, 0, "Enables statement level load balancing"],
    auto_failback: bool = [K::Bool, "off", Reload, true, 0, "Enables nodes automatically reattach, when detached node continue streaming replication."],
    logging_collector: bool = [K::Bool, "off", Restart, true, 0, "Enable capturing of stderr into log files."],
    log_truncate_on_rotation: bool = [K::Bool, "off", Reload, true, 0, "If on, an existing log file gets truncated on time based log rotation."],
    health_check_test: bool = [K::Bool, "off", Restart, true, 0, "If on, enable health check testing."],
    database_redirect_preference_list: String = [K::Str, "", Reload, true, 0, "redirect by database name."],
    app_name_redirect_preference_list: String = [K::Str, "", Reload, true, 0, "redirect by application name."],
    user_redirect_preference_list: String = [K::Str, "", Reload, true, 0, "redirect by user name."],
    dml_adaptive_object_relationship_list: String = [K::Str, "", Reload, true, 0, "list of relationships between objects."],
    listen_addresses: String = [K::Str, "localhost", Restart, true, 0, "hostname or IP address on which pgpool will listen on."],
    pcp_listen_addresses: String = [K::Str, "localhost", Restart, true, 0, "hostname(s) or IP address(es) on which pcp will listen on."],
    unix_socket_directories: Vec<String> = [K::List(","), "/tmp", Restart, true, 0, "The directories to create the UNIX domain sockets for accepting pgpool-II client connections."],
    unix_socket_group: String = [K::Str, "", Restart, true, 0, "The owning user of the sockets that always starts the server."],
    pcp_socket_dir: Vec<String> = [K::List(","), "/tmp", Restart, true, 0, "The directory to create the UNIX domain socket for accepting pgpool-II PCP connections."],
    wd_ipc_socket_dir: String = [K::Str, "/tmp", Restart, true, 0, "The directory to create the UNIX domain socket for accepting pgpool-II watchdog IPC connections."],
    log_destination: String = [K::Str, "stderr", Reload, true, 0, "destination of pgpool-II log"],
    syslog_ident: String = [K::Str, "pgpool", Reload, true, 0, "syslog program ident string."],
    pid_file_name: String = [K::Str, "/var/run/pgpool/pgpool.pid", Restart, true, 0, "Path to store pgpool-II pid file."],
    pool_passwd: String = [K::Str, "pool_passwd", Restart, true, HIDE_VALUE, "File name of pool_passwd for md5 authentication."],
    log_line_prefix: String = [K::Str, "%m: %a pid %p: ", Reload, true, 0, "printf-style string to output at beginning of each log line."],
    sr_check_user: String = [K::Str, "", Reload, true, 0, "The User name to perform streaming replication delay check."],
    sr_check_password: String = [K::Str, "", Reload, true, HIDE_VALUE, "The password for user to perform streaming replication delay check."],
    sr_check_database: String = [K::Str, "postgres", Reload, true, 0, "The database name to perform streaming replication delay check."],
    failback_command: String = [K::Str, "", Reload, true, 0, "Command to execute when backend node is attached."],
    follow_primary_command: String = [K::Str, "", Reload, true, 0, "Command to execute in streaming replication mode after a primary node failover."],
    failover_command: String = [K::Str, "", Reload, true, 0, "Command to execute when backend node is detached."],
    recovery_user: String = [K::Str, "", Reload, true, 0, "User name for online recovery."],
    recovery_password: String = [K::Str, "", Reload, true, HIDE_VALUE, "Password for online recovery."],
    recovery_database: String = [K::Str, "postgres", Reload, true, 0, "The database name for online recovery."],
    recovery_1st_stage_command: String = [K::Str, "", Reload, true, 0, "Command to execute in first stage recovery."],
    recovery_2nd_stage_command: String = [K::Str, "", Reload, false, 0, "Command to execute in second stage recovery."],
    lobj_lock_table: String = [K::Str, "", Reload, false, 0, "Table name used for large object replication control."],
    wd_escalation_command: String = [K::Str, "", Reload, true, 0, "Command to execute when watchdog node becomes cluster leader node."],
    wd_de_escalation_command: String = [K::Str, "", Reload, true, 0, "Command to execute when watchdog node resigns from the cluster leader node."],
    trusted_servers: String = [K::Str, "", Restart, true, 0, "List of servers to verify connectivity."],
    trusted_server_command: String = [K::Str, "ping -q -c3 %h", Reload, true, 0, "Command to excute when communicate with trusted server."],
    delegate_ip: String = [K::Str, "", Restart, true, 0, "Delegate IP address to be used when pgpool node become a watchdog cluster leader."],
    ping_path: String = [K::Str, "/bin", Restart, true, 0, "path to ping command."],
    if_cmd_path: String = [K::Str, "/sbin", Restart, true, 0, "Path to interface command."],
    if_up_cmd: String = [K::Str, "/usr/bin/sudo /sbin/ip addr add $_IP_$/24 dev eth0 label eth0:0", Restart, true, 0, "Complete command to bring UP virtual interface."],
    if_down_cmd: String = [K::Str, "/usr/bin/sudo /sbin/ip addr del $_IP_$/24 dev eth0", Restart, true, 0, "Complete command to bring down virtual interface."],
    arping_path: String = [K::Str, "/usr/sbin", Restart, true, 0, "path to arping command."],
    arping_cmd: String = [K::Str, "/usr/bin/sudo /usr/sbin/arping -U $_IP_$ -w 1 -I eth0", Restart, true, 0, "arping command."],
    wd_lifecheck_query: String = [K::Str, "SELECT 1", Restart, true, 0, "SQL query to be used by watchdog lifecheck."],
    wd_lifecheck_dbname: String = [K::Str, "template1", Reload, true, 0, "Database name to be used for by watchdog lifecheck."],
    wd_lifecheck_user: String = [K::Str, "", Reload, true, 0, "User name to be used for by watchdog lifecheck."],
    wd_lifecheck_password: String = [K::Str, "", Reload, true, HIDE_VALUE, "Password for watchdog user in lifecheck."],
    wd_authkey: String = [K::Str, "", Reload, true, 0, "Authentication key to be used in watchdog communication."],
    wd_listen_address: String = [K::Str, "", Restart, true, 0, "hostname(s) or IP address which watchdog will listen on."],
    wd_heartbeat_listen_addresses: String = [K::Str, "", Restart, true, 0, "hostname(s) or IP address(es) which heartbeat will listen on."],
    ssl_cert: String = [K::Str, "", Restart, true, 0, "SSL public certificate file."],
    ssl_key: String = [K::Str, "", Restart, true, 0, "SSL private key file."],
    ssl_ca_cert: String = [K::Str, "", Restart, true, 0, "Single PEM format file containing CA root certificate(s)."],
    ssl_ca_cert_dir: String = [K::Str, "", Restart, false, 0, "Directory containing CA root certificate(s)."],
    ssl_crl_file: String = [K::Str, "", Restart, true, 0, "SSL certificate revocation list file"],
    ssl_ciphers: String = [K::Str, "HIGH:MEDIUM:+3DES:!aNULL", Restart, false, 0, "Allowed SSL ciphers."],
    ssl_ecdh_curve: String = [K::Str, "prime256v1", Restart, false, 0, "The curve to use in ECDH key exchange."],
    ssl_dh_params_file: String = [K::Str, "", Restart, false, 0, "Path to the Diffie-Hellman parameters contained file"],
    ssl_passphrase_command: String = [K::Str, "", Restart, true, 0, "Path to the Diffie-Hellman parameters contained file"],
    memqcache_oiddir: String = [K::Str, "/var/log/pgpool/oiddir", Restart, true, 0, "Temporary directory to record table oids."],
    memqcache_memcached_host: String = [K::Str, "localhost", Restart, true, 0, "Hostname or IP address of memcached."],
    work_dir: String = [K::Str, "/tmp", Restart, true, 0, "directory to create pgpool_status and lock files."],
    log_directory: String = [K::Str, "/tmp/pgpool_logs", Reload, true, 0, "directory where log files are written."],
    log_filename: String = [K::Str, "pgpool-%Y-%m-%d_%H%M%S.log", Reload, true, 0, "log file name pattern."],
    reset_query_list: Vec<String> = [K::List(";"), "ABORT;DISCARD ALL", Reload, true, 0, "list of commands sent to reset the backend connection when user session exits."],
    read_only_function_list: Vec<String> = [K::List(","), "", Reload, true, 0, "list of functions that does not writes to database."],
    write_function_list: Vec<String> = [K::List(","), "", Reload, true, 0, "list of functions that writes to database."],
    cache_safe_memqcache_table_list: Vec<String> = [K::List(","), "", Reload, true, 0, "list of tables to be cached."],
    cache_unsafe_memqcache_table_list: Vec<String> = [K::List(","), "", Reload, true, 0, "list of tables should not be cached."],
    primary_routing_query_pattern_list: Vec<String> = [K::List(";"), "", Reload, true, 0, "list of query patterns that should be sent to primary node."],
    wd_monitoring_interfaces_list: Vec<String> = [K::List(","), "", Restart, true, 0, "List of network device names, to be monitored by the watchdog process for the network link state."],
    delay_threshold: i64 = [K::Int(0, I64MAX, U::Byte), "0", Reload, true, 0, "standby delay threshold in bytes."],
    delay_threshold_by_time: i64 = [K::Int(0, I32MAX, U::Ms), "0", Reload, true, 0, "standby delay threshold by time."],
    relcache_expire: i64 = [K::Int(0, I64MAX, U::S), "0", Restart, true, 0, "Relation cache expiration time in seconds."],
    memqcache_total_size: i64 = [K::Int(0, I64MAX, U::Byte), "67108864", Restart, true, 0, "Total memory size in bytes for storing memory cache."],
    health_check_timeout: u64 = [K::Int(0, I32MAX, U::S), "20", Reload, true, SUFFIX, "Backend node health check timeout value in seconds."],
    health_check_period: u64 = [K::Int(0, I32MAX, U::S), "0", Reload, true, SUFFIX, "Time interval in seconds between the health checks."],
    health_check_max_retries: u32 = [K::Int(0, I32MAX, U::None), "0", Reload, true, SUFFIX, "The maximum number of times to retry a failed health check before giving up and initiating failover."],
    health_check_retry_delay: u64 = [K::Int(0, I32MAX, U::S), "1", Reload, true, SUFFIX, "The amount of time in seconds to wait between failed health check retries."],
    connect_timeout: u64 = [K::Int(0, I32MAX, U::Ms), "10000", Reload, true, SUFFIX, "Timeout in milliseconds before giving up connecting to backend."],
    health_check_user: String = [K::Str, "", Reload, true, SUFFIX, "User name for PostgreSQL backend health check."],
    health_check_password: String = [K::Str, "", Reload, true, HIDE_VALUE | SUFFIX, "Password for PostgreSQL backend health check database user."],
    health_check_database: String = [K::Str, "postgres", Reload, true, SUFFIX, "The database name to be used to perform PostgreSQL backend health check."],
    port: u16 = [K::Int(1024, 65535, U::None), "9999", Restart, true, 0, "tcp/IP port number on which pgpool will listen on."],
    pcp_port: u16 = [K::Int(1024, 65535, U::None), "9898", Restart, true, 0, "tcp/IP port number on which pgpool PCP process will listen on."],
    unix_socket_permissions: u32 = [K::Int(0, 0o777, U::None), "0777", Restart, true, OCTAL, "The access permissions of the Unix domain sockets."],
    // Pgpool-II's range is 1024..65535 with 0 (not set) as the default; 0 is accepted here so
    // that the sample's own `wd_listen_port = 0` loads.
    wd_listen_port: u16 = [K::Int(0, 65535, U::None), "0", Restart, true, 0, "tcp/IP port number which watchdog will listen on."],
    wd_heartbeat_listen_port: u16 = [K::Int(0, I32MAX, U::None), "0", Restart, true, 0, "tcp/IP port number which heartbeat will listen on."],
    num_init_children: u32 = [K::Int(1, I32MAX, U::None), "32", Restart, true, 0, "Number of children pre-forked for client connections."],
    min_spare_children: u32 = [K::Int(1, I32MAX, U::None), "5", Reload, true, 0, "Minimum number of spare child processes."],
    max_spare_children: u32 = [K::Int(1, I32MAX, U::None), "10", Reload, true, 0, "Maximum number of spare child processes."],
    reserved_connections: u32 = [K::Int(0, I32MAX, U::None), "0", Restart, true, 0, "Number of reserved connections."],
    listen_backlog_multiplier: u32 = [K::Int(1, I32MAX, U::None), "2", Restart, true, 0, "length of connection queue from frontend to pgpool-II"],
    child_life_time: u64 = [K::Int(0, I32MAX, U::S), "300", Restart, true, 0, "pgpool-II child process life time in seconds."],
    client_idle_limit: u64 = [K::Int(0, I32MAX, U::S), "0", Session, true, 0, "idle time in seconds to disconnects a client."],
    connection_life_time: u64 = [K::Int(0, I32MAX, U::S), "0", Restart, true, 0, "Cached connections expiration time in seconds."],
    child_max_connections: u64 = [K::Int(0, I32MAX, U::None), "0", Restart, true, 0, "A pgpool-II child process will be terminated after this many connections from clients."],
    authentication_timeout: u64 = [K::Int(0, I32MAX, U::S), "60", Restart, true, 0, "Time out value in seconds for client authentication."],
    max_pool: u32 = [K::Int(0, I32MAX, U::None), "4", Restart, true, 0, "Maximum number of connection pools per child process."],
    sessions_per_child: u32 = [K::Int(1, 1024, U::None), "1", Restart, true, HIDE_IN_ALL, "pgpool-rs: client sessions one child serves at once from one event loop (at most max_pool; 1: one client per child, as Pgpool-II)."],
    sr_check_period: i64 = [K::Int(0, I32MAX, U::S), "10", Reload, true, 0, "Time interval in seconds between the streaming replication delay checks."],
    recovery_timeout: i64 = [K::Int(0, I32MAX, U::S), "90", Reload, true, 0, "Maximum time in seconds to wait for the recovering PostgreSQL node."],
    client_idle_limit_in_recovery: i64 = [K::Int(-1, I32MAX, U::S), "0", Session, false, 0, "Time limit is seconds for the child connection, before it is terminated during the 2nd stage recovery."],
    search_primary_node_timeout: i64 = [K::Int(0, I32MAX, U::S), "300", Reload, true, 0, "Max time in seconds to search for primary node after failover."],
    wd_priority: i64 = [K::Int(0, I32MAX, U::None), "1", Restart, true, 0, "Watchdog node priority for leader election."],
    wd_interval: i64 = [K::Int(0, I32MAX, U::S), "10", Restart, true, 0, "Time interval in seconds between life check."],
    wd_lost_node_removal_timeout: i64 = [K::Int(0, I32MAX, U::S), "0", Reload, false, 0, "Timeout in seconds to revoke the cluster membership of LOST watchdog nodes."],
    wd_no_show_node_removal_timeout: i64 = [K::Int(0, I32MAX, U::S), "0", Reload, false, 0, "Timeout in seconds to revoke the cluster membership of NO-SHOW watchdog nodes."],
    wd_life_point: i64 = [K::Int(0, I32MAX, U::None), "3", Restart, true, 0, "Maximum number of retries before failing the life check."],
    wd_heartbeat_keepalive: i64 = [K::Int(1, I32MAX, U::S), "2", Restart, true, 0, "Time interval in seconds between sending the heartbeat signal."],
    wd_heartbeat_deadtime: i64 = [K::Int(1, I32MAX, U::S), "30", Restart, true, 0, "Deadtime interval in seconds for heartbeat signal."],
    relcache_size: i64 = [K::Int(0, I32MAX, U::None), "256", Restart, false, 0, "Number of relation cache entry."],
    memqcache_memcached_port: i64 = [K::Int(0, I32MAX, U::None), "11211", Restart, true, 0, "Port number of Memcached server."],
    memqcache_max_num_cache: i64 = [K::Int(0, I32MAX, U::None), "1000000", Restart, true, 0, "Total number of cache entries."],
    memqcache_expire: i64 = [K::Int(0, I32MAX, U::S), "0", Restart, true, 0, "Memory cache entry life time specified in seconds."],
    memqcache_maxcache: i64 = [K::Int(0, I32MAX, U::Byte), "409600", Restart, true, 0, "Maximum SELECT result size in bytes."],
    memqcache_cache_block_size: i64 = [K::Int(512, I32MAX, U::Byte), "1048576", Restart, true, 0, "Cache block size in bytes."],
    auto_failback_interval: i64 = [K::Int(0, I32MAX, U::S), "60", Reload, true, 0, "min interval of executing auto_failback in seconds"],
    log_rotation_age: i64 = [K::Int(0, I32MAX, U::Min), "1440", Reload, true, 0, "Automatic rotation of logfiles will happen after that (minutes) time."],
    log_rotation_size: i64 = [K::Int(0, I32MAX / 1024, U::Kb), "10240", Reload, true, 0, "Automatic rotation of logfiles will happen after that much (kilobytes) log output."],
    log_file_mode: i64 = [K::Int(0, I32MAX, U::None), "0600", Reload, true, 0, "creation mode for log files."],
    backend_clustering_mode: ClusteringMode = [K::Enum(&CLUSTERING_MODES), "streaming_replication", Restart, true, 0, "backend clustering mode."],
    syslog_facility: String = [K::Enum(&SYSLOG_FACILITIES), "LOCAL0", Reload, true, 0, "syslog local facility."],
    log_error_verbosity: ErrorVerbosity = [K::Enum(ErrorVerbosity::NAMES), "default", Session, true, 0, "How much details about error should be emitted."],
    client_min_messages: String = [K::Enum(&MESSAGE_LEVELS), "notice", Session, true, 0, "Which messages should be sent to client."],
    log_min_messages: String = [K::Enum(&MESSAGE_LEVELS), "warning", Session, true, 0, "Which messages should be emitted to server log."],
    log_backend_messages: String = [K::Enum(&BACKEND_MESSAGE_LOGGING), "none", Session, false, 0, "Logs any backend messages in the pgpool logs."],
    log_standby_delay: StandbyDelayLogging = [K::Enum(StandbyDelayLogging::NAMES), "if_over_threshold", Reload, true, 0, "When to log standby delay."],
    wd_lifecheck_method: LifecheckMethod = [K::Enum(LifecheckMethod::NAMES), "heartbeat", Restart, true, 0, "method for watchdog lifecheck."],
    memqcache_logical_invalidation: bool = [K::Bool, "off", Restart, true, HIDE_IN_ALL, "pgpool-rs: also invalidates the query cache from the primary's logical decoding of every write (needs wal_level = logical)."],
    memqcache_logical_slot: String = [K::Str, "pgpool_rs_cache", Restart, true, HIDE_IN_ALL, "pgpool-rs: name prefix of the temporary test_decoding slots (one per database, + _oid) the query cache's change feed reads."],
    memqcache_logical_interval: i64 = [K::Int(100, I32MAX, U::Ms), "1000", Reload, true, HIDE_IN_ALL, "pgpool-rs: how often the query cache's change feed reads the slot, in milliseconds (the bound on staleness from writes that bypass pgpool)."],
    memqcache_method: CacheMethod = [K::Enum(CacheMethod::NAMES), "shmem", Restart, true, 0, "Cache store method. either shmem(shared memory) or Memcached. shmem by default."],
    disable_load_balance_on_write: LoadBalanceOnWrite = [K::Enum(LoadBalanceOnWrite::NAMES), "transaction", Reload, true, 0, "Load balance behavior when write query is received."],
    relcache_query_target: RelcacheTarget = [K::Enum(RelcacheTarget::NAMES), "primary", Reload, true, 0, "Target node to send relache queries."],
    check_temp_table: TempTableCheck = [K::Enum(TempTableCheck::NAMES), "catalog", Reload, true, 0, "Enables temporary table check."],
    process_management_mode: ProcessManagementMode = [K::Enum(ProcessManagementMode::NAMES), "static", Reload, true, 0, "child process management mode."],
    process_management_strategy: ProcessManagementStrategy = [K::Enum(ProcessManagementStrategy::NAMES), "gentle", Reload, true, 0, "child process management strategy."],
  }
  indexed {
    backend_port = [K::Int(1024, 65535, U::None), "5432", Reload, true, 0, Backend, "port number of PostgreSQL backend."],
    heartbeat_port = [K::Int(1024, 65535, U::None), "9694", Reload, true, 0, Heartbeat, "Port for sending heartbeat."],
    wd_port = [K::Int(1024, 65535, U::None), "9000", Reload, true, 0, Watchdog, "tcp/ip watchdog port number of other pgpool node for watchdog connection.."],
    pgpool_port = [K::Int(1024, 65535, U::None), "9999", Reload, true, 0, Watchdog, "tcp/ip pgpool port number of other pgpool node for watchdog connection."],
    backend_weight = [K::Real(0.0, 100000000.0), "1", Reload, true, 0, Backend, "load balance weight of backend."],
    backend_hostname = [K::Str, "", Reload, true, 0, Backend, "hostname or IP address of PostgreSQL backend."],
    backend_data_directory = [K::Str, "", Reload, true, 0, Backend, "data directory of the backend."],
    backend_application_name = [K::Str, "", Reload, true, 0, Backend, "application_name of the backend."],
    backend_flag = [K::Str, "ALLOW_TO_FAILOVER", Reload, true, 0, Backend, "Controls various backend behavior."],
    heartbeat_hostname = [K::Str, "", Reload, true, 0, Heartbeat, "Hostname for sending heartbeat signal."],
    heartbeat_device = [K::Str, "", Reload, false, 0, Heartbeat, "Name of NIC device for sending heartbeat."],
    hostname = [K::Str, "localhost", Reload, true, 0, Watchdog, "Hostname of pgpool node for watchdog connection."],
  }
}
