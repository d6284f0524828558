//! What one session's relay keeps between reads: the buffers a child reuses for every
//! session, and what the relay learned about the session (answers still owed, the
//! transaction status, a fatal or shutting-down backend, statement logging and notices)
//! that decides whether its backend connection can go back to the pool.

use crate::child::relay_shared::{log_statement, log_statement_text, statement_notice};
use crate::child::scanner::Scanner;

const CLIENT_BUF: usize = 64 * 1024;
const BACKEND_BUF: usize = 128 * 1024;

/// Buffers reused by every session of a child.
pub struct RelayBuffers {
    pub(super) to_backend: Vec<u8>,
    pub(super) to_client: Vec<u8>,
    /// Replies pgpool composes itself.
    pub(super) reply: Vec<u8>,
}

impl RelayBuffers {
    pub fn new() -> Self {
        RelayBuffers {
            to_backend: vec![0; CLIENT_BUF],
            to_client: vec![0; BACKEND_BUF],
            reply: Vec::new(),
        }
    }
}

/// What the relay learned about the session, used to decide whether the backend
/// connection can go back to the pool.
#[derive(Debug)]
pub struct SessionState {
    /// ReadyForQuery messages still owed by the backend (one per Query, Sync,
    /// FunctionCall sent).
    pub outstanding: u32,
    /// Extended-protocol messages sent since the last Sync.
    pub unsynced: bool,
    /// Transaction status of the last ReadyForQuery.
    pub tx_status: u8,
    /// The backend sent FATAL/PANIC: the connection is finished.
    pub backend_fatal: bool,
    /// The backend reported admin shutdown (SQLSTATE 57P01).
    pub backend_shutdown: bool,
    /// Statement kinds (for the statistics) and texts (for SHOW POOL_POOLS) by
    /// prepared-statement name.
    pub statement_kinds: std::collections::HashMap<Vec<u8>, (sql::StatementKind, Vec<u8>)>,
    /// log_per_node_statement: (node id, backend pid) to name in the log lines.
    pub log_node: Option<(usize, u32)>,
    /// log_statement.
    pub log_statement: bool,
    /// log_client_messages.
    pub client_log: Option<crate::child::client_log::ClientLog>,
    /// notice_per_node_statement: the node id the notices name.
    pub notice_node: Option<usize>,
    /// Those notices, waiting for a message boundary towards the client.
    pub(super) notices: Vec<u8>,
    /// Set by the load-balancing relay: whether its backends may be reused.
    pub routed_reusable: Option<bool>,
    /// Node whose failure ended the session (load-balancing relay).
    pub failed_node: Option<usize>,
    /// Body bytes of a client message still to be forwarded (a message larger than
    /// the buffer streams through in pieces).
    pub(super) client_remaining: usize,
    pub(super) backend: Scanner,
}

impl Default for SessionState {
    fn default() -> Self {
        SessionState {
            outstanding: 0,
            unsynced: false,
            tx_status: b'I',
            backend_fatal: false,
            backend_shutdown: false,
            client_remaining: 0,
            routed_reusable: None,
            log_node: None,
            log_statement: false,
            client_log: None,
            notice_node: None,
            notices: Vec::new(),
            statement_kinds: std::collections::HashMap::new(),
            failed_node: None,
            backend: Scanner::default(),
        }
    }
}

impl SessionState {
    /// log_statement, log_per_node_statement and notice_per_node_statement for one
    /// statement sent to the backend.
    pub(super) fn note_statement(&mut self, text: &[u8]) {
        if self.log_statement {
            log_statement_text(text);
        }
        if let Some((node, pid)) = self.log_node {
            log_statement(node, pid, text);
        }
        if let Some(node) = self.notice_node {
            statement_notice(&mut self.notices, node, text);
        }
    }

    /// The backend is between requests and owes nothing: safe to reset and reuse.
    pub fn backend_reusable(&self) -> bool {
        self.outstanding == 0
            && !self.unsynced
            && !self.backend_fatal
            && self.client_remaining == 0
            && self.backend.at_boundary()
    }
}
