//! SCRAM-SHA-256 (RFC 5802/7677) as PostgreSQL speaks it: the client side, used to log
//! in to backends, and the server side, used to authenticate clients against a
//! pool_passwd entry (a stored `SCRAM-SHA-256$iter:salt$StoredKey:ServerKey` secret or a
//! clear-text password). Channel binding is not offered.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::auth::random_bytes;

type HmacSha256 = Hmac<Sha256>;

pub const MECHANISM: &str = "SCRAM-SHA-256";
const DEFAULT_ITERATIONS: u32 = 4096;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("hmac accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
    out
}

fn nonce() -> String {
    let mut raw = [0u8; 18];
    random_bytes(&mut raw);
    B64.encode(raw)
}

fn attr(msg: &str, key: char) -> Option<&str> {
    msg.split(',').find_map(|part| {
        let mut chars = part.chars();
        (chars.next() == Some(key) && chars.next() == Some('=')).then(|| &part[2..])
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramError(pub String);

impl std::fmt::Display for ScramError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScramError {}

fn err<T>(msg: &str) -> Result<T, ScramError> {
    Err(ScramError(msg.to_string()))
}

/// Client side of one SCRAM exchange.
pub struct ScramClient {
    password: String,
    client_nonce: String,
    client_first_bare: String,
    server_signature: Option<[u8; 32]>,
}

impl ScramClient {
    pub fn new(password: &str) -> Self {
        let client_nonce = nonce();
        ScramClient {
            password: password.to_string(),
            client_first_bare: format!("n=,r={client_nonce}"),
            client_nonce,
            server_signature: None,
        }
    }

    /// The client-first-message, sent in SASLInitialResponse.
    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Consumes server-first-message, returns client-final-message.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| ScramError("server-first-message is not UTF-8".into()))?;
        let nonce = attr(server_first, 'r').ok_or(ScramError("missing nonce".into()))?;
        if !nonce.starts_with(&self.client_nonce) {
            return err("server nonce does not extend client nonce");
        }
        let salt = attr(server_first, 's')
            .and_then(|s| B64.decode(s).ok())
            .ok_or(ScramError("missing or invalid salt".into()))?;
        let iterations: u32 = attr(server_first, 'i')
            .and_then(|s| s.parse().ok())
            .filter(|&i| i > 0)
            .ok_or(ScramError("missing or invalid iteration count".into()))?;
        let salted = salted_password(&self.password, &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        self.server_signature = Some(hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks server-final-message.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let text = std::str::from_utf8(server_final)
            .map_err(|_| ScramError("server-final-message is not UTF-8".into()))?;
        if let Some(e) = attr(text, 'e') {
            return Err(ScramError(format!("server reported error: {e}")));
        }
        let v = attr(text, 'v')
            .and_then(|s| B64.decode(s).ok())
            .ok_or(ScramError("missing server signature".into()))?;
        match self.server_signature {
            Some(expected) if expected.as_slice() == v.as_slice() => Ok(()),
            _ => err("server signature does not match"),
        }
    }
}

/// The verifier a server checks a client against.
#[derive(Debug, Clone)]
pub struct ScramSecret {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl ScramSecret {
    /// Parses PostgreSQL's stored form `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`.
    pub fn parse(stored: &str) -> Option<ScramSecret> {
        let rest = stored.strip_prefix("SCRAM-SHA-256$")?;
        let (iter_salt, keys) = rest.split_once('$')?;
        let (iter, salt) = iter_salt.split_once(':')?;
        let (sk, svk) = keys.split_once(':')?;
        Some(ScramSecret {
            iterations: iter.parse().ok()?,
            salt: B64.decode(salt).ok()?,
            stored_key: B64.decode(sk).ok()?.try_into().ok()?,
            server_key: B64.decode(svk).ok()?.try_into().ok()?,
        })
    }

    /// Derives a verifier from a clear-text password with a fresh salt.
    pub fn from_password(password: &str) -> ScramSecret {
        let mut salt = vec![0u8; 16];
        random_bytes(&mut salt);
        let salted = salted_password(password, &salt, DEFAULT_ITERATIONS);
        let client_key = hmac(&salted, b"Client Key");
        ScramSecret {
            iterations: DEFAULT_ITERATIONS,
            salt,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }
}

/// Server side of one SCRAM exchange.
pub struct ScramServer {
    secret: ScramSecret,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ScramServer {
    /// Consumes the SASLInitialResponse data; returns the server-first-message.
    pub fn start(secret: ScramSecret, client_first: &[u8]) -> Result<(Self, Vec<u8>), ScramError> {
        let text = std::str::from_utf8(client_first)
            .map_err(|_| ScramError("client-first-message is not UTF-8".into()))?;
        let bare = if let Some(b) = text
            .strip_prefix("n,,")
            .or_else(|| text.strip_prefix("y,,"))
        {
            b
        } else {
            return err("unsupported channel binding or malformed GS2 header");
        };
        let cnonce = attr(bare, 'r').ok_or(ScramError("missing client nonce".into()))?;
        let nonce = format!("{cnonce}{}", self::nonce());
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&secret.salt),
            secret.iterations
        );
        let out = server_first.clone().into_bytes();
        Ok((
            ScramServer {
                secret,
                client_first_bare: bare.to_string(),
                server_first,
                nonce,
            },
            out,
        ))
    }

    /// Verifies the client-final-message; returns the server-final-message.
    pub fn finish(&self, client_final: &[u8]) -> Result<Vec<u8>, ScramError> {
        let text = std::str::from_utf8(client_final)
            .map_err(|_| ScramError("client-final-message is not UTF-8".into()))?;
        let (without_proof, proof_b64) = text
            .rsplit_once(",p=")
            .ok_or(ScramError("missing proof".into()))?;
        if attr(without_proof, 'r') != Some(self.nonce.as_str()) {
            return err("nonce mismatch");
        }
        let proof = B64
            .decode(proof_b64)
            .map_err(|_| ScramError("invalid proof encoding".into()))?;
        if proof.len() != 32 {
            return err("invalid proof length");
        }
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let signature = hmac(&self.secret.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(signature.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        let stored: [u8; 32] = Sha256::digest(&client_key).into();
        if stored != self.secret.stored_key {
            return err("password authentication failed");
        }
        let server_sig = hmac(&self.secret.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_sig)).into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_agree() {
        let secret = ScramSecret::from_password("pencil");
        let mut client = ScramClient::new("pencil");
        let (server, first) = ScramServer::start(secret, &client.client_first()).unwrap();
        let fin = client.client_final(&first).unwrap();
        let server_final = server.finish(&fin).unwrap();
        client.verify_server_final(&server_final).unwrap();
    }

    #[test]
    fn wrong_password_fails() {
        let secret = ScramSecret::from_password("pencil");
        let mut client = ScramClient::new("crayon");
        let (server, first) = ScramServer::start(secret, &client.client_first()).unwrap();
        let fin = client.client_final(&first).unwrap();
        assert!(server.finish(&fin).is_err());
    }

    #[test]
    fn parses_postgres_secret() {
        let s = "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$A4DTS6jCa2ZLFrJ1fC4M1xEwsfyUYyL+zdHvOQXWx0Q=:Gyf/MCVrf9uF1V4fP+K+SnIaKfUUlF4w2Br4pNAFjpE=";
        let secret = ScramSecret::parse(s).unwrap();
        assert_eq!(secret.iterations, 4096);
        assert!(ScramSecret::parse("md5abc").is_none());
    }
}
