//! SQL string literals, both ways: the one place that quotes a value for a statement
//! pgpool sends itself and that reads the value of a literal a client wrote.

/// `s` as a string literal, as PQescapeLiteral makes it (E'' when backslashes occur,
/// so the value is the same whatever `standard_conforming_strings` says).
pub fn quote(s: &str) -> String {
    let body = s.replace('\'', "''");
    if s.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

/// The value of a plain string literal `'...'` (where `''` stands for `'`); None when
/// `s` is not exactly one such literal.
pub fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('\'')?.strip_suffix('\'')?;
    (!inner.replace("''", "").contains('\'')).then(|| inner.replace("''", "'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_both_ways() {
        assert_eq!(quote("it's"), "'it''s'");
        assert_eq!(quote("a\\b"), "E'a\\\\b'");
        assert_eq!(unquote("'it''s'"), Some("it's".into()));
        assert_eq!(unquote("''"), Some(String::new()));
        assert_eq!(unquote("'a'b'"), None);
        assert_eq!(unquote("abc"), None);
        for v in ["x", "it's", "''", "o'clock'"] {
            assert_eq!(unquote(&quote(v)).as_deref(), Some(v));
        }
    }
}
