//! Reading a backend connection's answers: passed to the client, dropped, hidden or
//! captured (pgpool's own queries) according to the batch they belong to, with the
//! transaction state, errors and parameter changes they carry.
use super::*;

/// Passes (or drops) node `k`'s buffered answers while they belong to a batch that may
/// be answered now.
pub(super) fn drain_node(
    k: usize,
    io: &mut [NodeIo],
    order: &mut VecDeque<usize>,
    to_client: &mut Vec<u8>,
    backends: &mut [&mut BackendConn],
    state: &mut RelayOutcome,
    relay: &mut Relay<'_>,
) -> Result<(), String> {
    loop {
        let n = &mut io[k];
        if n.in_from == n.in_to {
            n.in_from = 0;
            n.in_to = 0;
            return Ok(());
        }
        // May this node's data be consumed now?
        let (forward, may) = match n.queue.front() {
            Some(e) if !e.forward => (false, true),
            Some(_) => (true, order.front() == Some(&k)),
            // Unsolicited: NOTIFY/notice/ParameterStatus from the primary reach the
            // client between batches; the standby's are dropped.
            None => (k == PRIMARY, order.is_empty()),
        };
        if !may {
            return Ok(());
        }
        if n.remaining > 0 {
            let take = n.remaining.min(n.in_to - n.in_from);
            if n.remaining_forward {
                to_client.extend_from_slice(&n.inbuf[n.in_from..n.in_from + take]);
            }
            n.in_from += take;
            n.remaining -= take;
            continue;
        }
        // Between messages: the batch's statement notices go first.
        if forward {
            if let Some(e) = n.queue.front_mut() {
                if !e.notices.is_empty() {
                    to_client.append(&mut e.notices);
                }
            }
        }
        let avail = n.in_to - n.in_from;
        if avail < 5 {
            return Ok(());
        }
        let h = match scan_header(&n.inbuf[n.in_from..n.in_to]) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        let capture = n.queue.front().map_or(Capture::None, |e| e.capture);
        // The query cache keeps the answer's messages whole (up to its limit).
        let limit = relay.cache_limit();
        if let Some(c) = n.queue.front_mut().and_then(|e| e.cache.as_mut()) {
            if h.tag == b'E' || (c.wants(h.tag) && h.total_len() > limit) {
                c.fail();
            }
        }
        let cached = n
            .queue
            .front()
            .and_then(|e| e.cache.as_ref())
            .is_some_and(|c| c.wants(h.tag));
        let inspect = matches!(h.tag, b'Z' | b'E' | b'S' | b'1' | b'3')
            || (capture != Capture::None && h.tag == b'D')
            || cached;
        if inspect && avail < h.total_len() {
            // Small messages are looked at whole.
            if h.total_len() > n.inbuf.len() {
                n.inbuf.resize(h.total_len(), 0);
            }
            return Ok(());
        }
        let start = n.in_from;
        let hide = n.queue.front_mut().is_some_and(|e| e.hide.take(h.tag));
        let pass = forward && !hide;
        if avail >= h.total_len() {
            if pass {
                to_client.extend_from_slice(&n.inbuf[start..start + h.total_len()]);
            }
            if cached {
                if let Some(c) = n.queue.front_mut().and_then(|e| e.cache.as_mut()) {
                    c.add(&n.inbuf[start..start + h.total_len()], true, limit);
                }
            }
            n.in_from += h.total_len();
        } else {
            if pass {
                to_client.extend_from_slice(&n.inbuf[start..n.in_to]);
            }
            n.remaining = h.total_len() - avail;
            n.remaining_forward = pass;
            n.in_from = n.in_to;
        }
        match h.tag {
            b'Z' => {
                let status = n.inbuf.get(start + 5).copied().unwrap_or(b'I');
                n.tx = status;
                // A BEGIN sent after this batch may still be on its way.
                n.joined_tx = status != b'I' || (n.joined_tx && n.queue.len() > 1);
                backends[k].tx_status = status;
                // A flushed (unsynced) batch ends with the ReadyForQuery of its Sync.
                let mut popped = Capture::None;
                if let Some(mut e) = n.queue.pop_front() {
                    if k == PRIMARY {
                        relay.cache_batch_done(&mut e, status);
                    }
                    popped = e.capture;
                    if e.forward {
                        order.pop_front();
                        if order.is_empty() && relay.cfg.titles {
                            crate::sys::set_title_status(crate::sys::idle_status(status));
                        }
                    }
                    match e.capture {
                        Capture::Catalog => relay.catalog_loaded(),
                        Capture::Now => {
                            relay.router.now_failed = relay.router.now.is_none();
                            relay.router.now_wait = false;
                            relay.router.now_arrived = true;
                        }
                        Capture::None => {}
                    }
                }
                if k == PRIMARY && status == b'I' && popped != Capture::Now {
                    relay.router.now = None;
                    relay.router.now_failed = false;
                }
                if k == PRIMARY && status == b'I' {
                    relay.router.write_in_tx = false;
                    relay.router.serializable_tx = false;
                    relay.router.written.clear();
                    if std::mem::take(&mut relay.router.ddl_in_tx) {
                        relay
                            .shm
                            .cluster()
                            .catalog_generation
                            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                    }
                    // Portals end with the transaction; the unnamed one's entry is kept
                    // (it is rebound before any use) to spare an allocation per query.
                    relay.router.portals.retain(|name, _| name.is_empty());
                }
            }
            b'D' if capture == Capture::Catalog => {
                relay
                    .catalog
                    .add_row(&n.inbuf[start + 5..start + h.total_len()]);
            }
            b'D' if capture == Capture::Now => {
                let body = &n.inbuf[start + 5..start + h.total_len()];
                relay.router.now = protocol::message::DataRowFields::new(body)
                    .next()
                    .flatten()
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .map(str::to_string);
            }
            b'E' if capture == Capture::Catalog => {
                let f = parse_error_fields(&n.inbuf[start + 5..start + h.total_len()]);
                log::debug!("catalog query failed: {}", f.message);
                relay.router.catalog_failed = true;
            }
            b'E' if capture == Capture::Now => {
                let f = parse_error_fields(&n.inbuf[start + 5..start + h.total_len()]);
                log::debug!("timestamp query failed: {}", f.message);
            }
            b'E' => {
                let body = &n.inbuf[start + 5..start + h.total_len()];
                let f = parse_error_fields(body);
                let stats = &relay.shm.backend(relay.cfg.node_ids[k]).stats;
                match f.severity.as_str() {
                    "FATAL" => {
                        stats
                            .fatal_cnt
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        state.backend_fatal = true;
                    }
                    "PANIC" => {
                        stats
                            .panic_cnt
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        state.backend_fatal = true;
                    }
                    _ => {
                        stats
                            .error_cnt
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                if f.code == "57P01" {
                    state.backend_shutdown = true;
                }
                if !forward && k != PRIMARY && relay.cfg.replicate {
                    // The main node succeeded (or will say so): this node now differs.
                    log::warn!(
                        "node {} failed a statement sent to all nodes: {} (it may no longer match node {})",
                        relay.cfg.node_ids[k],
                        f.message,
                        relay.cfg.node_ids[PRIMARY]
                    );
                } else if !forward && k != PRIMARY {
                    log::debug!(
                        "error on load-balance node {} for a statement sent to all nodes: {}",
                        relay.cfg.node_ids[k],
                        f.message
                    );
                }
            }
            b'S' => {
                let body = &n.inbuf[start + 5..start + h.total_len()];
                // The answering node's application_name is the session's (%a in
                // log_line_prefix), as SET application_name changes it.
                if let Some(("application_name", value)) = backends[k].note_parameter(body) {
                    if forward {
                        crate::logging::set_application_name(value);
                    }
                }
            }
            _ => {}
        }
    }
}
