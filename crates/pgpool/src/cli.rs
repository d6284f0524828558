//! Command-line interface, option for option like Pgpool-II's `pgpool`.

use std::path::PathBuf;

pub const DEFAULT_CONFIG: &str = "/etc/pgpool2/pgpool.conf";
pub const DEFAULT_PCP: &str = "/etc/pgpool2/pcp.conf";
pub const DEFAULT_HBA: &str = "/etc/pgpool2/pool_hba.conf";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    Smart,
    Fast,
    Immediate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Start,
    Stop(ShutdownMode),
    Reload,
    Help,
    Version,
    /// `--describe-config`: print every parameter pgpool-rs knows, then exit.
    DescribeConfig,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub command: Command,
    pub config_file: PathBuf,
    pub pcp_file: PathBuf,
    pub hba_file: PathBuf,
    pub key_file: Option<PathBuf>,
    pub dont_detach: bool,
    pub discard_status: bool,
    pub debug: bool,
}

pub fn usage() -> String {
    format!(
        "pgpool-rs {}, a Pgpool-II compatible connection pooler and cluster middleware for PostgreSQL\n\
\n\
Usage:\n\
  pgpool [ -c] [ -f CONFIG_FILE ] [ -F PCP_CONFIG_FILE ] [ -a HBA_CONFIG_FILE ]\n\
         [ -n ] [ -D ] [ -d ]\n\
  pgpool [ -f CONFIG_FILE ] [ -F PCP_CONFIG_FILE ] [ -a HBA_CONFIG_FILE ]\n\
         [ -m SHUTDOWN-MODE ] stop\n\
  pgpool [ -f CONFIG_FILE ] [ -F PCP_CONFIG_FILE ] [ -a HBA_CONFIG_FILE ] reload\n\
\n\
Common options:\n\
  -a, --hba-file=HBA_CONFIG_FILE\n\
                      Path of pool_hba.conf (default: {DEFAULT_HBA})\n\
  -f, --config-file=CONFIG_FILE\n\
                      Path of pgpool.conf (default: {DEFAULT_CONFIG})\n\
  -k, --key-file=KEY_FILE\n\
                      Path of the key for AES-encrypted pool_passwd entries\n\
                      (default: ~/.pgpoolkey, overridden by PGPOOLKEYFILE)\n\
  -F, --pcp-file=PCP_CONFIG_FILE\n\
                      Path of pcp.conf (default: {DEFAULT_PCP})\n\
  -h, --help          Print this help\n\
  --describe-config   Print every configuration parameter (tab-separated) and exit\n\
\n\
Start options:\n\
  -C, --clear-oidmaps Clear query cache oidmaps (accepted for compatibility)\n\
  -n, --dont-detach   Stay in the foreground, do not become a daemon\n\
  -x, --debug-assertions   Accepted for compatibility\n\
  -D, --discard-status Ignore the pgpool_status file of the previous run\n\
  -d, --debug         Debug mode\n\
\n\
Stop options:\n\
  -m, --mode=SHUTDOWN-MODE\n\
                      Can be \"smart\", \"fast\", or \"immediate\"\n\
\n\
Shutdown modes are:\n\
  smart       quit after all clients have disconnected\n\
  fast        quit directly, with proper shutdown\n\
  immediate   the same mode as fast\n",
        env!("CARGO_PKG_VERSION")
    )
}

pub fn version() -> String {
    format!(
        "pgpool-II version 4.3.5 (pgpool-rs {})",
        env!("CARGO_PKG_VERSION")
    )
}

pub fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Options, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut o = Options {
        command: Command::Start,
        config_file: PathBuf::from(DEFAULT_CONFIG),
        pcp_file: PathBuf::from(DEFAULT_PCP),
        hba_file: PathBuf::from(DEFAULT_HBA),
        key_file: None,
        dont_detach: false,
        discard_status: false,
        debug: false,
    };
    let mut mode = ShutdownMode::Smart;
    let mut verb: Option<String> = None;
    let err = |e: lexopt::Error| e.to_string();
    while let Some(arg) = p.next().map_err(err)? {
        match arg {
            Short('f') | Long("config-file") => o.config_file = p.value().map_err(err)?.into(),
            Short('F') | Long("pcp-file") => o.pcp_file = p.value().map_err(err)?.into(),
            Short('a') | Long("hba-file") => o.hba_file = p.value().map_err(err)?.into(),
            Short('k') | Long("key-file") => o.key_file = Some(p.value().map_err(err)?.into()),
            Short('n') | Long("dont-detach") => o.dont_detach = true,
            Short('D') | Long("discard-status") => o.discard_status = true,
            Short('d') | Long("debug") => o.debug = true,
            Short('C')
            | Long("clear-oidmaps")
            | Short('x')
            | Long("debug-assertions")
            | Short('c')
            | Long("clear-cache") => {}
            Short('m') | Long("mode") => {
                let v = p.value().map_err(err)?.string().map_err(err)?;
                mode = match v.as_str() {
                    "s" | "smart" => ShutdownMode::Smart,
                    "f" | "fast" => ShutdownMode::Fast,
                    "i" | "immediate" => ShutdownMode::Immediate,
                    other => return Err(format!("invalid shutdown mode \"{other}\"")),
                };
            }
            Short('h') | Long("help") => o.command = Command::Help,
            Short('v') | Long("version") => o.command = Command::Version,
            Long("describe-config") => o.command = Command::DescribeConfig,
            Value(v) if verb.is_none() => verb = Some(v.string().map_err(err)?),
            other => return Err(other.unexpected().to_string()),
        }
    }
    if matches!(
        o.command,
        Command::Help | Command::Version | Command::DescribeConfig
    ) {
        return Ok(o);
    }
    o.command = match verb.as_deref() {
        None => Command::Start,
        Some("stop") => Command::Stop(mode),
        Some("reload") => Command::Reload,
        Some(other) => return Err(format!("unknown command \"{other}\"")),
    };
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<std::ffi::OsString> {
        s.split_whitespace().map(Into::into).collect()
    }

    #[test]
    fn start_options() {
        let o = parse(args("-D -n -f a.conf -F p.conf -a h.conf -d")).unwrap();
        assert_eq!(o.command, Command::Start);
        assert!(o.dont_detach && o.discard_status && o.debug);
        assert_eq!(o.config_file, PathBuf::from("a.conf"));
        assert_eq!(o.hba_file, PathBuf::from("h.conf"));
    }

    #[test]
    fn stop_and_reload() {
        assert_eq!(
            parse(args("-f x -m fast stop")).unwrap().command,
            Command::Stop(ShutdownMode::Fast)
        );
        assert_eq!(
            parse(args("stop")).unwrap().command,
            Command::Stop(ShutdownMode::Smart)
        );
        assert_eq!(parse(args("reload")).unwrap().command, Command::Reload);
        assert_eq!(
            parse(args("--describe-config")).unwrap().command,
            Command::DescribeConfig
        );
        assert!(parse(args("-m bogus stop")).is_err());
        assert!(parse(args("frobnicate")).is_err());
    }
}
