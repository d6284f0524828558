//! The common front end of the pcp_* tools: Pgpool-II's options, messages, password
//! prompt, output and exit codes (1 when connecting or authenticating fails; 0 after a
//! request, even one the server refused — its error is printed on stderr).

use std::ffi::OsString;
use std::io::Write;

use crate::client::{ConnectParams, Connection};
use crate::output;

/// Most backend nodes Pgpool-II supports (node ids 0..=128 pass the client's check).
const MAX_NUM_BACKENDS: i64 = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    AttachNode,
    DetachNode,
    NodeCount,
    NodeInfo,
    HealthCheckStats,
    PoolStatus,
    ProcCount,
    ProcInfo,
    PromoteNode,
    RecoveryNode,
    StopPgpool,
    WatchdogInfo,
    ReloadConfig,
    LogRotate,
    InvalidateQueryCache,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::AttachNode => "pcp_attach_node",
            Tool::DetachNode => "pcp_detach_node",
            Tool::NodeCount => "pcp_node_count",
            Tool::NodeInfo => "pcp_node_info",
            Tool::HealthCheckStats => "pcp_health_check_stats",
            Tool::PoolStatus => "pcp_pool_status",
            Tool::ProcCount => "pcp_proc_count",
            Tool::ProcInfo => "pcp_proc_info",
            Tool::PromoteNode => "pcp_promote_node",
            Tool::RecoveryNode => "pcp_recovery_node",
            Tool::StopPgpool => "pcp_stop_pgpool",
            Tool::WatchdogInfo => "pcp_watchdog_info",
            Tool::ReloadConfig => "pcp_reload_config",
            Tool::LogRotate => "pcp_log_rotate",
            Tool::InvalidateQueryCache => "pcp_invalidate_query_cache",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Tool::AttachNode => "attach a node from pgpool-II",
            Tool::DetachNode => "detach a node from pgpool-II",
            Tool::NodeCount => "display the total number of nodes under pgpool-II's control",
            Tool::NodeInfo => "display a pgpool-II node's information",
            Tool::HealthCheckStats => "display a pgpool-II health check stats data",
            Tool::PoolStatus => "display pgpool configuration and status",
            Tool::ProcCount => "display the list of pgpool-II child process PIDs",
            Tool::ProcInfo => "display a pgpool-II child process' information",
            Tool::PromoteNode => "promote a node as new main from pgpool-II",
            Tool::RecoveryNode => "recover a node",
            Tool::StopPgpool => "terminate pgpool-II",
            Tool::WatchdogInfo => "display a pgpool-II watchdog's information",
            Tool::ReloadConfig => "reload a pgpool-II config file",
            Tool::LogRotate => "rotate the Pgpool-II's log file",
            Tool::InvalidateQueryCache => "invalidate query cache",
        }
    }

    /// Short options besides the common h p U w W v d.
    fn extra_options(self) -> &'static str {
        match self {
            Tool::AttachNode | Tool::HealthCheckStats | Tool::RecoveryNode => "n",
            Tool::DetachNode => "ng",
            Tool::NodeInfo => "na",
            Tool::ProcInfo => "Pa",
            Tool::PromoteNode => "ngs",
            Tool::StopPgpool => "msa",
            Tool::WatchdogInfo => "n",
            Tool::ReloadConfig | Tool::LogRotate => "s",
            Tool::NodeCount | Tool::PoolStatus | Tool::ProcCount | Tool::InvalidateQueryCache => "",
        }
    }

    fn requires_node_id(self) -> bool {
        matches!(
            self,
            Tool::AttachNode
                | Tool::DetachNode
                | Tool::HealthCheckStats
                | Tool::PromoteNode
                | Tool::RecoveryNode
        )
    }

    fn has_scope(self) -> bool {
        matches!(
            self,
            Tool::StopPgpool | Tool::ReloadConfig | Tool::LogRotate
        )
    }

    /// The help text (Pgpool-II prints it on stderr).
    pub fn usage(self) -> String {
        let p = self.name();
        let mut s = format!("{p} - {}\nUsage:\n", self.description());
        let arg = if self.requires_node_id() {
            "[node-id]"
        } else if self == Tool::WatchdogInfo {
            "[watchdog-id]"
        } else if self == Tool::ProcInfo {
            "[process-id]"
        } else {
            ""
        };
        s.push_str(&format!("{p} [OPTION...] {arg}\nOptions:\n"));
        s.push_str("  -U, --username=NAME    username for PCP authentication\n");
        s.push_str("  -h, --host=HOSTNAME    pgpool-II host\n");
        s.push_str("  -p, --port=PORT        PCP port number\n");
        s.push_str("  -w, --no-password      never prompt for password\n");
        s.push_str(
            "  -W, --password         force password prompt (should happen automatically)\n",
        );
        if self.requires_node_id() || self == Tool::NodeInfo {
            s.push_str("  -n, --node-id=NODEID   ID of a backend node\n");
        }
        if self == Tool::NodeInfo {
            s.push_str("  -a, --all              display all backend nodes information\n");
        }
        if self == Tool::StopPgpool {
            s.push_str(
                "  -m, --mode=MODE        MODE can be \"smart\", \"fast\", or \"immediate\"\n",
            );
        }
        if self.has_scope() {
            s.push_str("  -s, --scope=SCOPE      SCOPE can be \"cluster\", or \"local\"\n");
            s.push_str(
                "                         cluster scope do operations on all Pgpool-II nodes\n",
            );
            s.push_str("                         part of the watchdog cluster\n");
        }
        if matches!(self, Tool::PromoteNode | Tool::DetachNode) {
            s.push_str("  -g, --gracefully       promote gracefully (optional)\n");
        }
        if self == Tool::PromoteNode {
            s.push_str(
                "  -s, --switchover       switchover primary to specified node (optional)\n",
            );
        }
        if self == Tool::WatchdogInfo {
            s.push_str("  -n, --watchdog-id=ID   ID of a other pgpool to get information for\n");
            s.push_str("                         ID 0 for the local watchdog\n");
            s.push_str(
                "                         If omitted then get information of all watchdog nodes\n",
            );
        }
        if self == Tool::ProcInfo {
            s.push_str("  -P, --process-id=PID   PID of the child process to get information for (optional)\n");
            s.push_str("  -a, --all              display all child processes and their available connection slots\n");
        }
        s.push_str("  -d, --debug            enable debug message (optional)\n");
        s.push_str("  -v, --verbose          output verbose messages\n");
        s.push_str("  -?, --help             print this help\n\n");
        s
    }
}

/// Parsed command line.
#[derive(Debug, Clone)]
pub struct Args {
    pub params: ConnectParams,
    pub need_password: bool,
    pub node: i64,
    pub pid: i64,
    pub all: bool,
    pub verbose: bool,
    pub gracefully: bool,
    pub switchover: bool,
    pub mode: u8,
    pub scope: u8,
}

/// What parsing decided: run with these arguments, or exit at once.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Args>),
    /// Text for stdout, text for stderr, exit code.
    Exit(String, String, i32),
}

fn try_help(p: &str) -> String {
    format!("Try \"{p} --help\" for more information.\n\n")
}

/// Parses the arguments after the program name.
pub fn parse(tool: Tool, argv: Vec<OsString>) -> Parsed {
    use lexopt::prelude::*;
    let p = tool.name();
    match argv.first().and_then(|a| a.to_str()) {
        Some("--help") | Some("-?") => return Parsed::Exit(String::new(), tool.usage(), 0),
        Some("-V") | Some("--version") => {
            return Parsed::Exit(String::new(), format!("{p} (pgpool-II) 4.3.5\n"), 0)
        }
        _ => {}
    }
    let mut a = Args {
        params: ConnectParams {
            port: 9898,
            ..Default::default()
        },
        need_password: true,
        node: -1,
        pid: 0,
        all: false,
        verbose: false,
        gracefully: false,
        switchover: false,
        mode: b's',
        scope: b'l',
    };
    let extra = tool.extra_options();
    let mut positional: Vec<String> = Vec::new();
    let mut parser = lexopt::Parser::from_args(argv);
    let bad = |msg: String| Parsed::Exit(String::new(), format!("{msg}\n{}", try_help(p)), 1);
    loop {
        let arg = match parser.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(e) => return bad(format!("{p}: {e}")),
        };
        // Long options map to their short letters, as getopt_long's table does.
        let letter = match &arg {
            Short(c) => *c,
            Long(l) => match *l {
                "help" => '?',
                "debug" => 'd',
                "version" => 'V',
                "host" => 'h',
                "port" => 'p',
                "process-id" => 'P',
                "username" => 'U',
                "no-password" => 'w',
                "password" => 'W',
                "mode" => 'm',
                "scope" => 's',
                "gracefully" => 'g',
                "switchover" => 's',
                "verbose" => 'v',
                "all" => 'a',
                "node-id" | "watchdog-id" => 'n',
                other => return bad(format!("{p}: unrecognized option '--{other}'")),
            },
            Value(v) => {
                positional.push(v.to_string_lossy().into_owned());
                continue;
            }
        };
        let allowed = "hpUwWvd".contains(letter) || extra.contains(letter);
        if !allowed {
            if let Long(l) = &arg {
                if letter == 's' || letter == 'm' {
                    let v = parser
                        .optional_value()
                        .map(|v| v.to_string_lossy().into_owned());
                    return Parsed::Exit(
                        String::new(),
                        format!(
                            "Invalid argument \"{}\", Try \"{p} --help\" for more information.\n",
                            v.unwrap_or_default()
                        ),
                        1,
                    );
                }
                return bad(format!("{p}: unrecognized option '--{l}'"));
            }
            return bad(format!("{p}: invalid option -- '{letter}'"));
        }
        let takes_value = match letter {
            'h' | 'p' | 'U' | 'n' | 'P' | 'm' => true,
            's' => tool.has_scope(),
            _ => false,
        };
        let value = if takes_value {
            match parser.value() {
                Ok(v) => v.to_string_lossy().into_owned(),
                Err(_) => return bad(format!("{p}: option requires an argument -- '{letter}'")),
            }
        } else {
            String::new()
        };
        match letter {
            'd' => a.params.debug = true,
            'a' => a.all = true,
            'w' => a.need_password = false,
            'W' => a.need_password = true,
            'g' => a.gracefully = true,
            'v' => a.verbose = true,
            's' if tool.has_scope() => match value.as_str() {
                "c" | "cluster" => a.scope = b'c',
                "l" | "local" => a.scope = b'l',
                _ => {
                    return Parsed::Exit(
                        String::new(),
                        format!("{p}: Invalid command scope \"{value}\", must be either \"cluster\" or \"local\" \n"),
                        1,
                    )
                }
            },
            's' => a.switchover = true,
            'm' => match value.as_str() {
                "s" | "smart" => a.mode = b's',
                "f" | "fast" => a.mode = b'f',
                "i" | "immediate" => a.mode = b'i',
                _ => {
                    return Parsed::Exit(
                        String::new(),
                        format!("{p}: Invalid shutdown mode \"{value}\", must be either \"smart\" \"immediate\" or \"fast\" \n"),
                        1,
                    )
                }
            },
            'n' => {
                a.node = crate::frame::atoi(&value);
                if tool == Tool::WatchdogInfo {
                    if a.node < 0 {
                        return Parsed::Exit(String::new(), format!("{p}: Invalid watchdog-id \"{value}\", must be a positive number or zero for a local watchdog node\n"), 0);
                    }
                } else if a.node < 0 || a.node > MAX_NUM_BACKENDS {
                    return Parsed::Exit(
                        String::new(),
                        format!("{p}: Invalid node-id \"{value}\", must be between 0 and {MAX_NUM_BACKENDS}\n"),
                        0,
                    );
                }
            }
            'p' => {
                let port = crate::frame::atoi(&value);
                if port <= 1024 || port > 65535 {
                    return Parsed::Exit(
                        String::new(),
                        format!("{p}: Invalid port number \"{value}\", must be between 1024 and 65535\n"),
                        0,
                    );
                }
                a.params.port = port as u16;
            }
            'P' => {
                a.pid = crate::frame::atoi(&value);
                if a.pid <= 0 {
                    return Parsed::Exit(
                        String::new(),
                        format!("{p}: Invalid process-id \"{value}\", must be greater than 0\n"),
                        0,
                    );
                }
            }
            'h' => a.params.host = Some(value),
            'U' => a.params.user = Some(value),
            _ => return bad(format!("{p}: invalid option -- '{letter}'")),
        }
    }
    let mut warnings = String::new();
    for v in positional {
        if tool == Tool::ProcInfo && a.pid <= 0 {
            a.pid = crate::frame::atoi(&v);
            if a.pid <= 0 {
                return Parsed::Exit(
                    String::new(),
                    format!("{p}: Invalid process-id \"{v}\", must be greater than 0\n"),
                    0,
                );
            }
        } else if tool == Tool::WatchdogInfo && a.node < 0 {
            a.node = crate::frame::atoi(&v);
            if a.node < 0 {
                return Parsed::Exit(String::new(), format!("{p}: Invalid watchdog-id \"{v}\", must be a positive number or zero for local watchdog node\n"), 0);
            }
        } else if (tool.requires_node_id() || tool == Tool::NodeInfo) && a.node < 0 {
            a.node = crate::frame::atoi(&v);
            if a.node < 0 || a.node > MAX_NUM_BACKENDS {
                return Parsed::Exit(
                    String::new(),
                    format!(
                        "{p}: Invalid node-id \"{v}\", must be between 0 and {MAX_NUM_BACKENDS}\n"
                    ),
                    0,
                );
            }
        } else {
            warnings.push_str(&format!(
                "{p}: Warning: extra command-line argument \"{v}\" ignored\n"
            ));
        }
    }
    if !warnings.is_empty() {
        eprint!("{warnings}");
    }
    if a.node < 0 && tool.requires_node_id() {
        return Parsed::Exit(
            String::new(),
            format!("{p}: missing node-id\n{}", try_help(p)),
            1,
        );
    }
    Parsed::Run(Box::new(a))
}

/// Reads a password from the terminal without echo ("Password: " prompt).
pub fn prompt_password(prompt: &str) -> String {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    use std::io::BufRead;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty");
    let mut line = String::new();
    match tty {
        Ok(mut t) => {
            let _ = t.write_all(prompt.as_bytes());
            let _ = t.flush();
            let saved = tcgetattr(&t).ok();
            if let Some(s) = &saved {
                let mut quiet = s.clone();
                quiet.local_flags.remove(LocalFlags::ECHO);
                let _ = tcsetattr(&t, SetArg::TCSAFLUSH, &quiet);
            }
            let mut r = std::io::BufReader::new(&t);
            let _ = r.read_line(&mut line);
            if let Some(s) = &saved {
                let _ = tcsetattr(&t, SetArg::TCSAFLUSH, s);
            }
            let _ = (&t).write_all(b"\n");
        }
        Err(_) => {
            eprint!("{prompt}");
            let _ = std::io::stdin().lock().read_line(&mut line);
            eprintln!();
        }
    }
    while line.ends_with('\n') || line.ends_with('\r') {
        line.pop();
    }
    line.chars().take(100).collect()
}

/// Runs one request; Ok(stdout text) or Err(stderr text).
fn execute(tool: Tool, a: &Args, c: &mut Connection) -> Result<String, String> {
    let ok = || format!("{} -- Command Successful\n", tool.name());
    match tool {
        Tool::AttachNode => c.attach_node(a.node).map(|_| ok()),
        Tool::DetachNode => c.detach_node(a.node, a.gracefully).map(|_| ok()),
        Tool::NodeCount => c.node_count().map(|n| output::node_count(n, a.verbose)),
        Tool::NodeInfo => c
            .node_info(a.node)
            .map(|n| output::node_info(&n, a.all, a.verbose)),
        Tool::HealthCheckStats => c
            .health_check_stats(a.node)
            .map(|v| output::health_check_stats(&v, a.verbose)),
        Tool::PoolStatus => c.pool_status().map(|r| output::pool_status(&r, a.verbose)),
        Tool::ProcCount => c.proc_count().map(|p| output::proc_count(&p, a.verbose)),
        Tool::ProcInfo => c
            .proc_info(a.pid)
            .map(|r| output::proc_info(&r, a.all, a.verbose)),
        Tool::PromoteNode => c
            .promote_node(a.node, a.gracefully, a.switchover)
            .map(|_| ok()),
        Tool::RecoveryNode => c.recovery_node(a.node).map(|_| ok()),
        Tool::StopPgpool => c.stop_pgpool(a.mode, a.scope).map(|_| ok()),
        Tool::ReloadConfig => c.reload_config(a.scope).map(|_| ok()),
        Tool::LogRotate => c.log_rotate(a.scope).map(|_| ok()),
        Tool::InvalidateQueryCache => c.invalidate_query_cache().map(|_| ok()),
        Tool::WatchdogInfo => c
            .watchdog_info(a.node)
            .and_then(|json| crate::output::watchdog_info(&json, a.verbose)),
    }
}

/// Entry point of every pcp_* binary; returns the exit code.
pub fn run(tool: Tool) -> i32 {
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mut a = match parse(tool, argv) {
        Parsed::Run(a) => a,
        Parsed::Exit(out, err, code) => {
            print!("{out}");
            eprint!("{err}");
            return code;
        }
    };
    if a.need_password {
        a.params.password = Some(prompt_password("Password: "));
    }
    let mut conn = match Connection::connect(&a.params) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    match execute(tool, &a, &mut conn) {
        Ok(text) => {
            print!("{text}");
            let _ = std::io::stdout().flush();
        }
        Err(e) => eprintln!("{e}"),
    }
    conn.disconnect();
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn help_matches_reference() {
        let h = Tool::DetachNode.usage();
        assert!(h.starts_with(
            "pcp_detach_node - detach a node from pgpool-II\nUsage:\npcp_detach_node [OPTION...] [node-id]\nOptions:\n"
        ));
        assert!(h.contains("  -g, --gracefully       promote gracefully (optional)\n  -d, --debug"));
        assert!(Tool::NodeCount
            .usage()
            .contains("pcp_node_count [OPTION...] \nOptions:\n"));
    }

    #[test]
    fn options() {
        match parse(
            Tool::NodeInfo,
            args(&[
                "-h",
                "127.0.0.1",
                "-p",
                "9898",
                "-U",
                "x",
                "-w",
                "-n",
                "1",
                "-v",
            ]),
        ) {
            Parsed::Run(a) => {
                assert_eq!(a.node, 1);
                assert_eq!(a.params.port, 9898);
                assert!(!a.need_password && a.verbose);
            }
            other => panic!("{other:?}"),
        }
        match parse(Tool::AttachNode, args(&["-w", "2"])) {
            Parsed::Run(a) => assert_eq!(a.node, 2),
            other => panic!("{other:?}"),
        }
        match parse(Tool::AttachNode, args(&["-w"])) {
            Parsed::Exit(_, e, 1) => assert!(e.starts_with("pcp_attach_node: missing node-id\n")),
            other => panic!("{other:?}"),
        }
        match parse(Tool::PromoteNode, args(&["-w", "-n", "1", "-s", "-g"])) {
            Parsed::Run(a) => assert!(a.switchover && a.gracefully),
            other => panic!("{other:?}"),
        }
        match parse(
            Tool::StopPgpool,
            args(&["-w", "-m", "fast", "-s", "cluster"]),
        ) {
            Parsed::Run(a) => assert_eq!((a.mode, a.scope), (b'f', b'c')),
            other => panic!("{other:?}"),
        }
        match parse(Tool::NodeCount, args(&["-x"])) {
            Parsed::Exit(_, e, 1) => {
                assert!(e.starts_with("pcp_node_count: invalid option -- 'x'\n"))
            }
            other => panic!("{other:?}"),
        }
        match parse(Tool::NodeCount, args(&["-p", "80"])) {
            Parsed::Exit(_, e, 0) => assert!(e.contains("Invalid port number \"80\"")),
            other => panic!("{other:?}"),
        }
    }
}
