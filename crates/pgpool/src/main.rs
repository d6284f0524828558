//! pgpool-rs server binary: command line, start-up (configuration, pid file, daemon
//! mode, shared memory, listening sockets) and the `stop` / `reload` commands that
//! signal a running server through its pid file.

mod backend;
mod cache_feed;
mod child;
mod cli;
mod failover;
mod health_check;
mod log_collector;
mod logging;
mod memcached;
mod net;
mod node_table;
mod pcp;
mod pool_status;
mod primary;
mod recovery;
mod report;
mod report_cache;
mod spare;
mod sr_check;
mod status_file;
mod supervisor;
mod sys;
mod syslog;
mod tls;
mod tls_v1;
mod watchdog;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use config::passwd::{load_pool_passwd, PoolPasswd};
use config::{Config, ConfigError};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use cli::{Command, Options, ShutdownMode};

static OPTIONS: OnceLock<Options> = OnceLock::new();

/// Path of pool_hba.conf given with -a.
pub fn hba_path(_cfg: &Config) -> PathBuf {
    OPTIONS
        .get()
        .map(|o| o.hba_file.clone())
        .unwrap_or_else(|| PathBuf::from(cli::DEFAULT_HBA))
}

/// Loads pool_passwd (an absent file is an empty one).
pub fn load_passwd(cfg: &Config) -> Result<PoolPasswd, ConfigError> {
    match cfg.pool_passwd_path() {
        Some(p) if p.exists() => load_pool_passwd(&p),
        _ => Ok(PoolPasswd::default()),
    }
}

/// What pool_passwd holds for `user`, usable to log in to a backend (a SCRAM
/// verifier cannot be: None).
pub fn passwd_secret(cfg: &Config, user: &str) -> Option<backend::Secret> {
    use backend::Secret;
    use config::passwd::PasswordEntry;
    let passwd = load_passwd(cfg).ok()?;
    match passwd.get(user)? {
        PasswordEntry::Plain(p) => Some(Secret::Plain(p.clone())),
        PasswordEntry::Md5(h) => Some(Secret::Md5Stored(h.clone())),
        PasswordEntry::Aes(data) => {
            let key = load_aes_key()?;
            config::passwd::decrypt_aes(data, &key)
                .ok()
                .map(Secret::Plain)
        }
        PasswordEntry::Scram(_) => None,
    }
}

/// The AES key for encrypted pool_passwd entries: -k, PGPOOLKEYFILE or ~/.pgpoolkey.
pub fn load_aes_key() -> Option<String> {
    let path = OPTIONS
        .get()
        .and_then(|o| o.key_file.clone())
        .or_else(config::passwd::default_key_file)?;
    config::passwd::read_key_file(&path).ok()
}

fn main() {
    let opts = match cli::parse(std::env::args_os().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("pgpool: {e}");
            eprintln!("Try \"pgpool --help\" for more information.");
            std::process::exit(1);
        }
    };
    let _ = OPTIONS.set(opts.clone());
    sys::init_title();
    let code = match opts.command {
        Command::Help => {
            print!("{}", cli::usage());
            0
        }
        Command::Version => {
            println!("{}", cli::version());
            0
        }
        Command::DescribeConfig => {
            print!("{}", config::describe_config());
            0
        }
        Command::Stop(mode) => stop(&opts, mode),
        Command::Reload => reload(&opts),
        Command::Start => start(&opts),
    };
    std::process::exit(code);
}

fn load_config(opts: &Options) -> Option<Config> {
    match Config::load(&opts.config_file) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("FATAL:  could not load configuration: {e}");
            None
        }
    }
}

fn read_pid(pid_file: &Path) -> Result<Pid, String> {
    let text = std::fs::read_to_string(pid_file)
        .map_err(|e| format!("could not open pid file \"{}\": {e}", pid_file.display()))?;
    let pid: i32 = text
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .parse()
        .map_err(|_| format!("invalid pid file \"{}\"", pid_file.display()))?;
    if pid <= 0 {
        return Err(format!("invalid pid file \"{}\"", pid_file.display()));
    }
    Ok(Pid::from_raw(pid))
}

fn pid_file(cfg: &Config) -> PathBuf {
    cfg.relative_to_config(&cfg.pid_file_name)
        .unwrap_or_else(|| PathBuf::from("/var/run/pgpool/pgpool.pid"))
}

fn stop(opts: &Options, mode: ShutdownMode) -> i32 {
    let Some(cfg) = load_config(opts) else {
        return 1;
    };
    let pf = pid_file(&cfg);
    let pid = match read_pid(&pf) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("FATAL:  {e}");
            eprintln!("HINT:  Is another pgpool running?");
            return 3;
        }
    };
    let sig = match mode {
        ShutdownMode::Smart => Signal::SIGTERM,
        ShutdownMode::Fast => Signal::SIGINT,
        ShutdownMode::Immediate => Signal::SIGQUIT,
    };
    if let Err(e) = kill(pid, sig) {
        eprintln!("FATAL:  could not send stop request to pgpool pid {pid}: {e}");
        return 3;
    }
    eprint!(".");
    // Wait until the process is gone (smart mode waits for clients, so no deadline).
    let mut last_dot = Instant::now();
    while kill(pid, None).is_ok() {
        std::thread::sleep(Duration::from_millis(20));
        if last_dot.elapsed() >= Duration::from_secs(1) {
            eprint!(".");
            last_dot = Instant::now();
        }
    }
    eprintln!("done.");
    0
}

fn reload(opts: &Options) -> i32 {
    let Some(cfg) = load_config(opts) else {
        return 1;
    };
    match read_pid(&pid_file(&cfg)) {
        Ok(pid) => match kill(pid, Signal::SIGHUP) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("FATAL:  could not send reload request to pgpool pid {pid}: {e}");
                3
            }
        },
        Err(e) => {
            eprintln!("FATAL:  {e}");
            3
        }
    }
}

fn start(opts: &Options) -> i32 {
    let Some(cfg) = load_config(opts) else {
        return 1;
    };
    logging::init(&cfg, opts.debug);
    let pf = pid_file(&cfg);
    if let Ok(pid) = read_pid(&pf) {
        if kill(pid, None).is_ok() {
            eprintln!(
                "FATAL:  pid file found. is another pgpool({pid}) running?\nDETAIL:  pid file \"{}\" exists",
                pf.display()
            );
            return 3;
        }
        log::info!("removing stale pid file \"{}\"", pf.display());
        let _ = std::fs::remove_file(&pf);
    }
    if cfg.backends.is_empty() {
        eprintln!("FATAL:  no backend node is configured (backend_hostname0 / backend_port0)");
        return 1;
    }
    if !opts.dont_detach {
        if let Err(e) = supervisor::daemonize() {
            eprintln!("FATAL:  could not become a daemon: {e}");
            return 1;
        }
    }
    if let Some(dir) = pf.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(&pf, format!("{}\n", std::process::id())) {
        log::error!("could not write pid file \"{}\": {e}", pf.display());
        return 3;
    }
    let code = supervisor::run(cfg, opts);
    let _ = std::fs::remove_file(&pf);
    code
}
