//! Our PCP records read the way Pgpool-II's client library (libpcp) reads them, field
//! by position: 4.7's pcp_node_info / pcp_proc_info layouts, and 4.3's (Debian's
//! /usr/sbin tools), from the same server code the PCP worker runs.

use std::sync::atomic::Ordering;

use config::Config;
use pcp::frame;
use shmem::{Layout, Shmem};

use super::handlers::{dispatch, node_record, node_record_has_by_time, Ctx};
use crate::report;

fn config(header: &str) -> Config {
    let text = format!(
        "{header}backend_hostname0 = 'h0'\nbackend_port0 = 5432\n\
         backend_hostname1 = 'h1'\nbackend_port1 = 5433\nbackend_weight1 = 3\n\
         num_init_children = 2\nmax_pool = 1\n"
    );
    Config::parse(&text, std::path::Path::new("pgpool.conf")).expect("config")
}

fn shmem() -> Shmem {
    let shm = Shmem::create(Layout {
        num_children: 2,
        max_pool: 1,
    })
    .expect("shmem");
    shm.cluster().set_primary(Some(0));
    shm
}

/// The packets of a reply: (tag, NUL-separated fields).
fn packets(mut bytes: &[u8]) -> Vec<(u8, Vec<String>)> {
    let mut out = Vec::new();
    while bytes.len() >= 5 {
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        out.push((bytes[0], frame::strings(&bytes[5..1 + len])));
        bytes = &bytes[1 + len..];
    }
    out
}

/// libpcp's node record, as 4.7's process_node_info_response fills BackendInfo:
/// (hostname, port, status, weight, role, pg_role, delay_by_time, delay,
/// replication_state, replication_sync_state, status_changed_time).
type Backend = (
    String,
    i64,
    i64,
    f64,
    i64,
    String,
    i64,
    i64,
    String,
    String,
    i64,
);

/// C's atol: leading digits, 0 for none.
fn atol(s: &str) -> i64 {
    let digits: String = s
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().unwrap_or(0)
}

fn decode_node(f: &[String], release_44: bool) -> Backend {
    // a field past the record's end reads as empty here (C reads whatever follows)
    let at = |i: usize| f.get(i).cloned().unwrap_or_default();
    let (by_time, k) = if release_44 {
        (atol(&at(9)), 10)
    } else {
        (0, 9)
    };
    (
        at(1),
        atol(&at(2)),
        atol(&at(3)),
        at(6).parse::<f64>().unwrap_or(0.0) / 2147483647.0,
        atol(&at(7)),
        at(8),
        by_time,
        atol(&at(k)),
        at(k + 1),
        at(k + 2),
        atol(&at(k + 3)),
    )
}

fn node_info(ctx: &Ctx, release_44: bool) -> Vec<Backend> {
    let reply = dispatch(ctx, b'I', b"-1\0").expect("node info");
    let p = packets(&reply.packets);
    assert_eq!(p[0], (b'i', vec!["ArraySize".to_string(), "2".to_string()]));
    assert_eq!(p.last().map(|x| x.1[0].as_str()), Some("CommandComplete"));
    p[1..p.len() - 1]
        .iter()
        .map(|(tag, f)| {
            assert_eq!((*tag, f[0].as_str()), (b'i', "NodeInfo"));
            decode_node(f, release_44)
        })
        .collect()
}

fn setup_delay(shm: &Shmem) {
    let b = shm.backend(1);
    b.replication_delay.store(2_500_000, Ordering::Release);
    b.delay_by_time.store(1, Ordering::Release);
    b.replication_state.set("streaming");
    b.replication_sync_state.set("async");
    b.last_status_change.store(1_700_000_000, Ordering::Relaxed);
}

#[test]
fn node_info_in_the_layout_of_the_release_the_config_names() {
    let shm = shmem();
    setup_delay(&shm);
    // A Pgpool-II 4.7 pgpool.conf (its sample's header): the 4.4+ record.
    let cfg = config("# --------------------------------\n# Pgpool-II 4.7 configuration file\n# --------------------------------\n");
    assert!(node_record_has_by_time(&cfg));
    let ctx = Ctx {
        cfg: &cfg,
        shm: &shm,
        qcache: None,
    };
    let nodes = node_info(&ctx, true);
    assert_eq!(nodes[0].0, "h0");
    assert_eq!((nodes[0].4, nodes[0].5.as_str()), (2, "unknown"), "primary");
    assert_eq!((nodes[0].6, nodes[0].7), (0, 0), "the primary has no delay");
    let n1 = &nodes[1];
    assert_eq!((n1.0.as_str(), n1.1, n1.4), ("h1", 5433, 3));
    assert!((n1.3 - 0.75).abs() < 1e-6, "weight {}", n1.3);
    assert_eq!(
        (n1.6, n1.7),
        (1, 2_500_000),
        "delay by time, in microseconds"
    );
    assert_eq!((n1.8.as_str(), n1.9.as_str()), ("streaming", "async"));
    assert_eq!(n1.10, 1_700_000_000);
    // What a 4.3 client would make of it: everything from the delay on shifted.
    let record = frame::strings(&node_record(&report::nodes(&cfg, &shm)[1], true));
    let shifted = decode_node(&record, false);
    assert_eq!((shifted.7, shifted.8.as_str()), (1, "2500000"));

    // No header (4.3's sample has none): the 4.3 record, which Debian's tools read.
    for header in ["", "# pgpool-rs configuration (pgpool.conf)\n"] {
        let cfg = config(header);
        assert!(!node_record_has_by_time(&cfg));
        let ctx = Ctx {
            cfg: &cfg,
            shm: &shm,
            qcache: None,
        };
        let n1 = node_info(&ctx, false).remove(1);
        assert_eq!((n1.0.as_str(), n1.1, n1.4), ("h1", 5433, 3));
        assert_eq!(n1.7, 2, "4.3 reads the seconds \"2.500000\" with atol");
        assert_eq!((n1.8.as_str(), n1.9.as_str()), ("streaming", "async"));
        assert_eq!(n1.10, 1_700_000_000);
    }
    // delay in bytes, 4.4 record: flag 0
    shm.backend(1).delay_by_time.store(0, Ordering::Release);
    shm.backend(1)
        .replication_delay
        .store(4096, Ordering::Release);
    let cfg = config("# Pgpool-II 4.4 configuration file\n");
    let ctx = Ctx {
        cfg: &cfg,
        shm: &shm,
        qcache: None,
    };
    let n1 = node_info(&ctx, true).remove(1);
    assert_eq!((n1.6, n1.7, n1.8.as_str()), (0, 4096, "streaming"));
}

/// libpcp's process_process_info_response: the first `n` fields copied into fixed-size
/// char arrays (size - 1 bytes kept), the rest of the record skipped.
fn decode_proc(f: &[String], n: usize) -> Vec<String> {
    // POOL_REPORT_POOLS of 4.7: 16-byte counts, 128-byte dates, 63-byte names, 20-byte
    // status and load_balance_node, NI_MAXHOST, NI_MAXSERV, 1024-byte statement
    const SIZES: [usize; 21] = [
        17, 129, 17, 17, 17, 64, 64, 129, 129, 129, 129, 17, 17, 17, 17, 17, 21, 21, 1025, 32, 1024,
    ];
    (0..n)
        .map(|i| {
            let v = f.get(i + 1).cloned().unwrap_or_default();
            v.chars().take(SIZES[i] - 1).collect()
        })
        .collect()
}

#[test]
fn proc_info_carries_the_fields_of_4_7() {
    let shm = shmem();
    let cfg = config("");
    let c = shm.child(0);
    c.pid.store(777, Ordering::Relaxed);
    c.set_state(shmem::ChildState::Active);
    c.current_pool.store(0, Ordering::Release);
    let p = shm.pool(0, 0);
    p.database.set("test");
    p.user.set("alice");
    p.major.store(3, Ordering::Relaxed);
    for node in 0..2 {
        shm.conn(0, 0, node).connected.store(1, Ordering::Relaxed);
        shm.conn(0, 0, node)
            .pid
            .store(1000 + node as u32, Ordering::Relaxed);
    }
    c.client_host.set("192.0.2.7");
    c.client_port.set("54321");
    c.activity.set_load_balance_node(Some(1));
    c.activity.set_statement(b"SELECT pg_sleep(1)", [1]);
    let ctx = Ctx {
        cfg: &cfg,
        shm: &shm,
        qcache: None,
    };
    let reply = dispatch(&ctx, b'P', b"777\0").expect("proc info");
    let p = packets(&reply.packets);
    assert_eq!(p[0].1, ["ArraySize", "2"], "max_pool * nodes");
    let records: Vec<&Vec<String>> = p[1..p.len() - 1].iter().map(|x| &x.1).collect();
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(r[0], "ProcessInfo");
        assert_eq!(r.len(), 22, "21 fields after the record name");
    }
    // 4.7's client: load_balance_node, client_host, client_port, statement
    let a = decode_proc(records[0], 21);
    let b = decode_proc(records[1], 21);
    assert_eq!(
        (a[0].as_str(), a[4].as_str(), a[5].as_str(), a[6].as_str()),
        ("777", "0", "test", "alice")
    );
    assert_eq!(
        &a[14..],
        [
            "1000",
            "1",
            "Execute command",
            "0",
            "192.0.2.7",
            "54321",
            ""
        ]
    );
    assert_eq!(
        &b[14..],
        [
            "1001",
            "1",
            "Execute command",
            "1",
            "192.0.2.7",
            "54321",
            "SELECT pg_sleep(1)"
        ]
    );
    // 4.5/4.6's client stops after load_balance_node, 4.3's after status: same values
    assert_eq!(decode_proc(records[1], 18), b[..18]);
    assert_eq!(decode_proc(records[1], 17), b[..17]);
    // SHOW POOL_POOLS has the same fields
    let rows = report::pools(&cfg, &shm);
    assert_eq!(rows[1], records[1][1..]);
}
