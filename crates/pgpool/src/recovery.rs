//! Online recovery (`pcp_recovery_node`), run by the PCP worker serving the request,
//! as Pgpool-II runs it in its pcp child (`start_recovery()` in recovery.c):
//!
//! 1. checks: the node exists, is down, is not the primary, no other recovery runs,
//!    `recovery_1st_stage_command` is set;
//! 2. connects to the primary (streaming mode) as `recovery_user` /
//!    `recovery_password` (else the pool_passwd entry) to `recovery_database` (4.7;
//!    template1, the database of older releases, for a file written for them);
//! 3. first stage: `SET statement_timeout` to `recovery_timeout`, then
//!    `SELECT pgpool_recovery(script, node host, node data dir, primary port, node id,
//!    node port, primary host)`: the pgpool_recovery extension (Debian package
//!    postgresql-15-pgpool2) runs `$PGDATA/<script>` on the primary, which rebuilds
//!    the node's data directory;
//! 4. `SELECT pgpool_remote_start(node host, node data dir)`: the extension runs
//!    `$PGDATA/pgpool_remote_start` on the primary, which starts the node;
//! 5. waits (up to `recovery_timeout`) until the node accepts connections;
//! 6. queues a failback (Attach) for the main process and waits until it is done.
//!
//! The second stage (native replication / snapshot isolation mode: wait for clients to
//! disconnect, `recovery_2nd_stage_command`) is not implemented: recovery in those
//! modes is refused with an error instead of leaving a node that may miss writes.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use config::{ClusteringMode, Config};
use nix::sys::signal::kill;
use nix::unistd::Pid;
use pcp::error::Report;
use shmem::{RequestKind, Shmem, REQUEST_FROM_PCP};

use crate::backend::{self, BackendConn, BackendError, MessageReader, NodeAddr, Secret};

/// Database the started node is probed in when it has no `postgres` database.
const FALLBACK_DATABASE: &str = "template1";
/// How often the node is probed while waiting for it to accept connections.
const START_PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long the failback may take when recovery_timeout is 0.
const FAILBACK_WAIT: Duration = Duration::from_secs(90);

fn err(message: impl Into<String>) -> Report {
    Report {
        severity: "ERROR".into(),
        message: message.into(),
        detail: None,
    }
}

/// The host name handed to the recovery scripts: a socket directory means this
/// machine, which Pgpool-II passes on as "localhost".
fn script_host(host: &str) -> &str {
    if host.starts_with('/') {
        "localhost"
    } else {
        host
    }
}

/// The secret for recovery_user: recovery_password, else its pool_passwd entry.
fn recovery_secret(cfg: &Config) -> Option<Secret> {
    if !cfg.recovery_password.is_empty() {
        return Some(Secret::Plain(cfg.recovery_password.clone()));
    }
    crate::passwd_secret(cfg, &cfg.recovery_user)
}

/// recovery_timeout as a duration; 0 (no limit in Pgpool-II's statement_timeout)
/// is `None`.
fn recovery_timeout(cfg: &Config) -> Option<Duration> {
    u64::try_from(cfg.recovery_timeout)
        .ok()
        .filter(|&s| s > 0)
        .map(Duration::from_secs)
}

/// Marks "a recovery is running" with this process's pid; a mark left by a worker
/// that died is taken over. The mark is cleared when the guard is dropped.
struct InProgress<'a> {
    shm: &'a Shmem,
    pid: i32,
}

impl<'a> InProgress<'a> {
    fn take(shm: &'a Shmem) -> Option<InProgress<'a>> {
        let pid = std::process::id() as i32;
        let slot = &shm.cluster().recovery_pid;
        loop {
            let cur = slot.load(Ordering::Acquire);
            if cur > 0 && cur != pid && kill(Pid::from_raw(cur), None).is_ok() {
                return None;
            }
            if slot
                .compare_exchange(cur, pid, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Some(InProgress { shm, pid });
            }
        }
    }
}

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        let _ = self.shm.cluster().recovery_pid.compare_exchange(
            self.pid,
            0,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
}

/// A logged-in connection and its reader.
struct Session {
    conn: BackendConn,
    reader: MessageReader,
}

impl Session {
    fn open(cfg: &Config, node: usize, database: &str) -> Result<Session, BackendError> {
        let addr = NodeAddr::of(cfg, node);
        let mut reader = MessageReader::default();
        let mut password = |_| recovery_secret(cfg).ok_or(BackendError::NeedPassword);
        let conn = backend::connect(
            &addr,
            &[("user", &cfg.recovery_user), ("database", database)],
            &mut reader,
            &mut password,
        )?;
        Ok(Session { conn, reader })
    }

    /// Runs one statement; the server's error message is the `Err`.
    fn query(&mut self, sql: &str) -> Result<backend::QueryResult, String> {
        let r = self
            .conn
            .simple_query(&mut self.reader, sql)
            .map_err(|e| e.to_string())?;
        match r.error {
            Some(e) => Err(e.message),
            None => Ok(r),
        }
    }

    fn close(mut self) {
        let mut out = Vec::new();
        protocol::build::terminate(&mut out);
        let _ = std::io::Write::write_all(&mut self.conn.stream, &out);
    }
}

/// First value of the first row is `t` (the functions of the extension return bool).
fn returned_true(r: &backend::QueryResult) -> bool {
    r.rows
        .first()
        .and_then(|row| row.first())
        .cloned()
        .flatten()
        == Some("t".to_string())
}

/// Runs the whole recovery of `node`; Ok once the node is attached again.
/// The PCP handler has checked the node id and the clustering mode already.
pub fn recover(cfg: &Config, shm: &Shmem, node: usize) -> Result<(), Report> {
    let failed = "process recovery request failed";
    let Some(_mark) = InProgress::take(shm) else {
        return Err(Report::fatal(
            failed,
            "pgpool-II is already processing another recovery request.",
        ));
    };
    log::info!("starting recovering node {node}");
    let started = Instant::now();
    start_recovery(cfg, shm, node)?;
    log::info!(
        "recovery done (node {node}, {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn start_recovery(cfg: &Config, shm: &Shmem, node: usize) -> Result<(), Report> {
    let Some(target) = cfg.backends.get(node) else {
        return Err(err(format!(
            "node recovery failed, node id: {node} is not valid"
        )));
    };
    let status = shm.backend(node).status();
    if status == shmem::BackendStatus::Unused {
        return Err(err(format!(
            "node recovery failed, node id: {node} is unused"
        )));
    }
    if status.is_alive() {
        return Err(err(format!(
            "node recovery failed, node id: {node} is alive"
        )));
    }
    if !matches!(
        cfg.backend_clustering_mode,
        ClusteringMode::StreamingReplication
    ) {
        // The second stage (quiesce clients, recovery_2nd_stage_command) is not
        // implemented: a node recovered without it could miss writes.
        return Err(Report::error(
            "node recovery failed",
            "online recovery is supported in streaming replication mode only (the second stage of native replication mode is not implemented)",
        ));
    }
    if cfg.recovery_1st_stage_command.trim().is_empty() {
        return Err(Report::error(
            "node recovery failed",
            "recovery_1st_stage_command is not set",
        ));
    }
    let primary = shm.cluster().primary_node_id();
    let Some(primary) = usize::try_from(primary)
        .ok()
        .filter(|&p| p < cfg.backends.len() && shm.backend(p).status().is_alive())
    else {
        return Err(err("node recovery failed, primary node does not exist"));
    };
    if primary == node {
        return Err(Report::error(
            "process recovery request failed",
            "primary server cannot be recovered by online recovery.",
        ));
    }
    let main = &cfg.backends[primary];
    let timeout = recovery_timeout(cfg);

    let mut session = Session::open(cfg, primary, &cfg.recovery_database).map_err(|e| {
        Report::error(
            format!("node recovery failed, unable to connect to main node: {primary} "),
            e.to_string(),
        )
    })?;
    // The server's statement_timeout ends a script that hangs; the socket timeout
    // covers a primary that stops answering altogether.
    let _ = session
        .conn
        .stream
        .set_read_timeout(timeout.map(|t| t + Duration::from_secs(30)));

    // First stage.
    let host = script_host(&target.hostname);
    let sql = format!(
        "SELECT pgpool_recovery({}, {}, {}, {}, {node}, {}, {})",
        sql::literal::quote(&cfg.recovery_1st_stage_command),
        sql::literal::quote(host),
        sql::literal::quote(&target.data_directory),
        sql::literal::quote(&main.port.to_string()),
        sql::literal::quote(&target.port.to_string()),
        sql::literal::quote(&main.hostname),
    );
    log::info!("executing recovery");
    log::info!("DETAIL:  starting recovery command: \"{sql}\"");
    let timeout_ms = timeout.map_or(0, |t| t.as_millis());
    let first = session
        .query(&format!("SET statement_timeout To {timeout_ms}"))
        .and_then(|_| session.query(&sql));
    log::info!("executing recovery");
    log::info!("DETAIL:  disabling statement_timeout");
    let _ = session.query("SET statement_timeout To 0");
    let stage_failed = |detail: String| {
        Report::error(
            "executing recovery, execution of command failed at \"1st stage\"",
            detail,
        )
    };
    match first {
        Ok(r) if returned_true(&r) => {}
        Ok(_) => return Err(stage_failed("pgpool_recovery returned false".into())),
        Err(e) => return Err(stage_failed(e)),
    }
    log::info!("node recovery, 1st stage is done");

    // Start the node.
    let sql = format!(
        "SELECT pgpool_remote_start({}, {})",
        sql::literal::quote(host),
        sql::literal::quote(&target.data_directory)
    );
    log::info!("node recovery, starting node {node}");
    log::info!("DETAIL:  executing \"{sql}\"");
    match session.query(&sql) {
        Ok(r) if returned_true(&r) => {}
        Ok(_) => {
            return Err(err(
                "executing remote start failed with error: \"pgpool_remote_start returned false\"",
            ))
        }
        Err(e) => {
            return Err(err(format!(
                "executing remote start failed with error: \"{e}\""
            )))
        }
    }
    session.close();

    check_postmaster_started(cfg, node, timeout)?;
    log::info!("node recovery, node: {node} restarted");

    // Failback, done by the main process.
    let Some(seq) = shm.request(RequestKind::Attach, node as i32, REQUEST_FROM_PCP) else {
        return Err(Report::error(
            "node recovery failed",
            "failback request queue is full",
        ));
    };
    log::info!("node recovery, failback request for node {node} sent");
    let failback_limit = timeout.unwrap_or(FAILBACK_WAIT);
    if !shm.requests().wait_done(seq, failback_limit, || false) {
        return Err(err("node recovery failed, waiting for failback timeout"));
    }
    if !shm.backend(node).status().is_alive() {
        return Err(Report::error(
            "node recovery failed",
            format!("node {node} was not attached by the failback"),
        ));
    }
    Ok(())
}

/// Waits until the recovered node takes connections (database postgres, else
/// template1 for a server without it), up to `timeout`.
fn check_postmaster_started(
    cfg: &Config,
    node: usize,
    timeout: Option<Duration>,
) -> Result<(), Report> {
    let b = &cfg.backends[node];
    let mut database = "postgres";
    let started = Instant::now();
    log::info!("checking if postmaster is started");
    log::info!(
        "DETAIL:  trying to connect to postmaster on hostname:{} database:{database} user:{} (for {} s)",
        b.hostname,
        cfg.recovery_user,
        timeout.map_or(0, |t| t.as_secs())
    );
    loop {
        match Session::open(cfg, node, database) {
            Ok(s) => {
                s.close();
                return Ok(());
            }
            Err(BackendError::Server(f, _)) if f.code == "3D000" && database == "postgres" => {
                database = FALLBACK_DATABASE;
                continue;
            }
            Err(e) => log::debug!("node {node} does not take connections yet: {e}"),
        }
        if timeout.is_none_or(|t| started.elapsed() >= t) {
            return Err(Report::error(
                "recovery is checking if postmaster is started",
                format!(
                    "postmaster on hostname:\"{}\" database:\"{database}\" user:\"{}\" failed to start in {} second",
                    b.hostname,
                    cfg.recovery_user,
                    timeout.map_or(0, |t| t.as_secs())
                ),
            ));
        }
        std::thread::sleep(START_PROBE_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(
            sql::literal::quote("recovery_1st_stage"),
            "'recovery_1st_stage'"
        );
        assert_eq!(sql::literal::quote("it's"), "'it''s'");
        assert_eq!(sql::literal::quote("a\\b'"), "E'a\\\\b'''");
    }

    #[test]
    fn socket_dir_host_is_localhost() {
        assert_eq!(script_host("/tmp"), "localhost");
        assert_eq!(script_host("10.0.0.2"), "10.0.0.2");
    }
}
