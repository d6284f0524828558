//! `wd_cli`: Pgpool-II's command line for an external lifecheck. It reads the
//! watchdog's node list from the command socket (`--info`) or reports a node DEAD or
//! ALIVE (`--inform`), with Pgpool-II's options, messages and output; the socket and
//! its packets are `watchdog::ipc`'s, so it talks to Pgpool-II's watchdog as well.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use watchdog::ipc::{self, Packet};

const USAGE: &str = "
Watchdog CLI for pgpool-rs (compatible with Pgpool-II's wd_cli)

Usage:
  wd_cli [ operation] [ options] [node search criteria]

 Operations:
  -i, --info                  Get the node status for nodes based on node search criteria
  -I, --inform=NEW-STATUS     Inform Pgpool-II about new watchdog node status
                              Allowed values are DEAD and ALIVE

 Node search options:
  -a, --all                Search all nodes (only available with --info option)
  -n, --node-id=ID         Search watchdog node with node_id
  -N, --node-name=Name     Search watchdog node with name
  -H, --node-host=Host     Search watchdog node with Host
  -P, --node-port=port     Search watchdog node with wd_port

 Options:
  -f, --config-file=CONFIG_FILE
                      Set the path to the pgpool.conf configuration file
  -k, --auth-key=KEY
                      watchdog auth key
                      This over rides the pgpool.conf->wd_authkey value
  -s, --socket-dir=WD_IPC_SOCKET_DIRECTORY
                      Path to the WD IPC socket directory
                      This over rides the pgpool.conf->wd_ipc_socket_dir value
  -p, --ipc-port=WD_IPC_PORT
                      Port number of watchdog IPC socket
                      This over rides the pgpool.conf->wd_port value
  -m, --message=message string
                      Message to be passed to Pgpool-II along with new node status
  -v, --verbose       Output verbose messages
  -V, --version       Output Version information
  -d, --debug         Enable debug output
  -h, --help          Print this help

";

/// How long the watchdog may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Options {
    info: bool,
    inform: Option<bool>,
    all: bool,
    node_id: Option<i64>,
    node_name: Option<String>,
    node_host: Option<String>,
    node_port: Option<i64>,
    config: Option<String>,
    authkey: Option<String>,
    socket_dir: Option<String>,
    port: Option<u16>,
    message: Option<String>,
    verbose: bool,
    debug: bool,
}

/// One node of the watchdog's list.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    id: i64,
    state: i64,
    state_name: String,
    name: String,
    host: String,
    wd_port: i64,
    pgpool_port: i64,
}

fn nodes_from_json(text: &str) -> Result<Vec<Node>, String> {
    let text = text.trim_end_matches('\0');
    let root: Value =
        serde_json::from_str(text).map_err(|_| "unable to parse json data for node list")?;
    let list = root
        .get("WatchdogNodes")
        .and_then(Value::as_array)
        .ok_or("invalid json data: WatchdogNodes array not found")?;
    let int = |n: &Value, k: &str| n.get(k).and_then(Value::as_i64).unwrap_or(0);
    let text = |n: &Value, k: &str| n.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    Ok(list
        .iter()
        .map(|n| Node {
            id: int(n, "ID"),
            state: int(n, "State"),
            state_name: text(n, "StateName"),
            name: text(n, "NodeName"),
            host: text(n, "HostName"),
            wd_port: int(n, "WdPort"),
            pgpool_port: int(n, "PgpoolPort"),
        })
        .collect())
}

fn node_text(n: &Node, verbose: bool) -> String {
    if verbose {
        format!(
            "Node ID:           {}\nNode Status code:  {}\nNode Status:       {}\nNode Name:         {}\nNode Host:         {}\nNode WD Port:      {}\nNode Pgpool Port:  {}\n\n",
            n.id, n.state, n.state_name, n.name, n.host, n.wd_port, n.pgpool_port
        )
    } else {
        // The second field is the lifecheck's own node state, never set in wd_cli.
        format!(
            "{} 0 \"{}\"\"{}\"\"{}\" {} {}\n",
            n.id, n.state_name, n.name, n.host, n.wd_port, n.pgpool_port
        )
    }
}

fn cluster_text(nodes: &[Node], include_nodes: bool, verbose: bool) -> String {
    let mut out = format!(
        "Total Watchdog nodes configured for lifecheck:    {}\n",
        nodes.len()
    );
    if verbose {
        out.push_str("*****************\n");
    }
    if include_nodes {
        for n in nodes {
            out.push_str(&node_text(n, verbose));
        }
    }
    out
}

fn matches(n: &Node, o: &Options) -> bool {
    o.node_id.is_none_or(|id| id == n.id)
        && o.node_port.is_none_or(|p| p == n.wd_port)
        && o.node_name
            .as_ref()
            .is_none_or(|s| s.eq_ignore_ascii_case(&n.name))
        && o.node_host
            .as_ref()
            .is_none_or(|s| s.eq_ignore_ascii_case(&n.host))
}

/// Sends one packet; with `wait`, reads the answer.
fn exchange(path: &str, p: &Packet, wait: bool) -> Result<Option<Packet>, String> {
    let mut s = UnixStream::connect(path).map_err(|e| {
        format!("failed to connect to watchdog command server socket \"{path}\": {e}")
    })?;
    s.write_all(&p.encode())
        .map_err(|e| format!("error writing to IPC socket: {e}"))?;
    if !wait {
        return Ok(None);
    }
    let _ = s.set_read_timeout(Some(ANSWER_TIMEOUT));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some((answer, _)) = Packet::decode(&buf)? {
            return Ok(Some(answer));
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err("the watchdog closed the IPC socket without an answer".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("error reading from IPC socket: {e}")),
        }
    }
}

fn parse(argv: Vec<OsString>) -> Result<Options, (String, i32)> {
    use lexopt::prelude::*;
    let mut o = Options::default();
    let mut p = lexopt::Parser::from_args(argv);
    let bad = |m: String| (m, 1);
    while let Some(arg) = p.next().map_err(|e| bad(format!("ERROR: {e}\n")))? {
        let val = |p: &mut lexopt::Parser| {
            p.value()
                .map(|v| v.to_string_lossy().into_owned())
                .map_err(|e| bad(format!("ERROR: {e}\n")))
        };
        let number = |v: &str, what: &str| {
            v.parse::<i64>().map_err(|_| {
                (
                    format!("ERROR: Invalid value {v}, {what} can only contain numeric values\n"),
                    1,
                )
            })
        };
        match arg {
            Short('h') | Long("help") => return Err((USAGE.to_string(), 0)),
            Short('V') | Long("version") => {
                return Err((
                    format!("wd_cli (pgpool-rs) {}\n", env!("CARGO_PKG_VERSION")),
                    0,
                ))
            }
            Short('d') | Long("debug") => o.debug = true,
            Short('v') | Long("verbose") => o.verbose = true,
            Short('a') | Long("all") => o.all = true,
            Short('i') | Long("info") => {
                if o.inform.is_some() {
                    return Err(bad("ERROR: Invalid option, 'info' and 'inform' are mutually exclusive options\n".into()));
                }
                o.info = true;
            }
            Short('I') | Long("inform") => {
                if o.info {
                    return Err(bad("ERROR: Invalid option, 'info' and 'inform' are mutually exclusive options\n".into()));
                }
                let v = val(&mut p)?;
                o.inform = Some(match v.to_ascii_uppercase().as_str() {
                    "DEAD" => false,
                    "ALIVE" => true,
                    _ => {
                        return Err(bad(format!(
                        "ERROR: Invalid node status \"{v}\", Allowed options are DEAD or ALIVE''\n"
                    )))
                    }
                });
            }
            Short('n') | Long("node-id") => o.node_id = Some(number(&val(&mut p)?, "node-id")?),
            Short('N') | Long("node-name") => o.node_name = Some(val(&mut p)?),
            Short('H') | Long("node-host") => o.node_host = Some(val(&mut p)?),
            Short('P') | Long("node-port") => {
                o.node_port = Some(number(&val(&mut p)?, "node-port")?)
            }
            Short('s') | Long("socket-dir") => o.socket_dir = Some(val(&mut p)?),
            Short('m') | Long("message") => o.message = Some(val(&mut p)?),
            Short('f') | Long("config-file") => o.config = Some(val(&mut p)?),
            Short('k') | Long("auth-key") => o.authkey = Some(val(&mut p)?),
            Short('p') | Long("ipc-port") => {
                let v = val(&mut p)?;
                let n = number(&v, "port")?;
                o.port = Some(u16::try_from(n).ok().filter(|&p| p >= 1024).ok_or_else(|| {
                    bad(format!("ERROR: Invalid port number \"{v}\", must be between 1024 and 65535\n"))
                })?);
            }
            _ => {
                return Err(bad("ERROR: unrecognized option
Try \"wd_cli --help\" for more information.

"
                .to_string()))
            }
        }
    }
    if !o.info && o.inform.is_none() {
        return Err(bad(
            "ERROR: Missing operation. Try wd_cli --help\" for more information.\n\n".into(),
        ));
    }
    let criteria = o.node_id.is_some()
        || o.node_name.is_some()
        || o.node_host.is_some()
        || o.node_port.is_some();
    if o.inform.is_some() && o.all {
        return Err(bad("ERROR: Invalid option \"-a --all\" for inform status operation. Try wd_cli --help\" for more information.\n\n".into()));
    }
    if o.inform.is_some() && !criteria {
        return Err(bad(
            "ERROR: Missing node search criteria. Try wd_cli --help\" for more information.\n\n"
                .into(),
        ));
    }
    Ok(o)
}

/// `wd_cli`; returns the exit code.
pub fn main(argv: Vec<OsString>) -> i32 {
    let mut o = match parse(argv) {
        Ok(o) => o,
        Err((msg, code)) => {
            eprint!("{msg}");
            return code;
        }
    };
    if let Some(file) = o.config.clone() {
        let cfg = match config::Config::load(Path::new(&file)) {
            Ok(c) => c,
            Err(e) => {
                eprint!("{e}\nERROR: Unable to get configuration. Exiting...\n\n");
                return 1;
            }
        };
        let own_port = config::node_id::read_node_id(&cfg)
            .ok()
            .and_then(|id| cfg.watchdog_nodes.get(id).map(|w| w.wd_port));
        o.authkey.get_or_insert(cfg.wd_authkey.clone());
        if o.port.is_none() {
            o.port = own_port;
        }
        o.socket_dir.get_or_insert(cfg.wd_ipc_socket_dir.clone());
    }
    let port = o.port.unwrap_or(9898);
    let dir = o.socket_dir.clone().unwrap_or_else(|| "/tmp".into());
    let key = o.authkey.clone().unwrap_or_default();
    let path = ipc::socket_path(&dir, port);
    if o.debug {
        eprintln!("DEBUG: setting IPC address to {dir}:{port}");
    }
    let nodes = match exchange(&path, &ipc::node_list_request(-1, &key), true) {
        Ok(Some(p)) if p.kind == ipc::RESULT_OK => {
            let text = String::from_utf8_lossy(&p.body).into_owned();
            if o.debug {
                println!(
                    "DEBUG:************\n{}\n************",
                    text.trim_end_matches('\0')
                );
            }
            match nodes_from_json(&text) {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("ERROR: {e}");
                    return 1;
                }
            }
        }
        Ok(_) => {
            eprintln!("WARNING: get watchdog nodes command failed\nERROR: get node list command reply contains no data");
            return 1;
        }
        Err(e) => {
            eprintln!("WARNING: {e}\nERROR: get node list command reply contains no data");
            return 1;
        }
    };
    let criteria = o.node_id.is_some()
        || o.node_name.is_some()
        || o.node_host.is_some()
        || o.node_port.is_some();
    if o.info && (o.all || !criteria) {
        if !o.all {
            eprintln!("WARNING: Missing node search criteria. applying --all option");
        }
        print!("{}", cluster_text(&nodes, true, o.verbose));
        return 0;
    }
    let Some(node) = nodes.iter().find(|n| matches(n, &o)) else {
        let any = |v: Option<String>| v.unwrap_or_else(|| "ANY".into());
        eprintln!(
            "ERROR: unable to find the node with the requested criteria\nCriteria:[ID={} AND Name={} AND Host={} AND WDPort={}]",
            any(o.node_id.map(|v| v.to_string())),
            any(o.node_name.clone()),
            any(o.node_host.clone()),
            any(o.node_port.map(|v| v.to_string()))
        );
        return 1;
    };
    if o.info {
        print!("{}", cluster_text(&nodes, false, o.verbose));
        print!("{}", node_text(node, o.verbose));
        return 0;
    }
    let alive = o.inform.unwrap_or(true);
    let word = if alive { "alive" } else { "dead" };
    eprintln!("INFO: informing the node status change to watchdog");
    let report = ipc::node_status_request(node.id, alive, o.message.as_deref(), &key);
    match exchange(&path, &report, false) {
        Ok(_) => {
            eprintln!(
                "INFO: informed watchdog about node id {} is {word}",
                node.id
            );
            0
        }
        Err(e) => {
            eprintln!(
                "{e}\nERROR: failed to inform watchdog about node id {} is {word}",
                node.id
            );
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn options_follow_pgpool() {
        let o = parse(argv("--inform dead -n 2 -m gone -p 9001")).expect("valid");
        assert_eq!(
            (o.inform, o.node_id, o.port),
            (Some(false), Some(2), Some(9001))
        );
        assert_eq!(o.message.as_deref(), Some("gone"));
        assert!(parse(argv("-i -I DEAD")).is_err());
        assert!(parse(argv("-I ALIVE -a")).is_err());
        assert!(parse(argv("-I ALIVE")).is_err(), "inform needs a node");
        assert!(parse(argv("-I maybe -n 1")).is_err());
        assert!(parse(argv("-n 1")).is_err(), "an operation is required");
        assert!(parse(argv("-i -p 80")).is_err());
        assert!(parse(argv("-i -n x")).is_err());
    }

    #[test]
    fn node_list_prints_like_pgpool() {
        let json = r#"{"NodeCount":2,"WatchdogNodes":[{"ID":0,"State":4,"NodeName":"h:9999 Linux h","HostName":"h","StateName":"LEADER","WdPort":9000,"PgpoolPort":9999},{"ID":1,"State":7,"NodeName":"g:9999 Linux g","HostName":"g","StateName":"STANDBY","WdPort":9001,"PgpoolPort":9999}]}"#;
        let nodes = nodes_from_json(&format!("{json}\0")).expect("parses");
        assert_eq!(nodes.len(), 2);
        assert_eq!(
            node_text(&nodes[1], false),
            "1 0 \"STANDBY\"\"g:9999 Linux g\"\"g\" 9001 9999\n"
        );
        let verbose = cluster_text(&nodes[..1], true, true);
        assert!(verbose.starts_with("Total Watchdog nodes configured for lifecheck:    1\n*****************\nNode ID:           0\nNode Status code:  4\n"));
        let o = Options {
            node_name: Some("G:9999 LINUX G".into()),
            ..Default::default()
        };
        assert!(!matches(&nodes[0], &o) && matches(&nodes[1], &o));
    }
}
