//! Framing of typed v3 messages (`tag`, int32 length counting itself, body) and the
//! small parsers for the bodies pgpool inspects while relaying: ErrorResponse fields,
//! ParameterStatus pairs and ReadyForQuery status.

use std::fmt;

/// Largest message pgpool accepts from either side. PostgreSQL itself limits most
/// messages to 1 GB; anything beyond that is a corrupt or hostile stream.
pub const MAX_MESSAGE_LEN: usize = 1 << 30;

/// A message header found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageHeader {
    pub tag: u8,
    /// Length of the body alone (the wire length minus its own four bytes).
    pub body_len: usize,
}

impl MessageHeader {
    /// Bytes the whole message takes on the wire: tag, length word and body.
    pub fn total_len(&self) -> usize {
        self.body_len + 5
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length word is below 4 or above [`MAX_MESSAGE_LEN`].
    BadLength { tag: u8, len: i64 },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadLength { tag, len } => write!(
                f,
                "invalid message length {len} for message kind '{}'",
                char::from(*tag).escape_default()
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// Reads the 5-byte header at the start of `buf`; `Ok(None)` when fewer than 5 bytes
/// are available yet.
pub fn scan_header(buf: &[u8]) -> Result<Option<MessageHeader>, FrameError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as i64;
    if len < 4 || len as usize > MAX_MESSAGE_LEN {
        return Err(FrameError::BadLength { tag: buf[0], len });
    }
    Ok(Some(MessageHeader {
        tag: buf[0],
        body_len: len as usize - 4,
    }))
}

/// Message kinds a frontend may send after start-up (protocol 3.0).
pub fn is_frontend_tag(tag: u8) -> bool {
    matches!(
        tag,
        b'B' | b'C'
            | b'd'
            | b'c'
            | b'f'
            | b'D'
            | b'E'
            | b'H'
            | b'F'
            | b'P'
            | b'p'
            | b'Q'
            | b'S'
            | b'X'
    )
}

/// The error a client gets for a message kind no frontend may send.
pub fn invalid_frontend_tag(tag: u8) -> String {
    format!("invalid frontend message type {tag}")
}

/// Fields of an ErrorResponse or NoticeResponse body that pgpool looks at.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ErrorFields {
    pub severity: String,
    pub code: String,
    pub message: String,
}

/// Parses an ErrorResponse/NoticeResponse body (`code byte, cstring` pairs ending in 0).
pub fn parse_error_fields(body: &[u8]) -> ErrorFields {
    let mut out = ErrorFields::default();
    let mut rest = body;
    while let Some((&kind, tail)) = rest.split_first() {
        if kind == 0 {
            break;
        }
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        let value = String::from_utf8_lossy(&tail[..end]).into_owned();
        match kind {
            b'S' => out.severity = value,
            b'C' => out.code = value,
            b'M' => out.message = value,
            _ => {}
        }
        rest = tail.get(end + 1..).unwrap_or(&[]);
    }
    out
}

/// Parses a ParameterStatus body (`name\0value\0`).
pub fn parse_parameter_status(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let (name, rest) = take_cstr(body)?;
    Some((name, take_cstr(rest)?.0))
}

/// The columns of a DataRow body, in order (`None` for NULL); stops early on a truncated body.
pub struct DataRowFields<'a> {
    rest: &'a [u8],
    left: u16,
}

impl<'a> DataRowFields<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        match body {
            [a, b, rest @ ..] => DataRowFields {
                rest,
                left: u16::from_be_bytes([*a, *b]),
            },
            _ => DataRowFields { rest: &[], left: 0 },
        }
    }
}

impl<'a> Iterator for DataRowFields<'a> {
    type Item = Option<&'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 || self.rest.len() < 4 {
            return None;
        }
        self.left -= 1;
        let len = i32::from_be_bytes([self.rest[0], self.rest[1], self.rest[2], self.rest[3]]);
        self.rest = &self.rest[4..];
        let Ok(len) = usize::try_from(len) else {
            return Some(None);
        };
        if len > self.rest.len() {
            self.left = 0;
            return None;
        }
        let (v, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(Some(v))
    }
}

/// Splits a NUL-terminated string off the front of `buf`: the string and what follows
/// its NUL (None: there is no NUL). Every message text passes here, hence memchr.
#[inline]
pub fn take_cstr(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = memchr::memchr(0, buf)?;
    Some((&buf[..end], &buf[end + 1..]))
}

/// The bytes of `buf` before its first NUL (all of them without one).
#[inline]
pub fn until_nul(buf: &[u8]) -> &[u8] {
    memchr::memchr(0, buf).map_or(buf, |end| &buf[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_needs_five_bytes() {
        assert_eq!(scan_header(b"Q\0\0\0").unwrap(), None);
        let h = scan_header(b"Q\0\0\0\x0dselect 1;\0").unwrap().unwrap();
        assert_eq!(h.tag, b'Q');
        assert_eq!(h.body_len, 9);
        assert_eq!(h.total_len(), 14);
    }

    #[test]
    fn absurd_lengths_are_rejected() {
        assert!(scan_header(b"Q\0\0\0\x03").is_err());
        assert!(scan_header(b"Q\x7f\xff\xff\xff").is_err());
        assert!(scan_header(b"Q\xff\xff\xff\xff").is_err());
    }

    #[test]
    fn error_fields() {
        let body = b"SFATAL\0C57P01\0Mterminating connection\0\0";
        let f = parse_error_fields(body);
        assert_eq!(f.severity, "FATAL");
        assert_eq!(f.code, "57P01");
        assert_eq!(f.message, "terminating connection");
        // Truncated input must not panic.
        let f = parse_error_fields(b"SERR");
        assert_eq!(f.severity, "ERR");
    }

    #[test]
    fn parameter_status() {
        let (n, v) = parse_parameter_status(b"TimeZone\0UTC\0").unwrap();
        assert_eq!(n, b"TimeZone");
        assert_eq!(v, b"UTC");
        assert!(parse_parameter_status(b"TimeZone").is_none());
    }
}
