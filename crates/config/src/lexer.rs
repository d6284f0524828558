//! Line tokenizer for PostgreSQL-style configuration files (pgpool.conf): `name [=] value`
//! per line, `#` comments (whole-line or trailing), values bare or single-quoted (`''` or
//! `\'` for a quote inside). It keeps the line number of every assignment so that errors can
//! say `file:line: message`.

/// One `name = value` assignment found in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Parameter name, lower-cased.
    pub name: String,
    /// Parameter name as spelled in the file (`delegate_IP`).
    pub spelled: String,
    /// Value with quotes removed and escapes resolved.
    pub value: String,
    /// 1-based line number.
    pub line: usize,
}

/// Split `text` into assignments. Errors are `(line, message)`.
pub fn tokenize(text: &str) -> Result<Vec<Assignment>, (usize, String)> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if let Some(a) = parse_line(raw).map_err(|m| (line, m))? {
            out.push(Assignment {
                name: a.0.to_ascii_lowercase(),
                spelled: a.0,
                value: a.1,
                line,
            });
        }
    }
    Ok(out)
}

fn parse_line(raw: &str) -> Result<Option<(String, String)>, String> {
    let s = raw.trim_start();
    if s.is_empty() || s.starts_with('#') {
        return Ok(None);
    }
    let mut chars = s.char_indices().peekable();
    // name
    let mut name_end = 0;
    while let Some(&(i, c)) = chars.peek() {
        let ok = if i == 0 {
            c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
        } else {
            c.is_ascii_alphanumeric() || c == '_' || c == '.' || !c.is_ascii()
        };
        if !ok {
            break;
        }
        name_end = i + c.len_utf8();
        chars.next();
    }
    if name_end == 0 {
        return Err(format!(
            "syntax error in configuration file near \"{}\"",
            s.trim_end()
        ));
    }
    let name = s[..name_end].to_string();
    let mut rest = s[name_end..].trim_start();
    if let Some(r) = rest.strip_prefix('=') {
        rest = r.trim_start();
    }
    if rest.is_empty() || rest.starts_with('#') {
        return Err(format!(
            "syntax error: missing value for parameter \"{}\"",
            name
        ));
    }
    let (value, after) = if let Some(q) = rest.strip_prefix('\'') {
        let mut v = String::new();
        let mut it = q.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = it.next() {
            match c {
                '\'' => {
                    if let Some(&(_, '\'')) = it.peek() {
                        v.push('\'');
                        it.next();
                    } else {
                        end = Some(i + 1);
                        break;
                    }
                }
                // As Pgpool-II: a backslash keeps the next character inside the string
                // (an escaped quote does not end it) and both stay as written; the
                // parameters that give escapes a meaning read them later.
                '\\' => {
                    v.push('\\');
                    if let Some((_, next)) = it.next() {
                        v.push(next);
                    }
                }
                c => v.push(c),
            }
        }
        match end {
            Some(e) => (v, &q[e..]),
            None => {
                return Err(format!(
                    "unterminated quoted string for parameter \"{}\"",
                    name
                ))
            }
        }
    } else {
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '#')
            .unwrap_or(rest.len());
        (rest[..end].to_string(), &rest[end..])
    };
    let after = after.trim_start();
    if !after.is_empty() && !after.starts_with('#') {
        return Err(format!(
            "syntax error in configuration file near \"{}\"",
            after.trim_end()
        ));
    }
    Ok(Some((name, value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> (String, String) {
        let v = tokenize(s).expect("parses");
        assert_eq!(v.len(), 1, "{s}");
        (v[0].name.clone(), v[0].value.clone())
    }

    #[test]
    fn forms() {
        assert_eq!(one("port = 9999"), ("port".into(), "9999".into()));
        assert_eq!(one("Port 9999"), ("port".into(), "9999".into()));
        assert_eq!(one("port=9999# c"), ("port".into(), "9999".into()));
        assert_eq!(one("  x = 'a b' # c"), ("x".into(), "a b".into()));
        assert_eq!(one("x = 'it''s'"), ("x".into(), "it's".into()));
        assert_eq!(one(r"x = 'it\'s'"), ("x".into(), r"it\'s".into()));
        assert_eq!(one(r"x = 'a\;b\n'"), ("x".into(), r"a\;b\n".into()));
        assert_eq!(
            one("x = '#not a comment'"),
            ("x".into(), "#not a comment".into())
        );
        assert_eq!(one("x = ''"), ("x".into(), "".into()));
        assert_eq!(one("x = /a/b.c"), ("x".into(), "/a/b.c".into()));
        assert!(tokenize("# only\n\n   \n").expect("ok").is_empty());
    }

    #[test]
    fn errors() {
        assert_eq!(tokenize("a = 1\nx = 'abc\n").unwrap_err().0, 2);
        assert!(tokenize("x =").is_err());
        assert!(tokenize("x = a b").is_err());
        assert!(tokenize("= 3").is_err());
    }
}
