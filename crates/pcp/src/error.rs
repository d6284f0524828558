//! Error and notice reports ('E' / 'N'): fields `S` severity, `C` code, `M` message,
//! optional `D` detail, `F` file, `L` line, each NUL-terminated, then a final NUL.
//! Pgpool-II's tools print `SEVERITY:  message` and `DETAIL:  detail` lines.

/// One report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub severity: String,
    pub message: String,
    pub detail: Option<String>,
}

impl Report {
    pub fn error(message: impl Into<String>, detail: impl Into<String>) -> Report {
        Report {
            severity: "ERROR".into(),
            message: message.into(),
            detail: Some(detail.into()),
        }
    }

    pub fn fatal(message: impl Into<String>, detail: impl Into<String>) -> Report {
        Report {
            severity: "FATAL".into(),
            message: message.into(),
            detail: Some(detail.into()),
        }
    }

    pub fn is_fatal(&self) -> bool {
        self.severity == "FATAL"
    }

    /// The body of an 'E' packet. `file`/`line` fill the F and L fields.
    pub fn encode(&self, file: &str, line: u32) -> Vec<u8> {
        let mut b = Vec::new();
        let mut field = |t: u8, v: &str| {
            b.push(t);
            // Pgpool-II cuts each field to 255 bytes.
            let mut end = v.len().min(255);
            while !v.is_char_boundary(end) {
                end -= 1;
            }
            b.extend_from_slice(&v.as_bytes()[..end]);
            b.push(0);
        };
        field(b'S', &self.severity);
        field(b'C', "XX000");
        field(b'M', &self.message);
        if let Some(d) = &self.detail {
            field(b'D', d);
        }
        field(b'F', file);
        field(b'L', &line.to_string());
        b.push(0);
        b
    }

    /// Parses an 'E'/'N' body; None when it has neither severity nor message.
    pub fn decode(body: &[u8]) -> Option<Report> {
        let (mut sev, mut msg, mut det) = (None, None, None);
        for f in body.split(|&b| b == 0) {
            let Some((&t, v)) = f.split_first() else {
                break;
            };
            let v = String::from_utf8_lossy(v).into_owned();
            match t {
                b'S' => sev = Some(v),
                b'M' => msg = Some(v),
                b'D' => det = Some(v),
                _ => {}
            }
        }
        if sev.is_none() && msg.is_none() {
            return None;
        }
        Some(Report {
            severity: sev.unwrap_or_default(),
            message: msg.unwrap_or_default(),
            detail: det,
        })
    }

    /// The text Pgpool-II's client library keeps as "last error".
    pub fn client_text(&self) -> String {
        match &self.detail {
            Some(d) => format!("{}:  {}\nDETAIL:  {}\n", self.severity, self.message, d),
            None => format!("{}:  {}\n", self.severity, self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_pgpool() {
        // Bytes of Pgpool-II 4.3.5's reply to pcp_node_info -n 9, apart from F/L.
        let r = Report::error("informing node info failed", "invalid node ID : 9");
        let b = r.encode("pcp_worker.c", 843);
        assert_eq!(
            b,
            b"SERROR\0CXX000\0Minforming node info failed\0Dinvalid node ID : 9\0Fpcp_worker.c\0L843\0\0"
        );
        assert_eq!(Report::decode(&b), Some(r.clone()));
        assert_eq!(
            r.client_text(),
            "ERROR:  informing node info failed\nDETAIL:  invalid node ID : 9\n"
        );
        assert_eq!(Report::decode(b"\0"), None);
    }
}
