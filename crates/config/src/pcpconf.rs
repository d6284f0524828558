//! `pcp.conf`: the PCP users, one `user:md5hex` line each (md5 of the password as printed by
//! `pg_md5`), with `#` comments and blank lines.

use std::path::Path;

use crate::{read_file, ConfigError};

/// Read pcp.conf into (user, md5hex) pairs, in file order.
pub fn load_pcp_conf(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    parse_pcp_conf(&read_file(path)?, path)
}

/// Parse pcp.conf text; `file` names the file in errors.
pub fn parse_pcp_conf(text: &str, file: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, pass) = line.split_once(':').ok_or_else(|| {
            ConfigError::new(
                file,
                i + 1,
                "invalid pcp.conf line: expected \"user:md5hex\"",
            )
        })?;
        let (user, pass) = (user.trim(), pass.trim());
        if user.is_empty() || pass.is_empty() {
            return Err(ConfigError::new(
                file,
                i + 1,
                "invalid pcp.conf line: empty user name or password",
            ));
        }
        out.push((user.to_string(), pass.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let v = parse_pcp_conf(
            "# comment\n\npcpadmin:e8a48653851e28c69d0506508fb27fc5\n other : abc \n",
            Path::new("pcp.conf"),
        )
        .expect("ok");
        assert_eq!(
            v,
            vec![
                ("pcpadmin".into(), "e8a48653851e28c69d0506508fb27fc5".into()),
                ("other".into(), "abc".into())
            ]
        );
        let e = parse_pcp_conf("a:b\nnocolon\n", Path::new("/etc/pcp.conf")).unwrap_err();
        assert!(e.to_string().starts_with("/etc/pcp.conf:2: "), "{e}");
    }
}
