//! One PCP connection, served in its own forked process: the md5 salt exchange
//! against pcp.conf (re-read at every attempt, as Pgpool-II does), then requests until
//! 'X' or end of input. ERROR reports keep the connection; FATAL ones (bad password,
//! bad packet, unauthenticated request) end it, and the process exits.

use std::io::Read;
use std::path::Path;

use config::Config;
use pcp::error::Report;
use pcp::frame::{self, FrameError};
use shmem::Shmem;

use super::handlers::{self, Ctx};
use crate::net::Stream;

/// Longest user name or password Pgpool-II reads from an 'R' packet.
const MAX_USER_PASSWD_LEN: usize = 128;

fn random_salt() -> [u8; 4] {
    let mut salt = [0u8; 4];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut salt))
        .is_ok();
    if !ok {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        salt = (t ^ std::process::id().rotate_left(16)).to_be_bytes();
    }
    salt
}

fn send(stream: &mut Stream, packets: &[u8]) -> bool {
    use std::io::Write;
    stream.write_all(packets).is_ok()
}

/// Sends a report and logs it; returns the exit code when it ends the connection.
fn report(stream: &mut Stream, r: &Report, line: u32) -> Option<i32> {
    if r.is_fatal() {
        log::error!("PCP: {}", r.message);
    } else {
        log::warn!("PCP: {}", r.message);
    }
    if let Some(d) = &r.detail {
        log::info!("DETAIL:  {d}");
    }
    let _ = send(
        stream,
        &frame::packet(b'E', &r.encode("pcp_worker.c", line)),
    );
    r.is_fatal().then_some(1)
}

/// Checks an 'R' packet: user name, NUL, digest.
fn authenticate(body: &[u8], salt: Option<[u8; 4]>, pcp_conf: &Path) -> Result<(), Report> {
    let Some(nul) = body.iter().take(MAX_USER_PASSWD_LEN).position(|&b| b == 0) else {
        return Err(Report::fatal(
            "failed to authenticate PCP user",
            "error while reading authentication packet",
        ));
    };
    let user = String::from_utf8_lossy(&body[..nul]).into_owned();
    let digest = frame::first_str(&body[nul + 1..]);
    let Some(salt) = salt else {
        return Err(Report::fatal(
            "authentication failed",
            "username and/or password does not match",
        ));
    };
    let users = config::pcpconf::load_pcp_conf(pcp_conf).map_err(|e| {
        Report::fatal(
            "failed to authenticate PCP user",
            format!("could not open {}. reason: {e}", pcp_conf.display()),
        )
    })?;
    let ok = users.iter().any(|(u, stored)| {
        *u == user && pcp::auth::digests_equal(&pcp::auth::salted_digest(stored, u, &salt), &digest)
    });
    if ok {
        Ok(())
    } else {
        Err(Report::fatal(
            format!("authentication failed for user \"{user}\""),
            "username and/or password does not match",
        ))
    }
}

/// Serves the connection; returns the process exit code.
pub fn serve(
    mut stream: Stream,
    cfg: &Config,
    pcp_conf: &Path,
    shm: &Shmem,
    qcache: Option<&shmem::QueryCache>,
) -> i32 {
    let _ = stream.set_nonblocking(false);
    let mut salt: Option<[u8; 4]> = None;
    let mut authenticated = false;
    let ctx = Ctx { cfg, shm, qcache };
    loop {
        let (tag, body) = match frame::read_packet(&mut stream, frame::MAX_REQUEST_LEN) {
            Ok(p) => p,
            Err(FrameError::Io(e)) => {
                log::debug!("PCP: unable to read from client: {e}");
                return 0;
            }
            Err(FrameError::BadLength(n)) => {
                let r = Report::fatal(
                    "invalid PCP packet",
                    format!("incorrect packet length ({n})"),
                );
                return report(&mut stream, &r, line!()).unwrap_or(1);
            }
        };
        log::debug!("PCP: received packet type '{}'", tag as char);
        match tag {
            b'M' => {
                let s = random_salt();
                salt = Some(s);
                if !send(&mut stream, &frame::packet(b'm', &s)) {
                    return 0;
                }
            }
            b'R' => {
                let r = authenticate(&body, salt.take(), pcp_conf);
                match r {
                    Ok(()) => {
                        authenticated = true;
                        let ok = frame::Body::new().str("AuthenticationOK");
                        if !send(&mut stream, &frame::packet(b'r', &ok.0)) {
                            return 0;
                        }
                    }
                    Err(rep) => return report(&mut stream, &rep, line!()).unwrap_or(1),
                }
            }
            _ if !authenticated => {
                let r = Report::fatal(
                    "authentication failed for new PCP connection",
                    "connection not authorized",
                );
                return report(&mut stream, &r, line!()).unwrap_or(1);
            }
            b'X' => return 0,
            _ => match handlers::dispatch(&ctx, tag, &body) {
                Ok(reply) => {
                    if !send(&mut stream, &reply.packets) {
                        return 0;
                    }
                    if let Some(after) = reply.after {
                        after(shm);
                    }
                }
                Err(r) => {
                    if let Some(code) = report(&mut stream, &r, line!()) {
                        return code;
                    }
                }
            },
        }
    }
}
