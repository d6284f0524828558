//! PCP framing: one tag byte, a big-endian int32 length that counts itself, then the
//! body. Bodies are mostly NUL-terminated strings. Requests use upper-case tags and
//! replies the matching lower-case tag; 'E' carries an error report.

use std::io::{self, Read, Write};

/// Longest request packet (length field included) Pgpool-II 4.3 accepts: two names of
/// at most 128 bytes and the length word.
pub const MAX_REQUEST_LEN: i32 = 260;

/// Longest reply the client accepts, as a guard against garbage.
pub const MAX_REPLY_LEN: i32 = 64 * 1024 * 1024;

/// Builds the body of a packet.
#[derive(Debug, Default, Clone)]
pub struct Body(pub Vec<u8>);

impl Body {
    pub fn new() -> Body {
        Body(Vec::new())
    }

    /// Appends `s` and its terminating NUL.
    pub fn str(mut self, s: &str) -> Body {
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
        self
    }

    /// Appends raw bytes (no terminator).
    pub fn raw(mut self, b: &[u8]) -> Body {
        self.0.extend_from_slice(b);
        self
    }
}

/// Encodes one packet.
pub fn packet(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(tag);
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Writes one packet.
pub fn write_packet<W: Write>(w: &mut W, tag: u8, body: &[u8]) -> io::Result<()> {
    w.write_all(&packet(tag, body))?;
    w.flush()
}

/// Why a packet could not be read.
#[derive(Debug)]
pub enum FrameError {
    Io(io::Error),
    /// The length word is outside 4..max (the value is reported as Pgpool-II does).
    BadLength(i32),
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> FrameError {
        FrameError::Io(e)
    }
}

/// Reads one packet. Pgpool-II's server refuses lengths `<= 0` and `>= max`; the
/// length of a packet without body is 4.
pub fn read_packet<R: Read>(r: &mut R, max: i32) -> Result<(u8, Vec<u8>), FrameError> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head)?;
    let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    if len < 4 || len >= max {
        return Err(FrameError::BadLength(len));
    }
    let mut body = vec![0u8; len as usize - 4];
    r.read_exact(&mut body)?;
    Ok((head[0], body))
}

/// Splits a body into its NUL-terminated strings (a trailing piece without NUL is
/// returned too).
pub fn strings(body: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = body
        .split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    if body.last() == Some(&0) {
        out.pop();
    }
    out
}

/// The first NUL-terminated string of a body (the whole body if it has no NUL).
pub fn first_str(body: &[u8]) -> String {
    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    String::from_utf8_lossy(&body[..end]).into_owned()
}

/// C `atoi`: optional blanks and sign, then digits; anything else ends the number
/// (0 when there is none). Pgpool-II parses node ids and pids this way.
pub fn atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            break;
        }
        v = v.saturating_mul(10).saturating_add((b - b'0') as i64);
    }
    if neg {
        -v
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let p = packet(b'I', &Body::new().str("1").0);
        assert_eq!(p, b"I\0\0\0\x061\0");
        let (tag, body) = read_packet(&mut &p[..], MAX_REQUEST_LEN).unwrap();
        assert_eq!(tag, b'I');
        assert_eq!(strings(&body), vec!["1"]);
        assert_eq!(packet(b'X', &[]), b"X\0\0\0\x04");
    }

    #[test]
    fn lengths_are_checked() {
        let mut bad: &[u8] = b"I\0\0\0\x03";
        assert!(matches!(
            read_packet(&mut bad, MAX_REQUEST_LEN),
            Err(FrameError::BadLength(3))
        ));
        let mut big: &[u8] = b"R\0\0\x01\x04";
        assert!(matches!(
            read_packet(&mut big, MAX_REQUEST_LEN),
            Err(FrameError::BadLength(260))
        ));
        let mut short: &[u8] = b"I\0\0\0\x08ab";
        assert!(matches!(
            read_packet(&mut short, MAX_REQUEST_LEN),
            Err(FrameError::Io(_))
        ));
    }

    #[test]
    fn strings_and_atoi() {
        assert_eq!(strings(b"a\0\0b\0"), vec!["a", "", "b"]);
        assert_eq!(strings(b"a\0tail"), vec!["a", "tail"]);
        assert_eq!(first_str(b"7 \0s"), "7 ");
        assert_eq!(atoi(" 12x"), 12);
        assert_eq!(atoi("-1"), -1);
        assert_eq!(atoi("abc"), 0);
    }
}
