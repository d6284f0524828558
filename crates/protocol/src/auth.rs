//! Password hashing used on the wire: PostgreSQL's md5 scheme and random salts/nonces.

use md5::{Digest, Md5};

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Lower-case hex md5 of `data`.
pub fn md5_hex(data: &[u8]) -> String {
    hex(&Md5::digest(data))
}

/// The stored form PostgreSQL keeps for md5 passwords: `md5` + md5(password || user).
pub fn md5_stored(user: &str, password: &str) -> String {
    let mut input = Vec::with_capacity(password.len() + user.len());
    input.extend_from_slice(password.as_bytes());
    input.extend_from_slice(user.as_bytes());
    format!("md5{}", md5_hex(&input))
}

/// The md5 response to a salt, starting from the stored form `md5<hex>`
/// (`md5` + md5(hex || salt)).
pub fn md5_response_from_stored(stored: &str, salt: [u8; 4]) -> String {
    let hex_part = stored.strip_prefix("md5").unwrap_or(stored);
    let mut input = Vec::with_capacity(hex_part.len() + 4);
    input.extend_from_slice(hex_part.as_bytes());
    input.extend_from_slice(&salt);
    format!("md5{}", md5_hex(&input))
}

/// The md5 response to a salt, from the clear-text password.
pub fn md5_response(user: &str, password: &str, salt: [u8; 4]) -> String {
    md5_response_from_stored(&md5_stored(user, password), salt)
}

/// Fills `buf` with random bytes from the OS.
pub fn random_bytes(buf: &mut [u8]) {
    // getrandom only fails when the kernel has no entropy source at all; a zeroed salt
    // would then weaken, not break, the exchange, so fall back to time-derived bytes.
    if getrandom::getrandom(buf).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (t >> ((i % 16) * 8)) as u8 ^ (std::process::id() as u8);
        }
    }
}

pub fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    random_bytes(&mut b);
    u32::from_ne_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_postgres() {
        // SELECT 'md5' || md5('secret' || 'alice')
        assert_eq!(
            md5_stored("alice", "secret"),
            "md54a0a68b43b6cd5cf266fa02f196e2371"
        );
        let r = md5_response("alice", "secret", [1, 2, 3, 4]);
        assert_eq!(r.len(), 35);
        assert_eq!(
            r,
            md5_response_from_stored("md54a0a68b43b6cd5cf266fa02f196e2371", [1, 2, 3, 4])
        );
    }
}
