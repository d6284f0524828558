//! The relay between a scripted client and scripted backends over socket pairs: the
//! order of answers in pipelines, errors in the middle of one, Flush without Sync,
//! COPY both ways, NOTIFY while idle, local answers between forwarded ones, and a
//! backend lost in the middle of a batch.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use protocol::build;

use super::*;
use crate::child::relay_shared::LocalCommands;

/// Answers queries that start with "LOCAL" with one NoticeResponse-free CommandComplete.
struct TestLocal;

impl LocalCommands for TestLocal {
    fn is_local(&self, q: &[u8]) -> bool {
        q.starts_with(b"LOCAL")
    }
    fn answer(&mut self, _: &[u8], out: &mut Vec<u8>) {
        build::command_complete(out, "LOCAL");
    }
}

fn read_msg(s: &mut UnixStream) -> Option<(u8, Vec<u8>)> {
    let mut hdr = [0u8; 5];
    s.read_exact(&mut hdr).ok()?;
    let len = u32::from_be_bytes([hdr[1], hdr[2], hdr[3], hdr[4]]) as usize;
    let mut body = vec![0; len.checked_sub(4)?];
    s.read_exact(&mut body).ok()?;
    Some((hdr[0], body))
}

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let s = build::begin(&mut out, tag);
    out.extend_from_slice(body);
    build::finish(&mut out, s);
    out
}

fn text_of(body: &[u8]) -> String {
    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    String::from_utf8_lossy(&body[..end]).into_owned()
}

/// A backend that follows the protocol for what these tests send: a Query "fail…" or
/// an Execute of a statement "fail…" errors (and, in the extended protocol, everything
/// up to the next Sync is skipped); "copy in" / "copy out" start COPY; "bye" closes the
/// connection without answering; "notify" answers and then sends a NotificationResponse
/// on its own a moment later.
fn fake_backend(mut s: UnixStream, conn_info: &[&shmem::BackendConnInfo]) {
    let mut statements: Vec<(Vec<u8>, String)> = Vec::new();
    let mut bound = String::new();
    let mut skipping = false;
    let mut tx = b'I';
    while let Some((tag, body)) = read_msg(&mut s) {
        let mut out = Vec::new();
        if skipping && tag != b'S' {
            continue;
        }
        match tag {
            b'Q' => {
                let q = text_of(&body);
                if q == "bye" {
                    return;
                }
                if q.starts_with("fail") {
                    build::error_response(&mut out, "ERROR", "42000", &q);
                } else if q == "copy in" {
                    out.extend(msg(b'G', &[0, 0, 0]));
                    s.write_all(&out).ok();
                    out.clear();
                    while let Some((t, _)) = read_msg(&mut s) {
                        if t == b'c' {
                            break;
                        }
                    }
                    build::command_complete(&mut out, "COPY 2");
                } else if q == "copy out" {
                    out.extend(msg(b'H', &[0, 0, 0]));
                    out.extend(msg(b'd', b"row 1\n"));
                    out.extend(msg(b'd', b"row 2\n"));
                    out.extend(msg(b'c', b""));
                    build::command_complete(&mut out, "COPY 2");
                } else if q.contains("busy?") {
                    build::command_complete(&mut out, &running(conn_info));
                } else {
                    build::command_complete(&mut out, &q);
                }
                match q.as_str() {
                    "BEGIN" => tx = b'T',
                    "COMMIT" => tx = b'I',
                    _ => {}
                }
                build::ready_for_query(&mut out, tx);
                if q == "notify" {
                    s.write_all(&out).ok();
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    out = msg(b'A', b"\0\0\0\x07chan\0payload\0");
                }
            }
            b'P' => {
                let name = body[..body.iter().position(|&b| b == 0).unwrap_or(0)].to_vec();
                let query = text_of(&body[name.len() + 1..]);
                statements.retain(|(n, _)| *n != name);
                statements.push((name, query));
                out.extend(msg(b'1', b""));
            }
            b'B' => {
                let portal_end = body.iter().position(|&b| b == 0).unwrap_or(0);
                let stmt = text_of(&body[portal_end + 1..]);
                bound = statements
                    .iter()
                    .find(|(n, _)| *n == stmt.as_bytes())
                    .map(|(_, q)| q.clone())
                    .unwrap_or_default();
                out.extend(msg(b'2', b""));
            }
            b'E' => {
                if bound.contains("busy?") {
                    build::command_complete(&mut out, &running(conn_info));
                } else if bound.starts_with("fail") {
                    build::error_response(&mut out, "ERROR", "42000", &bound);
                    skipping = true;
                } else {
                    build::command_complete(&mut out, &bound);
                }
            }
            b'S' => {
                skipping = false;
                build::ready_for_query(&mut out, tx);
            }
            b'X' => return,
            _ => {}
        }
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

/// What a cancel forwarded now would find: which connections of the session are marked
/// as running the statement the client waits for.
fn running(conn_info: &[&shmem::BackendConnInfo]) -> String {
    let marks: Vec<String> = conn_info.iter().map(|c| c.is_busy().to_string()).collect();
    format!("running {}", marks.join(" "))
}

fn query(q: &str) -> Vec<u8> {
    let mut out = Vec::new();
    build::query(&mut out, q);
    out
}

/// Parse (unnamed), Bind, Execute of `q`.
fn extended(q: &str) -> Vec<u8> {
    let mut out = msg(b'P', format!("\0{q}\0\0\0").as_bytes());
    out.extend(msg(b'B', b"\0\0\0\0\0\0\0\0"));
    out.extend(msg(b'E', b"\0\0\0\0\0"));
    out
}

fn sync() -> Vec<u8> {
    msg(b'S', b"")
}

/// One message as the client sees it: its tag, and CommandComplete's / ErrorResponse's
/// text.
fn seen(tag: u8, body: &[u8]) -> String {
    match tag {
        b'C' => format!("C {}", text_of(body)),
        b'E' => {
            let m = protocol::message::parse_error_fields(body);
            format!("E {}", m.message)
        }
        t => (t as char).to_string(),
    }
}

/// Runs a session of one connection: the client sends `steps` in turn, each one in a
/// single write, and after each reads answers until `until` messages arrived; returns
/// what it saw per step and how the relay ended.
fn session(steps: &[(Vec<u8>, usize)]) -> (Vec<Vec<String>>, RelayEnd) {
    session_on(1, steps)
}

/// [`session`] over `nodes` connections: node 0 is the primary, reads go to the last.
fn session_on(nodes: usize, steps: &[(Vec<u8>, usize)]) -> (Vec<Vec<String>>, RelayEnd) {
    let (client_ours, client_theirs) = UnixStream::pair().expect("pair");
    let pairs: Vec<_> = (0..nodes)
        .map(|_| UnixStream::pair().expect("pair"))
        .collect();
    let shm = shmem::Shmem::create(shmem::Layout {
        num_children: 1,
        max_pool: 1,
    })
    .expect("shmem");
    let conn_info: Vec<_> = (0..nodes).map(|k| shm.conn(0, 0, k)).collect();
    let rules = sql::Rules::default();
    let relations = Relationships::default();
    let mut cache = ClassifierCache::new(16);
    let mut catalog = Catalog::default();
    let mut router = Router::new(nodes - 1, super::SessionSettings::default());
    let node_ids: Vec<usize> = (0..nodes).collect();
    let mut client_log = None;
    let relay_cfg = RelayConfig {
        rules: &rules,
        disable_load_balance_on_write: config::LoadBalanceOnWrite::Transaction,
        dml_relations: &relations,
        database: "test",
        check_temp_table: false,
        titles: false,
        fixed: nodes == 1,
        cache: None,
        relcache: None,
        replicate: false,
        main_first: false,
        catalog_from_lb: false,
        insert_lock: false,
        node_ids: &node_ids,
        conn_info: &conn_info,
        statement_weights: &[],
        delay_threshold: 0,
        lower_delay_weights: &[],
    };
    let mut relay = Relay {
        cfg: &relay_cfg,
        cache: &mut cache,
        catalog: &mut catalog,
        router: &mut router,
        shm: &shm,
        client_log: &mut client_log,
        snapshot_child: None,
    };
    let mut theirs = Vec::new();
    let mut conns: Vec<BackendConn> = pairs
        .into_iter()
        .enumerate()
        .map(|(node, (ours, other))| {
            theirs.push(other);
            BackendConn {
                stream: Stream::Unix(ours),
                node,
                pid: 1 + node as u32,
                key: 1,
                params: Vec::new(),
                password_required: false,
                startup_params: Vec::new(),
                tx_status: b'I',
            }
        })
        .collect();
    let waker = Waker::new().expect("waker");
    let mut bufs = RelayBuffers::default();
    let mut outcome = RelayOutcome::default();
    let mut client = Stream::Unix(client_ours);
    std::thread::scope(|scope| {
        for other in theirs {
            let conn_info = &conn_info;
            scope.spawn(move || fake_backend(other, conn_info));
        }
        let talker = scope.spawn(move || {
            let mut s = client_theirs;
            let mut seen_per_step = Vec::new();
            for (bytes, until) in steps {
                s.write_all(bytes).expect("client write");
                let mut got = Vec::new();
                while got.len() < *until {
                    match read_msg(&mut s) {
                        Some((tag, body)) => got.push(seen(tag, &body)),
                        None => break,
                    }
                }
                seen_per_step.push(got);
            }
            let _ = s.write_all(&msg(b'X', b""));
            seen_per_step
        });
        let end = super::relay(
            &mut client,
            conns.iter_mut().collect(),
            &[],
            &waker,
            &mut TestLocal,
            &mut relay,
            &mut bufs,
            &mut outcome,
        );
        drop(client);
        // The pool would keep the backend connection; the fake backend stops at its end.
        for conn in &conns {
            if let Stream::Unix(s) = &conn.stream {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
        (talker.join().expect("client thread"), end)
    })
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn pipelined_extended_batches_answer_in_order() {
    let mut batch = Vec::new();
    for q in ["one", "two", "three"] {
        batch.extend(extended(q));
        batch.extend(sync());
    }
    let (seen, end) = session(&[(batch, 12)]);
    assert_eq!(
        seen[0],
        strs(&["1", "2", "C one", "Z", "1", "2", "C two", "Z", "1", "2", "C three", "Z"])
    );
    assert!(matches!(end, RelayEnd::ClientClosed));
}

#[test]
fn error_in_the_middle_of_a_pipeline_skips_to_its_sync() {
    let mut batch = extended("one");
    batch.extend(extended("fail here"));
    batch.extend(extended("never"));
    batch.extend(sync());
    batch.extend(extended("after"));
    batch.extend(sync());
    let (seen, _) = session(&[(batch, 10)]);
    assert_eq!(
        seen[0],
        strs(&[
            "1",
            "2",
            "C one",
            "1",
            "2",
            "E fail here",
            "Z",
            "1",
            "2",
            "C after"
        ])
    );
}

#[test]
fn flush_without_sync_answers_then_sync_ends_it() {
    let mut first = extended("flushed");
    first.extend(msg(b'H', b""));
    let (seen, end) = session(&[(first, 3), (sync(), 1), (query("next"), 2)]);
    assert_eq!(seen[0], strs(&["1", "2", "C flushed"]));
    assert_eq!(seen[1], strs(&["Z"]));
    assert_eq!(seen[2], strs(&["C next", "Z"]));
    assert!(matches!(end, RelayEnd::ClientClosed));
}

#[test]
fn copy_in_and_out() {
    let mut data = msg(b'd', b"a\n");
    data.extend(msg(b'd', b"b\n"));
    data.extend(msg(b'c', b""));
    let (seen, _) = session(&[(query("copy in"), 1), (data, 2), (query("copy out"), 6)]);
    assert_eq!(seen[0], strs(&["G"]));
    assert_eq!(seen[1], strs(&["C COPY 2", "Z"]));
    assert_eq!(seen[2], strs(&["H", "d", "d", "c", "C COPY 2", "Z"]));
}

#[test]
fn notification_while_idle_reaches_the_client() {
    let (seen, _) = session(&[(query("notify"), 3)]);
    assert_eq!(seen[0], strs(&["C notify", "Z", "A"]));
}

#[test]
fn local_answer_keeps_its_place_between_forwarded_queries() {
    let mut batch = query("first");
    batch.extend(query("LOCAL show"));
    batch.extend(query("second"));
    let (seen, _) = session(&[(batch, 6)]);
    assert_eq!(
        seen[0],
        strs(&["C first", "Z", "C LOCAL", "Z", "C second", "Z"])
    );
}

#[test]
fn backend_lost_mid_batch_ends_the_session() {
    let mut batch = query("first");
    batch.extend(query("bye"));
    batch.extend(query("never answered"));
    let (seen, end) = session(&[(batch, 3)]);
    assert_eq!(seen[0], strs(&["C first", "Z"]));
    assert!(matches!(end, RelayEnd::BackendFailed(_)), "{end:?}");
}

#[test]
fn absurd_length_is_a_protocol_error() {
    let (seen, end) = session(&[(b"Q\x7f\xff\xff\xffab".to_vec(), 1)]);
    assert!(seen[0].is_empty());
    assert!(matches!(end, RelayEnd::ClientProtocol(_)), "{end:?}");
}

#[test]
fn buffers_are_kept_between_sessions() {
    let mut bufs = RelayBuffers::default();
    bufs.start_session(2);
    bufs.nodes[0].out.extend_from_slice(b"left over");
    bufs.nodes[1].queue.push_back(Expect::default());
    let kept = bufs.nodes[0].out.capacity();
    bufs.start_session(1);
    assert_eq!(bufs.nodes.len(), 1);
    assert!(bufs.nodes[0].out.is_empty() && bufs.nodes[0].queue.is_empty());
    assert_eq!(bufs.nodes[0].out.capacity(), kept);
}

#[test]
fn the_connection_answering_the_client_is_marked_running() {
    let mut batch = query("first");
    batch.extend(query("busy?"));
    let (seen, _) = session(&[(batch, 4), (query("busy?"), 2)]);
    assert_eq!(seen[0], strs(&["C first", "Z", "C running true", "Z"]));
    assert_eq!(seen[1], strs(&["C running true", "Z"]));
}

#[test]
fn only_the_node_answering_the_client_is_marked_running() {
    // A read runs on the load-balance node while the primary has the pipeline's next
    // statement queued (held until the read is answered): a cancel must reach only the
    // node running the statement the client waits for.
    let mut batch = extended("SELECT 'busy?'");
    batch.extend(sync());
    batch.extend(query("INSERT INTO t VALUES (1)"));
    let (seen, _) = session_on(2, &[(batch, 6)]);
    assert_eq!(
        seen[0],
        strs(&[
            "1",
            "2",
            "C running false true",
            "Z",
            "C INSERT INTO t VALUES (1)",
            "Z"
        ])
    );
}

#[test]
fn query_larger_than_the_buffer_reaches_the_backend_whole() {
    let big = format!("big {}", "x".repeat(3 * READ_CHUNK));
    let mut step = query(&big);
    step.extend(query("after"));
    let (seen, end) = session(&[(step, 4)]);
    assert_eq!(
        seen[0],
        vec![format!("C {big}"), "Z".into(), "C after".into(), "Z".into()]
    );
    assert!(matches!(end, RelayEnd::ClientClosed));
}

#[test]
fn overflow_rest_counts_the_bytes_still_to_come() {
    let mut batch = query("one");
    let second = query("a longer query text");
    batch.extend_from_slice(&second[..10]);
    assert_eq!(overflow_rest(&batch), Some(second.len() - 10));
    assert_eq!(overflow_rest(&query("whole")), None);
}
