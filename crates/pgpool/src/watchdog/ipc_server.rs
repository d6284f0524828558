//! The watchdog's command socket (`wd_ipc_socket_dir/.s.PGPOOLWD_CMD.<wd_port>`): it
//! accepts local clients such as `wd_cli`, reads one packet from each (bounded, and a
//! client silent for a few seconds is dropped), hands the request to the event loop
//! and writes its answer. The packet format and the requests are `watchdog::ipc`'s.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use watchdog::ipc::{Packet, MAX_BODY};

/// A client that has not sent its whole request by then is dropped.
const READ_LIMIT: Duration = Duration::from_secs(5);

struct Client {
    stream: UnixStream,
    inbuf: Vec<u8>,
    since: Instant,
}

pub struct IpcServer {
    listener: UnixListener,
    listener_token: Token,
    path: String,
    clients: HashMap<Token, Client>,
}

impl IpcServer {
    pub fn open(path: &str, registry: &Registry, token: Token) -> Result<IpcServer, String> {
        // A socket file left by a crashed run would make the bind fail.
        let _ = std::fs::remove_file(path);
        let mut listener = UnixListener::bind(path)
            .map_err(|e| format!("could not create the IPC socket \"{path}\": {e}"))?;
        registry
            .register(&mut listener, token, Interest::READABLE)
            .map_err(|e| e.to_string())?;
        log::info!("IPC socket path: \"{path}\"");
        Ok(IpcServer {
            listener,
            listener_token: token,
            path: path.to_string(),
            clients: HashMap::new(),
        })
    }

    pub fn owns(&self, token: Token) -> bool {
        token == self.listener_token || self.clients.contains_key(&token)
    }

    /// Handles readiness of `token`; returns a complete request, if one arrived.
    pub fn event(
        &mut self,
        token: Token,
        registry: &Registry,
        next_token: &mut usize,
    ) -> Option<Packet> {
        if token == self.listener_token {
            while let Ok((mut stream, _)) = self.listener.accept() {
                let t = Token(*next_token);
                *next_token += 1;
                if registry
                    .register(&mut stream, t, Interest::READABLE)
                    .is_ok()
                {
                    self.clients.insert(
                        t,
                        Client {
                            stream,
                            inbuf: Vec::new(),
                            since: Instant::now(),
                        },
                    );
                }
            }
            return None;
        }
        let client = self.clients.get_mut(&token)?;
        let mut chunk = [0u8; 4096];
        // A client that does not wait for the answer (a status report) may have
        // closed its end already: what it sent still counts.
        let mut ended = false;
        loop {
            match client.stream.read(&mut chunk) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => client.inbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    ended = true;
                    break;
                }
            }
            if client.inbuf.len() > MAX_BODY + 5 {
                break;
            }
        }
        match Packet::decode(&client.inbuf) {
            Ok(Some((p, _))) => Some(p),
            Ok(None) => {
                if ended {
                    self.close(token, registry);
                }
                None
            }
            Err(e) => {
                log::warn!("watchdog: bad IPC packet: {e}");
                self.answer(token, &Packet::error(&e), registry);
                None
            }
        }
    }

    /// Writes the answer and closes the connection (one request per connection).
    pub fn answer(&mut self, token: Token, p: &Packet, registry: &Registry) {
        if let Some(c) = self.clients.get_mut(&token) {
            // The answer is small; a client that does not read it loses it.
            let _ = c.stream.write_all(&p.encode());
        }
        self.close(token, registry);
    }

    fn close(&mut self, token: Token, registry: &Registry) {
        if let Some(mut c) = self.clients.remove(&token) {
            let _ = registry.deregister(&mut c.stream);
        }
    }

    /// Drops clients that did not finish their request in time.
    pub fn expire(&mut self, registry: &Registry) {
        let stale: Vec<Token> = self
            .clients
            .iter()
            .filter(|(_, c)| c.since.elapsed() > READ_LIMIT)
            .map(|(t, _)| *t)
            .collect();
        for t in stale {
            self.close(t, registry);
        }
    }
}

impl IpcServer {
    /// At shutdown (the process exits without unwinding).
    pub fn remove_socket(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
