//! The first step of a session: the start-up packet (encryption requests answered, TLS
//! begun where `ssl = on`), and the checks that refuse a client before authentication
//! (replication connections, reserved_connections) or tell it which protocol version
//! pgpool speaks.

use std::io::Write;
use std::time::Duration;

use protocol::build;
use protocol::startup::{parse_startup, startup_body_len, StartupPacket};

use super::{read_exact_timeout, refuse, Session};
use crate::child::client_auth::AuthFailure;
use crate::child::ChildContext;
use crate::net::Stream;

/// Reads the start-up packet: an SSL request over TCP with `ssl = on` is answered 'S' and
/// the stream becomes TLS (the handshake runs as the packet is read); other SSL and GSS
/// encryption requests are answered 'N'.
pub(super) fn read_startup(
    ctx: &ChildContext<'_>,
    stream: Stream,
) -> (Stream, Result<StartupPacket, String>) {
    let mut stream = stream;
    for _ in 0..3 {
        match read_one_startup(ctx, &mut stream) {
            Ok(StartupPacket::SslRequest) if !stream.is_tls() && !stream.is_unix() => {
                let conn = ctx
                    .tls
                    .clone()
                    .and_then(|t| rustls::ServerConnection::new(t).ok());
                let answer: &[u8] = if conn.is_some() { b"S" } else { b"N" };
                if let Err(e) = stream.write_all(answer) {
                    return (stream, Err(format!("could not answer SSL request: {e}")));
                }
                if let Some(conn) = conn {
                    stream = stream.into_tls(conn);
                }
            }
            Ok(StartupPacket::SslRequest | StartupPacket::GssEncRequest) => {
                if let Err(e) = stream.write_all(b"N") {
                    return (
                        stream,
                        Err(format!("could not answer encryption request: {e}")),
                    );
                }
            }
            other => return (stream, other),
        }
    }
    (stream, Err("too many encryption requests".into()))
}

fn read_one_startup(ctx: &ChildContext<'_>, stream: &mut Stream) -> Result<StartupPacket, String> {
    let timeout = match ctx.cfg.authentication_timeout {
        0 => None,
        t => Some(Duration::from_secs(t)),
    };
    stream
        .set_read_timeout(timeout)
        .map_err(|e| format!("could not set timeout: {e}"))?;
    let mut len = [0u8; 4];
    read_exact_timeout(stream, &mut len)
        .map_err(|e| format!("could not read startup packet length: {e}"))?;
    let body_len = startup_body_len(len).map_err(|e| e.to_string())?;
    let mut body = vec![0u8; body_len];
    read_exact_timeout(stream, &mut body).map_err(|e| format!("incomplete startup packet: {e}"))?;
    parse_startup(&body).map_err(|e| e.to_string())
}

/// Refuses what pgpool does not serve before any authentication, and answers a client
/// asking for a newer 3.x minor version or for protocol options with what pgpool speaks
/// (3.0, no options), as PostgreSQL does.
pub(super) fn admit(
    ctx: &ChildContext<'_>,
    stream: &mut Stream,
    s: &Session,
) -> Result<(), String> {
    if s.params
        .iter()
        .any(|(n, v)| n == "replication" && !v.is_empty() && v != "false" && v != "0")
    {
        return Err(refuse(
            stream,
            AuthFailure {
                code: "08P01",
                message: "replication connections are not supported by pgpool".into(),
                detail: None,
            },
        ));
    }
    if ctx.too_many_clients() {
        return Err(refuse(
            stream,
            AuthFailure {
                code: "53300",
                message: "Sorry, too many clients already".into(),
                detail: None,
            },
        ));
    }
    let unknown_options: Vec<&str> = s
        .params
        .iter()
        .filter(|(n, _)| n.starts_with("_pq_."))
        .map(|(n, _)| n.as_str())
        .collect();
    if s.minor > 0 || !unknown_options.is_empty() {
        let mut out = Vec::new();
        build::negotiate_protocol_version(&mut out, (3, 0), &unknown_options);
        if let Err(e) = stream.write_all(&out) {
            return Err(format!("could not send NegotiateProtocolVersion: {e}"));
        }
    }
    Ok(())
}
