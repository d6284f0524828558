//! The Raft side of the watchdog: who leads, in which term, and the log of backend
//! decisions, through TiKV's `raft` crate (sans-IO: this module hands back the messages
//! to send and the entries committed; the caller moves bytes). Watchdog node `i` is Raft
//! peer `i + 1`. Pre-vote and check-quorum are on: a node that cannot reach a majority
//! never disturbs the others, and a leader that loses its majority steps down within an
//! election timeout, which is what fences the virtual IP. Lower-priority nodes wait longer
//! before they stand, so the highest-priority live node usually wins the first election;
//! the caller transfers leadership to it otherwise. The hard state and the log are
//! written to a file before any message that depends on them is sent.

use std::io::Write;
use std::path::PathBuf;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Message};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole, Storage};

/// Ticks of the caller's clock (`TICK`) in one election timeout.
pub const ELECTION_TICKS: usize = 10;
/// The caller's clock: one Raft tick.
pub const TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// What a pass over the Raft state produced.
#[derive(Debug, Default)]
pub struct Output {
    /// (watchdog node id, encoded Raft message)
    pub messages: Vec<(usize, Vec<u8>)>,
    /// Payloads of newly committed log entries, in log order.
    pub committed: Vec<Vec<u8>>,
}

pub struct Consensus {
    node: RawNode<MemStorage>,
    total: usize,
    state_file: Option<PathBuf>,
}

fn raft_err(e: raft::Error) -> String {
    format!("raft: {e}")
}

impl Consensus {
    /// `me` is this node's watchdog id among `total`; `rank` its place by priority (0 =
    /// highest), which lengthens its election timeout. `state_file` keeps the hard state
    /// and log across restarts (None: memory only, for tests).
    pub fn new(
        me: usize,
        total: usize,
        rank: usize,
        state_file: Option<PathBuf>,
    ) -> Result<Consensus, String> {
        let storage = MemStorage::new();
        let voters: Vec<u64> = (1..=total as u64).collect();
        storage
            .wl()
            .set_conf_state(ConfState::from((voters, Vec::new())));
        let mut applied = 0;
        if let Some(path) = &state_file {
            match load(path, total) {
                Ok(Some((hs, entries))) => {
                    applied = hs.commit;
                    storage.wl().append(&entries).map_err(raft_err)?;
                    storage.wl().set_hardstate(hs);
                }
                Ok(None) => {}
                Err(e) => log::warn!("watchdog: ignoring Raft state file {}: {e}", path.display()),
            }
        }
        let min = ELECTION_TICKS + 3 * rank;
        let cfg = Config {
            id: me as u64 + 1,
            election_tick: ELECTION_TICKS,
            heartbeat_tick: 2,
            min_election_tick: min,
            max_election_tick: min + 4,
            pre_vote: true,
            check_quorum: true,
            applied,
            max_size_per_msg: 64 * 1024,
            max_inflight_msgs: 64,
            ..Default::default()
        };
        cfg.validate().map_err(raft_err)?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let node = RawNode::new(&cfg, storage, &logger).map_err(raft_err)?;
        Ok(Consensus {
            node,
            total,
            state_file,
        })
    }

    pub fn tick(&mut self) {
        self.node.tick();
    }

    /// Feeds a message a peer sent.
    pub fn step(&mut self, bytes: &[u8]) -> Result<(), String> {
        let msg = Message::parse_from_bytes(bytes).map_err(|e| format!("bad Raft message: {e}"))?;
        if msg.from == 0 || msg.from as usize > self.total {
            return Err(format!("Raft message from unknown peer {}", msg.from));
        }
        self.node.step(msg).map_err(raft_err)
    }

    /// Appends `data` to the log (leader only); false when this node cannot.
    pub fn propose(&mut self, data: Vec<u8>) -> bool {
        self.is_leader() && self.node.propose(Vec::new(), data).is_ok()
    }

    pub fn is_leader(&self) -> bool {
        self.node.raft.state == StateRole::Leader
    }

    /// The leader's watchdog id as this node knows it.
    pub fn leader(&self) -> Option<usize> {
        match self.node.raft.leader_id {
            0 => None,
            id => Some(id as usize - 1),
        }
    }

    pub fn term(&self) -> u64 {
        self.node.raft.term
    }

    /// Leader only: whether `node`'s log matches ours (it may take over without losing
    /// a decision).
    pub fn caught_up(&self, node: usize) -> bool {
        let last = self.node.raft.raft_log.last_index();
        self.node
            .raft
            .prs()
            .get(node as u64 + 1)
            .is_some_and(|p| p.matched == last)
    }

    /// Leader only: hands leadership to `node`.
    pub fn transfer_to(&mut self, node: usize) {
        self.node.transfer_leader(node as u64 + 1);
    }

    /// Processes what Raft has ready: persists, collects messages and committed entries.
    pub fn drain(&mut self) -> Result<Output, String> {
        let mut out = Output::default();
        if !self.node.has_ready() {
            return Ok(out);
        }
        let mut ready = self.node.ready();
        push_messages(&mut out, ready.take_messages());
        take_committed(&mut out, ready.take_committed_entries());
        let mut dirty = false;
        if !ready.entries().is_empty() {
            self.node
                .store()
                .wl()
                .append(ready.entries())
                .map_err(raft_err)?;
            dirty = true;
        }
        if let Some(hs) = ready.hs() {
            self.node.store().wl().set_hardstate(hs.clone());
            dirty = true;
        }
        if dirty {
            self.persist()?;
        }
        push_messages(&mut out, ready.take_persisted_messages());
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.node.store().wl().mut_hard_state().set_commit(commit);
            self.persist()?;
        }
        push_messages(&mut out, light.take_messages());
        take_committed(&mut out, light.take_committed_entries());
        self.node.advance_apply();
        Ok(out)
    }

    fn persist(&self) -> Result<(), String> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let store = self.node.store();
        let hs = store.initial_state().map_err(raft_err)?.hard_state;
        let first = store.first_index().map_err(raft_err)?;
        let last = store.last_index().map_err(raft_err)?;
        let entries = if last < first {
            Vec::new()
        } else {
            store
                .entries(first, last + 1, None, raft::GetEntriesContext::empty(false))
                .map_err(raft_err)?
        };
        save(path, self.total, &hs, &entries)
            .map_err(|e| format!("cannot write Raft state file {}: {e}", path.display()))
    }
}

fn push_messages(out: &mut Output, msgs: Vec<Message>) {
    for m in msgs {
        if let Ok(bytes) = m.write_to_bytes() {
            out.messages.push((m.to as usize - 1, bytes));
        }
    }
}

fn take_committed(out: &mut Output, entries: Vec<Entry>) {
    for e in entries {
        // Empty entries are the no-op a new leader appends; configuration is fixed.
        if e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
            out.committed.push(e.data.to_vec());
        }
    }
}

const MAGIC: &[u8; 8] = b"PGRSRAFT";

fn save(path: &PathBuf, total: usize, hs: &HardState, entries: &[Entry]) -> std::io::Result<()> {
    let mut buf = Vec::new();
    buf.extend_from_slice(MAGIC);
    for v in [total as u64, hs.term, hs.vote, hs.commit] {
        buf.extend_from_slice(&v.to_be_bytes());
    }
    for e in entries {
        let b = e.write_to_bytes().map_err(std::io::Error::other)?;
        buf.extend_from_slice(&(b.len() as u32).to_be_bytes());
        buf.extend_from_slice(&b);
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&buf)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

type Saved = (HardState, Vec<Entry>);

fn load(path: &PathBuf, total: usize) -> Result<Option<Saved>, String> {
    let buf = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if buf.len() < 40 || &buf[..8] != MAGIC {
        return Err("not a pgpool-rs Raft state file".into());
    }
    let word = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&buf[8 + 8 * i..16 + 8 * i]);
        u64::from_be_bytes(a)
    };
    if word(0) != total as u64 {
        return Err(format!(
            "it was written for {} watchdog nodes, not {total}",
            word(0)
        ));
    }
    let hs = HardState {
        term: word(1),
        vote: word(2),
        commit: word(3),
        ..Default::default()
    };
    let mut entries = Vec::new();
    let mut at = 40;
    while at < buf.len() {
        let len = buf
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or("truncated entry length")?;
        let body = buf.get(at + 4..at + 4 + len).ok_or("truncated entry")?;
        entries.push(Entry::parse_from_bytes(body).map_err(|e| e.to_string())?);
        at += 4 + len;
    }
    Ok(Some((hs, entries)))
}

#[cfg(test)]
mod tests;
