//! Routing of one batch: the target of a batch of client messages from what its
//! statements, portals and prepared statements need, and what the batch leaves behind
//! (statements, portals, session statements to repeat elsewhere).
use super::*;

impl Relay<'_> {
    /// Decides the target of the batch `buf` (complete messages) and records the
    /// statements and portals it creates.
    pub(super) fn route_batch(&mut self, buf: &[u8], io: &[NodeIo]) -> (Target, Counts) {
        let mut counts = Counts::default();
        self.router.batch_starts_tx = false;
        self.router.batch_writes = false;
        self.router.batch_echo.clear();
        self.router.batch_commits = false;
        self.router.batch_takes_snapshot = false;
        // A batch continuing a flushed one goes where that one went, but what it does
        // (writes, portals, prepared statements) is recorded all the same.
        let open = self.router.open;
        // In a transaction, or a BEGIN is on its way (pipelined).
        let mut in_tx = io[PRIMARY].tx != b'I' || io[PRIMARY].joined_tx;
        let mut need_primary = std::mem::take(&mut self.router.batch_needs_primary);
        let mut need_both = false;
        // A portal of an earlier batch lives on this load-balance connection.
        let mut need_lb: Option<usize> = None;
        let mut unnamed_bound = false;
        let mut bound: Vec<&[u8]> = Vec::new();
        // Native replication: a write goes to every node, whatever else the batch holds.
        let mut need_replicated = false;
        // SQL-level statements this batch PREPAREs: they live where it runs.
        let mut prepared_here: Vec<(String, PreparedSql)> = Vec::new();
        // pg_terminate_backend() of a backend on this connection.
        let mut forced: Option<usize> = None;
        let mut i = 0;
        while i + 5 <= buf.len() {
            let Ok(Some(h)) = scan_header(&buf[i..]) else {
                break;
            };
            let body = &buf[i + 5..(i + h.total_len()).min(buf.len())];
            match h.tag {
                b'Q' => {
                    if self.cfg.titles {
                        crate::sys::set_title_command(cstr(body).0);
                    }
                    let text = std::str::from_utf8(cstr(body).0).unwrap_or("");
                    if let Some(node) = crate::child::terminate_request(self.shm, text.as_bytes()) {
                        // Sent to the node the victim lives on, when it is in this session.
                        forced = self.cfg.node_ids.iter().position(|&n| n == node);
                    }
                    let r = self.statement_route(text, in_tx, true);
                    let used = self.sql_prepared_use(&r, Some(&mut prepared_here));
                    self.forget_statements(text, r.kind, r.prepared_name.as_deref());
                    let StatementRoute {
                        route,
                        kind,
                        serializable_begin,
                        starts_tx,
                        cursor_name,
                        session_statements,
                        ..
                    } = r;
                    self.router.batch_echo.extend(session_statements);
                    let is_write = used.is_write;
                    if is_write || kind == StatementKind::Ddl {
                        self.note_cache_write(text);
                    }
                    self.note_cache_session(text, kind);
                    let mut pinned = used.pin.is_some();
                    if let Some(t) = used.pin {
                        pin_to(t, &mut need_lb, &mut need_both, &mut need_primary);
                    }
                    // FETCH / MOVE / CLOSE of a protocol portal: where the portal lives.
                    if let Some(t) = cursor_name.and_then(|n| self.router.portals.get(n.as_bytes()))
                    {
                        pin_to(*t, &mut need_lb, &mut need_both, &mut need_primary);
                        pinned = true;
                    }
                    self.router.batch_starts_tx |= starts_tx;
                    in_tx |= starts_tx;
                    if serializable_begin {
                        self.router.serializable_tx = true;
                    }
                    need_replicated |= self.cfg.replicate && route == Route::Primary && is_write;
                    if !pinned {
                        note_route(route, &mut need_primary, &mut need_both);
                    }
                    self.note_write(is_write, in_tx);
                    counts.add(used.counts_as);
                    self.note_snapshot_kind(kind);
                }
                b'P' => {
                    let (name, rest) = cstr(body);
                    let (query, _) = cstr(rest);
                    let text = std::str::from_utf8(query).unwrap_or("");
                    let r = self.statement_route(text, in_tx, false);
                    // Parsing EXECUTE p needs p: where the PREPARE went.
                    let pin = self.sql_prepared_use(&r, None).pin;
                    let StatementRoute {
                        route,
                        is_write,
                        kind,
                        has_effects,
                        ..
                    } = r;
                    match pin {
                        Some(t) => pin_to(t, &mut need_lb, &mut need_both, &mut need_primary),
                        None => note_route(route, &mut need_primary, &mut need_both),
                    }
                    let parse = &buf[i..i + h.total_len()];
                    if self.cfg.cache.is_some() {
                        self.router.cache_prepared.insert(name.to_vec());
                    }
                    // The unnamed statement is parsed again batch after batch: reuse its
                    // entry and buffer rather than allocate per query.
                    match self.router.statements.get_mut(name) {
                        Some(st) => {
                            st.parse.clear();
                            st.parse.extend_from_slice(parse);
                            st.route = route;
                            st.is_write = is_write;
                            st.kind = kind;
                            st.has_effects = has_effects;
                            // A new unnamed statement replaces the old one only where it
                            // is parsed; a named one is closed first (in this batch or an
                            // earlier one), and where the old one still lives is what
                            // dispatch needs to close it there too.
                            if name.is_empty() {
                                st.on = 0;
                            }
                        }
                        None => {
                            let st = Statement {
                                parse: parse.to_vec(),
                                route,
                                is_write,
                                kind,
                                has_effects,
                                on: 0,
                            };
                            self.router.statements.insert(name.to_vec(), st);
                        }
                    }
                }
                b'B' => {
                    let (portal, rest) = cstr(body);
                    if portal.is_empty() {
                        unnamed_bound = true;
                    } else {
                        bound.push(portal);
                    }
                    let (stmt, _) = cstr(rest);
                    let looked_again = self.router.statements.get(stmt).and_then(|st| {
                        let again = st.has_effects
                            || (self.cfg.check_temp_table && !self.router.temp_tables.is_empty())
                            || (self.dml_adaptive() && in_tx && !self.router.written.is_empty());
                        again.then(|| statement_text(&st.parse).to_string())
                    });
                    let known = match looked_again {
                        Some(text) => {
                            let r = self.statement_route(&text, in_tx, true);
                            let used = self.sql_prepared_use(&r, Some(&mut prepared_here));
                            Some((r.route, used.is_write, r.kind, used.pin, used.counts_as))
                        }
                        None => self
                            .router
                            .statements
                            .get(stmt)
                            .map(|st| (st.route, st.is_write, st.kind, None, st.kind)),
                    };
                    if let Some((route, w, k, pin, counts_as)) = known {
                        let cache_notes = w
                            || matches!(
                                k,
                                StatementKind::Ddl
                                    | StatementKind::Set
                                    | StatementKind::Discard
                                    | StatementKind::Deallocate
                            );
                        if self.cfg.cache.is_some() && cache_notes {
                            let text = self
                                .router
                                .statements
                                .get(stmt)
                                .map(|st| statement_text(&st.parse).to_string());
                            if let Some(text) = text {
                                if w || k == StatementKind::Ddl {
                                    self.note_cache_write(&text);
                                }
                                self.note_cache_session(&text, k);
                            }
                        }
                        if route == Route::All
                            && matches!(
                                k,
                                StatementKind::Set
                                    | StatementKind::Transaction(_)
                                    | StatementKind::Discard
                            )
                        {
                            let text = self
                                .router
                                .statements
                                .get(stmt)
                                .map(|st| statement_text(&st.parse).to_string());
                            self.router.batch_echo.extend(text);
                        }
                        let begins = k == StatementKind::Transaction(sql::TransactionKind::Begin);
                        self.router.batch_starts_tx |= begins;
                        in_tx |= begins;
                        need_replicated |= self.cfg.replicate && route == Route::Primary && w;
                        match pin {
                            Some(t) => pin_to(t, &mut need_lb, &mut need_both, &mut need_primary),
                            None => note_route(route, &mut need_primary, &mut need_both),
                        }
                        self.note_write(w, in_tx);
                        counts.add(counts_as);
                        self.note_snapshot_kind(k);
                    } else {
                        need_primary = true;
                    }
                }
                b'E' | b'D' | b'C' => {
                    let (kind, name) = if h.tag == b'E' {
                        (b'P', cstr(body).0)
                    } else {
                        (
                            body.first().copied().unwrap_or(b'S'),
                            cstr(body.get(1..).unwrap_or(&[])).0,
                        )
                    };
                    // A portal bound in this batch runs where the batch goes; only
                    // portals of earlier batches pin the target.
                    let bound_here = if name.is_empty() {
                        unnamed_bound
                    } else {
                        bound.contains(&name)
                    };
                    if h.tag == b'C' && kind == b'S' {
                        self.router.cache_prepared.remove(name);
                    }
                    if kind == b'P' && !bound_here {
                        match self.router.portals.get(name) {
                            Some(Target::Lb(j)) => need_lb = Some(*j),
                            Some(_) => need_primary = true,
                            None => {}
                        }
                    }
                }
                b'F' => need_primary = true,
                _ => {}
            }
            i += h.total_len();
        }
        // A write (or anything else for the primary) after reads flushed to a standby
        // cannot join them there: they are closed, and this batch is routed on its own.
        let leave_open = self.router.open_flushed
            && matches!(open, Some(t) if !t.includes(PRIMARY)
                && (need_primary || need_replicated || need_both));
        self.router.close_open = leave_open;
        let target = if let (Some(t), false) = (open, leave_open) {
            t
        } else if let Some(k) = forced {
            if k == PRIMARY {
                Target::Primary
            } else {
                Target::Lb(k)
            }
        } else if need_replicated {
            Target::All
        } else if need_primary || (need_lb.is_some() && need_both) {
            Target::Primary
        } else if need_both {
            Target::All
        } else if let Some(j) = need_lb {
            Target::Lb(j)
        } else {
            let lb = self.pick_lb(io);
            if lb != PRIMARY && self.lb_allowed(io, lb) {
                Target::Lb(lb)
            } else {
                Target::Primary
            }
        };
        for (name, p) in prepared_here {
            self.router
                .sql_prepared
                .insert(name, PreparedSql { target, ..p });
        }
        // Portals created by this batch live where it runs.
        let mut i = 0;
        while i + 5 <= buf.len() {
            let Ok(Some(h)) = scan_header(&buf[i..]) else {
                break;
            };
            if h.tag == b'B' {
                let body = &buf[i + 5..(i + h.total_len()).min(buf.len())];
                let (portal, _) = cstr(body);
                match self.router.portals.get_mut(portal) {
                    Some(t) => *t = target,
                    None => {
                        self.router.portals.insert(portal.to_vec(), target);
                    }
                }
            }
            i += h.total_len();
        }
        (target, counts)
    }
}

/// A statement that must run where something of the session lives (a prepared statement,
/// a portal): what that asks of its batch.
fn pin_to(t: Target, need_lb: &mut Option<usize>, need_both: &mut bool, need_primary: &mut bool) {
    match t {
        Target::Lb(j) => *need_lb = Some(j),
        Target::All => *need_both = true,
        Target::Primary => *need_primary = true,
    }
}
