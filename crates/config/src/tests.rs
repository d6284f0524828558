//! Unit tests of the pgpool.conf loader, `PGPOOL SHOW/SET` and reload rules.

use super::*;

pub(crate) fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/pgpool.conf"))
}

#[test]
fn table_defaults_parse_and_names_are_unique() {
    let mut seen = std::collections::HashSet::new();
    for d in PARAMS {
        assert!(seen.insert(d.name), "duplicate {}", d.name);
        parse_value(d, d.default).unwrap_or_else(|e| panic!("{}: {e}", d.name));
    }
    let c = Config::default();
    assert_eq!(c.port, 9999);
    assert_eq!(c.pcp_port, 9898);
    assert_eq!(c.num_init_children, 32);
    assert_eq!(c.max_pool, 4);
    assert_eq!(c.child_life_time, 300);
    assert_eq!(c.authentication_timeout, 60);
    assert_eq!(c.reset_query_list, vec!["ABORT", "DISCARD ALL"]);
    assert_eq!(c.unix_socket_directories, vec!["/tmp"]);
    assert_eq!(
        c.backend_clustering_mode,
        ClusteringMode::StreamingReplication
    );
    assert_eq!(c.connect_timeout, 10000);
    assert_eq!(c.memqcache_total_size, 64 * 1024 * 1024);
    assert_eq!(c.log_rotation_age, 1440);
    assert!(c.load_balance_mode);
    assert!(c.backends.is_empty());
    assert!(c.unsupported_in_use().is_empty());
}

#[test]
fn basic_values_and_later_line_wins() {
    let c = parse(
        "port = 5433\n\
         Num_Init_Children 10 # trailing comment\n\
         listen_addresses = '*'\n\
         reset_query_list = 'ABORT; DISCARD ALL; SELECT ''x'''\n\
         load_balance_mode = off\n\
         child_life_time = 5min\n\
         backend_clustering_mode = 'raw'\n\
         port = 5434\n\
         log_min_messages = DEBUG1\n\
         read_only_function_list = ' f1 , f2,,f3 '\n",
    )
    .expect("parses");
    assert_eq!(c.port, 5434);
    assert_eq!(c.num_init_children, 10);
    assert_eq!(c.listen_addresses, "*");
    assert_eq!(
        c.reset_query_list,
        vec!["ABORT", "DISCARD ALL", "SELECT 'x'"]
    );
    assert!(!c.load_balance_mode);
    assert_eq!(c.child_life_time, 300);
    assert_eq!(c.backend_clustering_mode, ClusteringMode::Raw);
    assert_eq!(c.log_min_messages, "debug1");
    assert_eq!(c.read_only_function_list, vec!["f1", "f2", "f3"]);
    assert_eq!(c.raw_values().line("port"), Some(8));
    assert_eq!(c.raw_ini().general_section().get("port"), Some("5434"));
}

#[test]
fn errors_name_file_and_line() {
    let e = parse("port = 5433\n\nport = abc\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "/etc/pgpool.conf:3: invalid value for parameter \"port\": \"abc\""
    );
    let e = parse("# c\nfoo = 1\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "/etc/pgpool.conf:2: unrecognized configuration parameter \"foo\""
    );
    let e = parse("port = 80\n").unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.message.contains("outside the valid range"), "{e}");
    let e = parse("load_balance_mode = perhaps\n").unwrap_err();
    assert!(e.message.contains("load_balance_mode"), "{e}");
    let e = parse("backend_clustering_mode = 'multi_master'\n").unwrap_err();
    assert!(e.message.contains("available values"), "{e}");
    let e = parse("x = 'unterminated\n").unwrap_err();
    assert_eq!(e.line, 1);
    let e = parse("backend_flag0 = 'ALLOW_TO_FAILOVER|BOGUS'\n").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/etc/pgpool.conf:1: invalid backend flag \"BOGUS\""),
        "{e}"
    );
    // A skipped node id is an unconfigured slot, as in Pgpool-II.
    let c = parse("backend_hostname0 = 'a'\nbackend_hostname2 = 'c'\n").unwrap();
    let configured: Vec<bool> = c.backends.iter().map(|b| b.configured).collect();
    assert_eq!(configured, [true, false, true]);
    let e = parse("backend_hostname128 = 'a'\n").unwrap_err();
    assert!(e.message.contains("unrecognized"), "{e}");
    let e = Config::load(Path::new("/nonexistent/pgpool.conf")).unwrap_err();
    assert_eq!(e.line, 0);
}

#[test]
fn aliases() {
    let c = parse("socket_dir = '/var/run/postgresql'\nfail_over_on_backend_error = off\npcp_socket_dir = '/a, /b'\n")
        .expect("parses");
    assert_eq!(c.unix_socket_directories, vec!["/var/run/postgresql"]);
    assert!(!c.failover_on_backend_error);
    assert_eq!(c.pcp_socket_dir, vec!["/a", "/b"]);
}

const THREE_NODES: &str = "\
backend_hostname0 = '127.0.0.1'
backend_port0 = 55432
backend_weight0 = 1
backend_data_directory0 = '/data/pg0'
backend_application_name0 = 'node0'
backend_flag0 = 'ALLOW_TO_FAILOVER'
backend_hostname1 = '127.0.0.1'
backend_port1 = 55433
backend_flag1 = 'DISALLOW_TO_FAILOVER|ALWAYS_PRIMARY'
backend_application_name1 = 'node1'
backend_hostname2 = 'h2'
backend_port2 = 55434
backend_weight2 = 0.5
health_check_period = 5
health_check_timeout = 10
health_check_user = 'postgres'
health_check_password = 'secret'
health_check_database = 'postgres'
health_check_max_retries = 3
health_check_period1 = 7
health_check_user2 = 'other'
connect_timeout2 = 2s
";

#[test]
fn backends_and_health_check_overrides() {
    let c = parse(THREE_NODES).expect("parses");
    assert_eq!(c.backends.len(), 3);
    assert_eq!(c.backends[0].hostname, "127.0.0.1");
    assert_eq!(c.backends[0].port, 55432);
    assert_eq!(c.backends[0].data_directory, "/data/pg0");
    assert_eq!(
        c.backends[1].flag,
        BackendFlag {
            disallow_to_failover: true,
            always_primary: true
        }
    );
    assert_eq!(c.backends[2].weight, 0.5);
    assert_eq!(c.backends[2].flag, BackendFlag::default());
    let h0 = c.health_check(0);
    assert_eq!(
        (h0.period, h0.timeout, h0.max_retries, h0.retry_delay),
        (5, 10, 3, 1)
    );
    assert_eq!(h0.user, "postgres");
    assert_eq!(h0.connect_timeout_ms, 10000);
    assert_eq!(c.health_check(1).period, 7);
    assert_eq!(c.health_check(2).user, "other");
    assert_eq!(c.health_check(2).connect_timeout_ms, 2000);
    assert_eq!(c.health_check(2).period, 5);
}

pub(crate) fn rows(c: &Config, name: &str) -> Vec<(String, String, String)> {
    c.show(name)
        .unwrap_or_else(|| panic!("{name}"))
        .into_iter()
        .map(|r| (r.item, r.value, r.description))
        .collect()
}

#[test]
fn show_matches_pgpool() {
    let c = parse(THREE_NODES).expect("parses");
    let hc = rows(&c, "health_check");
    assert_eq!(hc.len(), 32);
    assert_eq!(
        hc[0],
        (
            "health_check_period".into(),
            "5".into(),
            "Time interval in seconds between the health checks.".into()
        )
    );
    assert_eq!(hc[3].1, "*****");
    assert_eq!(hc[7].0, "connect_timeout");
    assert_eq!(hc[7].1, "10000");
    assert_eq!(
        hc[7].2,
        "Timeout in milliseconds before giving up connecting to backend."
    );
    assert_eq!(hc[8].0, "health_check_period0");
    assert_eq!(hc[8].1, "5");
    assert_eq!(hc[16].1, "7"); // health_check_period1
    assert_eq!(hc[11].1, "*****"); // health_check_password0

    let be = rows(&c, "backend");
    assert_eq!(be.len(), 18);
    let items: Vec<&str> = be[..6].iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        items,
        [
            "backend_hostname0",
            "backend_port0",
            "backend_weight0",
            "backend_data_directory0",
            "backend_application_name0",
            "backend_flag0"
        ]
    );
    assert_eq!(be[0].2, "hostname or IP address of PostgreSQL backend.");
    assert_eq!(be[1].1, "55432");
    assert_eq!(be[2].1, "1");
    assert_eq!(
        be[5],
        (
            "backend_flag0".into(),
            "ALLOW_TO_FAILOVER".into(),
            "Controls various backend behavior.".into()
        )
    );
    assert_eq!(be[11].1, "DISALLOW_TO_FAILOVER|ALWAYS_PRIMARY");

    assert_eq!(rows(&c, "port")[0].1, "9999");
    assert_eq!(rows(&c, "PORT")[0].0, "port");
    assert_eq!(rows(&c, "load_balance_mode")[0].1, "on");
    assert_eq!(rows(&c, "child_life_time")[0].1, "5min");
    assert_eq!(rows(&c, "reset_query_list")[0].1, "ABORT;DISCARD ALL");
    assert_eq!(rows(&c, "health_check_password")[0].1, "*****");
    assert_eq!(rows(&c, "backend_port2")[0].1, "55434");
    assert_eq!(rows(&c, "health_check_user2")[0].1, "other");
    assert!(c.show("nosuchparam").is_none());
    let all = rows(&c, "all");
    assert!(all.iter().any(|r| r.0 == "delegate_ip"));
    assert!(all.iter().any(|r| r.0 == "work_dir"));
    assert!(all.iter().any(|r| r.0 == "logdir"));
    assert!(!all.iter().any(|r| r.0 == "delegate_IP"));
    assert!(!all.iter().any(|r| r.0 == "fail_over_on_backend_error"));
    assert_eq!(
        all.iter().filter(|r| r.0 == "health_check_period").count(),
        1
    );
}

#[test]
fn session_set_and_reset() {
    let base = parse("client_idle_limit = 10\n").expect("parses");
    let mut s = base.clone();
    s.set_session("client_idle_limit", "30")
        .expect("session param");
    assert_eq!(s.client_idle_limit, 30);
    s.set_session("log_min_messages", "debug5")
        .expect("session param");
    s.set_session("allow_sql_comments", "on")
        .expect("session param");
    assert!(s.allow_sql_comments);
    assert!(s
        .set_session("port", "1234")
        .unwrap_err()
        .contains("cannot be changed"));
    assert!(s.set_session("log_min_messages", "loud").is_err());
    assert!(s
        .set_session("nosuch", "1")
        .unwrap_err()
        .contains("not found"));
    s.reset_session("client_idle_limit", &base).expect("reset");
    assert_eq!(s.client_idle_limit, 10);
    s.reset_session("all", &base).expect("reset all");
    assert_eq!(s.log_min_messages, "warning");
    assert!(!s.allow_sql_comments);
}

#[test]
fn reload_rules_and_unsupported() {
    let a = parse("port = 9999\nmax_pool = 4\nclient_idle_limit = 1\n").expect("parses");
    let b = parse("port = 9998\nmax_pool = 4\nclient_idle_limit = 2\nnum_init_children = 5\n")
        .expect("parses");
    let mut changes = a.restart_required_changes(&b);
    changes.sort_unstable();
    assert_eq!(changes, vec!["num_init_children", "port"]);
    assert!(a.restart_required_changes(&a).is_empty());

    let c =
        parse("memory_cache_enabled = on\nuse_watchdog = off\nhostname0 = 'pg1'\nheartbeat_device0 = 'eth1'\nwd_life_point = 5\n")
            .expect("parses");
    let mut u = c.unsupported_in_use();
    u.sort_unstable();
    assert_eq!(u, vec!["heartbeat_device"]);
}

#[test]
fn pool_passwd_path_is_relative_to_config() {
    let c = parse("pool_passwd = 'pool_passwd'\n").expect("parses");
    assert_eq!(
        c.pool_passwd_path(),
        Some(PathBuf::from("/etc/pool_passwd"))
    );
    let c = parse("pool_passwd = ''\n").expect("parses");
    assert_eq!(c.pool_passwd_path(), None);
    let c = parse("pool_passwd = '/x/pp'\n").expect("parses");
    assert_eq!(c.pool_passwd_path(), Some(PathBuf::from("/x/pp")));
}

#[test]
fn watchdog_and_heartbeat_groups() {
    let c = parse("hostname0 = 'a'\nwd_port0 = 9001\nhostname1 = 'b'\nheartbeat_hostname0 = 'a'\nheartbeat_device0 = 'eth0'\n")
        .expect("parses");
    assert_eq!(c.watchdog_nodes.len(), 2);
    assert_eq!(c.watchdog_nodes[0].wd_port, 9001);
    assert_eq!(c.watchdog_nodes[1].wd_port, 9000);
    assert_eq!(c.watchdog_nodes[1].pgpool_port, 9999);
    assert_eq!(c.heartbeats[0].port, 9694);
    assert_eq!(c.heartbeats[0].device, "eth0");
    assert_eq!(rows(&c, "watchdog").len(), 6);
    assert_eq!(rows(&c, "heartbeat").len(), 3);
}

/// `#name = value ...` -> `name = value ...`; other lines unchanged.
fn uncomment_assignment(l: &str) -> &str {
    match l.strip_prefix('#') {
        Some(r)
            if r.split(|c: char| c == '=' || c.is_whitespace())
                .next()
                .is_some_and(|n| {
                    !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
                && r.contains('=') =>
        {
            r
        }
        _ => l,
    }
}

fn load_if_present(p: &str) {
    let path = Path::new(p);
    if !path.exists() {
        eprintln!("skipping: {p} not present");
        return;
    }
    match std::fs::read_to_string(path) {
        Ok(_) => {
            let c = Config::load(path).unwrap_or_else(|e| panic!("{e}"));
            assert!(c.num_init_children > 0);
        }
        Err(e) => eprintln!("skipping {p}: {e}"),
    }
}

#[test]
fn debian_sample_loads() {
    load_if_present("/usr/share/doc/pgpool2/examples/pgpool.conf.sample");
    load_if_present("/etc/pgpool2/pgpool.conf");
    let p = Path::new("/usr/share/doc/pgpool2/examples/pgpool.conf.sample");
    if let Ok(text) = std::fs::read_to_string(p) {
        // every commented-out example line of the sample must parse too
        let all: String = text
            .lines()
            .map(uncomment_assignment)
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::parse(&all, p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.port, 5433);
        assert_eq!(c.backends.len(), 2);
        assert_eq!(c.backends[1].port, 5433);
        assert_eq!(
            c.reset_query_list,
            vec!["ABORT", "RESET ALL", "SET SESSION AUTHORIZATION DEFAULT"]
        );
        assert_eq!(c.authentication_timeout, 60);
        assert_eq!(c.child_life_time, 300);
        assert_eq!(c.log_file_mode, 0o600);
        assert_eq!(c.log_rotation_size, 10240);
        assert_eq!(c.unix_socket_directories, vec!["/var/run/postgresql"]);
        assert_eq!(c.watchdog_nodes.len(), 3);
        assert_eq!(c.heartbeats.len(), 3);
    }
}

#[test]
fn our_sample_loads_and_lists_every_parameter() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc/pgpool.conf.sample");
    let text = std::fs::read_to_string(&p).expect("etc/pgpool.conf.sample exists");
    let c = Config::parse(&text, &p).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.backends.is_empty() || c.backends.len() <= MAX_NODES);
    // every parameter appears (commented out) with its name
    for d in PARAMS.iter().filter(|d| d.flags & params::HIDE_IN_ALL == 0) {
        let needle = if d.group == Group::None && !d.accepts_suffix() {
            format!("{} =", d.display_name())
        } else {
            d.display_name().to_string()
        };
        assert!(text.contains(&needle), "sample lacks {}", d.name);
    }
    // and, uncommented, the sample's commented defaults equal the table's
    let uncommented: String = text
        .lines()
        .map(uncomment_assignment)
        .collect::<Vec<_>>()
        .join("\n");
    let u = Config::parse(&uncommented, &p).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(u.port, 9999);
    assert!(
        u.unsupported_in_use()
            .iter()
            .all(|n| ["hostname", "heartbeat_hostname"].contains(n)),
        "{:?}",
        u.unsupported_in_use()
    );
    // a parameter is marked "not implemented" in the sample exactly when it is not
    for line in text.lines() {
        let Some(name) = line
            .strip_prefix('#')
            .and_then(|l| l.split_once('='))
            .map(|(n, _)| n.trim())
            .filter(|n| !n.is_empty() && !n.contains(' '))
        else {
            continue;
        };
        let base = name.trim_end_matches(|c: char| c.is_ascii_digit());
        let Some(d) = PARAMS
            .iter()
            .find(|d| d.name == name || (d.group != Group::None && d.name == base))
        else {
            continue;
        };
        assert_eq!(
            line.contains("not implemented in pgpool-rs yet"),
            !d.implemented,
            "etc/pgpool.conf.sample: {line}"
        );
    }
}

#[test]
fn primary_routing_patterns_keep_escaped_separators() {
    let c = parse(
        r"primary_routing_query_pattern_list = 'SELECT \'a\'\;;SELECT 1\;;SELECT \* FROM t1\;;^.*t2.*\;$'
",
    )
    .unwrap();
    assert_eq!(
        c.primary_routing_query_pattern_list,
        [
            r"SELECT 'a'\;",
            r"SELECT 1\;",
            r"SELECT \* FROM t1\;",
            r"^.*t2.*\;$"
        ]
    );
}
