//! `pool_passwd`: the user passwords pgpool uses to authenticate clients and backends, one
//! `user:secret` line each, where the secret is `md5<32 hex>`, `SCRAM-SHA-256$...`,
//! `AES<base64>` (AES-256-CBC, key from the pgpool key file), `TEXT<plain>` or plain text.
//! Also the AES encryption used by `pg_enc` (key and IV derived with OpenSSL's
//! `EVP_BytesToKey(SHA-1, no salt, 1 round)`, checked against Debian's `pg_enc`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use sha1::{Digest, Sha1};

use crate::{read_file, ConfigError};

/// A pool_passwd secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordEntry {
    /// `md5` + 32 hex digits (md5(password || user)), kept with its `md5` prefix.
    Md5(String),
    /// A full `SCRAM-SHA-256$iter:salt$stored:server` verifier.
    Scram(String),
    /// Clear text (`TEXT` prefix removed).
    Plain(String),
    /// AES-256-CBC ciphertext (base64-decoded), see [`decrypt_aes`].
    Aes(Vec<u8>),
}

/// The contents of a pool_passwd file.
#[derive(Debug, Clone, Default)]
pub struct PoolPasswd {
    entries: HashMap<String, PasswordEntry>,
}

impl PoolPasswd {
    pub fn get(&self, user: &str) -> Option<&PasswordEntry> {
        self.entries.get(user)
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&String, &PasswordEntry)> {
        self.entries.iter()
    }
}

/// Classify one secret string.
pub fn parse_secret(secret: &str) -> Result<PasswordEntry, String> {
    if let Some(hex) = secret.strip_prefix("md5") {
        if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(PasswordEntry::Md5(secret.to_string()));
        }
    }
    if secret.starts_with("SCRAM-SHA-256$") {
        return Ok(PasswordEntry::Scram(secret.to_string()));
    }
    if let Some(b64) = secret.strip_prefix("AES") {
        return base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map(PasswordEntry::Aes)
            .map_err(|e| format!("invalid base64 in AES password: {}", e));
    }
    if let Some(t) = secret.strip_prefix("TEXT") {
        return Ok(PasswordEntry::Plain(t.to_string()));
    }
    Ok(PasswordEntry::Plain(secret.to_string()))
}

/// Read a pool_passwd file.
pub fn load_pool_passwd(path: &Path) -> Result<PoolPasswd, ConfigError> {
    parse_pool_passwd(&read_file(path)?, path)
}

/// Parse pool_passwd text; `file` names the file in errors. A later line for a user wins.
pub fn parse_pool_passwd(text: &str, file: &Path) -> Result<PoolPasswd, ConfigError> {
    let mut pp = PoolPasswd::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, secret) = line.split_once(':').ok_or_else(|| {
            ConfigError::new(
                file,
                i + 1,
                "invalid pool_passwd line: expected \"user:password\"",
            )
        })?;
        if user.is_empty() {
            return Err(ConfigError::new(
                file,
                i + 1,
                "empty user name in pool_passwd",
            ));
        }
        let entry = parse_secret(secret).map_err(|m| ConfigError::new(file, i + 1, m))?;
        pp.entries.insert(user.to_string(), entry);
    }
    Ok(pp)
}

/// OpenSSL `EVP_BytesToKey(EVP_aes_256_cbc, EVP_sha1, salt = none, key, 1 round)`.
fn derive_key_iv(key: &str) -> ([u8; 32], [u8; 16]) {
    let mut material = Vec::with_capacity(48);
    let mut prev: Vec<u8> = Vec::new();
    while material.len() < 48 {
        let mut h = Sha1::new();
        h.update(&prev);
        h.update(key.as_bytes());
        prev = h.finalize().to_vec();
        material.extend_from_slice(&prev);
    }
    let mut k = [0u8; 32];
    let mut iv = [0u8; 16];
    k.copy_from_slice(&material[..32]);
    iv.copy_from_slice(&material[32..48]);
    (k, iv)
}

type Enc = cbc::Encryptor<aes::Aes256>;
type Dec = cbc::Decryptor<aes::Aes256>;

/// Decrypt an `AES` pool_passwd secret (ciphertext bytes) with the key file contents.
pub fn decrypt_aes(cipher: &[u8], key: &str) -> Result<String, String> {
    let (k, iv) = derive_key_iv(key);
    let plain = Dec::new(&k.into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(cipher)
        .map_err(|_| "AES decryption failed (wrong key?)".to_string())?;
    String::from_utf8(plain).map_err(|_| "AES decryption failed (wrong key?)".to_string())
}

/// Decrypt the base64 part of an `AES<base64>` secret (the `AES` prefix is optional).
pub fn decrypt_aes_base64(b64: &str, key: &str) -> Result<String, String> {
    let b64 = b64.strip_prefix("AES").unwrap_or(b64);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("invalid base64: {}", e))?;
    decrypt_aes(&bytes, key)
}

/// Encrypt a password as `pg_enc` does; returns the ciphertext bytes.
pub fn encrypt_aes(plain: &str, key: &str) -> Vec<u8> {
    let (k, iv) = derive_key_iv(key);
    Enc::new(&k.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plain.as_bytes())
}

/// Encrypt a password and format it as a pool_passwd secret: `AES<base64>`.
pub fn encrypt_aes_secret(plain: &str, key: &str) -> String {
    format!(
        "AES{}",
        base64::engine::general_purpose::STANDARD.encode(encrypt_aes(plain, key))
    )
}

/// Where the AES key file is: `PGPOOLKEYFILE`, else `$HOME/.pgpoolkey`.
pub fn default_key_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PGPOOLKEYFILE") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpoolkey"))
}

/// Read the AES key: the first line of the key file, without its line ending.
pub fn read_key_file(path: &Path) -> Result<String, ConfigError> {
    let text = read_file(path)?;
    let key = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if key.is_empty() {
        return Err(ConfigError::new(path, 1, "empty encryption key"));
    }
    Ok(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors produced on this machine with Debian's Pgpool-II 4.3.5:
    //   printf 'secretkey\n' > k; pg_enc -k k hunter2
    const SHORT: &str = "AESZBMdKmiIdI4jQ4OzffYgrQ==";
    const LONG: &str = "AESLwc1H5iACLhHYeVQt3fCeqHhRPYbo8D1KCJ07QIKepidrpjjdqgfNeic2fYUAkD7";

    #[test]
    fn aes_matches_pg_enc() {
        assert_eq!(
            decrypt_aes_base64(SHORT, "secretkey").expect("ok"),
            "hunter2"
        );
        assert_eq!(
            decrypt_aes_base64(LONG, "secretkey").expect("ok"),
            "a much longer password 1234567890"
        );
        assert_eq!(encrypt_aes_secret("hunter2", "secretkey"), SHORT);
        assert_eq!(
            encrypt_aes_secret("a much longer password 1234567890", "secretkey"),
            LONG
        );
        assert!(
            decrypt_aes_base64(SHORT, "wrongkey").is_err()
                || decrypt_aes_base64(SHORT, "wrongkey").ok() != Some("hunter2".into())
        );
    }

    #[test]
    fn parse_entries() {
        let text = "alice:md5e5b9b5b3b4a3f0c2d3c6a2c9f2a4b7d1\n\
                    bob:SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2Vydg==\n\
                    carol:TEXTse:cret\n\
                    dave:plainpw\n\
                    eve:AESZBMdKmiIdI4jQ4OzffYgrQ==\n\
                    # comment\n\
                    dave:newer\n";
        let pp = parse_pool_passwd(text, Path::new("pool_passwd")).expect("ok");
        assert_eq!(
            pp.get("alice"),
            Some(&PasswordEntry::Md5(
                "md5e5b9b5b3b4a3f0c2d3c6a2c9f2a4b7d1".into()
            ))
        );
        assert!(
            matches!(pp.get("bob"), Some(PasswordEntry::Scram(s)) if s.starts_with("SCRAM-SHA-256$4096:"))
        );
        assert_eq!(
            pp.get("carol"),
            Some(&PasswordEntry::Plain("se:cret".into()))
        );
        assert_eq!(pp.get("dave"), Some(&PasswordEntry::Plain("newer".into())));
        match pp.get("eve") {
            Some(PasswordEntry::Aes(b)) => {
                assert_eq!(decrypt_aes(b, "secretkey").expect("ok"), "hunter2")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(pp.get("nobody"), None);
        let e = parse_pool_passwd("ok:x\nbroken\n", Path::new("/p")).unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_pool_passwd("x:AES!!!\n", Path::new("/p")).unwrap_err();
        assert!(e.to_string().starts_with("/p:1: invalid base64"), "{e}");
    }
}
