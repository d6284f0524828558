//! A backend connection's side of the relay (its output, its input and the answers it
//! owes, batch by batch), and the buffers a child keeps from one session to the next so
//! that a session allocates nothing to start.
use super::*;

/// Per-backend side of the relay.
pub(super) struct NodeIo {
    pub(super) out: Vec<u8>,
    pub(super) out_from: usize,
    pub(super) inbuf: Vec<u8>,
    pub(super) in_from: usize,
    pub(super) in_to: usize,
    /// Body bytes of the message being passed (or dropped) still to come.
    pub(super) remaining: usize,
    pub(super) remaining_forward: bool,
    pub(super) queue: VecDeque<Expect>,
    pub(super) tx: u8,
    /// Replayed Parses whose ParseComplete the batch being dispatched must hide.
    pub(super) batch_hide: u32,
    /// Sent a BEGIN whose answer may still be on its way, or inside a transaction.
    pub(super) joined_tx: bool,
    /// `out` from this offset waits: a write for the primary held until the reads sent
    /// before it to other nodes were answered (see [`NodeIo::hold_writes`]).
    pub(super) held_from: Option<usize>,
}

impl NodeIo {
    fn new() -> Self {
        NodeIo {
            out: Vec::with_capacity(8192),
            out_from: 0,
            inbuf: vec![0; READ_CHUNK],
            in_from: 0,
            in_to: 0,
            remaining: 0,
            remaining_forward: false,
            queue: VecDeque::new(),
            tx: b'I',
            batch_hide: 0,
            joined_tx: false,
            held_from: None,
        }
    }

    /// Bytes not yet written, held ones included.
    pub(super) fn has_output(&self) -> bool {
        self.out_from < self.out.len()
    }

    /// Bytes that may be written now.
    pub(super) fn has_sendable(&self) -> bool {
        self.out_from < self.held_from.unwrap_or(self.out.len())
    }

    /// A pipeline is one sequence of statements: a write must not run on the primary
    /// before a read the client sent earlier has run on a standby, or the read could
    /// see it. So what is queued for the primary from here on waits (`others_reading`:
    /// a node other than the primary still owes answers the client will see).
    pub(super) fn hold_writes(&mut self, others_reading: bool) {
        if others_reading && self.held_from.is_none() {
            self.held_from = Some(self.out.len());
        }
    }

    /// Lets held bytes go once no other node owes the client a read.
    pub(super) fn release_writes(&mut self, others_reading: bool) {
        if !others_reading {
            self.held_from = None;
        }
    }

    /// Writes what may be written now.
    pub(super) fn write_sendable(&mut self, stream: &mut Stream) -> io::Result<()> {
        match self.held_from {
            None => write_some(stream, &mut self.out, &mut self.out_from),
            Some(end) => write_range(stream, &self.out, &mut self.out_from, end),
        }
    }
}

/// True when a node other than the primary still owes the client answers (a read).
pub(super) fn others_reading(io: &[NodeIo]) -> bool {
    io.iter()
        .enumerate()
        .any(|(k, n)| k != PRIMARY && n.queue.iter().any(|e| e.forward))
}

/// Largest buffer a child keeps between sessions (a session that needed more gives the
/// rest back when it ends).
const KEPT_CAPACITY: usize = 1 << 20;

impl NodeIo {
    /// Ready for a new session, keeping the allocations.
    fn reset(&mut self) {
        self.out.clear();
        if self.out.capacity() > KEPT_CAPACITY {
            self.out.shrink_to(KEPT_CAPACITY);
        }
        if self.inbuf.len() > READ_CHUNK {
            self.inbuf.truncate(READ_CHUNK);
            self.inbuf.shrink_to_fit();
        }
        self.out_from = 0;
        self.in_from = 0;
        self.in_to = 0;
        self.remaining = 0;
        self.remaining_forward = false;
        self.queue.clear();
        self.tx = b'I';
        self.batch_hide = 0;
        self.joined_tx = false;
        self.held_from = None;
    }

    /// Owes nothing and is between messages both ways.
    fn is_idle(&self) -> bool {
        self.queue.is_empty() && !self.has_output() && self.remaining == 0
    }
}

/// The relay's buffers, kept by the child from one session to the next.
pub struct RelayBuffers {
    /// One per connection of the session.
    pub(super) nodes: Vec<NodeIo>,
    /// Client bytes read and not yet dispatched.
    pub(super) client: Vec<u8>,
    /// Bytes for the client not yet written.
    pub(super) to_client: Vec<u8>,
}

impl Default for RelayBuffers {
    fn default() -> Self {
        RelayBuffers {
            nodes: Vec::new(),
            client: vec![0; READ_CHUNK],
            to_client: Vec::with_capacity(READ_CHUNK),
        }
    }
}

impl RelayBuffers {
    /// Ready for a session over `conns` connections.
    pub(super) fn start_session(&mut self, conns: usize) {
        self.nodes.truncate(conns);
        for n in &mut self.nodes {
            n.reset();
        }
        while self.nodes.len() < conns {
            self.nodes.push(NodeIo::new());
        }
        self.to_client.clear();
        if self.to_client.capacity() > KEPT_CAPACITY {
            self.to_client.shrink_to(KEPT_CAPACITY);
        }
    }

    /// Nothing owed or half-sent on any connection of the session, and no client
    /// message half-forwarded.
    pub(super) fn idle(&self, router: &Router) -> bool {
        self.nodes.iter().all(NodeIo::is_idle)
            && router.client_remaining == 0
            && router.open.is_none()
            && router.replicating.is_none()
    }
}
