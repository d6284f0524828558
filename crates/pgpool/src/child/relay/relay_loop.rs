//! The relay's event loop: dispatch complete client batches, answer local commands in
//! order, pass backend answers to the client in batch order, write, and wait on every
//! socket at once.
use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) fn relay_loop(
    client: &mut Stream,
    backends: &mut [&mut BackendConn],
    initial: &[u8],
    waker: &Waker,
    local: &mut dyn LocalCommands,
    relay: &mut Relay<'_>,
    bufs: &mut RelayBuffers,
    state: &mut RelayOutcome,
) -> RelayEnd {
    let RelayBuffers {
        nodes: io,
        client: cbuf,
        to_client,
    } = bufs;
    // Client bytes: read buffer with [from..to) not yet dispatched.
    let mut cfrom = 0usize;
    let mut cto = initial.len().min(cbuf.len());
    cbuf[..cto].copy_from_slice(&initial[..cto]);
    // Order of batches whose answers the client sees: the answering node of each.
    let mut order: VecDeque<usize> = VecDeque::new();
    let mut to_client_from = 0usize;
    // A local command waiting for its turn, and whether it is an extended batch.
    let mut pending_local: Option<(Vec<u8>, LocalAnswer)> = None;
    let mut terminated = false;
    let node_ids = relay.cfg.node_ids.clone();
    let mut bflags = vec![PollFlags::empty(); io.len()];
    let mut bev = vec![PollFlags::empty(); io.len()];
    let mut bready = vec![false; io.len()];
    loop {
        relay.end_snapshot_step(io, order.is_empty());
        // 1. Dispatch complete client batches (not while a local command waits).
        // (Snapshot isolation: while a step is marked, its batch must be answered by every
        // node before anything else goes out.)
        while pending_local.is_none()
            && !relay.router.catalog_wait
            && !relay.router.now_wait
            && relay.router.replicating.is_none()
            && !relay.router.snapshot_step_held
            && !terminated
            && cfrom < cto
        {
            if relay.router.client_remaining > 0 {
                // The tail of a message larger than the buffer.
                let take = relay.router.client_remaining.min(cto - cfrom);
                let t = relay.router.remaining_target;
                for (k, n) in io.iter_mut().enumerate() {
                    if t.includes(k) {
                        n.out.extend_from_slice(&cbuf[cfrom..cfrom + take]);
                    }
                }
                relay.router.client_remaining -= take;
                cfrom += take;
                continue;
            }
            let scan = match scan_client(cbuf, cfrom, cto, local, relay.router.open.is_some()) {
                Ok(s) => s,
                Err(e) => return RelayEnd::ClientProtocol(e),
            };
            match scan {
                Scan::Incomplete => break,
                Scan::Terminate => {
                    if let Some(l) = relay.client_log.as_mut() {
                        l.one(b'X', &[]);
                    }
                    terminated = true;
                    cfrom = cto;
                }
                Scan::Local {
                    start,
                    end,
                    extended,
                } => {
                    let answer = if extended {
                        LocalAnswer::Extended
                    } else {
                        LocalAnswer::Simple
                    };
                    pending_local = Some((cbuf[start..end].to_vec(), answer));
                    cfrom = end;
                }
                // A failed transaction with nothing in flight (its state is certain): a
                // lone Query that does not end it is refused here, as Pgpool-II does. The
                // error may have come from any node of the session (a read that failed on
                // a standby fails the whole transaction, as on one server).
                Scan::Batch { end, .. }
                    if cbuf[cfrom] == b'Q'
                        && order.is_empty()
                        && io.iter().all(|n| n.queue.is_empty())
                        && io.iter().any(|n| n.tx == b'E')
                        && scan_header(&cbuf[cfrom..end])
                            .ok()
                            .flatten()
                            .is_some_and(|h| cfrom + h.total_len() == end)
                        && !ends_failed_transaction(&cbuf[cfrom + 5..end]) =>
                {
                    pending_local = Some((cbuf[cfrom + 5..end].to_vec(), LocalAnswer::Aborted));
                    cfrom = end;
                }
                Scan::Batch { end, kind } => {
                    if cbuf[cfrom] == b'Q' && relay.router.open_flushed {
                        // A Query after flushed extended messages: they end here (the
                        // Query would end their implicit transaction anyway), so the
                        // Query is routed on its own.
                        close_flushed_batch(relay.router, io);
                    }
                    let continuing = relay.router.open.is_some();
                    if !continuing && kind == BatchEnd::Synced {
                        if let Some(answer) = relay.cached_answer(&cbuf[cfrom..end], io) {
                            pending_local = Some((answer, LocalAnswer::Cached));
                            cfrom = end;
                            continue;
                        }
                    }
                    if !continuing && kind != BatchEnd::Copy && relay.catalog_stale(io) {
                        // Routing needs the database's facts: ask, and hold the batch.
                        relay.start_catalog_load(io);
                        break;
                    }
                    if !continuing
                        && kind == BatchEnd::Synced
                        && relay.timestamp_missing(&cbuf[cfrom..end])
                    {
                        relay.start_timestamp_fetch(io);
                        break;
                    }
                    let batch = &cbuf[cfrom..end];
                    let mut hidden = HiddenAnswers::default();
                    let mut main_only = false;
                    if let Some(l) = relay.client_log.as_mut() {
                        l.frames(batch);
                    }
                    // COPY data (also a CopyData larger than the buffer) follows its COPY.
                    let copy_tag = matches!(batch.first(), Some(b'd' | b'c' | b'f'));
                    if copy_tag && relay.router.last_extended_synced {
                        // The server ignored that batch's Sync (it came in COPY IN mode):
                        // the batch ends with the ReadyForQuery of the next Sync.
                        relay.router.copy_sync_owed = true;
                    }
                    let owed_sync = kind == BatchEnd::Synced
                        && relay.router.copy_sync_owed
                        && batch == b"S\0\0\0\x04";
                    if owed_sync {
                        relay.router.copy_sync_owed = false;
                    }
                    let copy_data = kind == BatchEnd::Copy
                        || owed_sync
                        || (kind == BatchEnd::Overflow && !continuing && copy_tag);
                    // A result the cache may keep is read on the primary: a standby's could
                    // predate a write already invalidated, and would then be kept stale.
                    let mut capture = if !copy_data && kind == BatchEnd::Synced && !continuing {
                        relay.cache_prepare(batch, io)
                    } else {
                        None
                    };
                    relay.router.batch_needs_primary = capture.is_some();
                    let target = if copy_data {
                        relay.router.last
                    } else {
                        let (t, counts) = relay.route_batch(batch, io);
                        counts.record(relay.shm.backend(node_ids[t.answering()]));
                        t
                    };
                    if std::mem::take(&mut relay.router.close_open) {
                        close_flushed_batch(relay.router, io);
                    }
                    let continuing = continuing && relay.router.open.is_some();
                    relay.order_snapshot_step(io);
                    if relay.cfg.main_first
                        && !copy_data
                        && target == Target::All
                        && kind == BatchEnd::Synced
                        && !continuing
                        && !relay.batch_mentions_copy(batch)
                    {
                        // Native replication: the main node first, the others once it
                        // has answered.
                        let in_tx = io[PRIMARY].tx != b'I';
                        let (bytes, commit_after) = match relay.prepare_replicated(batch, in_tx) {
                            Some(r) => {
                                hidden = r.hidden;
                                (r.bytes, r.commit_after)
                            }
                            None => (batch.to_vec(), false),
                        };
                        dispatch(relay.router, &bytes, target, io, 0..1);
                        relay.router.replicating = Some(Replicating::Main {
                            bytes,
                            starts_tx: relay.router.batch_starts_tx,
                            commit_after,
                        });
                        main_only = true;
                    } else {
                        if relay.router.batch_writes && !continuing && target.includes(PRIMARY) {
                            let reading = others_reading(io);
                            io[PRIMARY].hold_writes(reading);
                        }
                        let all = 0..io.len();
                        dispatch(relay.router, batch, target, io, all);
                        echo_session_statements(relay.router, target, io);
                    }
                    if relay.router.batch_starts_tx {
                        for (k, n) in io.iter_mut().enumerate() {
                            n.joined_tx |= target.includes(k) && (k == PRIMARY || !main_only);
                        }
                    }
                    let mut notices = Vec::new();
                    if relay.cfg.log_statement
                        || relay.cfg.log_per_node_statement
                        || relay.cfg.notice_per_node_statement
                    {
                        log_statements(
                            batch,
                            target,
                            &node_ids,
                            backends,
                            &relay.cfg,
                            &mut notices,
                        );
                    }
                    if let Some((prefix, t)) = last_statement(relay.router, batch) {
                        let mut nodes = (0..node_ids.len())
                            .filter(|&k| target.includes(k))
                            .map(|k| node_ids[k]);
                        local.note_sent(prefix, t, &mut nodes);
                    }
                    if kind == BatchEnd::Overflow {
                        if let Some(rest) = overflow_rest(&cbuf[cfrom..end]) {
                            relay.router.client_remaining = rest;
                            relay.router.remaining_target = target;
                        }
                    }
                    relay.router.last = target;
                    let answering = target.answering();
                    // Replayed Parses are hidden among the answers of the batch they
                    // precede (the last one queued on that node).
                    let add_hide = |io: &mut [NodeIo]| {
                        for n in io.iter_mut() {
                            if n.batch_hide > 0 {
                                let h = n.batch_hide;
                                if let Some(e) = n.queue.back_mut() {
                                    e.hide.parse += h;
                                }
                            }
                        }
                    };
                    // COPY data and the rest of an overflowing message join the batch
                    // before them; a boundary of an open batch closes it; anything else
                    // starts a batch (an overflowing one stays open, like a Flush).
                    let joins = copy_data || (continuing && kind == BatchEnd::Overflow);
                    if joins || continuing {
                        add_hide(io);
                        if let Some(e) = io[answering].queue.back_mut() {
                            e.notices.append(&mut notices);
                        }
                    }
                    if joins {
                        // Nothing more: answers come with the batch joined.
                    } else if continuing {
                        if kind == BatchEnd::Synced {
                            for (k, n) in io.iter_mut().enumerate() {
                                if target.includes(k) {
                                    if let Some(e) = n.queue.back_mut() {
                                        e.synced = true;
                                    }
                                }
                            }
                            relay.router.open = None;
                        }
                    } else {
                        let synced = kind == BatchEnd::Synced;
                        for (k, n) in io.iter_mut().enumerate() {
                            if target.includes(k) && (k == PRIMARY || !main_only) {
                                let mut hide = hidden;
                                hide.parse += n.batch_hide;
                                n.queue.push_back(Expect {
                                    forward: k == answering,
                                    writes: relay.router.batch_writes,
                                    may_abort: !relay.router.batch_starts_tx,
                                    hide,
                                    synced,
                                    notices: if k == answering {
                                        std::mem::take(&mut notices)
                                    } else {
                                        Vec::new()
                                    },
                                    cache: if k == answering { capture.take() } else { None },
                                    ..Expect::default()
                                });
                            }
                        }
                        order.push_back(answering);
                        relay.router.last_extended_synced =
                            synced && !matches!(batch.first(), Some(b'Q' | b'F'));
                        relay.router.open = if synced { None } else { Some(target) };
                        relay.router.open_flushed = kind == BatchEnd::Flushed;
                    }
                    relay.attach_invalidations(io);
                    cfrom = end;
                }
            }
        }
        if cfrom == cto {
            cfrom = 0;
            cto = 0;
        } else if cfrom > 0 {
            // Keep the partial message at the front so the buffer has room to read.
            cbuf.copy_within(cfrom..cto, 0);
            cto -= cfrom;
            cfrom = 0;
        }
        // 2. Answer a local command once everything before it was answered.
        let mut answered_locally = false;
        if pending_local.is_some() && order.is_empty() && to_client_from >= to_client.len() {
            if let Some((q, answer)) = pending_local.take() {
                answered_locally = true;
                to_client.clear();
                to_client_from = 0;
                match answer {
                    LocalAnswer::Extended => {
                        local_ext::answer(&q, local, to_client, io[PRIMARY].tx)
                    }
                    LocalAnswer::Aborted => aborted_answer(&q, to_client),
                    LocalAnswer::Cached => {
                        to_client.extend_from_slice(&q);
                        build::ready_for_query(to_client, io[PRIMARY].tx);
                    }
                    LocalAnswer::Simple => {
                        if !relay.cache_delete_command(&q, to_client) {
                            local.answer(&q, to_client);
                        }
                        build::ready_for_query(to_client, io[PRIMARY].tx);
                    }
                }
            }
        }
        // 3. Backend answers → client, in batch order. A batch answered by one node can
        // let another node's answers, already read and waiting their turn, go: drain
        // again until nothing moves (no socket event would come for bytes already read).
        loop {
            let pending = order.len();
            for (k, &id) in node_ids.iter().enumerate() {
                if let Err(e) = drain_node(k, io, &mut order, to_client, backends, state, relay) {
                    state.failed_node = Some(id);
                    return RelayEnd::BackendFailed(format!("node {id}: {e}"));
                }
            }
            if order.len() == pending {
                break;
            }
        }
        let replicated = advance_replication(relay.router, io, &mut order);
        // Before anything is written: busy from before a request goes out, idle before
        // the client can see the last answer. Busy means running what the client waits
        // for: the node answering the first batch in order (a Sync or a replayed Parse
        // owed by another node must not draw a cancel meant for it), every node owing
        // answers under native replication (they all run the statement).
        for (k, (n, info)) in io.iter().zip(&relay.cfg.conn_info).enumerate() {
            let running = if relay.cfg.replicate {
                !n.queue.is_empty()
            } else {
                order.front() == Some(&k)
            };
            info.set_busy(running);
        }
        // 4. Writes.
        if io[PRIMARY].held_from.is_some() {
            let reading = others_reading(io);
            io[PRIMARY].release_writes(reading);
        }
        for (k, n) in io.iter_mut().enumerate() {
            if n.has_sendable() {
                if let Err(e) = n.write_sendable(&mut backends[k].stream) {
                    state.failed_node = Some(node_ids[k]);
                    return RelayEnd::BackendFailed(format!(
                        "unable to forward message to backend node {}: {e}",
                        node_ids[k]
                    ));
                }
            }
        }
        if to_client_from < to_client.len() {
            if let Err(e) = write_some(client, to_client, &mut to_client_from) {
                state.reusable = false;
                return RelayEnd::ClientError(e);
            }
        }
        let idle = order.is_empty()
            && io
                .iter()
                .all(|n| n.queue.is_empty() && !n.has_output() && n.remaining == 0)
            && relay.router.client_remaining == 0
            && relay.router.open.is_none()
            && relay.router.replicating.is_none();
        if terminated {
            // Nobody reads answers any more.
            to_client.clear();
            to_client_from = 0;
        }
        // Native replication: the other nodes finish what they were sent first (closing a
        // socket with unread answers resets it, and the node would drop the writes still
        // queued behind them).
        if terminated && !io.iter().any(NodeIo::has_output) && (idle || !relay.cfg.replicate) {
            state.reusable = idle && !state.backend_fatal;
            return RelayEnd::ClientClosed;
        }
        let arrived = std::mem::take(&mut relay.router.catalog_arrived)
            | std::mem::take(&mut relay.router.now_arrived)
            | replicated
            | answered_locally;
        if arrived && cfrom < cto {
            // The batches held for the catalog's (or timestamp's) answer, or behind a local
            // answer, can be routed now: they were read already, no socket event will come.
            continue;
        }
        if pending_local.is_some() && order.is_empty() && to_client_from >= to_client.len() {
            // The last answer before a local command went out in this pass: its turn
            // came, and no socket event will say so.
            continue;
        }
        if relay.router.snapshot_step_held && cfrom < cto {
            // Held batches go out as soon as the marked step is answered everywhere.
            relay.end_snapshot_step(io, order.is_empty());
            if !relay.router.snapshot_step_held {
                continue;
            }
        }
        // 5. Wait.
        let client_readable = !terminated && pending_local.is_none() && cto < cbuf.len();
        let mut cflags = PollFlags::empty();
        if client_readable {
            cflags |= PollFlags::POLLIN;
        }
        if to_client_from < to_client.len() {
            cflags |= PollFlags::POLLOUT;
        }
        let want_read = |k: usize, io: &[NodeIo], order: &VecDeque<usize>| -> bool {
            match io[k].queue.front() {
                Some(e) if !e.forward => true,
                Some(_) => order.front() == Some(&k),
                // Unsolicited messages (NOTIFY, notices) while idle.
                None => true,
            }
        };
        for (k, f) in bflags.iter_mut().enumerate() {
            *f = PollFlags::empty();
            if to_client_from >= to_client.len() && want_read(k, io, &order) {
                *f |= PollFlags::POLLIN;
            }
            if io[k].has_sendable() {
                *f |= PollFlags::POLLOUT;
            }
        }
        let client_ready = match prepare_poll(client, &mut cflags) {
            Ok(r) => r,
            Err(e) => return RelayEnd::ClientError(e),
        };
        let mut ready = client_ready;
        for (k, b) in backends.iter_mut().enumerate() {
            match prepare_poll(&mut b.stream, &mut bflags[k]) {
                Ok(r) => {
                    bready[k] = r;
                    ready |= r;
                }
                Err(e) => {
                    state.failed_node = Some(node_ids[k]);
                    return RelayEnd::BackendFailed(format!(
                        "unable to write to backend node {}: {e}",
                        node_ids[k]
                    ));
                }
            }
        }
        let timeout = if ready {
            nix::poll::PollTimeout::ZERO
        } else {
            idle_timeout(relay.cfg.client_idle_limit, idle)
        };
        let cev = match poll_session(client, cflags, backends, &bflags, waker, timeout, &mut bev) {
            Ok(None) if !ready => return RelayEnd::IdleTimeout,
            Ok(None) => PollFlags::empty(),
            Ok(Some(ev)) => ev,
            Err(e) => return RelayEnd::BackendFailed(format!("poll failed: {e}")),
        };
        let cev = if client_ready {
            cev | PollFlags::POLLIN
        } else {
            cev
        };
        for (e, r) in bev.iter_mut().zip(&bready) {
            if *r {
                *e |= PollFlags::POLLIN;
            }
        }
        if let Some(end) = signalled_end(local) {
            return end;
        }
        if client_readable && cev.intersects(READABLE) {
            match read_some(client, &mut cbuf[cto..]) {
                Ok(Some(0)) => {
                    terminated = true;
                }
                Ok(Some(n)) => cto += n,
                Ok(None) => {}
                Err(e) => return RelayEnd::ClientError(e),
            }
        }
        for k in 0..io.len() {
            if bflags[k].contains(PollFlags::POLLIN) && bev[k].intersects(READABLE) {
                let n = &mut io[k];
                if n.in_from > 0 {
                    n.inbuf.copy_within(n.in_from..n.in_to, 0);
                    n.in_to -= n.in_from;
                    n.in_from = 0;
                }
                if n.in_to == n.inbuf.len() {
                    n.inbuf.resize(n.inbuf.len() * 2, 0);
                }
                match read_some(&mut backends[k].stream, &mut n.inbuf[n.in_to..]) {
                    Ok(Some(0)) => {
                        state.failed_node = Some(node_ids[k]);
                        return RelayEnd::BackendFailed(format!(
                            "backend node {} closed the connection",
                            node_ids[k]
                        ));
                    }
                    Ok(Some(r)) => n.in_to += r,
                    Ok(None) => {}
                    Err(e) => {
                        state.failed_node = Some(node_ids[k]);
                        return RelayEnd::BackendFailed(format!(
                            "unable to read data from backend node {}: {e}",
                            node_ids[k]
                        ));
                    }
                }
            }
        }
    }
}

/// Waits for the client, the session's backends (`bflags`, events into `bev`) or the
/// waker; the client's events, or None on timeout. Two backends (the usual session) poll
/// from an array, more from a vector.
pub(super) fn poll_session(
    client: &Stream,
    cflags: PollFlags,
    backends: &[&mut BackendConn],
    bflags: &[PollFlags],
    waker: &Waker,
    timeout: nix::poll::PollTimeout,
    bev: &mut [PollFlags],
) -> nix::Result<Option<PollFlags>> {
    fn finish(fds: &[PollFd<'_>], waker: &Waker, bev: &mut [PollFlags]) -> PollFlags {
        let ev = |f: &PollFd<'_>| f.revents().unwrap_or(PollFlags::empty());
        if fds.last().is_some_and(|f| !ev(f).is_empty()) {
            waker.drain();
        }
        for (k, e) in bev.iter_mut().enumerate() {
            *e = ev(&fds[k + 1]);
        }
        ev(&fds[0])
    }
    let n = if let [p, s] = backends {
        let mut fds = [
            PollFd::new(client.as_fd(), cflags),
            PollFd::new(p.stream.as_fd(), bflags[0]),
            PollFd::new(s.stream.as_fd(), bflags[1]),
            PollFd::new(waker.fd(), PollFlags::POLLIN),
        ];
        let n = match poll(&mut fds, timeout) {
            Err(Errno::EINTR) => 1,
            r => r?,
        };
        (n, finish(&fds, waker, bev))
    } else {
        let mut fds = Vec::with_capacity(backends.len() + 2);
        fds.push(PollFd::new(client.as_fd(), cflags));
        for (b, f) in backends.iter().zip(bflags) {
            fds.push(PollFd::new(b.stream.as_fd(), *f));
        }
        fds.push(PollFd::new(waker.fd(), PollFlags::POLLIN));
        let n = match poll(&mut fds, timeout) {
            Err(Errno::EINTR) => 1,
            r => r?,
        };
        (n, finish(&fds, waker, bev))
    };
    Ok((n.0 != 0).then_some(n.1))
}
