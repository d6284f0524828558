//! The watchdog's local command socket as Pgpool-II defines it
//! (`wd_ipc_socket_dir/.s.PGPOOLWD_CMD.<wd_port>`), so Pgpool-II's `wd_cli` and ours
//! both talk to it: a packet is one type byte, a 4-byte big-endian length and a JSON
//! body; the answer has the same shape. Here are the packet cutting, the requests this
//! watchdog serves (node list, node status change from an external lifecheck, runtime
//! variables), the `IPCAuthKey` check against `wd_authkey`, and the client side `wd_cli`
//! uses.

use serde_json::{json, Value};

pub const NODE_STATUS_CHANGE: u8 = b'2';
pub const GET_NODES_LIST: u8 = b'3';
pub const GET_RUNTIME_VARIABLE: u8 = b'v';
pub const RESULT_IN_TRANSITION: u8 = b'5';
pub const RESULT_BAD: u8 = b'6';
pub const RESULT_OK: u8 = b'7';

/// A body larger than this is refused (the requests are a few hundred bytes).
pub const MAX_BODY: usize = 64 * 1024;

/// `NodeStatus` values of a status change.
pub const STATUS_DEAD: i64 = 1;
pub const STATUS_ALIVE: i64 = 2;

/// The socket's file name for watchdog port `wd_port`.
pub fn socket_path(dir: &str, wd_port: u16) -> String {
    format!("{}/.s.PGPOOLWD_CMD.{wd_port}", dir.trim_end_matches('/'))
}

/// One packet, either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub kind: u8,
    pub body: Vec<u8>,
}

impl Packet {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + self.body.len());
        out.push(self.kind);
        out.extend_from_slice(&(self.body.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    /// Cuts one packet from the front of `buf`: Ok(None) while it is incomplete, and
    /// the bytes it used.
    pub fn decode(buf: &[u8]) -> Result<Option<(Packet, usize)>, String> {
        if buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if len > MAX_BODY {
            return Err(format!("IPC packet of {len} bytes is too long"));
        }
        if buf.len() < 5 + len {
            return Ok(None);
        }
        let packet = Packet {
            kind: buf[0],
            body: buf[5..5 + len].to_vec(),
        };
        Ok(Some((packet, 5 + len)))
    }

    /// The body as a JSON object (Pgpool-II ends its bodies with a NUL).
    pub fn json(&self) -> Option<serde_json::Map<String, Value>> {
        let text = self.body.strip_suffix(&[0]).unwrap_or(&self.body);
        match serde_json::from_slice(text).ok()? {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    fn with_json(kind: u8, v: &Value) -> Packet {
        let mut body = v.to_string().into_bytes();
        body.push(0);
        Packet { kind, body }
    }

    /// An error answer with Pgpool-II's `{"MESSAGE": ...}` body.
    pub fn error(message: &str) -> Packet {
        Packet::with_json(RESULT_BAD, &json!({ "MESSAGE": message }))
    }

    pub fn ok_text(text: &str) -> Packet {
        let mut body = text.as_bytes().to_vec();
        body.push(0);
        Packet {
            kind: RESULT_OK,
            body,
        }
    }
}

/// What a client asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// The cluster document `pcp_watchdog_info` shows (-1: every node).
    NodeList { node_id: i64 },
    /// An external lifecheck's verdict on a node.
    NodeStatus {
        node_id: i64,
        alive: bool,
        message: Option<String>,
    },
    /// `WDState`, `QuorumState` or `Escalated`.
    Variable(RuntimeVariable),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeVariable {
    State,
    Quorum,
    Escalated,
}

/// The value a runtime variable request is answered with.
pub fn variable_answer(var: RuntimeVariable, value: i64) -> Packet {
    // ValueDataType: 1 int, 3 bool.
    let kind = if var == RuntimeVariable::Escalated {
        3
    } else {
        1
    };
    Packet::with_json(
        RESULT_OK,
        &json!({ "ValueDataType": kind, "ValueData": value }),
    )
}

/// Reads a request, checking `IPCAuthKey` when `authkey` is set. Err is the message
/// the client gets back.
pub fn parse_request(p: &Packet, authkey: &str) -> Result<Request, String> {
    let obj = p.json().ok_or("unable to parse json data")?;
    if !authkey.is_empty() && obj.get("IPCAuthKey").and_then(Value::as_str) != Some(authkey) {
        return Err("authentication failed".into());
    }
    let int = |k: &str| obj.get(k).and_then(Value::as_i64);
    match p.kind {
        GET_NODES_LIST => Ok(Request::NodeList {
            node_id: int("NodeID").ok_or("NodeID is missing")?,
        }),
        NODE_STATUS_CHANGE => {
            let node_id = int("NodeID").ok_or("NodeID is missing")?;
            let alive = match int("NodeStatus") {
                Some(STATUS_DEAD) => false,
                Some(STATUS_ALIVE) => true,
                _ => return Err("invalid NodeStatus".into()),
            };
            let message = obj.get("Message").and_then(Value::as_str).map(String::from);
            Ok(Request::NodeStatus {
                node_id,
                alive,
                message,
            })
        }
        GET_RUNTIME_VARIABLE => {
            let name = obj
                .get("VarName")
                .and_then(Value::as_str)
                .ok_or("requested variable name is null")?;
            let var = [
                ("WDState", RuntimeVariable::State),
                ("QuorumState", RuntimeVariable::Quorum),
                ("Escalated", RuntimeVariable::Escalated),
            ]
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .ok_or("unknown variable requested")?;
            Ok(Request::Variable(var))
        }
        _ => Err("unknown IPC command type".into()),
    }
}

fn with_key(mut v: Value, authkey: &str) -> Value {
    if !authkey.is_empty() {
        v["IPCAuthKey"] = Value::from(authkey);
    }
    v
}

/// The client's node-list request.
pub fn node_list_request(node_id: i64, authkey: &str) -> Packet {
    Packet::with_json(
        GET_NODES_LIST,
        &with_key(json!({ "NodeID": node_id }), authkey),
    )
}

/// The client's status-change report.
pub fn node_status_request(
    node_id: i64,
    alive: bool,
    message: Option<&str>,
    authkey: &str,
) -> Packet {
    let mut v = json!({
        "NodeID": node_id,
        "NodeStatus": if alive { STATUS_ALIVE } else { STATUS_DEAD },
    });
    if let Some(m) = message {
        v["Message"] = Value::from(m);
    }
    Packet::with_json(NODE_STATUS_CHANGE, &with_key(v, authkey))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_cut_at_their_length() {
        let p = node_list_request(-1, "k");
        let mut bytes = p.encode();
        bytes.extend_from_slice(b"\x37");
        assert_eq!(Packet::decode(&bytes[..4]), Ok(None));
        assert_eq!(Packet::decode(&bytes[..bytes.len() - 2]), Ok(None));
        let (back, used) = Packet::decode(&bytes).expect("valid").expect("complete");
        assert_eq!(back, p);
        assert_eq!(used, bytes.len() - 1);
        let huge = [b'3', 0x7f, 0, 0, 0];
        assert!(Packet::decode(&huge).is_err());
    }

    #[test]
    fn requests_need_the_authkey_when_one_is_set() {
        let p = node_status_request(2, false, Some("gone"), "secret");
        assert_eq!(
            parse_request(&p, "secret"),
            Ok(Request::NodeStatus {
                node_id: 2,
                alive: false,
                message: Some("gone".into())
            })
        );
        assert!(parse_request(&p, "other").is_err());
        let open = node_list_request(-1, "");
        assert_eq!(
            parse_request(&open, ""),
            Ok(Request::NodeList { node_id: -1 })
        );
        assert!(parse_request(&open, "secret").is_err());
    }

    #[test]
    fn pgpool_style_bodies_parse() {
        // Pgpool-II's JSON writer, NUL-terminated.
        let body = b"{\"VarName\":\"QuorumState\"}\0".to_vec();
        let p = Packet {
            kind: GET_RUNTIME_VARIABLE,
            body,
        };
        assert_eq!(
            parse_request(&p, ""),
            Ok(Request::Variable(RuntimeVariable::Quorum))
        );
        let bad = Packet {
            kind: b'x',
            body: b"{}".to_vec(),
        };
        assert_eq!(
            parse_request(&bad, ""),
            Err("unknown IPC command type".into())
        );
        let v = variable_answer(RuntimeVariable::Escalated, 1);
        assert_eq!(
            v.json().and_then(|m| m.get("ValueDataType").cloned()),
            Some(3.into())
        );
    }
}
