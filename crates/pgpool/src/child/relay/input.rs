//! The client side of the relay: finding the next batch (a Query, extended messages up to
//! Sync or Flush, COPY data, or what fits in the buffer), and writing buffered output to a
//! non-blocking stream.
use super::*;

pub(super) fn write_some(
    stream: &mut Stream,
    buf: &mut Vec<u8>,
    from: &mut usize,
) -> io::Result<()> {
    write_range(stream, buf, from, buf.len())?;
    if *from >= buf.len() {
        buf.clear();
        *from = 0;
    }
    Ok(())
}

/// Writes `buf[*from..end]` as far as the socket takes it, advancing `from`.
pub(super) fn write_range(
    stream: &mut Stream,
    buf: &[u8],
    from: &mut usize,
    end: usize,
) -> io::Result<()> {
    while *from < end {
        match stream.write(&buf[*from..end]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "peer closed")),
            Ok(n) => *from += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Finds the next batch in `buf[from..to]`.
pub(super) fn scan_client(
    buf: &[u8],
    from: usize,
    to: usize,
    local: &mut dyn LocalCommands,
    open: bool,
) -> Result<Scan, String> {
    // A batch of local commands in the extended protocol is answered locally.
    if !open && matches!(buf.get(from), Some(b'P' | b'B')) {
        match local_ext::scan(&buf[from..to], local) {
            local_ext::Batch::Local(n) => {
                return Ok(Scan::Local {
                    start: from,
                    end: from + n,
                    extended: true,
                })
            }
            local_ext::Batch::Incomplete if to - from < buf.len() => return Ok(Scan::Incomplete),
            _ => {}
        }
    }
    let mut i = from;
    while i < to {
        if to - i < 5 {
            break;
        }
        let h = scan_header(&buf[i..to])
            .map_err(|e| e.to_string())?
            .ok_or("short header")?;
        if !protocol::message::is_frontend_tag(h.tag) {
            return Err(protocol::message::invalid_frontend_tag(h.tag));
        }
        if to - i < h.total_len() {
            if h.total_len() > buf.len() || (i == from && to - from == buf.len()) {
                return Ok(Scan::Batch {
                    end: to,
                    kind: BatchEnd::Overflow,
                });
            }
            break;
        }
        let end = i + h.total_len();
        match h.tag {
            b'X' => {
                if i > from {
                    return Ok(Scan::Batch {
                        end: i,
                        kind: BatchEnd::Copy,
                    });
                }
                return Ok(Scan::Terminate);
            }
            b'Q' => {
                if i > from {
                    // Extended messages before a Query without Sync: send them first.
                    return Ok(Scan::Batch {
                        end: i,
                        kind: if open {
                            BatchEnd::Flushed
                        } else {
                            BatchEnd::Copy
                        },
                    });
                }
                if local.is_local(&buf[i + 5..end]) {
                    return Ok(Scan::Local {
                        start: i + 5,
                        end,
                        extended: false,
                    });
                }
                return Ok(Scan::Batch {
                    end,
                    kind: BatchEnd::Synced,
                });
            }
            b'S' | b'F' => {
                return Ok(Scan::Batch {
                    end,
                    kind: BatchEnd::Synced,
                })
            }
            b'H' => {
                return Ok(Scan::Batch {
                    end,
                    kind: BatchEnd::Flushed,
                })
            }
            b'd' | b'c' | b'f' => {
                return Ok(Scan::Batch {
                    end,
                    kind: BatchEnd::Copy,
                })
            }
            b'P' => local_ext::note_parse(&buf[i + 5..end], local),
            _ => {}
        }
        i = end;
    }
    let _ = open;
    if to - from == buf.len() {
        // The buffer is full and holds no boundary: pass on what is complete.
        return Ok(Scan::Batch {
            end: if i > from { i } else { to },
            kind: BatchEnd::Overflow,
        });
    }
    Ok(Scan::Incomplete)
}

/// A batch that ends inside a message too large for the buffer: how many bytes of that
/// message are still to come from the client (they follow the batch to its nodes).
pub(super) fn overflow_rest(batch: &[u8]) -> Option<usize> {
    let mut j = 0;
    while j + 5 <= batch.len() {
        match scan_header(&batch[j..]) {
            Ok(Some(h)) if j + h.total_len() <= batch.len() => j += h.total_len(),
            Ok(Some(h)) => return Some(j + h.total_len() - batch.len()),
            _ => return None,
        }
    }
    None
}
