//! What a child's current session is doing, as Pgpool-II 4.5 and 4.7 report it in
//! SHOW POOL_POOLS and pcp_proc_info: the session's load-balance node (4.5's
//! `load_balance_node`) and the last statement sent to the backends with the nodes it
//! went to (4.7's `statement`, shown on the rows of those nodes only). Written by the
//! child alone, read by anyone; a torn read shows a mix of two statements at worst.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::text::ShmText;
use crate::MAX_BACKENDS;

/// Pgpool-II keeps 1024 bytes with the terminating NUL.
pub const STATEMENT_LEN: usize = 1023;

const WORDS: usize = MAX_BACKENDS / 64;

#[repr(C)]
pub struct ChildActivity {
    /// Load-balance node + 1 (0: no session has chosen one; the segment starts zeroed).
    load_balance_node: AtomicU32,
    statement: ShmText<STATEMENT_LEN>,
    /// Bit n: the statement was sent to node n.
    statement_nodes: [AtomicU64; WORDS],
}

impl ChildActivity {
    pub fn set_load_balance_node(&self, node: Option<usize>) {
        let v = node.map_or(0, |n| n as u32 + 1);
        self.load_balance_node.store(v, Ordering::Relaxed);
    }

    pub fn load_balance_node(&self) -> Option<usize> {
        match self.load_balance_node.load(Ordering::Relaxed) {
            0 => None,
            v => Some(v as usize - 1),
        }
    }

    /// Records the statement about to be sent to `nodes` (the text up to its first NUL,
    /// cut to [`STATEMENT_LEN`] bytes).
    pub fn set_statement(&self, text: &[u8], nodes: impl IntoIterator<Item = usize>) {
        self.set_statement_as(b"", text, nodes);
    }

    /// [`ChildActivity::set_statement`] with `prefix` before the text (Pgpool-II 4.7
    /// shows extended-protocol messages as "Parse: ...", "Bind: ...", "Execute: ...").
    pub fn set_statement_as(
        &self,
        prefix: &[u8],
        text: &[u8],
        nodes: impl IntoIterator<Item = usize>,
    ) {
        let mut mask = [0u64; WORDS];
        for n in nodes.into_iter().filter(|&n| n < MAX_BACKENDS) {
            mask[n / 64] |= 1 << (n % 64);
        }
        let end = memchr::memchr(0, text).unwrap_or(text.len());
        self.statement.set_parts(&[prefix, &text[..end]]);
        for (w, m) in self.statement_nodes.iter().zip(mask) {
            w.store(m, Ordering::Relaxed);
        }
    }

    /// The last statement, if it was sent to `node`.
    pub fn statement_for(&self, node: usize) -> Option<String> {
        let word = self.statement_nodes.get(node / 64)?;
        (word.load(Ordering::Relaxed) & (1 << (node % 64)) != 0).then(|| self.statement.get())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Layout, Shmem};

    #[test]
    fn statement_shows_on_the_nodes_it_went_to() {
        let shm = Shmem::create(Layout {
            num_children: 2,
            max_pool: 1,
        })
        .expect("shmem");
        let a = &shm.child(1).activity;
        assert_eq!(a.load_balance_node(), None);
        assert_eq!(a.statement_for(0), None);
        a.set_load_balance_node(Some(0));
        assert_eq!(a.load_balance_node(), Some(0));
        a.set_statement(b"SELECT 1\0", [0, 2, 127]);
        assert_eq!(a.statement_for(0).as_deref(), Some("SELECT 1"));
        assert_eq!(a.statement_for(1), None);
        assert_eq!(a.statement_for(2).as_deref(), Some("SELECT 1"));
        assert_eq!(a.statement_for(127).as_deref(), Some("SELECT 1"));
        assert_eq!(a.statement_for(128), None);
        let long = format!("SELECT '{}'", "x".repeat(2000));
        a.set_statement(long.as_bytes(), [1]);
        assert_eq!(a.statement_for(0), None);
        assert_eq!(
            a.statement_for(1).map(|s| s.len()),
            Some(super::STATEMENT_LEN)
        );
        // a multi-byte character at the cut is left out whole
        let wide = "é".repeat(600);
        a.set_statement(wide.as_bytes(), [1]);
        assert_eq!(a.statement_for(1), Some("é".repeat(511)));
        a.set_statement_as(b"Execute: ", b"SELECT $1\0", [0]);
        assert_eq!(a.statement_for(0).as_deref(), Some("Execute: SELECT $1"));
        let wide = "é".repeat(600);
        a.set_statement_as(b"Parse: ", wide.as_bytes(), [0]);
        // "Parse: " is 7 bytes: 1016 bytes left, 508 characters
        assert_eq!(
            a.statement_for(0),
            Some(format!("Parse: {}", "é".repeat(508)))
        );
        a.set_load_balance_node(None);
        assert_eq!(a.load_balance_node(), None);
        assert_eq!(
            shm.child(0).activity.statement_for(1),
            None,
            "other children untouched"
        );
    }
}
