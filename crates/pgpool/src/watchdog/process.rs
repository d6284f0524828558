//! The watchdog's event loop: it ticks Raft every 100 ms, moves its messages over the
//! peer links (`peers`), passes backend requests to the cluster (`ballots`), and after
//! each pass re-derives who leads, logs the transitions in Pgpool-II's words (scripts
//! grep them), takes up or drops the leader's duties and publishes the cluster view
//! for PCP.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use config::Config;
use mio::net::TcpListener;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::signal::Signal;
use shmem::Shmem;
use watchdog::consensus::{Consensus, ELECTION_TICKS, TICK};
use watchdog::state::NodeState;
use watchdog::wire::{auth_digest, Beacon, Frame, Heartbeat, Hello};

use super::duties::Duties;
use super::heartbeat::HeartbeatLink;
use super::ipc_server::IpcServer;
use super::lifecheck::{self, Finding, InterfaceWatch};
use super::links::{listen_address, Link};
use super::view::{Authority, Peer, View};
use crate::sys;

mod ballots;
mod peers;
mod verdicts;

const WAKER: Token = Token(0);
const LISTENER: Token = Token(1);
const HEARTBEAT: Token = Token(2);
const IPC: Token = Token(3);
const DIAL_EVERY: Duration = Duration::from_secs(1);
const BEACON_EVERY: Duration = Duration::from_secs(1);
const TRANSFER_EVERY: Duration = Duration::from_secs(3);
/// How long a new leader waits before taking up the duties: the old leader steps down
/// within two election timeouts of losing its majority, so after three its lease is over.
const LEASE: Duration = Duration::from_millis(3 * ELECTION_TICKS as u64 * 100);

pub struct WatchdogSetup<'a> {
    pub cfg: Config,
    pub shm: &'a Shmem,
    pub qcache: Option<&'a shmem::QueryCache>,
    pub node_id: usize,
}

fn kernel_text(name: &str, fallback: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| fallback.to_string())
}

struct Watchdog<'a> {
    cfg: Config,
    shm: &'a Shmem,
    qcache: Option<&'a shmem::QueryCache>,
    view: View,
    raft: Consensus,
    poll: Poll,
    listener: TcpListener,
    links: HashMap<Token, Link>,
    next_token: usize,
    heartbeat: Option<HeartbeatLink>,
    ipc: Option<IpcServer>,
    lifecheck: Option<std::sync::mpsc::Receiver<Finding>>,
    interfaces: Option<InterfaceWatch>,
    health: verdicts::LocalHealth,
    duties: Duties,
    state: NodeState,
    leader_since: Instant,
    told_no_quorum: bool,
    lifecheck_started: bool,
    last_dial: Option<Instant>,
    last_beacon: Instant,
    last_transfer: Instant,
    published: String,
    /// The leader's count of failover votes.
    tally: watchdog::decision::Tally,
    /// Requests waiting for an election to end, with their deadline.
    waiting: Vec<(watchdog::decision::Decision, Instant)>,
    had_quorum: bool,
    last_leader: Option<usize>,
}

/// Runs the watchdog process; never returns.
pub fn run(setup: WatchdogSetup<'_>) -> ! {
    let waker = sys::enter_process(crate::logging::ProcessKind::Watchdog, sys::WORKER_SIGNALS);
    sys::set_title("pgpool: watchdog");
    let mut wd = match Watchdog::new(setup) {
        Ok(w) => w,
        Err(e) => {
            log::error!("watchdog: {e}");
            sys::exit_now(3);
        }
    };
    let wake_fd = waker.fd().as_raw_fd();
    if let Err(e) = wd
        .poll
        .registry()
        .register(&mut SourceFd(&wake_fd), WAKER, Interest::READABLE)
    {
        log::error!("watchdog: could not watch its wake-up pipe: {e}");
        sys::exit_now(3);
    }
    wd.shm.watchdog().set_pid(std::process::id() as i32);
    log::info!(
        "watchdog node \"{}\" started (node id {} of {})",
        wd.view.local.node_name,
        wd.view.me,
        wd.view.total()
    );
    let mut events = Events::with_capacity(64);
    let mut last_tick = Instant::now();
    loop {
        let wait = TICK.saturating_sub(last_tick.elapsed());
        if let Err(e) = wd.poll.poll(&mut events, Some(wait)) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                log::error!("watchdog: poll failed: {e}");
            }
        }
        for ev in events.iter() {
            match ev.token() {
                WAKER => waker.drain(),
                LISTENER => wd.accept(),
                HEARTBEAT => wd.receive_heartbeats(),
                t if wd.ipc.as_ref().is_some_and(|i| i.owns(t)) => wd.ipc_event(t),
                t => wd.link_event(t),
            }
        }
        let sigs = sys::take_pending();
        if sys::has(sigs, Signal::SIGTERM)
            || sys::has(sigs, Signal::SIGINT)
            || sys::has(sigs, Signal::SIGQUIT)
        {
            wd.shutdown();
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            if nix::unistd::getppid().as_raw() != wd.shm.cluster().main_pid.load(Ordering::Acquire)
            {
                log::warn!("watchdog: the main process is gone");
                wd.shutdown();
            }
            wd.raft.tick();
            wd.periodic();
        }
        wd.take_proposals();
        wd.pump_raft();
        wd.evaluate();
        wd.flush_all();
    }
}

impl<'a> Watchdog<'a> {
    fn new(setup: WatchdogSetup<'a>) -> Result<Watchdog<'a>, String> {
        let cfg = setup.cfg;
        let me = setup.node_id;
        let total = cfg.watchdog_nodes.len();
        let mine = &cfg.watchdog_nodes[me];
        let node_name = format!(
            "{}:{} {} {}",
            mine.hostname,
            mine.pgpool_port,
            kernel_text("ostype", "Linux"),
            kernel_text("hostname", "localhost")
        );
        let local = Hello {
            node_id: me as u32,
            priority: i32::try_from(cfg.wd_priority).unwrap_or(i32::MAX),
            start_time: shmem::now_secs(),
            pgpool_port: mine.pgpool_port,
            wd_port: mine.wd_port,
            auth: auth_digest(&cfg.wd_authkey, me as u32),
            node_name,
            host_name: mine.hostname.clone(),
            delegate_ip: cfg.delegate_ip.clone(),
        };
        let peers = cfg
            .watchdog_nodes
            .iter()
            .map(|w| Peer::configured(&w.hostname, w.wd_port, w.pgpool_port))
            .collect();
        // Lower-priority nodes stand for election later, so the highest-priority live
        // node usually wins the first election (peers' priorities are not known before
        // their Hello: the rank comes from our own).
        let rank = usize::try_from(10 - cfg.wd_priority.clamp(0, 10)).unwrap_or(0) / 2;
        let state_file =
            std::path::Path::new(&cfg.work_dir).join(format!("pgpool_watchdog_{me}.raft"));
        let raft = Consensus::new(me, total, rank, Some(state_file))?;
        let addr = listen_address(&cfg.wd_listen_address, cfg.wd_listen_port, mine.wd_port)?;
        let std_listener = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("could not listen for watchdog links on {addr}: {e}"))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        let mut listener = TcpListener::from_std(std_listener);
        let poll = Poll::new().map_err(|e| e.to_string())?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| e.to_string())?;
        // Without its heartbeat port the node still has its links: not fatal.
        let heartbeat = if cfg.wd_lifecheck_method == config::LifecheckMethod::Heartbeat {
            HeartbeatLink::open(&cfg, me, poll.registry(), HEARTBEAT).unwrap_or_else(|e| {
                log::warn!("watchdog: {e}; peers are watched through their links only");
                None
            })
        } else {
            None
        };
        // wd_cli and an external lifecheck need the socket; the cluster does not.
        let ipc_path = watchdog::ipc::socket_path(&cfg.wd_ipc_socket_dir, mine.wd_port);
        let ipc = IpcServer::open(&ipc_path, poll.registry(), IPC)
            .map_err(|e| log::warn!("watchdog: {e}"))
            .ok();
        let lifecheck = lifecheck::start(&cfg);
        let interfaces = InterfaceWatch::new(&cfg);
        let deadtime = Duration::from_secs(u64::try_from(cfg.wd_heartbeat_deadtime).unwrap_or(30));
        let now = Instant::now();
        let mut peers: Vec<Peer> = peers;
        if let Some(hb) = &heartbeat {
            for (i, p) in peers.iter_mut().enumerate() {
                p.heartbeat_expected = hb.expects(i);
            }
        }
        Ok(Watchdog {
            view: View {
                me,
                trouble: None,
                peers,
                local,
                half_votes: cfg.enable_consensus_with_half_votes,
                deadtime,
            },
            cfg,
            shm: setup.shm,
            qcache: setup.qcache,
            raft,
            poll,
            listener,
            links: HashMap::new(),
            next_token: 4,
            heartbeat,
            ipc,
            lifecheck,
            interfaces,
            health: Default::default(),
            duties: Duties::new(),
            state: NodeState::Loading,
            leader_since: now,
            told_no_quorum: false,
            lifecheck_started: false,
            last_dial: None,
            last_beacon: now,
            last_transfer: now,
            published: String::new(),
            tally: Default::default(),
            waiting: Vec::new(),
            had_quorum: false,
            last_leader: None,
        })
    }

    fn periodic(&mut self) {
        let now = Instant::now();
        self.check_lifecheck(now);
        if let Some(ipc) = &mut self.ipc {
            ipc.expire(self.poll.registry());
        }
        let isolated = self.view.trouble.is_some();
        let condemned: Vec<bool> = self.view.peers.iter().map(|p| p.condemned).collect();
        if let Some(hb) = self.heartbeat.as_mut().filter(|_| !isolated) {
            let beat = Heartbeat {
                node_id: self.view.me as u32,
                start_time: self.view.local.start_time,
                auth: self.view.local.auth,
            };
            hb.send_due(&beat, now, |i| condemned[i]);
        }
        self.drop_silent_links(now);
        if self.last_dial.is_none_or(|t| now - t >= DIAL_EVERY) {
            self.last_dial = Some(now);
            self.dial();
        }
        if now - self.last_beacon >= BEACON_EVERY {
            self.last_beacon = now;
            let b = Frame::Beacon(Beacon {
                state: self.state as u8,
                escalated: self.duties.escalated(),
            });
            for l in self.links.values_mut().filter(|l| l.peer.is_some()) {
                l.send(&b);
            }
        }
        // wd_priority: hand leadership to a higher-priority node that has caught up.
        if self.raft.is_leader() && now - self.last_transfer >= TRANSFER_EVERY {
            let best = self.view.preferred_leader(now);
            if best != self.view.me && self.raft.caught_up(best) {
                self.last_transfer = now;
                log::info!(
                    "watchdog: handing leadership to \"{}\", which has a higher wd_priority",
                    self.view.node_name(best)
                );
                self.raft.transfer_to(best);
            }
        }
        self.duties.poll();
        self.retry_waiting();
    }

    fn pump_raft(&mut self) {
        for _ in 0..4 {
            let out = match self.raft.drain() {
                Ok(o) => o,
                Err(e) => {
                    log::error!("watchdog: {e}");
                    return;
                }
            };
            if out.messages.is_empty() && out.committed.is_empty() {
                return;
            }
            for (to, bytes) in out.messages {
                self.send_to(to, &Frame::Raft(bytes));
            }
            for entry in out.committed {
                self.apply(&entry);
            }
        }
    }

    fn authority(&self, now: Instant) -> Authority {
        self.view
            .authority(self.raft.leader(), self.raft.is_leader(), now)
    }

    fn evaluate(&mut self) {
        let now = Instant::now();
        let auth = self.authority(now);
        let quorum = self.view.quorum(now).holds();
        let raft_leader = match auth {
            Authority::Raft(l) => Some(l),
            _ => None,
        };
        if (quorum && !self.had_quorum)
            || (raft_leader.is_some() && raft_leader != self.last_leader)
        {
            self.had_quorum = quorum;
            self.last_leader = raft_leader;
            self.revote_quarantined();
        }
        self.had_quorum = quorum;
        self.last_leader = raft_leader;
        let state = self.view.local_state(auth);
        if state != self.state {
            log::info!(
                "watchdog node state changed from [{}] to [{}]",
                self.state.name(),
                state.name()
            );
            self.state = state;
            match state {
                NodeState::Leader => {
                    self.leader_since = now;
                    self.told_no_quorum = false;
                    log::info!("I am the cluster leader node");
                }
                NodeState::Standby => {
                    let leader = auth.leader().map(|l| self.view.node_name(l));
                    log::info!(
                        "successfully joined the watchdog cluster as standby node\nDETAIL:  our join coordinator request is accepted by cluster leader node \"{}\"",
                        leader.unwrap_or_default()
                    );
                }
                _ => {}
            }
            if matches!(state, NodeState::Leader | NodeState::Standby) && !self.lifecheck_started {
                self.lifecheck_started = true;
                log::info!("watchdog: lifecheck started");
            }
        }
        if state == NodeState::Leader {
            if self.view.may_escalate(auth, now) {
                if !self.duties.escalated() && now - self.leader_since >= LEASE {
                    log::info!("I am the cluster leader node. Starting escalation process");
                    self.duties.escalate(&self.cfg, self.qcache);
                }
            } else {
                if self.duties.escalated() {
                    log::info!("We have lost the quorum");
                    self.duties.resign(&self.cfg);
                }
                if !self.told_no_quorum && matches!(auth, Authority::Visible(_)) {
                    self.told_no_quorum = true;
                    log::info!("I am the cluster leader node but we do not have enough nodes in cluster\nDETAIL:  waiting for the quorum to start escalation process");
                }
            }
        } else if self.duties.escalated() {
            self.duties.resign(&self.cfg);
        }
        self.publish(auth, now);
    }

    fn publish(&mut self, auth: Authority, now: Instant) {
        let text = self.view.info(auth, self.duties.escalated(), now).encode();
        if text != self.published {
            self.shm.watchdog().publish(&text, self.duties.escalated());
            self.published = text;
        }
    }

    fn shutdown(&mut self) -> ! {
        log::info!("Watchdog is shutting down");
        self.duties.finish(&self.cfg, Duration::from_secs(5));
        for l in self.links.values_mut().filter(|l| l.peer.is_some()) {
            l.send(&Frame::Shutdown);
        }
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            self.flush_all();
            std::thread::sleep(Duration::from_millis(10));
        }
        self.shm.watchdog().publish("", false);
        if let Some(ipc) = &self.ipc {
            ipc.remove_socket();
        }
        sys::exit_now(0);
    }
}
