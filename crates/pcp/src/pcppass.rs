//! `~/.pcppass` (or the file `PCPPASSFILE` names): lines `host:port:user:password`,
//! `*` matching anything in the first three fields, `\` escaping `:` and `\`. The file
//! is ignored unless it is a regular file without group/other permissions, as libpq
//! does with .pgpass.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

/// Where the password file is.
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PCPPASSFILE") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pcppass"))
}

/// Matches one field of `line` against `token`; returns the rest of the line after
/// the field's ':' separator.
fn match_field<'a>(line: &'a str, token: &str) -> Option<&'a str> {
    if let Some(rest) = line.strip_prefix("*:") {
        return Some(rest);
    }
    let b = line.as_bytes();
    let t = token.as_bytes();
    let (mut i, mut j) = (0, 0);
    while i < b.len() {
        let mut escaped = false;
        if b[i] == b'\\' && i + 1 < b.len() {
            i += 1;
            escaped = true;
        }
        if b[i] == b':' && !escaped && j == t.len() {
            return line.get(i + 1..);
        }
        if j == t.len() || b[i] != t[j] {
            return None;
        }
        i += 1;
        j += 1;
    }
    None
}

/// De-escapes the password field (up to an unescaped ':').
fn password_field(rest: &str) -> String {
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' {
            break;
        }
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Looks `host`/`port`/`user` up in `text`.
pub fn lookup_in(text: &str, host: &str, port: &str, user: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let rest = match_field(line, host)
            .and_then(|r| match_field(r, port))
            .and_then(|r| match_field(r, user));
        if let Some(r) = rest {
            return Some(password_field(r));
        }
    }
    None
}

/// Looks the password up in the password file; `debug` reports why a file is skipped.
pub fn lookup(host: &str, port: &str, user: &str, debug: bool) -> Option<String> {
    if user.is_empty() {
        return None;
    }
    let file = path()?;
    let meta = std::fs::metadata(&file).ok()?;
    if !meta.is_file() {
        if debug {
            println!(
                "WARNING: password file \"{}\" is not a plain file",
                file.display()
            );
        }
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 || meta.mode() & 0o077 != 0 {
        if debug {
            println!("WARNING: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less", file.display());
        }
        return None;
    }
    let text = std::fs::read(&file).ok()?;
    lookup_in(&String::from_utf8_lossy(&text), host, port, user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_pgpool() {
        let t = "localhost:9898:alice:a1\n*:9898:bob:b\\:2\nhost\\:x:1:c:c3\n*:*:*:any\n";
        assert_eq!(
            lookup_in(t, "localhost", "9898", "alice").as_deref(),
            Some("a1")
        );
        assert_eq!(
            lookup_in(t, "10.0.0.1", "9898", "bob").as_deref(),
            Some("b:2")
        );
        assert_eq!(lookup_in(t, "host:x", "1", "c").as_deref(), Some("c3"));
        assert_eq!(
            lookup_in(t, "localhost", "9898", "zed").as_deref(),
            Some("any")
        );
        assert_eq!(lookup_in("a:1:u:p\n", "a", "12", "u"), None);
        assert_eq!(lookup_in("a:1:u:p\n", "ab", "1", "u"), None);
    }
}
