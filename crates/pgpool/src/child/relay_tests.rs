//! Tests of the single-connection relay against scripted peers.

use super::*;
use protocol::build;

struct NoLocal;
impl LocalCommands for NoLocal {
    fn is_local(&self, q: &[u8]) -> bool {
        q.starts_with(b"LOCAL")
    }
    fn answer(&mut self, _: &[u8], _: &mut Vec<u8>) {}
}

fn walk(st: &mut SessionState, buf: &[u8]) -> (ClientStep, usize) {
    walk_client(st, buf, 0, buf.len(), &mut NoLocal).unwrap()
}

#[test]
fn counts_requests_and_holds_back_partial_query() {
    let mut b = Vec::new();
    build::query(&mut b, "select 1");
    let first = b.len();
    build::query(&mut b, "select 2");
    let mut st = SessionState::default();
    // The second query is cut: only the first goes out.
    let (step, next) = walk(&mut st, &b[..b.len() - 3]);
    assert!(matches!(step, ClientStep::Forward { forward } if forward == (0..first)));
    assert_eq!(next, first);
    assert_eq!(st.outstanding, 1);
}

#[test]
fn extended_messages_need_sync() {
    let mut b = Vec::new();
    let s = build::begin(&mut b, b'P');
    b.extend_from_slice(b"\0select 1\0\0\0");
    build::finish(&mut b, s);
    let mut st = SessionState::default();
    walk(&mut st, &b);
    assert!(st.unsynced && !st.backend_reusable());
    let mut sync = Vec::new();
    let s = build::begin(&mut sync, b'S');
    build::finish(&mut sync, s);
    walk(&mut st, &sync);
    assert!(!st.unsynced);
    assert_eq!(st.outstanding, 1);
}

#[test]
fn local_command_and_terminate() {
    let mut b = Vec::new();
    build::query(&mut b, "select 1");
    let q1 = b.len();
    build::query(&mut b, "LOCAL thing");
    let q2 = b.len();
    build::terminate(&mut b);
    let mut st = SessionState::default();
    let (step, next) = walk(&mut st, &b);
    match step {
        ClientStep::Local {
            forward,
            query,
            resume,
            ..
        } => {
            assert_eq!(forward, 0..q1);
            assert_eq!(query, q1 + 5..q2);
            assert_eq!(resume, q2);
        }
        _ => panic!("expected a local command"),
    }
    assert_eq!(next, q2);
    let (step, _) = walk_client(&mut st, &b, q2, b.len(), &mut NoLocal).unwrap();
    assert!(matches!(step, ClientStep::Terminate { forward } if forward == (q2..q2)));
}

#[test]
fn extended_local_batch_is_taken_whole() {
    let mut b = Vec::new();
    build::query(&mut b, "select 1");
    let q1 = b.len();
    for (tag, body) in [
        (b'P', &b"\0LOCAL x\0\0\0"[..]),
        (b'B', &b"\0\0\0\0\0\0\0\0"[..]),
        (b'E', &b"\0\0\0\0\0"[..]),
    ] {
        let s = build::begin(&mut b, tag);
        b.extend_from_slice(body);
        build::finish(&mut b, s);
    }
    let before_sync = b.len();
    let s = build::begin(&mut b, b'S');
    build::finish(&mut b, s);
    let mut st = SessionState::default();
    // Without its Sync the batch is held back after the forwarded query.
    let (step, next) = walk(&mut st, &b[..before_sync]);
    assert!(matches!(step, ClientStep::Forward { forward } if forward == (0..q1)));
    assert_eq!(next, q1);
    let mut st = SessionState::default();
    let (step, next) = walk(&mut st, &b);
    match step {
        ClientStep::Local {
            forward,
            query,
            answer,
            ..
        } => {
            assert_eq!(forward, 0..q1);
            assert_eq!(query, q1..b.len());
            assert_eq!(answer, LocalAnswer::Extended);
        }
        _ => panic!("expected a local batch"),
    }
    assert_eq!(next, b.len());
    assert_eq!(
        st.outstanding, 1,
        "only the forwarded query owes a ReadyForQuery"
    );
    assert!(!st.unsynced);
}

#[test]
fn absurd_length_is_a_protocol_error() {
    let mut st = SessionState::default();
    assert!(walk_client(&mut st, b"Q\x7f\xff\xff\xffab", 0, 7, &mut NoLocal).is_err());
}
