//! Unit tests of what Pgpool-II 4.4-4.7 added to pgpool.conf: the new parameters, renamed
//! ones under both names, defaults that depend on the release a file was written for, the
//! time-based delay limit and `pgpool --describe-config`.

use super::*;
use crate::tests::{parse, rows};

#[test]
fn renamed_parameters_warn_and_answer_under_both_names() {
    let c = parse("# Pgpool-II 4.7 configuration file\nlogdir = '/var/log/pgpool'\ndelegate_IP = '10.0.0.9'\nfail_over_on_backend_error = off\nsocket_dir = '/run'\n")
        .expect("parses");
    assert_eq!(c.work_dir, "/var/log/pgpool");
    assert_eq!(c.delegate_ip, "10.0.0.9");
    assert_eq!(c.unix_socket_directories, vec!["/run"]);
    let n: Vec<(usize, &str)> = c
        .notices()
        .iter()
        .map(|n| (n.line, n.message.as_str()))
        .collect();
    assert_eq!(
        n,
        vec![
            (2, "logdir is changed to work_dir"),
            (3, "delegate_IP is changed to delegate_ip"),
            (
                4,
                "fail_over_on_backend_error is changed to failover_on_backend_error"
            ),
        ]
    );
    assert_eq!(
        c.notices()[0].detail,
        "if logdir is specified, the value will be set to work_dir"
    );
    // logdir was the name up to 4.6, delegate_IP up to 4.3: no warning for such a file
    let c = parse("# Pgpool-II 4.6 configuration file\nlogdir = '/x'\ndelegate_IP = ''\n")
        .expect("parses");
    assert_eq!(c.notices().len(), 1);
    assert_eq!(c.work_dir, "/x");
    let c = parse("logdir = '/x'\ndelegate_IP = ''\n").expect("parses");
    assert!(c.notices().is_empty(), "{:?}", c.notices());
    // the new spellings warn about nothing
    let c = parse("work_dir = '/w'\ndelegate_ip = '1.2.3.4'\n").expect("parses");
    assert!(c.notices().is_empty());
    assert_eq!(rows(&c, "work_dir")[0].1, "/w");
    assert_eq!(
        rows(&c, "logdir")[0],
        (
            "logdir".into(),
            "/w".into(),
            "Old config parameter for work_dir.".into()
        )
    );
    assert_eq!(rows(&c, "delegate_IP")[0].1, "1.2.3.4");
}

#[test]
fn parameters_of_4_4_to_4_7() {
    let c = parse(
        "# Pgpool-II 4.7 configuration file\n\
         process_management_mode = dynamic\n\
         process_management_strategy = LAZY\n\
         min_spare_children = 2\nmax_spare_children = 4\n\
         unix_socket_group = 'postgres'\nunix_socket_permissions = 0770\n\
         log_backend_messages = terse\nlog_pcp_processes = on\n\
         recovery_database = 'template1'\ndelay_threshold_by_time = 1s\n\
         wd_listen_address = '*'\nwd_listen_port = 9001\n\
         wd_heartbeat_listen_addresses = '*'\nwd_heartbeat_listen_port = 9695\n\
         trusted_server_command = 'ping -c1 %h'\n",
    )
    .expect("parses");
    assert_eq!(c.written_for(), (4, 7));
    assert_eq!(
        c.process_management_mode,
        crate::ProcessManagementMode::Dynamic
    );
    assert_eq!(
        c.process_management_strategy,
        crate::ProcessManagementStrategy::Lazy
    );
    assert_eq!((c.min_spare_children, c.max_spare_children), (2, 4));
    assert_eq!(c.unix_socket_permissions, 0o770);
    assert_eq!(rows(&c, "unix_socket_permissions")[0].1, "0770");
    assert_eq!(c.delay_threshold_by_time, 1000);
    assert_eq!(rows(&c, "delay_threshold_by_time")[0].1, "1s");
    assert_eq!(c.log_backend_messages, "terse");
    assert!(c.log_pcp_processes);
    assert_eq!(c.wd_heartbeat_listen_port, 9695);
    let e = parse("process_management_mode = sometimes\n").unwrap_err();
    assert!(e.message.contains("static, dynamic"), "{e}");
    let e = parse("unix_socket_permissions = 01777\n").unwrap_err();
    assert!(e.message.contains("outside the valid range"), "{e}");
    // of these only backend message logging is not implemented
    assert_eq!(c.unsupported_in_use(), vec!["log_backend_messages"]);
    let all = rows(&Config::default(), "all");
    for name in [
        "delay_threshold_by_time",
        "log_backend_messages",
        "log_pcp_processes",
        "min_spare_children",
        "max_spare_children",
        "process_management_mode",
        "process_management_strategy",
        "recovery_database",
        "trusted_server_command",
        "unix_socket_group",
        "unix_socket_permissions",
        "wd_listen_address",
        "wd_listen_port",
        "wd_heartbeat_listen_addresses",
        "wd_heartbeat_listen_port",
        "work_dir",
        "user_redirect_preference_list",
    ] {
        assert!(all.iter().any(|r| r.0 == name), "SHOW ALL lacks {name}");
    }
}

#[test]
fn defaults_follow_the_release_a_file_was_written_for() {
    // 4.7 (header): empty users, log_pcp_processes off, recovery in postgres
    let c = parse("# Pgpool-II 4.7 configuration file\nport = 9999\n").expect("parses");
    assert_eq!(c.sr_check_user, "");
    assert_eq!(c.health_check(0).user, "");
    assert!(!c.log_pcp_processes);
    assert_eq!(c.recovery_database, "postgres");
    assert!(c.unsupported_in_use().is_empty());
    // 4.5 (header): 'nobody', PCP processes logged, template1
    let c = parse("# --\n# Pgpool-II 4.5 configuration file\n# --\nport = 9999\n").expect("parses");
    assert_eq!(c.written_for(), (4, 5));
    assert_eq!(c.named_release(), Some((4, 5)));
    assert_eq!(c.sr_check_user, "nobody");
    assert_eq!(c.recovery_user, "nobody");
    assert_eq!(c.wd_lifecheck_user, "nobody");
    assert_eq!(c.health_check(1).user, "nobody");
    assert!(c.log_pcp_processes);
    assert_eq!(c.recovery_database, "template1");
    // an old default is no reason to report a parameter as in use
    assert!(
        c.unsupported_in_use().is_empty(),
        "{:?}",
        c.unsupported_in_use()
    );
    // what the file sets wins
    let c = parse(
        "# Pgpool-II 4.5 configuration file\nsr_check_user = 'me'\nlog_pcp_processes = off\n",
    )
    .expect("parses");
    assert_eq!(c.sr_check_user, "me");
    assert!(!c.log_pcp_processes);
    // no header: the newest release whose parameters are used, else 4.3
    assert_eq!(
        parse("port = 9999\n").expect("parses").written_for(),
        (4, 3)
    );
    let c = parse("work_dir = '/tmp'\n").expect("parses");
    assert_eq!((c.written_for(), c.sr_check_user.as_str()), ((4, 7), ""));
    // only a header names the release (PCP record layouts follow it)
    assert_eq!(c.named_release(), None);
    // 4.4 read a bare delay_threshold_by_time as seconds, 4.5 on as milliseconds
    let c =
        parse("# Pgpool-II 4.4 configuration file\ndelay_threshold_by_time = 2\n").expect("parses");
    assert_eq!(c.delay_threshold_by_time, 2000);
    let c = parse("# Pgpool-II 4.4 configuration file\ndelay_threshold_by_time = 20ms\n")
        .expect("parses");
    assert_eq!(c.delay_threshold_by_time, 20);
    let c =
        parse("# Pgpool-II 4.5 configuration file\ndelay_threshold_by_time = 2\n").expect("parses");
    assert_eq!(c.delay_threshold_by_time, 2);
}

#[test]
fn delay_limit_in_bytes_or_microseconds() {
    let c = parse("delay_threshold = 10000\n").expect("parses");
    assert!(!c.delay_by_time());
    assert_eq!(c.delay_limit(), 10000);
    let c = parse("delay_threshold = 10000\ndelay_threshold_by_time = 1500ms\n").expect("parses");
    assert!(c.delay_by_time());
    assert_eq!(c.delay_limit(), 1_500_000);
    assert!(parse("delay_threshold_by_time = -1\n").is_err());
}

#[test]
fn describe_config_lists_every_parameter_and_old_name() {
    let text = describe_config();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + PARAMS.len() + params::ALIASES.len());
    assert!(lines.iter().all(|l| l.split('\t').count() == 9), "{text}");
    let line = |name: &str| {
        lines
            .iter()
            .find(|l| l.split('\t').next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing"))
            .to_string()
    };
    assert_eq!(
        line("process_management_strategy"),
        "process_management_strategy\treload\tenum\tgentle\t\t\taggressive,gentle,lazy\tyes\tchild process management strategy."
    );
    assert!(line("unix_socket_permissions")
        .starts_with("unix_socket_permissions\trestart\tinteger\t0777\t0\t511\t"));
    assert!(line("delay_threshold_by_time").contains("integer (ms)"));
    assert!(line("health_check_user[N]").contains("\tstring\t"));
    assert!(line("backend_hostnameN").contains("\treload\t"));
    assert!(line("logdir").contains("\talias\t"));
    assert!(line("wd_listen_port").contains("\tyes\t"));
    assert!(line("wd_remove_shutdown_nodes").contains("\tno\t"));
}
