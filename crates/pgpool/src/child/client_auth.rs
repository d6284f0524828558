//! Authenticating a client to pgpool: pool_hba.conf decides the method (when
//! enable_pool_hba is on), pool_passwd supplies the secret; the password a client gives
//! in clear text is kept for the session so pgpool can log in to backends with it.

use std::io::Write;

use config::hba::{self, AuthMethod, ConnInfo, HbaLine};
use config::passwd::PasswordEntry;
use protocol::auth::{md5_response_from_stored, md5_stored, random_bytes};
use protocol::build;
use protocol::scram::{ScramSecret, ScramServer, MECHANISM};

use crate::backend::{MessageReader, Secret};
use crate::child::ChildContext;
use crate::net::Stream;

/// What authentication established about the client.
#[derive(Debug, Default)]
pub struct ClientCredential {
    /// Clear-text password the client sent, if any.
    pub cleartext: Option<String>,
    /// True if the client proved its identity to pgpool itself (password, md5, scram
    /// verified against pool_passwd, or trust by pool_hba).
    pub verified: bool,
    /// pgpool may still ask the client for a clear-text password when a backend
    /// requires one (pool_hba off, or method password without a pool_passwd entry).
    pub may_ask: bool,
}

/// A refusal to send to the client as FATAL.
pub struct AuthFailure {
    pub code: &'static str,
    pub message: String,
    /// The DETAIL field, when there is more to say.
    pub detail: Option<String>,
}

fn fail(code: &'static str, message: String) -> AuthFailure {
    AuthFailure {
        code,
        message,
        detail: None,
    }
}

fn password_failed(user: &str) -> AuthFailure {
    fail(
        "28P01",
        format!("password authentication failed for user \"{user}\""),
    )
}

/// The secret pool_passwd holds for `user`, usable to log in to a backend.
pub fn backend_secret_from_passwd(ctx: &ChildContext<'_>, user: &str) -> Option<Secret> {
    match ctx.passwd.get(user)? {
        PasswordEntry::Plain(p) => Some(Secret::Plain(p.clone())),
        PasswordEntry::Md5(h) => Some(Secret::Md5Stored(h.clone())),
        PasswordEntry::Aes(_) => ctx.decrypt_entry(user).map(Secret::Plain),
        PasswordEntry::Scram(_) => None,
    }
}

/// Reads a PasswordMessage ('p') from the client.
pub fn read_password_message(
    stream: &mut Stream,
    reader: &mut MessageReader,
) -> Result<Vec<u8>, AuthFailure> {
    match reader.read(stream) {
        Ok((b'p', body)) => Ok(body.to_vec()),
        Ok((tag, _)) => Err(fail(
            "08P01",
            format!(
                "expected password response, got message type '{}'",
                char::from(tag).escape_default()
            ),
        )),
        Err(e) => Err(fail(
            "08006",
            format!("unable to read password from client: {e}"),
        )),
    }
}

fn cstr_payload(body: &[u8]) -> String {
    let body = protocol::message::until_nul(body);
    String::from_utf8_lossy(body).into_owned()
}

/// Asks the client for its password in clear text.
pub fn ask_cleartext(
    stream: &mut Stream,
    reader: &mut MessageReader,
) -> Result<String, AuthFailure> {
    let mut out = Vec::new();
    build::auth_cleartext(&mut out);
    stream
        .write_all(&out)
        .map_err(|e| fail("08006", format!("unable to write to client: {e}")))?;
    let body = read_password_message(stream, reader)?;
    Ok(cstr_payload(&body))
}

/// Checks a clear-text password against a pool_passwd entry.
fn cleartext_matches(ctx: &ChildContext<'_>, user: &str, given: &str) -> Option<bool> {
    Some(match ctx.passwd.get(user)? {
        PasswordEntry::Plain(p) => p == given,
        PasswordEntry::Md5(h) => *h == md5_stored(user, given),
        PasswordEntry::Aes(_) => ctx.decrypt_entry(user).is_some_and(|p| p == given),
        PasswordEntry::Scram(s) => {
            let Some(secret) = ScramSecret::parse(s) else {
                return Some(false);
            };
            scram_password_matches(&secret, given)
        }
    })
}

fn scram_password_matches(secret: &ScramSecret, given: &str) -> bool {
    // Run a full exchange against ourselves: cheap and reuses the verified code.
    let mut client = protocol::scram::ScramClient::new(given);
    let Ok((server, first)) = ScramServer::start(secret.clone(), &client.client_first()) else {
        return false;
    };
    let Ok(fin) = client.client_final(&first) else {
        return false;
    };
    server.finish(&fin).is_ok()
}

/// Authenticates the client according to pool_hba.conf (or lets the backend decide
/// when enable_pool_hba is off).
pub fn authenticate(
    ctx: &ChildContext<'_>,
    stream: &mut Stream,
    reader: &mut MessageReader,
    user: &str,
    database: &str,
) -> Result<ClientCredential, AuthFailure> {
    if !ctx.cfg.enable_pool_hba {
        return Ok(ClientCredential {
            cleartext: None,
            verified: false,
            may_ask: true,
        });
    }
    let addr = stream.peer_ip();
    let info = ConnInfo {
        is_local: stream.is_unix(),
        addr,
        ssl: stream.is_tls(),
        database: database.to_string(),
        user: user.to_string(),
    };
    let line: Option<&HbaLine> = hba::match_hba(&ctx.hba, &info, resolve_host);
    let Some(line) = line else {
        let host = match addr {
            Some(a) => a.to_string(),
            None => "[local]".to_string(),
        };
        return Err(fail(
            "28000",
            format!("no pool_hba.conf entry for host \"{host}\", user \"{user}\", database \"{database}\""),
        ));
    };
    match line.method {
        AuthMethod::Trust => Ok(ClientCredential {
            cleartext: None,
            verified: true,
            may_ask: false,
        }),
        AuthMethod::Reject => Err(fail(
            "28000",
            format!("authentication with pgpool failed for user \"{user}\": rejected by pool_hba.conf line {}", line.line),
        )),
        AuthMethod::Password => {
            let given = ask_cleartext(stream, reader)?;
            match cleartext_matches(ctx, user, &given) {
                Some(true) => Ok(ClientCredential {
                    cleartext: Some(given),
                    verified: true,
                    may_ask: false,
                }),
                Some(false) => Err(password_failed(user)),
                // No pool_passwd entry: the backend will judge the password.
                None => Ok(ClientCredential {
                    cleartext: Some(given),
                    verified: false,
                    may_ask: false,
                }),
            }
        }
        AuthMethod::Cert => {
            let cn = stream
                .client_certificate()
                .and_then(|c| crate::tls::peer_common_name(&c));
            // Pgpool-II's words (scripts grep them).
            if cn.as_deref() == Some(user) {
                log::info!(
                    "SSL certificate authentication for user \"{user}\" with Pgpool-II is successful"
                );
                Ok(ClientCredential {
                    cleartext: None,
                    verified: true,
                    may_ask: false,
                })
            } else {
                log::info!("SSL certificate authentication for user \"{user}\" failed");
                Err(fail(
                    "28000",
                    format!("certificate authentication failed for user \"{user}\""),
                ))
            }
        }
        AuthMethod::Md5 => authenticate_md5(ctx, stream, reader, user),
        AuthMethod::ScramSha256 => authenticate_scram(ctx, stream, reader, user),
        other => Err(fail(
            "28000",
            format!("authentication method {other:?} of pool_hba.conf line {} is not supported yet", line.line),
        )),
    }
}

fn resolve_host(name: &str) -> Vec<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    (name, 0)
        .to_socket_addrs()
        .map(|it| it.map(|a| a.ip()).collect())
        .unwrap_or_default()
}

fn authenticate_md5(
    ctx: &ChildContext<'_>,
    stream: &mut Stream,
    reader: &mut MessageReader,
    user: &str,
) -> Result<ClientCredential, AuthFailure> {
    let stored = match ctx.passwd.get(user) {
        Some(PasswordEntry::Md5(h)) => h.clone(),
        Some(PasswordEntry::Plain(p)) => md5_stored(user, p),
        Some(PasswordEntry::Aes(_)) => match ctx.decrypt_entry(user) {
            Some(p) => md5_stored(user, &p),
            None => return Err(password_failed(user)),
        },
        Some(PasswordEntry::Scram(_)) => {
            // An md5 exchange cannot be checked against a SCRAM verifier.
            return authenticate_scram(ctx, stream, reader, user);
        }
        None => {
            return Err(fail(
                "28000",
                format!(
                    "md5 authentication failed: no password for user \"{user}\" in pool_passwd"
                ),
            ))
        }
    };
    let mut salt = [0u8; 4];
    random_bytes(&mut salt);
    let mut out = Vec::new();
    build::auth_md5(&mut out, salt);
    stream
        .write_all(&out)
        .map_err(|e| fail("08006", format!("unable to write to client: {e}")))?;
    let body = read_password_message(stream, reader)?;
    if cstr_payload(&body) != md5_response_from_stored(&stored, salt) {
        return Err(password_failed(user));
    }
    Ok(ClientCredential {
        cleartext: None,
        verified: true,
        may_ask: false,
    })
}

fn authenticate_scram(
    ctx: &ChildContext<'_>,
    stream: &mut Stream,
    reader: &mut MessageReader,
    user: &str,
) -> Result<ClientCredential, AuthFailure> {
    let secret = match ctx.passwd.get(user) {
        Some(PasswordEntry::Scram(s)) => ScramSecret::parse(s),
        Some(PasswordEntry::Plain(p)) => Some(ScramSecret::from_password(p)),
        Some(PasswordEntry::Aes(_)) => ctx
            .decrypt_entry(user)
            .map(|p| ScramSecret::from_password(&p)),
        _ => None,
    };
    let Some(secret) = secret else {
        return Err(fail(
            "28000",
            format!("SCRAM authentication failed: no usable password for user \"{user}\" in pool_passwd"),
        ));
    };
    let write = |stream: &mut Stream, out: &[u8]| {
        stream
            .write_all(out)
            .map_err(|e| fail("08006", format!("unable to write to client: {e}")))
    };
    let mut out = Vec::new();
    build::auth_sasl(&mut out, MECHANISM);
    write(stream, &out)?;
    let body = read_password_message(stream, reader)?;
    // SASLInitialResponse: mechanism\0, int32 length, data.
    let mech_end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    if &body[..mech_end] != MECHANISM.as_bytes() || body.len() < mech_end + 5 {
        return Err(fail("08P01", "invalid SASL initial response".into()));
    }
    let data = &body[mech_end + 5..];
    let (server, first) = ScramServer::start(secret, data)
        .map_err(|e| fail("08P01", format!("SCRAM exchange failed: {e}")))?;
    out.clear();
    build::auth_sasl_continue(&mut out, &first);
    write(stream, &out)?;
    let body = read_password_message(stream, reader)?;
    let fin = server.finish(&body).map_err(|_| password_failed(user))?;
    out.clear();
    build::auth_sasl_final(&mut out, &fin);
    write(stream, &out)?;
    Ok(ClientCredential {
        cleartext: None,
        verified: true,
        may_ask: false,
    })
}
