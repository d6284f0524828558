//! Local commands (SHOW POOL_*, PGPOOL ...) sent with the extended protocol: a batch
//! that starts with a Parse of a local command text (or a Bind of a statement prepared
//! that way earlier) and consists only of messages about that statement and its
//! portals, up to Sync or Flush, is answered here as a whole — ParseComplete,
//! BindComplete, ParameterDescription/RowDescription/NoData, DataRows and
//! CommandComplete, CloseComplete, ReadyForQuery — and never reaches a backend. Any
//! other batch is forwarded untouched. The relays call [`scan`] only for a P or B that
//! starts a batch, so ordinary traffic pays one byte comparison (plus `is_local` on
//! Parse texts).

use protocol::build;

use crate::child::relay_shared::LocalCommands;

/// What [`scan`] found at the start of a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Batch {
    /// Not ours: forward as usual.
    NotLocal,
    /// Possibly ours, but the batch is not complete yet (wait for more bytes if the
    /// buffer can hold them).
    Incomplete,
    /// Ours: the first `n` bytes (through Sync or Flush) are answered locally.
    Local(usize),
}

use protocol::message::take_cstr as cstr;

/// Parse body → (statement name, query text).
fn parse_body(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let (name, rest) = cstr(body)?;
    let (query, _) = cstr(rest)?;
    Some((name, query))
}

/// Bind body → (portal, statement).
fn bind_body(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let (portal, rest) = cstr(body)?;
    let (stmt, _) = cstr(rest)?;
    Some((portal, stmt))
}

/// Describe / Close body → (kind 'S' or 'P', name).
fn target_body(body: &[u8]) -> Option<(u8, &[u8])> {
    let (&kind, rest) = body.split_first()?;
    let (name, _) = cstr(rest)?;
    Some((kind, name))
}

/// A message: tag, body, total length.
type Msg<'a> = (u8, &'a [u8], usize);

/// The complete message at the front of `buf`, if any.
fn next_message(buf: &[u8]) -> Option<Result<Msg<'_>, ()>> {
    match protocol::scan_header(buf) {
        Ok(Some(h)) if buf.len() >= h.total_len() => {
            Some(Ok((h.tag, &buf[5..h.total_len()], h.total_len())))
        }
        Ok(_) => None,
        Err(_) => Some(Err(())),
    }
}

/// A Parse that goes to a backend replaces any local statement of that name.
pub fn note_parse(body: &[u8], local: &mut dyn LocalCommands) {
    if local.has_local_statements() {
        if let Some((name, _)) = parse_body(body) {
            local.forget_statement(name);
        }
    }
}

/// Looks at client bytes starting with a P or B message that begins a batch.
pub fn scan(buf: &[u8], local: &dyn LocalCommands) -> Batch {
    match buf.first() {
        Some(b'P') => {}
        Some(b'B') if local.has_local_statements() => {}
        _ => return Batch::NotLocal,
    }
    let mut stmts: Vec<&[u8]> = Vec::new();
    let mut portals: Vec<&[u8]> = Vec::new();
    let mut i = 0;
    loop {
        let (tag, body, len) = match next_message(&buf[i..]) {
            None => return Batch::Incomplete,
            Some(Err(())) => return Batch::NotLocal,
            Some(Ok(m)) => m,
        };
        let known = |stmts: &[&[u8]], name: &[u8]| {
            stmts.contains(&name) || local.local_statement(name).is_some()
        };
        let ok = match tag {
            b'P' => match parse_body(body) {
                Some((name, query)) if local.is_local(query) => {
                    stmts.push(name);
                    true
                }
                _ => false,
            },
            b'B' => match bind_body(body) {
                Some((portal, stmt)) if known(&stmts, stmt) => {
                    portals.push(portal);
                    true
                }
                _ => false,
            },
            b'D' | b'C' => match target_body(body) {
                Some((b'S', name)) => known(&stmts, name),
                Some((b'P', name)) => portals.contains(&name),
                _ => false,
            },
            b'E' => cstr(body).is_some_and(|(portal, _)| portals.contains(&portal)),
            b'S' | b'H' => return Batch::Local(i + len),
            _ => false,
        };
        if !ok {
            return Batch::NotLocal;
        }
        i += len;
    }
}

/// Appends the complete answer to a batch [`scan`] accepted.
pub fn answer(batch: &[u8], local: &mut dyn LocalCommands, out: &mut Vec<u8>, tx_status: u8) {
    // Portal name → statement text, for this batch.
    let mut portals: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut failed = false;
    let mut i = 0;
    let mut tmp = Vec::new();
    while let Some(Ok((tag, body, len))) = next_message(&batch[i..]) {
        i += len;
        if failed && tag != b'S' {
            continue;
        }
        match tag {
            b'P' => {
                if let Some((name, query)) = parse_body(body) {
                    local.remember_statement(name, query);
                }
                empty(out, b'1');
            }
            b'B' => {
                if let Some((portal, stmt)) = bind_body(body) {
                    let query = local
                        .local_statement(stmt)
                        .map(<[u8]>::to_vec)
                        .unwrap_or_default();
                    portals.retain(|(p, _)| p != portal);
                    portals.push((portal.to_vec(), query));
                }
                empty(out, b'2');
            }
            b'D' => {
                let (kind, name) = target_body(body).unwrap_or((b'P', b""));
                let query = if kind == b'S' {
                    local.local_statement(name).map(<[u8]>::to_vec)
                } else {
                    portals
                        .iter()
                        .find(|(p, _)| p == name)
                        .map(|(_, q)| q.clone())
                }
                .unwrap_or_default();
                if kind == b'S' {
                    // No parameters.
                    let s = build::begin(out, b't');
                    out.extend_from_slice(&0i16.to_be_bytes());
                    build::finish(out, s);
                }
                if local.returns_rows(&query) {
                    tmp.clear();
                    local.answer(&query, &mut tmp);
                    match first_of(&tmp, b"TE") {
                        Some(m) => {
                            failed = m[0] == b'E';
                            out.extend_from_slice(m);
                        }
                        None => empty(out, b'n'),
                    }
                } else {
                    empty(out, b'n');
                }
            }
            b'E' => {
                let portal = cstr(body).map(|(p, _)| p).unwrap_or(b"");
                let query = portals
                    .iter()
                    .find(|(p, _)| p == portal)
                    .map(|(_, q)| q.clone())
                    .unwrap_or_default();
                tmp.clear();
                local.answer(&query, &mut tmp);
                // Execute sends no RowDescription: Describe did.
                let mut j = 0;
                while let Some(Ok((t, _, l))) = next_message(&tmp[j..]) {
                    if t == b'E' {
                        failed = true;
                    }
                    if t != b'T' {
                        out.extend_from_slice(&tmp[j..j + l]);
                    }
                    j += l;
                }
            }
            b'C' => {
                if let Some((b'S', name)) = target_body(body) {
                    local.forget_statement(name);
                }
                empty(out, b'3');
            }
            b'S' => {
                failed = false;
                build::ready_for_query(out, tx_status);
            }
            _ => {}
        }
    }
}

/// A message without body (ParseComplete, BindComplete, CloseComplete, NoData).
fn empty(out: &mut Vec<u8>, tag: u8) {
    let s = build::begin(out, tag);
    build::finish(out, s);
}

/// The first message in `buf` whose tag is one of `tags`.
fn first_of<'a>(buf: &'a [u8], tags: &[u8]) -> Option<&'a [u8]> {
    let mut j = 0;
    while let Some(Ok((t, _, l))) = next_message(&buf[j..]) {
        if tags.contains(&t) {
            return Some(&buf[j..j + l]);
        }
        j += l;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers "LOCAL" with one column and one row; remembers statements.
    #[derive(Default)]
    struct Fake {
        stmts: Vec<(Vec<u8>, Vec<u8>)>,
    }
    impl LocalCommands for Fake {
        fn is_local(&self, q: &[u8]) -> bool {
            q.starts_with(b"LOCAL")
        }
        fn answer(&mut self, q: &[u8], out: &mut Vec<u8>) {
            if q.starts_with(b"LOCAL BAD") {
                build::error_response(out, "ERROR", "XX000", "bad");
                return;
            }
            build::row_description(out, &["c"]);
            build::data_row(out, &["v"]);
            build::command_complete(out, "SELECT 1");
        }
        fn returns_rows(&self, _: &[u8]) -> bool {
            true
        }
        fn has_local_statements(&self) -> bool {
            !self.stmts.is_empty()
        }
        fn local_statement(&self, name: &[u8]) -> Option<&[u8]> {
            self.stmts
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, q)| q.as_slice())
        }
        fn remember_statement(&mut self, name: &[u8], query: &[u8]) {
            self.forget_statement(name);
            self.stmts.push((name.to_vec(), query.to_vec()));
        }
        fn forget_statement(&mut self, name: &[u8]) {
            self.stmts.retain(|(n, _)| n != name);
        }
    }

    fn msg(out: &mut Vec<u8>, tag: u8, parts: &[&[u8]]) {
        let s = build::begin(out, tag);
        for p in parts {
            out.extend_from_slice(p);
        }
        build::finish(out, s);
    }

    fn batch(stmt: &str, sql: &str, sync: bool) -> Vec<u8> {
        let mut b = Vec::new();
        msg(
            &mut b,
            b'P',
            &[stmt.as_bytes(), b"\0", sql.as_bytes(), b"\0\0\0"],
        );
        msg(&mut b, b'B', &[b"\0", stmt.as_bytes(), b"\0\0\0\0\0\0\0"]);
        msg(&mut b, b'D', &[b"P\0"]);
        msg(&mut b, b'E', &[b"\0\0\0\0\0"]);
        if sync {
            msg(&mut b, b'S', &[]);
        }
        b
    }

    fn tags(buf: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        let mut j = 0;
        while let Some(Ok((t, _, l))) = next_message(&buf[j..]) {
            v.push(t);
            j += l;
        }
        v
    }

    #[test]
    fn whole_batch_is_answered() {
        let b = batch("", "LOCAL x", true);
        let mut f = Fake::default();
        assert_eq!(scan(&b, &f), Batch::Local(b.len()));
        let mut out = Vec::new();
        answer(&b, &mut f, &mut out, b'I');
        assert_eq!(tags(&out), b"12TDCZ");
    }

    #[test]
    fn other_batches_are_forwarded() {
        let f = Fake::default();
        assert_eq!(scan(&batch("", "select 1", true), &f), Batch::NotLocal);
        let b = batch("", "LOCAL x", false);
        assert_eq!(scan(&b, &f), Batch::Incomplete);
        assert_eq!(scan(&b[..7], &f), Batch::Incomplete);
        // A message about another statement: forwarded.
        let mut b = batch("", "LOCAL x", false);
        msg(&mut b, b'D', &[b"Sother\0"]);
        msg(&mut b, b'S', &[]);
        assert_eq!(scan(&b, &f), Batch::NotLocal);
        // Bind of an unknown statement.
        let mut b = Vec::new();
        msg(&mut b, b'B', &[b"\0s1\0\0\0\0\0\0\0"]);
        assert_eq!(scan(&b, &f), Batch::NotLocal);
    }

    #[test]
    fn named_statement_is_remembered_until_replaced() {
        let mut f = Fake::default();
        let mut out = Vec::new();
        let b = batch("s1", "LOCAL x", true);
        answer(&b, &mut f, &mut out, b'I');
        let mut again = Vec::new();
        msg(&mut again, b'B', &[b"\0s1\0\0\0\0\0\0\0"]);
        msg(&mut again, b'E', &[b"\0\0\0\0\0"]);
        msg(&mut again, b'S', &[]);
        assert_eq!(scan(&again, &f), Batch::Local(again.len()));
        out.clear();
        answer(&again, &mut f, &mut out, b'T');
        assert_eq!(tags(&out), b"2DCZ");
        assert_eq!(out.last(), Some(&b'T'));
        note_parse(b"s1\0select 1\0\0\0", &mut f);
        assert_eq!(scan(&again, &f), Batch::NotLocal);
    }

    #[test]
    fn error_skips_to_sync() {
        let b = batch("", "LOCAL BAD", true);
        let mut f = Fake::default();
        let mut out = Vec::new();
        answer(&b, &mut f, &mut out, b'I');
        assert_eq!(tags(&out), b"12EZ");
    }
}
