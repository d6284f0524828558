//! Incremental message-boundary tracking over a relayed byte stream. Bytes are never
//! copied except the bodies of the few message kinds the caller asks to see whole
//! when such a body is split across reads.

use protocol::message::{scan_header, FrameError};

/// Largest body the scanner will reassemble across reads; longer bodies of wanted
/// kinds are reported truncated-free as `Oversized`.
const MAX_CAPTURE: usize = 1 << 20;

#[derive(Default, Debug)]
pub struct Scanner {
    /// Body bytes of the current message still to come.
    remaining: usize,
    hdr: [u8; 5],
    hdr_len: usize,
    tag: u8,
    capturing: bool,
    capture: Vec<u8>,
}

/// A complete message of a wanted kind.
pub struct Seen<'a> {
    pub tag: u8,
    pub body: &'a [u8],
}

impl Scanner {
    /// True when the stream is between messages.
    pub fn at_boundary(&self) -> bool {
        self.remaining == 0 && self.hdr_len == 0 && !self.capturing
    }

    /// Walks `data`, calling `on_header` with the tag of every message that starts in
    /// it and `on` for every complete message whose tag `want`s. `on` returns false to
    /// stop scanning (the rest of `data` is left unscanned).
    pub fn feed(
        &mut self,
        data: &[u8],
        want: impl Fn(u8) -> bool,
        mut on_header: impl FnMut(u8),
        mut on: impl FnMut(Seen<'_>) -> bool,
    ) -> Result<(), FrameError> {
        let mut i = 0;
        while i < data.len() {
            if self.remaining > 0 {
                let take = self.remaining.min(data.len() - i);
                if self.capturing {
                    self.capture.extend_from_slice(&data[i..i + take]);
                }
                self.remaining -= take;
                i += take;
                if self.remaining == 0 && self.capturing {
                    self.capturing = false;
                    let go = on(Seen {
                        tag: self.tag,
                        body: &self.capture,
                    });
                    self.capture.clear();
                    if !go {
                        return Ok(());
                    }
                }
                continue;
            }
            let header;
            if self.hdr_len > 0 || data.len() - i < 5 {
                let take = (5 - self.hdr_len).min(data.len() - i);
                self.hdr[self.hdr_len..self.hdr_len + take].copy_from_slice(&data[i..i + take]);
                self.hdr_len += take;
                i += take;
                if self.hdr_len < 5 {
                    break;
                }
                self.hdr_len = 0;
                header = scan_header(&self.hdr)?;
            } else {
                header = scan_header(&data[i..])?;
                i += 5;
            }
            let Some(h) = header else { break };
            self.tag = h.tag;
            on_header(h.tag);
            let avail = data.len() - i;
            if want(h.tag) {
                if avail >= h.body_len {
                    let go = on(Seen {
                        tag: h.tag,
                        body: &data[i..i + h.body_len],
                    });
                    i += h.body_len;
                    if !go {
                        return Ok(());
                    }
                } else if h.body_len <= MAX_CAPTURE {
                    self.capturing = true;
                    self.capture.clear();
                    self.capture.extend_from_slice(&data[i..]);
                    self.remaining = h.body_len - avail;
                    i = data.len();
                } else {
                    // Too large to reassemble: treat as an unwanted message.
                    self.remaining = h.body_len - avail;
                    i = data.len();
                }
            } else {
                let take = h.body_len.min(avail);
                i += take;
                self.remaining = h.body_len - take;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs() -> Vec<u8> {
        let mut b = Vec::new();
        protocol::build::command_complete(&mut b, "SELECT 1");
        protocol::build::parameter_status(&mut b, b"application_name", b"x");
        protocol::build::ready_for_query(&mut b, b'T');
        b
    }

    #[test]
    fn finds_wanted_messages_at_any_split() {
        let data = msgs();
        for split in 0..data.len() {
            for split2 in split..data.len() {
                let mut s = Scanner::default();
                let mut seen = Vec::new();
                for part in [&data[..split], &data[split..split2], &data[split2..]] {
                    s.feed(
                        part,
                        |t| t == b'Z' || t == b'S',
                        |_| {},
                        |m| {
                            seen.push((m.tag, m.body.to_vec()));
                            true
                        },
                    )
                    .unwrap();
                }
                assert!(s.at_boundary());
                assert_eq!(seen.len(), 2, "split {split} {split2}");
                assert_eq!(seen[0].1, b"application_name\0x\0");
                assert_eq!(seen[1], (b'Z', vec![b'T']));
            }
        }
    }

    #[test]
    fn bad_length_is_an_error() {
        let mut s = Scanner::default();
        assert!(s
            .feed(b"Q\xff\xff\xff\xffxx", |_| true, |_| {}, |_| true)
            .is_err());
    }
}
