//! Backend decisions the watchdog cluster agrees on (node down, node up, promote): what a
//! node sends its leader as a vote and what the leader appends to the Raft log once the
//! votes suffice. `kind` uses the numbers of the shared-memory request queue, so the
//! main process applies a committed decision as one more request.

/// One decision about backend `node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub kind: u8,
    pub node: i32,
    /// Request flags (graceful, switchover, from PCP...).
    pub flags: u32,
    /// Watchdog node id that asked for it.
    pub from: u32,
}

impl Decision {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(13);
        out.push(self.kind);
        out.extend_from_slice(&self.node.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.extend_from_slice(&self.from.to_be_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Option<Decision> {
        if b.len() != 13 {
            return None;
        }
        let word = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
        Some(Decision {
            kind: b[0],
            node: i32::from_be_bytes(word(1)),
            flags: u32::from_be_bytes(word(5)),
            from: u32::from_be_bytes(word(9)),
        })
    }

    /// Two votes are for the same decision when they ask the same of the same node.
    pub fn same_question(&self, other: &Decision) -> bool {
        self.kind == other.kind && self.node == other.node
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_round_trip() {
        let d = Decision {
            kind: 1,
            node: 1,
            flags: 4,
            from: 2,
        };
        assert_eq!(Decision::decode(&d.encode()), Some(d));
        assert_eq!(Decision::decode(&[1, 2]), None);
    }
}
