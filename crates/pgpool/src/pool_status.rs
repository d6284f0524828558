//! The configuration report of `SHOW POOL_STATUS` and `pcp_pool_status`: Pgpool-II 4.3's
//! fixed list of items (not `PGPOOL SHOW ALL`'s), with its descriptions and its value
//! forms — booleans and enums as the C numbers (`1`, enum positions from 1), lists joined,
//! per-node backend, watchdog and heartbeat items last. One function serves both.

use std::sync::atomic::Ordering;

use config::{Config, Kind, Value};
use shmem::Shmem;

/// Pgpool-II's field sizes (including the NUL): longer texts are cut.
const NAME_LEN: usize = 64;
const VALUE_LEN: usize = 512;
const DESC_LEN: usize = 80;

/// `(item, description)` in Pgpool-II's order, before the per-node items.
const ITEMS: &[(&str, &str)] = &[
    ("backend_clustering_mode", "clustering mode"),
    ("listen_addresses", "host name(s) or IP address(es) to listen on"),
    ("port", "pgpool accepting port number"),
    ("socket_dir", "pgpool socket directory"),
    ("pcp_listen_addresses", "host name(s) or IP address(es) for pcp process to listen on"),
    ("pcp_port", "PCP port # to bind"),
    ("pcp_socket_dir", "PCP socket directory"),
    ("enable_pool_hba", "if true, use pool_hba.conf for client authentication"),
    ("pool_passwd", "file name of pool_passwd for md5 authentication"),
    ("authentication_timeout", "maximum time in seconds to complete client authentication"),
    ("allow_clear_text_frontend_auth", "allow to use clear text password auth when pool_passwd does not contain password"),
    ("ssl", "SSL support"),
    ("ssl_key", "SSL private key file"),
    ("ssl_cert", "SSL public certificate file"),
    ("ssl_ca_cert", "single PEM format file containing CA root certificate(s)"),
    ("ssl_ca_cert_dir", "directory containing CA root certificate(s)"),
    ("ssl_crl_file", "SSL certificate revocation list file"),
    ("ssl_ciphers", "allowed SSL ciphers"),
    ("ssl_prefer_server_ciphers", "Use server's SSL cipher preferences"),
    ("ssl_ecdh_curve", "the curve to use in ECDH key exchange"),
    ("ssl_dh_params_file", "path to the Diffie-Hellman parameters contained file"),
    ("ssl_passphrase_command", "external command to be invoked when a passphrase for decrypting an SSL file such as a private key needs to be obtained"),
    ("num_init_children", "# of children initially pre-forked"),
    ("listen_backlog_multiplier", "determines the size of the queue for pending connections"),
    ("serialize_accept", "whether to serialize accept() call"),
    ("reserved_connections", "number of reserved connections"),
    ("max_pool", "max # of connection pool per child"),
    ("child_life_time", "if idle for this seconds, child exits"),
    ("child_max_connections", "if max_connections received, child exits"),
    ("connection_life_time", "if idle for this seconds, connection closes"),
    ("client_idle_limit", "if idle for this seconds, child connection closes"),
    ("log_destination", "logging destination"),
    ("log_line_prefix", "printf-style string to output at beginning of each log line"),
    ("log_error_verbosity", "controls how much detail about error should be emitted"),
    ("client_min_messages", "controls which message should be sent to client"),
    ("log_min_messages", "controls which message should be emitted to server log"),
    ("log_connections", "if true, print incoming connections to the log"),
    ("log_disconnections", "if true, print closing connections to the log"),
    ("log_hostname", "if true, resolve hostname for ps and log print"),
    ("log_statement", "if non 0, logs all SQL statements"),
    ("log_per_node_statement", "if non 0, logs all SQL statements on each node"),
    ("log_client_messages", "if non 0, logs any client messages"),
    ("log_standby_delay", "how to log standby delay"),
    ("syslog_facility", "syslog local facility"),
    ("syslog_ident", "syslog program ident string"),
    ("pid_file_name", "path to pid file"),
    ("logdir", "PgPool status file logging directory"),
    ("connection_cache", "if true, cache connection pool"),
    ("reset_query_list", "queries issued at the end of session"),
    ("replicate_select", "non 0 if SELECT statement is replicated"),
    ("insert_lock", "insert lock"),
    ("lobj_lock_table", "table name used for large object replication control"),
    ("replication_stop_on_mismatch", "stop replication mode on fatal error"),
    ("failover_if_affected_tuples_mismatch", "failover if affected tuples are mismatch"),
    ("load_balance_mode", "non 0 if operating in load balancing mode"),
    ("ignore_leading_white_space", "ignore leading white spaces"),
    ("read_only_function_list", "functions those do not write to database"),
    ("write_function_list", "functions those write to database"),
    ("primary_routing_query_pattern_list", "query patterns that should be sent to primary node"),
    ("disable_load_balance_on_write", "Load balance behavior when write query is received"),
    ("dml_adaptive_object_relationship_list", "list of relationships between objects"),
    ("statement_level_load_balance", "statement level load balancing"),
    ("sr_check_period", "sr check period"),
    ("sr_check_user", "sr check user"),
    ("sr_check_database", "sr check database"),
    ("delay_threshold", "standby delay threshold"),
    ("prefer_lower_delay_standby", "load balancing considering streaming delay"),
    ("follow_primary_command", "follow primary command"),
    ("database_redirect_preference_list", "redirect by database name"),
    ("app_name_redirect_preference_list", "redirect by application name"),
    ("allow_sql_comments", "allow SQL comments"),
    ("health_check_period", "health check period"),
    ("health_check_timeout", "health check timeout"),
    ("health_check_user", "health check user"),
    ("health_check_database", "health check database"),
    ("health_check_max_retries", "health check max retries"),
    ("health_check_retry_delay", "health check retry delay"),
    ("connect_timeout", "connect timeout"),
    ("failover_command", "failover command"),
    ("failback_command", "failback command"),
    ("failover_on_backend_error", "failover on backend error"),
    ("failover_on_backend_shutdown", "failover on backend shutdown"),
    ("detach_false_primary", "detach false primary"),
    ("auto_failback", "auto_failback"),
    ("auto_failback_interval", "auto_failback_interval"),
    ("recovery_user", "online recovery user"),
    ("recovery_1st_stage_command", "execute a command in first stage."),
    ("recovery_2nd_stage_command", "execute a command in second stage."),
    ("recovery_timeout", "max time in seconds to wait for the recovering node's postmaster"),
    ("search_primary_node_timeout", "max time in seconds to search for primary node after failover"),
    ("client_idle_limit_in_recovery", "if idle for this seconds, child connection closes in recovery 2nd stage"),
    ("relcache_expire", "relation cache expiration time in seconds"),
    ("relcache_size", "number of relation cache entry"),
    ("check_temp_table", "enable temporary table check"),
    ("check_unlogged_table", "enable unlogged table check"),
    ("enable_shared_relcache", "If true, relation cache stored in memory cache"),
    ("relcache_query_target", "Target node to send relcache queries"),
    ("use_watchdog", "non 0 if operating in use_watchdog"),
    ("wd_ipc_socket_dir", "watchdog ipc socket directory"),
    ("wd_lifecheck_method", "method of watchdog lifecheck"),
    ("clear_memqcache_on_escalation", "If true, clear all the query caches in shared memory when escalation occurs"),
    ("wd_escalation_command", "command executed when escalation occurs"),
    ("wd_de_escalation_command", "command executed when leader pgpool resigns occurs"),
    ("trusted_servers", "upper server list to observe connection"),
    ("delegate_IP", "delegate IP address of leader pgpool"),
    ("wd_priority", "watchdog priority"),
    ("wd_interval", "life check interval (second)"),
    ("ping_path", "path to ping command"),
    ("if_cmd_path", "path to interface up/down command"),
    ("if_up_cmd", "virtual interface up command with full parameters"),
    ("if_down_cmd", "virtual interface down command with full parameters"),
    ("arping_path", "path to arping command"),
    ("arping_cmd", "send ARP REQUEST to neighbour host"),
    ("wd_heartbeat_keepalive", "interval time of sending heartbeat signal (sec)"),
    ("wd_heartbeat_deadtime", "deadtime interval for heartbeat signal (sec)"),
    ("wd_life_point", "retry times of life check"),
    ("wd_lifecheck_query", "lifecheck query to pgpool from watchdog"),
    ("wd_lifecheck_dbname", "database name connected for lifecheck"),
    ("wd_lifecheck_user", "watchdog user monitoring pgpools in lifecheck"),
];

/// Items after the watchdog and heartbeat nodes, before the backends.
const CACHE_ITEMS: &[(&str, &str)] = &[
    ("memory_cache_enabled", "If true, use the memory cache functionality, false by default"),
    ("memqcache_method", "Cache store method. either shmem(shared memory) or Memcached. shmem by default"),
    ("memqcache_memcached_host", "Memcached host name. Mandatory if memqcache_method=memcached"),
    ("memqcache_memcached_port", "Memcached port number. Mandatory if memqcache_method=memcached"),
    ("memqcache_total_size", "Total memory size in bytes for storing memory cache. Mandatory if memqcache_method=shmem"),
    ("memqcache_max_num_cache", "Total number of cache entries"),
    ("memqcache_expire", "Memory cache entry life time specified in seconds. 60 by default"),
    ("memqcache_auto_cache_invalidation", "If true, invalidation of query cache is triggered by corresponding DDL/DML/DCL(and memqcache_expire).  If false, it is only triggered  by memqcache_expire.  True by default."),
    ("memqcache_maxcache", "Maximum SELECT result size in bytes"),
    ("memqcache_cache_block_size", "Cache block size in bytes. 8192 by default"),
    ("memqcache_oiddir", "Temporary work directory to record table oids"),
];

/// Pgpool-II's elog level numbers.
fn elog_level(name: &str) -> i64 {
    match name.to_ascii_lowercase().as_str() {
        "debug5" => 10,
        "debug4" => 11,
        "debug3" => 12,
        "debug" | "debug2" => 13,
        "debug1" => 14,
        "log" => 15,
        "commerror" => 16,
        "info" => 17,
        "notice" => 18,
        "warning" => 19,
        "error" => 20,
        "fatal" => 21,
        "panic" => 22,
        _ => 0,
    }
}

/// A parameter's value as Pgpool-II's report prints it.
fn value_text(cfg: &Config, name: &str) -> String {
    let def = config::find_param(name);
    let Some(v) = cfg.value(name) else {
        // Not a pgpool-rs parameter: Pgpool-II prints its zero value.
        return match def.map(|d| d.kind) {
            Some(Kind::Str) | Some(Kind::List(_)) | None => String::new(),
            _ => "0".into(),
        };
    };
    match v {
        Value::Bool(b) => u8::from(b).to_string(),
        Value::Int(i) => i.to_string(),
        Value::Real(r) => format!("{r:.6}"),
        Value::Str(s) if !matches!(def.map(|d| d.kind), Some(Kind::Enum(_))) => s,
        Value::List(l) => {
            let sep = match def.map(|d| d.kind) {
                Some(Kind::List(sep)) => sep,
                _ => ",",
            };
            l.join(sep)
        }
        Value::Str(s) | Value::Enum(s) => match name {
            "syslog_facility" => s.to_ascii_uppercase(),
            "log_error_verbosity" => match s.to_ascii_lowercase().as_str() {
                "terse" => "0",
                "verbose" => "2",
                _ => "1",
            }
            .into(),
            "client_min_messages" | "log_min_messages" => elog_level(&s).to_string(),
            // The C enums count their options from 1, in the order the table lists them.
            _ => match def.map(|d| d.kind) {
                Some(Kind::Enum(opts)) => opts
                    .iter()
                    .position(|o| o.eq_ignore_ascii_case(&s))
                    .map(|p| (p + 1).to_string())
                    .unwrap_or(s),
                _ => s,
            },
        },
    }
}

/// Cuts `s` to what a C buffer of `size` bytes holds, on a character boundary.
fn cut(s: &str, size: usize) -> String {
    let mut end = s.len().min(size - 1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// `ctime(3)` of a Unix time, newline included, as Pgpool-II prints the query cache
/// stats start time.
fn ctime(secs: i64) -> String {
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(t) => t
            .with_timezone(&chrono::Local)
            .format("%a %b %e %H:%M:%S %Y\n")
            .to_string(),
        None => String::new(),
    }
}

/// SHOW POOL_STATUS / pcp_pool_status rows: `[item, value, description]`.
pub fn pool_status(cfg: &Config, shm: &Shmem) -> Vec<[String; 3]> {
    let mut rows: Vec<[String; 3]> = Vec::new();
    let mut push = |item: String, value: String, desc: String| {
        rows.push([
            cut(&item, NAME_LEN),
            cut(&value, VALUE_LEN),
            cut(&desc, DESC_LEN),
        ]);
    };
    for (name, desc) in ITEMS {
        push(name.to_string(), value_text(cfg, name), desc.to_string());
    }
    let local_wd = match cfg.value("pgpool_node_id") {
        Some(Value::Int(i)) => i,
        _ => -1,
    };
    for (j, w) in cfg.watchdog_nodes.iter().enumerate() {
        if w.pgpool_port == 0 {
            continue;
        }
        let local = j as i64 == local_wd;
        let (h, p, wd) = if local {
            (
                "hostname or IP address of local pgpool node".to_string(),
                "local pgpool port number".to_string(),
                "local watchdog port number".to_string(),
            )
        } else {
            (
                format!("hostname or IP address of pgpool node #{j}"),
                format!("pgpool port number of pgpool node #{j}"),
                format!("watchdog port number of pgpool node #{j}"),
            )
        };
        push(format!("hostname{j}"), w.hostname.clone(), h);
        push(format!("pgpool_port{j}"), w.pgpool_port.to_string(), p);
        push(format!("wd_port{j}"), w.wd_port.to_string(), wd);
    }
    for (j, hb) in cfg.heartbeats.iter().enumerate() {
        if hb.port == 0 {
            continue;
        }
        let local = j as i64 == local_wd;
        let (h, d, p) = if local {
            (
                "IP address or hostname for receiving heartbeat".to_string(),
                "name of NIC device for receiving hearbeat".to_string(),
                "port number for receiving heartbeat".to_string(),
            )
        } else {
            (
                format!(
                    "destination IP address or hostname for sending heartbeat to pgpool node #{j}"
                ),
                format!("name of NIC device for sending hearbeat to pgpool node #{j}"),
                format!("destination port for sending heartbeat to pgpool node #{j}"),
            )
        };
        push(format!("heartbeat_hostname{j}"), hb.hostname.clone(), h);
        push(format!("heartbeat_device{j}"), hb.device.clone(), d);
        push(format!("heartbeat_port{j}"), hb.port.to_string(), p);
    }
    push(
        "wd_monitoring_interfaces_list".into(),
        value_text(cfg, "wd_monitoring_interfaces_list"),
        "interfaces to monitor by watchdog".into(),
    );
    for (name, desc) in CACHE_ITEMS {
        push(name.to_string(), value_text(cfg, name), desc.to_string());
    }
    // The query cache is not implemented: its statistics start with pgpool and stay 0.
    push(
        "memqcache_stats_start_time".into(),
        ctime(shm.cluster().start_time.load(Ordering::Relaxed)),
        "Start time of query cache stats".into(),
    );
    push(
        "memqcache_no_cache_hits".into(),
        "0".into(),
        "Number of SELECTs not hitting query cache".into(),
    );
    push(
        "memqcache_cache_hits".into(),
        "0".into(),
        "Number of SELECTs hitting query cache".into(),
    );
    push(
        "cache_safe_memqcache_table_list".into(),
        value_text(cfg, "cache_safe_memqcache_table_list"),
        "tables to memqcache".into(),
    );
    push(
        "cache_unsafe_memqcache_table_list".into(),
        value_text(cfg, "cache_unsafe_memqcache_table_list"),
        "tables not to memqcache".into(),
    );
    let nodes = crate::report::nodes(cfg, shm);
    for (j, b) in cfg.backends.iter().enumerate() {
        if b.port == 0 {
            continue;
        }
        let st = shm.backend(j);
        let weight = nodes.get(j).map(|n| n.weight).unwrap_or(0.0);
        push(
            format!("backend_hostname{j}"),
            b.hostname.clone(),
            format!("backend #{j} hostname"),
        );
        push(
            format!("backend_port{j}"),
            b.port.to_string(),
            format!("backend #{j} port number"),
        );
        push(
            format!("backend_weight{j}"),
            format!("{weight:.6}"),
            format!("weight of backend #{j}"),
        );
        push(
            format!("backend_data_directory{j}"),
            b.data_directory.clone(),
            format!("data directory for backend #{j}"),
        );
        push(
            format!("backend_status{j}"),
            st.status().name().to_string(),
            format!("status of backend #{j}"),
        );
        push(
            format!("standby_delay{j}"),
            st.replication_delay.load(Ordering::Relaxed).to_string(),
            format!("standby delay of backend #{j}"),
        );
        push(
            format!("backend_flag{j}"),
            b.flag.to_string(),
            format!("backend #{j} flag"),
        );
        push(
            format!("backend_application_name{j}"),
            b.application_name.clone(),
            format!("application_name for backend #{j}"),
        );
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shm() -> Shmem {
        Shmem::create(shmem::Layout {
            num_children: 1,
            max_pool: 1,
        })
        .expect("shmem")
    }

    #[test]
    fn starts_like_pgpool_and_uses_c_numbers() {
        let cfg = Config::parse(
            "port = 9999\nlisten_addresses = '127.0.0.1'\nenable_pool_hba = on\n\
             backend_hostname0 = 'h0'\nbackend_port0 = 5432\nbackend_hostname1 = 'h1'\nbackend_port1 = 5433\n",
            std::path::Path::new("pgpool.conf"),
        )
        .expect("config");
        let rows = pool_status(&cfg, &shm());
        let get = |k: &str| {
            rows.iter()
                .find(|r| r[0] == k)
                .map(|r| r[1].clone())
                .unwrap_or_else(|| panic!("{k} missing"))
        };
        let items: Vec<&str> = rows.iter().take(4).map(|r| r[0].as_str()).collect();
        assert_eq!(
            items,
            [
                "backend_clustering_mode",
                "listen_addresses",
                "port",
                "socket_dir"
            ]
        );
        assert_eq!(get("backend_clustering_mode"), "1");
        assert_eq!(get("port"), "9999");
        assert_eq!(get("enable_pool_hba"), "1");
        assert_eq!(get("client_min_messages"), "18");
        assert_eq!(get("log_error_verbosity"), "1");
        assert_eq!(get("disable_load_balance_on_write"), "2");
        assert_eq!(get("reset_query_list"), "ABORT;DISCARD ALL");
        assert_eq!(get("backend_weight1"), "0.500000");
        assert_eq!(get("backend_flag0"), "ALLOW_TO_FAILOVER");
        assert!(rows.iter().all(|r| r[2].len() < DESC_LEN));
        assert_eq!(
            rows.last().map(|r| r[0].as_str()),
            Some("backend_application_name1")
        );
    }
}
