//! The md5 salt exchange. The client sends 'M' and receives 'm' with 4 salt bytes,
//! then 'R' with its user name and `md5hex(md5hex(md5hex(password) + user) + salt)`.
//! pcp.conf stores `md5hex(password)`, so the server computes the same chain from it.
//! (Verified byte for byte against Debian's Pgpool-II 4.3.5 tools.)

use md5::{Digest, Md5};

/// Lower-case hex md5 of `data`.
pub fn md5_hex(data: &[u8]) -> String {
    let digest = Md5::digest(data);
    let mut s = String::with_capacity(32);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The digest the server expects, from the pcp.conf hash of the password.
pub fn salted_digest(stored_md5: &str, user: &str, salt: &[u8; 4]) -> String {
    let mut inner = stored_md5.as_bytes().to_vec();
    inner.extend_from_slice(user.as_bytes());
    let mut outer = md5_hex(&inner).into_bytes();
    outer.extend_from_slice(salt);
    md5_hex(&outer)
}

/// The digest a client sends for a clear-text password.
pub fn client_digest(password: &str, user: &str, salt: &[u8; 4]) -> String {
    salted_digest(&md5_hex(password.as_bytes()), user, salt)
}

/// pool_passwd's md5 form: `md5` + md5hex(password + user).
pub fn pool_passwd_md5(password: &str, user: &str) -> String {
    let mut b = password.as_bytes().to_vec();
    b.extend_from_slice(user.as_bytes());
    format!("md5{}", md5_hex(&b))
}

/// Compares two digests without an early exit.
pub fn digests_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_matches_pgpool() {
        // Captured from Debian's pcp_node_info 4.3.5 (strace): salt d8 98 6c 2e,
        // user postgres, password postgres.
        let salt = [0xd8, 0x98, 0x6c, 0x2e];
        assert_eq!(
            client_digest("postgres", "postgres", &salt),
            "ad1c888dd3ba74aab752b49001b1b226"
        );
        let stored = md5_hex(b"postgres");
        assert_eq!(
            salted_digest(&stored, "postgres", &salt),
            "ad1c888dd3ba74aab752b49001b1b226"
        );
        assert_eq!(md5_hex(b"postgres"), "e8a48653851e28c69d0506508fb27fc5");
    }

    #[test]
    fn pool_passwd_form() {
        // md5 of "secret" + "alice", the form PostgreSQL stores too.
        assert_eq!(
            pool_passwd_md5("secret", "alice"),
            format!("md5{}", md5_hex(b"secretalice"))
        );
        assert!(digests_equal("abc", "abc"));
        assert!(!digests_equal("abc", "abd"));
        assert!(!digests_equal("abc", "ab"));
    }
}
