//! Sending a routed batch: to each target connection's output (replaying Parses a node
//! lacks), the session statements the other connections must see too, the end of a flushed
//! batch, native replication's main-node-first steps, and statement logging.
use super::*;

/// Appends the batch to each target connection's output, replaying Parse messages of
/// named statements the node lacks; counts the answers each must hide in `batch_hide`.
/// Only the connections in `nodes` are sent to now (native replication sends the main
/// node's share first).
pub(super) fn dispatch(
    router: &mut Router,
    batch: &[u8],
    target: Target,
    io: &mut [NodeIo],
    nodes: std::ops::Range<usize>,
) {
    for (k, node) in io.iter_mut().enumerate() {
        node.batch_hide = 0;
        if !target.includes(k) || !nodes.contains(&k) {
            continue;
        }
        // Statements bound in this batch but parsed elsewhere: parse them here first (a
        // Parse earlier in the batch counts as done, since the batch goes out whole). In
        // message order: a Close then a Parse of the same name leaves it prepared here.
        for (tag, body) in Messages(batch) {
            let (name, replay) = match tag {
                b'P' => (cstr(body).0, false),
                b'B' => (cstr(cstr(body).1).0, true),
                b'C' if body.first() == Some(&b'S') => {
                    if let Some(st) = router.statements.get_mut(cstr(&body[1..]).0) {
                        st.set_on(k, false);
                    }
                    continue;
                }
                _ => continue,
            };
            if let Some(st) = router.statements.get_mut(name) {
                if replay && !st.is_on(k) {
                    node.out.extend_from_slice(&st.parse);
                    node.batch_hide += 1;
                }
                st.set_on(k, true);
            }
        }
        node.out.extend_from_slice(batch);
    }
    // A statement closed on the nodes of this batch but still prepared on others is
    // closed there too, so its name can be reused anywhere.
    for (tag, body) in Messages(batch) {
        if tag != b'C' || body.first() != Some(&b'S') {
            continue;
        }
        let name = cstr(&body[1..]).0;
        let Some(st) = router.statements.get_mut(name) else {
            continue;
        };
        for (k, node) in io.iter_mut().enumerate() {
            if st.is_on(k) && !target.includes(k) {
                // Close + Sync so the node answers CloseComplete and ReadyForQuery,
                // both hidden.
                let s = build::begin(&mut node.out, b'C');
                node.out.push(b'S');
                build::put_cstr(&mut node.out, name);
                build::finish(&mut node.out, s);
                let s = build::begin(&mut node.out, b'S');
                build::finish(&mut node.out, s);
                node.queue.push_back(Expect {
                    synced: true,
                    ..Expect::default()
                });
                st.set_on(k, false);
            }
        }
        if st.on == 0 {
            router.statements.remove(name);
        }
    }
}

/// The session-state statements of a batch that does not go to every connection, sent
/// (answers hidden) to those it does not go to: a SET inside a multi-statement query, or
/// the COMMIT of a pipeline whose writes went to the primary, reaches the standbys too.
pub(super) fn echo_session_statements(router: &mut Router, target: Target, io: &mut [NodeIo]) {
    if target == Target::All || router.batch_echo.is_empty() {
        return;
    }
    let text = router.batch_echo.join(";");
    for (k, n) in io.iter_mut().enumerate() {
        if !target.includes(k) {
            build::query(&mut n.out, &text);
            n.queue.push_back(Expect {
                synced: true,
                ..Expect::default()
            });
            n.joined_tx |= router.batch_starts_tx;
        }
    }
}

/// Ends the open (flushed, not synced) batch with a Sync on the nodes it went to; its
/// ReadyForQuery is pgpool's, not the client's.
pub(super) fn close_flushed_batch(router: &mut Router, io: &mut [NodeIo]) {
    let Some(t) = router.open.take() else {
        return;
    };
    router.open_flushed = false;
    for (k, n) in io.iter_mut().enumerate() {
        if t.includes(k) {
            let s = build::begin(&mut n.out, b'S');
            build::finish(&mut n.out, s);
            if let Some(e) = n.queue.back_mut() {
                e.synced = true;
                e.hide.ready = true;
            }
        }
    }
}

/// Native replication: the next step of the write in progress once the nodes it waits
/// for have answered everything they were sent. True when the write is done (held
/// batches may go).
pub(super) fn advance_replication(
    router: &mut Router,
    io: &mut [NodeIo],
    order: &mut VecDeque<usize>,
) -> bool {
    let all_done = |io: &[NodeIo]| io.iter().all(|n| n.queue.is_empty());
    let was = router.replicating.is_some();
    router.replicating = match router.replicating.take() {
        Some(Replicating::Main {
            bytes,
            starts_tx,
            commit_after,
        }) if io[PRIMARY].queue.is_empty() => {
            let others = PRIMARY + 1..io.len();
            dispatch(router, &bytes, Target::All, io, others.clone());
            for n in &mut io[others] {
                let hide = HiddenAnswers {
                    parse: n.batch_hide,
                    ..HiddenAnswers::default()
                };
                n.queue.push_back(Expect {
                    hide,
                    synced: true,
                    ..Expect::default()
                });
                n.joined_tx |= starts_tx;
            }
            Some(Replicating::Others { commit_after })
        }
        Some(Replicating::Others { commit_after: true }) if all_done(io) => {
            for (k, n) in io.iter_mut().enumerate() {
                build::query(&mut n.out, "COMMIT");
                n.queue.push_back(Expect {
                    forward: k == PRIMARY,
                    hide: HiddenAnswers {
                        commands: 1,
                        ..HiddenAnswers::default()
                    },
                    synced: true,
                    ..Expect::default()
                });
            }
            order.push_back(PRIMARY);
            Some(Replicating::Commit)
        }
        Some(Replicating::Others { .. } | Replicating::Commit) if all_done(io) => None,
        other => other,
    };
    was && router.replicating.is_none()
}

/// The batch's last statement as SHOW POOL_POOLS shows it: a Query's text, or the last
/// Parse, Bind or Execute as "Parse: text" (as Pgpool-II 4.7 names them; a Bind or
/// Execute by the text of the statement the batch's last Bind named).
pub(super) fn last_statement<'a>(
    router: &'a Router,
    batch: &'a [u8],
) -> Option<(&'static [u8], &'a [u8])> {
    let parsed = |name: &[u8]| {
        let st = router.statements.get(name)?;
        Some(cstr(cstr(st.parse.get(5..)?).1).0)
    };
    let mut i = 0;
    let mut last = None;
    let mut bound: Option<&[u8]> = None;
    while i + 5 <= batch.len() {
        let Ok(Some(h)) = scan_header(&batch[i..]) else {
            break;
        };
        let end = (i + h.total_len()).min(batch.len());
        let body = &batch[i + 5..end];
        match h.tag {
            b'Q' => last = Some((&b""[..], cstr(body).0)),
            b'P' => last = Some((&b"Parse: "[..], cstr(cstr(body).1).0)),
            b'B' => {
                // routing has recorded this batch's Parses already
                bound = parsed(cstr(cstr(body).1).0);
                if let Some(t) = bound {
                    last = Some((&b"Bind: "[..], t));
                }
            }
            b'E' => {
                if let Some(t) = bound {
                    last = Some((&b"Execute: "[..], t));
                }
            }
            _ => {}
        }
        i = end;
    }
    last
}

/// log_statement, log_per_node_statement and notice_per_node_statement for a batch sent
/// to `target`; notices are appended to `notices` for the client.
pub(super) fn log_statements(
    batch: &[u8],
    target: Target,
    node_ids: &[usize],
    backends: &[&mut BackendConn],
    settings: &SessionSettings,
    notices: &mut Vec<u8>,
) {
    let mut i = 0;
    while i + 5 <= batch.len() {
        let Ok(Some(h)) = scan_header(&batch[i..]) else {
            break;
        };
        let end = (i + h.total_len()).min(batch.len());
        let body = &batch[i + 5..end];
        let text = match h.tag {
            b'Q' => Some(cstr(body).0),
            b'P' => Some(cstr(cstr(body).1).0),
            _ => None,
        };
        if let Some(t) = text {
            if settings.log_statement {
                crate::child::relay_shared::log_statement_text(t);
            }
            for k in 0..node_ids.len() {
                if target.includes(k) {
                    if settings.log_per_node_statement {
                        crate::child::relay_shared::log_statement(node_ids[k], backends[k].pid, t);
                    }
                    if settings.notice_per_node_statement {
                        crate::child::relay_shared::statement_notice(notices, node_ids[k], t);
                    }
                }
            }
        }
        i = end;
    }
}
