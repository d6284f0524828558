//! The untyped packets a connection may open with: StartupMessage (protocol 3.0),
//! SSLRequest, GSSENCRequest and CancelRequest. They carry no tag byte, only an int32
//! length and an int32 code.

use std::fmt;

/// PostgreSQL refuses startup packets longer than this; so do we.
pub const MAX_STARTUP_LEN: usize = 10_000;

pub const PROTOCOL_V3: u32 = 3 << 16;
pub const CANCEL_REQUEST_CODE: u32 = 80877102;
pub const SSL_REQUEST_CODE: u32 = 80877103;
pub const GSSENC_REQUEST_CODE: u32 = 80877104;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    Startup {
        major: u16,
        minor: u16,
        /// Parameters in the order the client sent them (`user`, `database`, GUCs...).
        params: Vec<(String, String)>,
    },
    SslRequest,
    GssEncRequest,
    Cancel {
        pid: u32,
        key: u32,
    },
}

impl StartupPacket {
    pub fn param(&self, name: &str) -> Option<&str> {
        match self {
            StartupPacket::Startup { params, .. } => params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupError {
    BadLength(i64),
    UnsupportedProtocol(u16, u16),
    Malformed(&'static str),
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartupError::BadLength(n) => write!(f, "invalid length of startup packet: {n}"),
            StartupError::UnsupportedProtocol(ma, mi) => write!(
                f,
                "unsupported frontend protocol {ma}.{mi}: server supports 3.0 to 3.0"
            ),
            StartupError::Malformed(what) => write!(f, "invalid startup packet layout: {what}"),
        }
    }
}

impl std::error::Error for StartupError {}

/// Validates the length word of a startup packet (which counts itself) and returns the
/// number of bytes that follow it.
pub fn startup_body_len(len_word: [u8; 4]) -> Result<usize, StartupError> {
    let len = i32::from_be_bytes(len_word) as i64;
    if !(8..=MAX_STARTUP_LEN as i64).contains(&len) {
        return Err(StartupError::BadLength(len));
    }
    Ok(len as usize - 4)
}

/// Parses the body of a startup packet (everything after the length word).
pub fn parse_startup(body: &[u8]) -> Result<StartupPacket, StartupError> {
    if body.len() < 4 {
        return Err(StartupError::Malformed("too short"));
    }
    let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let rest = &body[4..];
    match code {
        SSL_REQUEST_CODE => Ok(StartupPacket::SslRequest),
        GSSENC_REQUEST_CODE => Ok(StartupPacket::GssEncRequest),
        CANCEL_REQUEST_CODE => {
            if rest.len() != 8 {
                return Err(StartupError::Malformed("cancel request length"));
            }
            Ok(StartupPacket::Cancel {
                pid: u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]),
                key: u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]),
            })
        }
        _ => {
            let major = (code >> 16) as u16;
            let minor = (code & 0xffff) as u16;
            if major != 3 {
                return Err(StartupError::UnsupportedProtocol(major, minor));
            }
            let mut params = Vec::new();
            let mut cur = rest;
            loop {
                let end = cur
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or(StartupError::Malformed("missing terminator"))?;
                if end == 0 {
                    break;
                }
                let name = std::str::from_utf8(&cur[..end])
                    .map_err(|_| StartupError::Malformed("parameter name is not UTF-8"))?;
                cur = &cur[end + 1..];
                let vend = cur
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or(StartupError::Malformed("missing parameter value"))?;
                let value = std::str::from_utf8(&cur[..vend])
                    .map_err(|_| StartupError::Malformed("parameter value is not UTF-8"))?;
                params.push((name.to_string(), value.to_string()));
                cur = &cur[vend + 1..];
            }
            Ok(StartupPacket::Startup {
                major,
                minor,
                params,
            })
        }
    }
}

/// Encodes a v3 StartupMessage with the given parameters.
pub fn encode_startup(params: &[(&str, &str)]) -> Vec<u8> {
    let mut out = vec![0u8; 4];
    out.extend_from_slice(&PROTOCOL_V3.to_be_bytes());
    for (n, v) in params {
        out.extend_from_slice(n.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out.push(0);
    let len = out.len() as u32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    out
}

/// Encodes a CancelRequest for the given backend key.
/// The SSLRequest packet.
pub fn encode_ssl_request() -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&8u32.to_be_bytes());
    b[4..].copy_from_slice(&SSL_REQUEST_CODE.to_be_bytes());
    b
}

pub fn encode_cancel(pid: u32, key: u32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&16u32.to_be_bytes());
    out[4..8].copy_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
    out[8..12].copy_from_slice(&pid.to_be_bytes());
    out[12..].copy_from_slice(&key.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_startup() {
        let pkt = encode_startup(&[("user", "alice"), ("database", "test")]);
        let body_len = startup_body_len([pkt[0], pkt[1], pkt[2], pkt[3]]).unwrap();
        assert_eq!(body_len, pkt.len() - 4);
        let parsed = parse_startup(&pkt[4..]).unwrap();
        assert_eq!(parsed.param("user"), Some("alice"));
        assert_eq!(parsed.param("database"), Some("test"));
    }

    #[test]
    fn cancel_and_ssl() {
        let c = encode_cancel(42, 7);
        assert_eq!(
            parse_startup(&c[4..]).unwrap(),
            StartupPacket::Cancel { pid: 42, key: 7 }
        );
        let ssl = [0, 0, 0, 8, 4, 210, 22, 47];
        assert_eq!(parse_startup(&ssl[4..]).unwrap(), StartupPacket::SslRequest);
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(startup_body_len([0x7f, 0xff, 0xff, 0xff]).is_err());
        assert!(startup_body_len([0, 0, 0, 3]).is_err());
        assert!(parse_startup(b"\x00\x02\x00\x00").is_err());
        assert!(parse_startup(b"\x00\x03\x00\x00user\0bob").is_err());
        assert!(parse_startup(b"\x00\x03").is_err());
    }
}
