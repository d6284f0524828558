//! The PCP requests after authentication: each turns a request body into the reply
//! packets Pgpool-II sends (lower-case tag, "CommandComplete", NUL-terminated fields)
//! or into an error report with Pgpool-II's message and detail. Records are 4.7's where
//! older clients skip what they do not know (pcp_proc_info's trailing fields); the one
//! record whose layout changed in the middle (pcp_node_info, 4.4) follows the release
//! pgpool.conf was written for.

use std::sync::atomic::Ordering;
use std::time::Duration;

use config::{ClusteringMode, Config};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pcp::error::Report;
use pcp::frame::{self, Body};
use shmem::{RequestKind, Shmem, REQUEST_FROM_PCP, REQUEST_GRACEFUL, REQUEST_SWITCHOVER};

use crate::report;

/// glibc's RAND_MAX: Pgpool-II keeps weights scaled by it and sends them so.
const RAND_MAX: f64 = 2147483647.0;
/// How long a graceful detach/promote waits for the main process.
const GRACEFUL_WAIT: Duration = Duration::from_secs(300);

pub struct Ctx<'a> {
    pub cfg: &'a Config,
    pub shm: &'a Shmem,
    /// memory_cache_enabled: pcp_invalidate_query_cache's target.
    pub qcache: Option<&'a shmem::QueryCache>,
}

/// Something to do once the reply is sent (signal the main process).
pub type After = Box<dyn FnOnce(&Shmem)>;

/// Reply bytes, and an action to run once they are sent.
pub struct Reply {
    pub packets: Vec<u8>,
    pub after: Option<After>,
}

impl Reply {
    fn new(packets: Vec<u8>) -> Reply {
        Reply {
            packets,
            after: None,
        }
    }
}

fn complete(tag: u8) -> Vec<u8> {
    frame::packet(tag, &Body::new().str("CommandComplete").0)
}

fn error(message: &str, detail: String) -> Report {
    Report::error(message, detail)
}

fn stream_mode(cfg: &Config) -> bool {
    matches!(
        cfg.backend_clustering_mode,
        ClusteringMode::StreamingReplication | ClusteringMode::LogicalReplication
    )
}

fn signal_main(shm: &Shmem, sig: Signal) -> bool {
    let main = shm.cluster().main_pid.load(Ordering::Acquire);
    main > 0 && kill(Pid::from_raw(main), sig).is_ok()
}

/// Queues a request for a valid node (Pgpool-II answers success for invalid ones
/// too, and does nothing); with `wait`, returns once the main process handled it.
fn queue(ctx: &Ctx, kind: RequestKind, node: i64, flags: u32, wait: bool) {
    if node < 0 || node as usize >= ctx.cfg.backends.len() {
        log::warn!("PCP: {kind:?} request for invalid node id {node} ignored");
        return;
    }
    let Some(seq) = ctx.shm.request(kind, node as i32, flags) else {
        log::error!("PCP: request queue is full; {kind:?} of node {node} dropped");
        return;
    };
    // With the watchdog the cluster decides first: answer once it did.
    if wait || ctx.cfg.use_watchdog {
        ctx.shm.requests().wait_done(seq, GRACEFUL_WAIT, || false);
    }
}

pub fn dispatch(ctx: &Ctx, tag: u8, body: &[u8]) -> Result<Reply, Report> {
    let arg = frame::first_str(body);
    let nodes = ctx.cfg.backends.len() as i64;
    match tag {
        b'L' => Ok(Reply::new(frame::packet(
            b'l',
            &Body::new().str("CommandComplete").str(&nodes.to_string()).0,
        ))),
        b'I' => node_info(ctx, &arg),
        b'H' => health_check_stats(ctx, &arg),
        b'N' => {
            let pids = report::child_pids(ctx.shm);
            let mut b = Body::new()
                .str("CommandComplete")
                .str(&pids.len().to_string());
            for p in pids {
                b = b.str(&p.to_string());
            }
            Ok(Reply::new(frame::packet(b'n', &b.0)))
        }
        b'P' => proc_info(ctx, &arg),
        b'B' => Ok(Reply::new(pool_status(ctx))),
        b'C' => {
            log::info!("PCP: attaching node {arg}");
            queue(
                ctx,
                RequestKind::Attach,
                frame::atoi(&arg),
                REQUEST_FROM_PCP,
                false,
            );
            Ok(Reply::new(complete(b'c')))
        }
        b'D' | b'd' => {
            let graceful = tag == b'd';
            log::info!("PCP: detaching node {arg}");
            let flags = REQUEST_FROM_PCP | if graceful { REQUEST_GRACEFUL } else { 0 };
            queue(ctx, RequestKind::Detach, frame::atoi(&arg), flags, graceful);
            Ok(Reply::new(complete(b'd')))
        }
        b'J' | b'j' => promote(ctx, body, tag == b'j'),
        b'O' => recovery(ctx, &arg),
        b'T' | b't' => {
            let mode = body.first().copied().unwrap_or(0);
            let sig = match mode {
                b's' => Signal::SIGTERM,
                b'f' => Signal::SIGINT,
                b'i' => Signal::SIGQUIT,
                _ => {
                    return Err(error(
                        "PCP: error while processing shutdown request",
                        format!("invalid shutdown mode \"{}\"", mode as char),
                    ))
                }
            };
            log::info!("PCP: shutdown request, mode \"{}\"", mode as char);
            Ok(Reply {
                packets: complete(b't'),
                after: Some(Box::new(move |shm: &Shmem| {
                    signal_main(shm, sig);
                })),
            })
        }
        b'Z' => {
            if !signal_main(ctx.shm, Signal::SIGHUP) {
                return Err(error(
                    "process reload config request failed",
                    "failed to signal pgpool parent process".into(),
                ));
            }
            Ok(Reply::new(complete(b'z')))
        }
        b'W' => watchdog_info(ctx, &arg),
        b'G' => {
            let Some(cache) = ctx.qcache else {
                return Err(Report {
                    severity: "ERROR".into(),
                    message: "query cache is not enabled".into(),
                    detail: None,
                });
            };
            // Every entry is stale from now on, in every child at once (Pgpool-II leaves
            // a request for the next child that reads a message).
            cache.invalidate_all();
            log::info!("pcp_invalidate_query_cache: every query cache entry invalidated");
            Ok(Reply::new(complete(b'g')))
        }
        // The logger changes to a new file (without a logging collector there is no
        // file to change).
        b'V' => {
            let logger = ctx.shm.cluster().logger_pid.load(Ordering::Acquire);
            if logger > 0 {
                let _ = kill(Pid::from_raw(logger), Signal::SIGUSR1);
                log::info!("PCP: log rotate request");
            }
            Ok(Reply::new(complete(b'v')))
        }
        b'A' => set_parameter(body),
        // "Stop online recovery": Pgpool-II acknowledges nothing.
        b'F' => Ok(Reply::new(Vec::new())),
        other => Err(Report::fatal(
            "PCP processing request",
            format!("unknown PCP packet type \"{}\"", other as char),
        )),
    }
}

fn node_info(ctx: &Ctx, arg: &str) -> Result<Reply, Report> {
    let id = frame::atoi(arg);
    let all = report::nodes(ctx.cfg, ctx.shm);
    if id != -1 && (id < 0 || id as usize >= all.len()) {
        return Err(error(
            "informing node info failed",
            format!("invalid node ID : {arg}"),
        ));
    }
    let count = if id == -1 { all.len() } else { 1 };
    let mut out = frame::packet(
        b'i',
        &Body::new().str("ArraySize").str(&count.to_string()).0,
    );
    let with_by_time = node_record_has_by_time(ctx.cfg);
    for n in all.iter().filter(|n| id == -1 || n.id as i64 == id) {
        out.extend(frame::packet(b'i', &node_record(n, with_by_time)));
    }
    out.extend(complete(b'i'));
    Ok(Reply::new(out))
}

/// Whether pcp_node_info records carry 4.4's "delay by time" flag. Pgpool-II 4.4
/// inserted it before the delay, and a client reads fields by position, so a 4.3 client
/// misreads a 4.4 record and the other way round; the request is the same in every
/// release, so the release pgpool.conf's header names decides (4.4 and later samples
/// name it; 4.3's has no such header).
pub fn node_record_has_by_time(cfg: &Config) -> bool {
    cfg.named_release().is_some_and(|v| v >= (4, 4))
}

/// One NodeInfo record body: hostname port status quarantine pg_status weight role
/// pg_role [delay_by_time] delay replication_state replication_sync_state
/// last_status_change. In the 4.4 layout a delay in time goes as microseconds with the
/// flag 1; the 4.3 layout has no flag, so a time goes as seconds ("0.500000").
pub fn node_record(n: &report::Node, with_by_time: bool) -> Vec<u8> {
    let mut b = Body::new()
        .str("NodeInfo")
        .str(&n.hostname)
        .str(&n.port.to_string())
        .str(&(n.status as u8).to_string())
        .str("0")
        .str(n.pg_status)
        .str(&format!("{:.6}", n.weight * RAND_MAX))
        .str(&(n.role as u8).to_string())
        .str(n.pg_role);
    b = if with_by_time {
        b.str(if n.delay_by_time { "1" } else { "0" })
            .str(&n.delay.to_string())
    } else {
        b.str(&n.delay_text(false))
    };
    b.str(&n.replication_state)
        .str(&n.replication_sync_state)
        .str(&n.last_status_change.to_string())
        .0
}

fn health_check_stats(ctx: &Ctx, arg: &str) -> Result<Reply, Report> {
    let id = frame::atoi(arg);
    let all = report::nodes(ctx.cfg, ctx.shm);
    if id < 0 || id as usize > all.len() {
        return Err(error(
            "informing health check stats info failed",
            format!("invalid node ID {id}"),
        ));
    }
    let Some(node) = all.get(id as usize) else {
        return Err(error(
            "informing health check stats info failed",
            format!("stats data for node ID {id} does not exist"),
        ));
    };
    let mut b = Body::new().str("CommandComplete");
    for v in report::health_check_stats(ctx.cfg, ctx.shm, node) {
        b = b.str(&v);
    }
    Ok(Reply::new(frame::packet(b'h', &b.0)))
}

fn proc_info(ctx: &Ctx, arg: &str) -> Result<Reply, Report> {
    let pid = frame::atoi(arg);
    if pid != 0 && !report::child_pids(ctx.shm).contains(&(pid as i32)) {
        return Err(error(
            "informing process info failed",
            format!("invalid process ID : {arg}"),
        ));
    }
    let rows = report::pools(ctx.cfg, ctx.shm);
    let size = if pid == 0 {
        rows.len()
    } else {
        ctx.shm.layout().max_pool * ctx.cfg.backends.len()
    };
    let mut out = frame::packet(b'p', &Body::new().str("ArraySize").str(&size.to_string()).0);
    let pid_text = pid.to_string();
    for r in rows.iter().filter(|r| pid == 0 || r[0] == pid_text) {
        let mut b = Body::new().str("ProcessInfo");
        for v in r {
            b = b.str(v);
        }
        out.extend(frame::packet(b'p', &b.0));
    }
    out.extend(complete(b'p'));
    Ok(Reply::new(out))
}

fn pool_status(ctx: &Ctx) -> Vec<u8> {
    let rows = report::pool_status(ctx.cfg, ctx.shm);
    let mut head = Body::new().str("ArraySize").0;
    head.extend_from_slice(&(rows.len() as i32).to_be_bytes());
    let mut out = frame::packet(b'b', &head);
    for [item, value, desc] in &rows {
        let b = Body::new()
            .str("ProcessConfig")
            .str(item)
            .str(value)
            .str(desc);
        out.extend(frame::packet(b'b', &b.0));
    }
    out.extend(complete(b'b'));
    out
}

fn promote(ctx: &Ctx, body: &[u8], graceful: bool) -> Result<Reply, Report> {
    // Body: "<node id> " NUL, then the option byte: 's' switchover, 'n' not.
    let text = frame::first_str(body);
    let id_text = text.split(' ').next().unwrap_or("");
    let option = body.get(text.len() + 1).copied().unwrap_or(b'n');
    let id = frame::atoi(id_text);
    if id < 0 || id >= ctx.cfg.backends.len() as i64 {
        return Err(error(
            "could not process promote request",
            format!("node id {id} is not valid"),
        ));
    }
    if !stream_mode(ctx.cfg) {
        return Err(Report::fatal(
            "invalid pgpool mode for process promote request",
            format!("not in streaming replication mode, can't promote node id {id}"),
        ));
    }
    if ctx.shm.cluster().primary_node_id() as i64 == id {
        return Err(Report::fatal(
            "invalid promote request",
            format!("specified node is already primary node, can't promote node id {id}"),
        ));
    }
    log::info!("pcp_promote_node: promote option: {}", option as char);
    let mut flags = REQUEST_FROM_PCP;
    if option == b's' {
        flags |= REQUEST_SWITCHOVER;
    }
    if graceful {
        flags |= REQUEST_GRACEFUL;
    }
    queue(ctx, RequestKind::Promote, id, flags, graceful);
    Ok(Reply::new(complete(b'd')))
}

fn recovery(ctx: &Ctx, arg: &str) -> Result<Reply, Report> {
    let id = frame::atoi(arg);
    let failed = "process recovery request failed";
    if id < 0 || id >= ctx.cfg.backends.len() as i64 {
        return Err(error(failed, format!("node id {id} is not valid")));
    }
    let stream = stream_mode(ctx.cfg);
    let replication = matches!(
        ctx.cfg.backend_clustering_mode,
        ClusteringMode::NativeReplication | ClusteringMode::SnapshotIsolation
    );
    let primary = ctx.shm.cluster().primary_node_id() as i64;
    if stream && id == primary {
        return Err(error(
            failed,
            "primary server cannot be recovered by online recovery.".into(),
        ));
    }
    if !stream && !replication {
        return Err(error(
            failed,
            "recovery request is only allowed in replication and streaming replication modes."
                .into(),
        ));
    }
    crate::recovery::recover(ctx.cfg, ctx.shm, id as usize)?;
    Ok(Reply::new(complete(b'c')))
}

fn set_parameter(body: &[u8]) -> Result<Reply, Report> {
    let f = frame::strings(body);
    let (name, value) = match (f.first(), f.get(1)) {
        (Some(n), Some(v)) => (n.clone(), v.clone()),
        _ => {
            return Err(error(
                "set configuration parameter failed",
                "invalid pcp packet received from client".into(),
            ))
        }
    };
    log::info!("set configuration parameter, \"{name} TO {value}\"");
    if !name.eq_ignore_ascii_case("client_min_messages") {
        return Err(error(
            "PCP: set configuration parameter failed",
            format!("invalid parameter \"{name}\""),
        ));
    }
    const LEVELS: [&str; 11] = [
        "debug5",
        "debug4",
        "debug3",
        "debug2",
        "debug1",
        "log",
        "commerror",
        "info",
        "notice",
        "warning",
        "error",
    ];
    if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(&value)) {
        return Err(error(
            "PCP: set configuration parameter failed",
            format!("invalid value \"{value}\" for parameter \"{name}\""),
        ));
    }
    Ok(Reply::new(complete(b'a')))
}

/// pcp_watchdog_info: the watchdog process's published view, as Pgpool-II's JSON.
fn watchdog_info(ctx: &Ctx, arg: &str) -> Result<Reply, Report> {
    let failed = |detail: &str| error("PCP: informing watchdog info failed", detail.into());
    if !ctx.cfg.use_watchdog {
        return Err(failed("watchdog is not enabled"));
    }
    let Some(info) = watchdog::info::ClusterInfo::decode(&ctx.shm.watchdog().info()) else {
        return Err(failed("watchdog is not running yet"));
    };
    let id = arg.trim().parse::<i32>().unwrap_or(-1);
    let only = (id >= 0).then_some(id);
    if only.is_some_and(|id| !info.nodes.iter().any(|n| n.id == id)) {
        return Err(failed(&format!("no watchdog node with id {id}")));
    }
    let body = Body::new().str("CommandComplete").str(&info.json(only));
    Ok(Reply::new(frame::packet(b'w', &body.0)))
}
