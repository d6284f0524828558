//! Frames between watchdog peers over their TCP link: a kind byte, a 4-byte big-endian
//! payload length, the payload. A link opens with a [`Hello`] from each side, whose
//! digest proves both sides share `wd_authkey`; then Raft messages, beacons (each node's
//! own view, sent every beacon interval: they are also the link's heartbeat) and one
//! shutdown notice when a node stops.

use sha2::{Digest, Sha256};

/// Largest payload accepted: Raft messages carry only small decisions.
pub const MAX_FRAME: usize = 1 << 20;
const VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub node_id: u32,
    pub priority: i32,
    /// Seconds since the epoch at which the node started (older leads on equal priority).
    pub start_time: i64,
    pub pgpool_port: u16,
    pub wd_port: u16,
    pub auth: [u8; 32],
    pub node_name: String,
    pub host_name: String,
    pub delegate_ip: String,
}

/// What a node tells its peers about itself at every beacon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beacon {
    pub state: u8,
    pub escalated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Hello(Hello),
    Raft(Vec<u8>),
    Beacon(Beacon),
    Shutdown,
    /// A backend failover vote or request for the leader (encoded [`crate::decision::Decision`]).
    Request(Vec<u8>),
}

/// The digest a node with id `node_id` sends to prove it knows `authkey`.
pub fn auth_digest(authkey: &str, node_id: u32) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"pgpool-rs watchdog v1\0");
    h.update(authkey.as_bytes());
    h.update(node_id.to_be_bytes());
    h.finalize().into()
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated watchdog frame".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Result<i64, String> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(i64::from_be_bytes(a))
    }
    fn string(&mut self) -> Result<String, String> {
        let n = usize::from(self.u16()?);
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

impl Frame {
    fn kind(&self) -> u8 {
        match self {
            Frame::Hello(_) => b'H',
            Frame::Raft(_) => b'R',
            Frame::Beacon(_) => b'B',
            Frame::Shutdown => b'X',
            Frame::Request(_) => b'Q',
        }
    }

    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(self.kind());
        out.extend_from_slice(&[0; 4]);
        match self {
            Frame::Hello(h) => {
                out.push(VERSION);
                out.extend_from_slice(&h.node_id.to_be_bytes());
                out.extend_from_slice(&h.priority.to_be_bytes());
                out.extend_from_slice(&h.start_time.to_be_bytes());
                out.extend_from_slice(&h.pgpool_port.to_be_bytes());
                out.extend_from_slice(&h.wd_port.to_be_bytes());
                out.extend_from_slice(&h.auth);
                put_str(out, &h.node_name);
                put_str(out, &h.host_name);
                put_str(out, &h.delegate_ip);
            }
            Frame::Raft(b) | Frame::Request(b) => out.extend_from_slice(b),
            Frame::Beacon(b) => {
                out.push(b.state);
                out.push(u8::from(b.escalated));
            }
            Frame::Shutdown => {}
        }
        let len = (out.len() - start - 5) as u32;
        out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
    }

    /// Decodes one frame from the front of `buf`: Ok(None) while it is incomplete,
    /// Ok(Some((frame, used))) once whole, Err for a frame no peer of ours would send.
    pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, String> {
        if buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if len > MAX_FRAME {
            return Err(format!("watchdog frame of {len} bytes is too long"));
        }
        if buf.len() < 5 + len {
            return Ok(None);
        }
        let body = &buf[5..5 + len];
        let mut r = Reader(body);
        let frame = match buf[0] {
            b'H' => {
                if r.u8()? != VERSION {
                    return Err("peer speaks another watchdog protocol version".into());
                }
                let node_id = r.u32()?;
                let priority = r.u32()? as i32;
                let start_time = r.i64()?;
                let pgpool_port = r.u16()?;
                let wd_port = r.u16()?;
                let mut auth = [0u8; 32];
                auth.copy_from_slice(r.take(32)?);
                Frame::Hello(Hello {
                    node_id,
                    priority,
                    start_time,
                    pgpool_port,
                    wd_port,
                    auth,
                    node_name: r.string()?,
                    host_name: r.string()?,
                    delegate_ip: r.string()?,
                })
            }
            b'R' => Frame::Raft(body.to_vec()),
            b'Q' => Frame::Request(body.to_vec()),
            b'B' => Frame::Beacon(Beacon {
                state: r.u8()?,
                escalated: r.u8()? != 0,
            }),
            b'X' => Frame::Shutdown,
            k => return Err(format!("unknown watchdog frame kind {k}")),
        };
        Ok(Some((frame, 5 + len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_reject_garbage() {
        let hello = Frame::Hello(Hello {
            node_id: 2,
            priority: -1,
            start_time: 1_700_000_000,
            pgpool_port: 9999,
            wd_port: 9000,
            auth: auth_digest("key", 2),
            node_name: "h:9999 Linux h".into(),
            host_name: "h".into(),
            delegate_ip: String::new(),
        });
        let frames = [
            hello,
            Frame::Raft(vec![1, 2, 3]),
            Frame::Beacon(Beacon {
                state: 4,
                escalated: true,
            }),
            Frame::Shutdown,
        ];
        let mut buf = Vec::new();
        for f in &frames {
            f.encode(&mut buf);
        }
        let mut at = 0;
        for f in &frames {
            assert_eq!(Frame::decode(&buf[at..at + 3]).unwrap(), None);
            let (got, used) = Frame::decode(&buf[at..]).unwrap().unwrap();
            assert_eq!(&got, f);
            at += used;
        }
        assert_eq!(at, buf.len());
        assert!(Frame::decode(&[b'Z', 0, 0, 0, 0]).is_err());
        assert!(Frame::decode(&[b'R', 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(Frame::decode(&[b'B', 0, 0, 0, 1, 4]).is_err());
        assert_ne!(auth_digest("key", 1), auth_digest("key", 2));
        assert_ne!(auth_digest("key", 1), auth_digest("other", 1));
    }
}

/// The UDP heartbeat (`heartbeat_hostnameN` / `heartbeat_portN`, every
/// `wd_heartbeat_keepalive`): the sender's id, its start time and its proof of
/// `wd_authkey`. A second path beside the TCP link, as in Pgpool-II.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    pub node_id: u32,
    pub start_time: i64,
    pub auth: [u8; 32],
}

const HEARTBEAT_MAGIC: &[u8; 8] = b"PGRSHB01";

impl Heartbeat {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(52);
        out.extend_from_slice(HEARTBEAT_MAGIC);
        out.extend_from_slice(&self.node_id.to_be_bytes());
        out.extend_from_slice(&self.start_time.to_be_bytes());
        out.extend_from_slice(&self.auth);
        out
    }

    pub fn decode(b: &[u8]) -> Option<Heartbeat> {
        if b.len() != 52 || &b[..8] != HEARTBEAT_MAGIC {
            return None;
        }
        let mut r = Reader(&b[8..]);
        let node_id = r.u32().ok()?;
        let start_time = r.i64().ok()?;
        let mut auth = [0u8; 32];
        auth.copy_from_slice(r.take(32).ok()?);
        Some(Heartbeat {
            node_id,
            start_time,
            auth,
        })
    }
}

#[cfg(test)]
mod heartbeat_tests {
    use super::*;

    #[test]
    fn heartbeat_round_trip() {
        let h = Heartbeat {
            node_id: 2,
            start_time: 17,
            auth: auth_digest("k", 2),
        };
        assert_eq!(Heartbeat::decode(&h.encode()), Some(h));
        assert_eq!(Heartbeat::decode(b"PGRSHB01short"), None);
        let mut bad = h.encode();
        bad[0] = b'X';
        assert_eq!(Heartbeat::decode(&bad), None);
    }
}
