//! The client side of the relay loop: complete client batches turned into dispatched
//! work. Each batch is classified and routed (or answered locally, from the query
//! cache, or refused inside a failed transaction), sent to its nodes, and entered in
//! every target node's queue of expected answers and in the client's order of batches.
use super::*;

impl LoopState {
    /// Dispatches the complete client batches read so far (not while a local command
    /// waits, nor while routing waits for the catalog, a timestamp or another node).
    pub(super) fn dispatch_batches(
        &mut self,
        step: &mut StepIo<'_, '_>,
        relay: &mut Relay<'_>,
    ) -> Result<(), RelayEnd> {
        let (_, backends, local, io, cbuf, _, _) = step.split();
        // (Snapshot isolation: while a step is marked, its batch must be answered by every
        // node before anything else goes out.)
        while self.pending_local.is_none()
            && !relay.router.catalog_wait
            && !relay.router.now_wait
            && relay.router.replicating.is_none()
            && !relay.router.snapshot_step_held
            && !self.terminated
            && self.cfrom < self.cto
        {
            if relay.router.client_remaining > 0 {
                // The tail of a message larger than the buffer.
                let take = relay.router.client_remaining.min(self.cto - self.cfrom);
                let t = relay.router.remaining_target;
                for (k, n) in io.iter_mut().enumerate() {
                    if t.includes(k) {
                        n.out
                            .extend_from_slice(&cbuf[self.cfrom..self.cfrom + take]);
                    }
                }
                relay.router.client_remaining -= take;
                self.cfrom += take;
                continue;
            }
            let scan = match scan_client(
                cbuf,
                self.cfrom,
                self.cto,
                local,
                relay.router.open.is_some(),
            ) {
                Ok(s) => s,
                Err(e) => return Err(RelayEnd::ClientProtocol(e)),
            };
            match scan {
                Scan::Incomplete => break,
                Scan::Terminate => {
                    if let Some(l) = relay.client_log.as_mut() {
                        l.one(b'X', &[]);
                    }
                    self.terminated = true;
                    self.cfrom = self.cto;
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
                    self.pending_local = Some((cbuf[start..end].to_vec(), answer));
                    self.cfrom = end;
                }
                // A failed transaction with nothing in flight (its state is certain): a
                // lone Query that does not end it is refused here, as Pgpool-II does. The
                // error may have come from any node of the session (a read that failed on
                // a standby fails the whole transaction, as on one server).
                Scan::Batch { end, .. }
                    if cbuf[self.cfrom] == b'Q'
                        && self.order.is_empty()
                        && io.iter().all(|n| n.queue.is_empty())
                        && io.iter().any(|n| n.tx == b'E')
                        && scan_header(&cbuf[self.cfrom..end])
                            .ok()
                            .flatten()
                            .is_some_and(|h| self.cfrom + h.total_len() == end)
                        && !ends_failed_transaction(&cbuf[self.cfrom + 5..end]) =>
                {
                    self.pending_local =
                        Some((cbuf[self.cfrom + 5..end].to_vec(), LocalAnswer::Aborted));
                    self.cfrom = end;
                }
                Scan::Batch { end, kind } => {
                    if cbuf[self.cfrom] == b'Q' && relay.router.open_flushed {
                        // A Query after flushed extended messages: they end here (the
                        // Query would end their implicit transaction anyway), so the
                        // Query is routed on its own.
                        close_flushed_batch(relay.router, io);
                    }
                    let continuing = relay.router.open.is_some();
                    if !continuing && kind == BatchEnd::Synced {
                        if let Some(answer) = relay.cached_answer(&cbuf[self.cfrom..end], io) {
                            self.pending_local = Some((answer, LocalAnswer::Cached));
                            self.cfrom = end;
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
                        && relay.timestamp_missing(&cbuf[self.cfrom..end])
                    {
                        relay.start_timestamp_fetch(io);
                        break;
                    }
                    let batch = &cbuf[self.cfrom..end];
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
                        counts.record(relay.shm.backend(relay.cfg.node_ids[t.answering()]));
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
                    let settings = relay.router.settings;
                    if settings.log_statement
                        || settings.log_per_node_statement
                        || settings.notice_per_node_statement
                    {
                        log_statements(
                            batch,
                            target,
                            relay.cfg.node_ids,
                            backends,
                            &settings,
                            &mut notices,
                        );
                    }
                    if let Some((prefix, t)) = last_statement(relay.router, batch) {
                        let mut nodes = (0..relay.cfg.node_ids.len())
                            .filter(|&k| target.includes(k))
                            .map(|k| relay.cfg.node_ids[k]);
                        local.note_sent(prefix, t, &mut nodes);
                    }
                    if kind == BatchEnd::Overflow {
                        if let Some(rest) = overflow_rest(&cbuf[self.cfrom..end]) {
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
                        self.order.push_back(answering);
                        relay.router.last_extended_synced =
                            synced && !matches!(batch.first(), Some(b'Q' | b'F'));
                        relay.router.open = if synced { None } else { Some(target) };
                        relay.router.open_flushed = kind == BatchEnd::Flushed;
                    }
                    relay.attach_invalidations(io);
                    self.cfrom = end;
                }
            }
        }
        Ok(())
    }
}
