//! log_client_messages: one log entry per message a client sends, in Pgpool-II's words
//! ("Bind message from frontend." with a DETAIL line naming portal and statement), which
//! scripts and Pgpool-II's own regression tests grep. Both relays hand it the frames they
//! forward; it keeps the only state the entries need, the count of CopyData messages of
//! the COPY in progress.

use protocol::scan_header;

#[derive(Default, Debug)]
pub struct ClientLog {
    copy_count: u32,
}

/// The text of a NUL-terminated string at the start of `b`, and what follows it.
fn cstr(b: &[u8]) -> (String, &[u8]) {
    let (text, rest) = crate::child::relay::cstr(b);
    (String::from_utf8_lossy(text).into_owned(), rest)
}

fn entry(what: &str, detail: Option<String>) {
    match detail {
        Some(d) => log::info!("{what} message from frontend.\nDETAIL:  {d}"),
        None => log::info!("{what} message from frontend."),
    }
}

/// "statement" or "portal" and the name, for Describe and Close.
fn target(body: &[u8]) -> String {
    let kind = if body.first() == Some(&b'S') {
        "statement"
    } else {
        "portal"
    };
    format!("{kind}: \"{}\"", cstr(body.get(1..).unwrap_or(&[])).0)
}

impl ClientLog {
    /// Logs every message that starts in `bytes` (the last one may be cut short).
    pub fn frames(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while let Ok(Some(h)) = scan_header(bytes.get(i..).unwrap_or(&[])) {
            let end = (i + h.total_len()).min(bytes.len());
            self.one(h.tag, &bytes[i + 5..end]);
            i = end;
            if i >= bytes.len() {
                break;
            }
        }
    }

    pub fn one(&mut self, tag: u8, body: &[u8]) {
        match tag {
            b'B' => {
                let (portal, rest) = cstr(body);
                let statement = cstr(rest).0;
                entry(
                    "Bind",
                    Some(format!("portal: \"{portal}\", statement: \"{statement}\"")),
                );
            }
            b'C' => entry("Close", Some(target(body))),
            b'D' => entry("Describe", Some(target(body))),
            b'E' => entry("Execute", Some(format!("portal: \"{}\"", cstr(body).0))),
            b'P' => {
                let (name, rest) = cstr(body);
                let query = cstr(rest).0;
                entry(
                    "Parse",
                    Some(format!("statement: \"{name}\", query: \"{query}\"")),
                );
            }
            b'Q' => entry("Query", Some(format!("query: \"{}\"", cstr(body).0))),
            b'F' => {
                let oid = body
                    .get(..4)
                    .map_or(0, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                entry("FunctionCall", Some(format!("oid: \"{oid}\"")));
            }
            b'd' => {
                self.copy_count += 1;
                entry("CopyData", Some(format!("count: {}", self.copy_count)));
            }
            b'c' => {
                self.copy_count = 0;
                entry("CopyDone", None);
            }
            b'f' => {
                self.copy_count = 0;
                entry("CopyFail", None);
            }
            b'H' => entry("Flush", None),
            b'S' => entry("Sync", None),
            b'X' => entry("Terminate", None),
            _ => {}
        }
    }
}

/// A CancelRequest (it arrives on a connection of its own).
pub fn cancel(pid: u32) {
    log::info!("Cancel message from frontend.\nDETAIL:  process id: {pid}");
}
