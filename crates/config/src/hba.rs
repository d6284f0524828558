//! `pool_hba.conf`: client authentication rules (`local` / `host` / `hostssl` / `hostnossl`
//! lines with database, user, address and method), parsed with line numbers, and the
//! first-match lookup for an incoming connection. Host names are resolved through a callback
//! so that callers decide how (and tests need no DNS).

use std::net::IpAddr;
use std::path::Path;

use crate::{read_file, ConfigError};

/// Connection type column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnType {
    Local,
    Host,
    HostSsl,
    HostNoSsl,
}

/// One item of the DATABASE or USER column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMatch {
    All,
    /// Database column: the database named like the user.
    SameUser,
    /// `samerole` / `samegroup`: accepted, never matches (no role membership here).
    SameRole,
    /// `+group`: accepted, never matches.
    Group(String),
    /// `replication`: accepted, never matches (pgpool does not proxy replication).
    Replication,
    Name(String),
}

/// The ADDRESS column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrMatch {
    All,
    /// Address with a prefix length (`10.0.0.0/8`, or `IP MASK` converted).
    Net {
        addr: IpAddr,
        prefix: u8,
    },
    Hostname(String),
    /// `samehost`: approximated as "the client is on a loopback address".
    SameHost,
    /// `samenet`: approximated as "the client is on a loopback address".
    SameNet,
}

/// Authentication method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Trust,
    Reject,
    Password,
    Md5,
    ScramSha256,
    Cert,
    Pam,
    Ldap,
}

impl AuthMethod {
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Trust => "trust",
            AuthMethod::Reject => "reject",
            AuthMethod::Password => "password",
            AuthMethod::Md5 => "md5",
            AuthMethod::ScramSha256 => "scram-sha-256",
            AuthMethod::Cert => "cert",
            AuthMethod::Pam => "pam",
            AuthMethod::Ldap => "ldap",
        }
    }
    /// False for methods that parse but pgpool-rs does not implement (cert, pam, ldap).
    pub fn is_supported(self) -> bool {
        !matches!(self, AuthMethod::Cert | AuthMethod::Pam | AuthMethod::Ldap)
    }
}

/// One rule of pool_hba.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HbaLine {
    /// 1-based line number in the file.
    pub line: usize,
    pub conn_type: ConnType,
    pub databases: Vec<NameMatch>,
    pub users: Vec<NameMatch>,
    /// None for `local` lines.
    pub address: Option<AddrMatch>,
    pub method: AuthMethod,
    /// Trailing `name=value` options.
    pub options: Vec<(String, String)>,
}

/// What is known about an incoming connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    pub is_local: bool,
    pub addr: Option<IpAddr>,
    pub ssl: bool,
    pub database: String,
    pub user: String,
}

/// Read and parse pool_hba.conf.
pub fn load_hba(path: &Path) -> Result<Vec<HbaLine>, ConfigError> {
    parse_hba(&read_file(path)?, path)
}

/// A token and whether it was double-quoted (quoted keywords are plain names).
#[derive(Debug)]
struct Tok {
    text: String,
    quoted: bool,
}

/// Split one line into fields; a field is a comma-separated list of tokens.
fn fields(line: &str) -> Result<Vec<Vec<Tok>>, String> {
    let mut out: Vec<Vec<Tok>> = Vec::new();
    let mut chars = line.chars().peekable();
    let mut cur: Vec<Tok> = Vec::new();
    let mut continue_list = false;
    loop {
        while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None | Some('#') => break,
            _ => {}
        }
        let mut text = String::new();
        let mut quoted = false;
        let mut in_quote = false;
        while let Some(&c) = chars.peek() {
            if in_quote {
                chars.next();
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        text.push('"');
                    } else {
                        in_quote = false;
                    }
                } else {
                    text.push(c);
                }
            } else if c == '"' {
                chars.next();
                in_quote = true;
                quoted = true;
            } else if c.is_whitespace() || c == ',' || c == '#' {
                break;
            } else {
                chars.next();
                text.push(c);
            }
        }
        if in_quote {
            return Err("unterminated quoted string".into());
        }
        if !text.is_empty() || quoted {
            cur.push(Tok { text, quoted });
        }
        while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() == Some(&',') {
            chars.next();
            continue_list = true;
            continue;
        }
        continue_list = false;
        if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if continue_list {
        return Err("list ends with a comma".into());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn single<'a>(f: &'a [Tok], what: &str) -> Result<&'a str, String> {
    match f {
        [t] => Ok(t.text.as_str()),
        _ => Err(format!("multiple values in {} field", what)),
    }
}

fn names(f: &[Tok], is_db: bool) -> Result<Vec<NameMatch>, String> {
    f.iter()
        .map(|t| {
            if t.quoted {
                return Ok(NameMatch::Name(t.text.clone()));
            }
            if t.text.starts_with('@') {
                return Err(format!(
                    "file inclusion (\"{}\") is not supported in pool_hba.conf",
                    t.text
                ));
            }
            Ok(match t.text.as_str() {
                "all" => NameMatch::All,
                "sameuser" if is_db => NameMatch::SameUser,
                "samerole" | "samegroup" if is_db => NameMatch::SameRole,
                "replication" if is_db => NameMatch::Replication,
                s if !is_db && s.starts_with('+') => NameMatch::Group(s[1..].to_string()),
                s => NameMatch::Name(s.to_string()),
            })
        })
        .collect()
}

/// An address as getaddrinfo reads it for Pgpool-II: besides the usual forms, the short
/// IPv4 forms of inet_aton ("0" is 0.0.0.0, "127.1" is 127.0.0.1, "10.1.2" is 10.1.0.2).
fn parse_ip(text: &str) -> Option<IpAddr> {
    if let Ok(a) = text.parse::<IpAddr>() {
        return Some(a);
    }
    let parts: Vec<u32> = text
        .split('.')
        .map(|p| p.parse::<u32>().ok())
        .collect::<Option<_>>()?;
    let (last, head) = parts.split_last()?;
    if head.len() > 3 || head.iter().any(|&p| p > 255) {
        return None;
    }
    let room = 32 - 8 * head.len() as u32;
    if room < 32 && *last >= 1u32 << room {
        return None;
    }
    let mut v: u32 = 0;
    for (i, p) in head.iter().enumerate() {
        v |= p << (24 - 8 * i);
    }
    Some(IpAddr::V4(std::net::Ipv4Addr::from(v | last)))
}

fn mask_to_prefix(mask: IpAddr) -> Option<u8> {
    let bits: u128 = match mask {
        IpAddr::V4(m) => u128::from(u32::from(m)) << 96,
        IpAddr::V6(m) => u128::from(m),
    };
    let ones = bits.leading_ones();
    if bits.checked_shl(ones).unwrap_or(0) != 0 {
        return None; // not contiguous
    }
    u8::try_from(ones).ok()
}

fn parse_method(s: &str) -> Result<AuthMethod, String> {
    Ok(match s {
        "trust" => AuthMethod::Trust,
        "reject" => AuthMethod::Reject,
        "password" => AuthMethod::Password,
        "md5" => AuthMethod::Md5,
        "scram-sha-256" => AuthMethod::ScramSha256,
        "cert" => AuthMethod::Cert,
        "pam" => AuthMethod::Pam,
        "ldap" => AuthMethod::Ldap,
        other => return Err(format!("invalid authentication method \"{}\"", other)),
    })
}

/// Parse pool_hba.conf text; `file` names the file in errors.
pub fn parse_hba(text: &str, file: &Path) -> Result<Vec<HbaLine>, ConfigError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        let err = |m: String| ConfigError::new(file, lineno, m);
        let f = fields(raw).map_err(err)?;
        if f.is_empty() {
            continue;
        }
        let ty = single(&f[0], "connection type").map_err(err)?;
        let conn_type = match ty {
            "local" => ConnType::Local,
            "host" => ConnType::Host,
            "hostssl" => ConnType::HostSsl,
            "hostnossl" => ConnType::HostNoSsl,
            other => return Err(err(format!("invalid connection type \"{}\"", other))),
        };
        if f.len() < 4 {
            return Err(err("end-of-line before authentication method".into()));
        }
        let databases = names(&f[1], true).map_err(err)?;
        let users = names(&f[2], false).map_err(err)?;
        let mut next = 3;
        let address = if conn_type == ConnType::Local {
            None
        } else {
            let a = single(&f[3], "address").map_err(err)?;
            next = 4;
            let m = if let Some((ip, len)) = a.split_once('/') {
                let addr: IpAddr =
                    parse_ip(ip).ok_or_else(|| err(format!("invalid IP address \"{}\"", ip)))?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                let prefix: u8 = len
                    .parse()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| err(format!("invalid CIDR mask in address \"{}\"", a)))?;
                AddrMatch::Net { addr, prefix }
            } else if let Ok(addr) = a.parse::<IpAddr>() {
                // IP followed by a separate netmask column
                let mtext = f
                    .get(4)
                    .map(|t| single(t, "netmask"))
                    .transpose()
                    .map_err(err)?
                    .ok_or_else(|| err("end-of-line before netmask".into()))?;
                let mask: IpAddr = mtext
                    .parse()
                    .map_err(|_| err(format!("invalid IP mask \"{}\"", mtext)))?;
                if mask.is_ipv4() != addr.is_ipv4() {
                    return Err(err("IP address and mask do not match".into()));
                }
                let prefix = mask_to_prefix(mask)
                    .ok_or_else(|| err(format!("invalid IP mask \"{}\"", mtext)))?;
                next = 5;
                AddrMatch::Net { addr, prefix }
            } else {
                match a {
                    "all" => AddrMatch::All,
                    "samehost" => AddrMatch::SameHost,
                    "samenet" => AddrMatch::SameNet,
                    h => AddrMatch::Hostname(h.to_ascii_lowercase()),
                }
            };
            Some(m)
        };
        let mtext = f
            .get(next)
            .map(|t| single(t, "authentication method"))
            .transpose()
            .map_err(err)?
            .ok_or_else(|| err("end-of-line before authentication method".into()))?;
        let method = parse_method(mtext).map_err(err)?;
        let mut options = Vec::new();
        for o in &f[next + 1..] {
            let t = single(o, "option").map_err(err)?;
            let (k, v) = t.split_once('=').ok_or_else(|| {
                err(format!(
                    "authentication option not in name=value format: {}",
                    t
                ))
            })?;
            options.push((k.to_string(), v.to_string()));
        }
        out.push(HbaLine {
            line: lineno,
            conn_type,
            databases,
            users,
            address,
            method,
            options,
        });
    }
    Ok(out)
}

fn in_net(addr: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let norm = |a: IpAddr| match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(a),
        v4 => v4,
    };
    let (a, n) = (norm(addr), norm(net));
    match (a, n) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn name_matches(list: &[NameMatch], name: &str, user: &str) -> bool {
    list.iter().any(|m| match m {
        NameMatch::All => true,
        NameMatch::SameUser => name == user,
        NameMatch::Name(n) => n == name,
        NameMatch::SameRole | NameMatch::Group(_) | NameMatch::Replication => false,
    })
}

fn addr_matches(
    m: &AddrMatch,
    addr: Option<IpAddr>,
    resolve: &impl Fn(&str) -> Vec<IpAddr>,
) -> bool {
    let Some(addr) = addr else { return false };
    match m {
        AddrMatch::All => true,
        AddrMatch::Net { addr: net, prefix } => in_net(addr, *net, *prefix),
        AddrMatch::SameHost | AddrMatch::SameNet => match addr {
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v| v.is_loopback())
            }
            IpAddr::V4(v4) => v4.is_loopback(),
        },
        AddrMatch::Hostname(h) => {
            if h.starts_with('.') {
                return false; // suffix match needs reverse DNS
            }
            resolve(h)
                .into_iter()
                .any(|a| in_net(addr, a, if a.is_ipv4() { 32 } else { 128 }))
        }
    }
}

/// The first rule that matches `conn` (Pgpool-II / PostgreSQL semantics), or None (reject).
pub fn match_hba<'a>(
    lines: &'a [HbaLine],
    conn: &ConnInfo,
    resolve: impl Fn(&str) -> Vec<IpAddr>,
) -> Option<&'a HbaLine> {
    lines.iter().find(|l| {
        let type_ok = match l.conn_type {
            ConnType::Local => conn.is_local,
            ConnType::Host => !conn.is_local,
            ConnType::HostSsl => !conn.is_local && conn.ssl,
            ConnType::HostNoSsl => !conn.is_local && !conn.ssl,
        };
        type_ok
            && name_matches(&l.databases, &conn.database, &conn.user)
            && name_matches(&l.users, &conn.user, &conn.user)
            && match &l.address {
                Some(a) => addr_matches(a, conn.addr, &resolve),
                None => true,
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ipv4_forms() {
        let ip = |s: &str| parse_ip(s).map(|a| a.to_string());
        assert_eq!(ip("0").as_deref(), Some("0.0.0.0"));
        assert_eq!(ip("127.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(ip("10.1.2").as_deref(), Some("10.1.0.2"));
        assert_eq!(ip("::1").as_deref(), Some("::1"));
        assert_eq!(ip("256.1"), None);
        assert_eq!(ip("1.2.3.4.5"), None);
        assert_eq!(ip("x"), None);
    }

    const HBA: &str = "\
# comment
local   all         all                          trust
host    db1,db2     alice,\"all\"  127.0.0.1/32     md5
hostssl all         +admins      0.0.0.0/0        scram-sha-256
host    sameuser    all          10.0.0.0 255.0.0.0  password
host    all         bob          db.example.com   md5   # trailing
hostnossl all       all          ::1/128          reject
host    all         all          samehost         trust
host    all         all          all              pam pamservice=pgpool
";

    fn conn(local: bool, addr: &str, ssl: bool, db: &str, user: &str) -> ConnInfo {
        ConnInfo {
            is_local: local,
            addr: if addr.is_empty() {
                None
            } else {
                addr.parse().ok()
            },
            ssl,
            database: db.into(),
            user: user.into(),
        }
    }

    fn resolver(h: &str) -> Vec<IpAddr> {
        if h == "db.example.com" {
            vec!["192.0.2.7".parse().expect("ip")]
        } else {
            vec![]
        }
    }

    #[test]
    fn parse_and_match() {
        let lines = parse_hba(HBA, Path::new("pool_hba.conf")).expect("parses");
        assert_eq!(lines.len(), 8);
        assert_eq!(lines[0].line, 2);
        assert_eq!(
            lines[1].users,
            vec![
                NameMatch::Name("alice".into()),
                NameMatch::Name("all".into())
            ]
        );
        assert_eq!(
            lines[3].address,
            Some(AddrMatch::Net {
                addr: "10.0.0.0".parse().expect("ip"),
                prefix: 8
            })
        );
        assert_eq!(
            lines[7].options,
            vec![("pamservice".into(), "pgpool".into())]
        );
        assert!(!lines[7].method.is_supported());

        let m = |c: ConnInfo| match_hba(&lines, &c, resolver).map(|l| l.line);
        assert_eq!(m(conn(true, "", false, "x", "y")), Some(2));
        assert_eq!(m(conn(false, "127.0.0.1", false, "db2", "alice")), Some(3));
        // quoted "all" is a user name, not the keyword
        assert_eq!(m(conn(false, "127.0.0.1", false, "db1", "all")), Some(3));
        // +group never matches; falls to samehost (loopback)
        assert_eq!(m(conn(false, "127.0.0.1", true, "db3", "carol")), Some(8));
        assert_eq!(m(conn(false, "10.1.2.3", false, "dave", "dave")), Some(5));
        assert_eq!(m(conn(false, "10.1.2.3", false, "other", "dave")), Some(9));
        assert_eq!(m(conn(false, "192.0.2.7", false, "x", "bob")), Some(6));
        assert_eq!(m(conn(false, "::1", false, "x", "y")), Some(7));
        assert_eq!(
            match_hba(
                &lines[..2],
                &conn(false, "8.8.8.8", false, "x", "y"),
                resolver
            ),
            None
        );
    }

    #[test]
    fn errors() {
        let e = |t: &str| {
            parse_hba(t, Path::new("/etc/pool_hba.conf"))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e("\nlocal all all @users trust\n"),
            "/etc/pool_hba.conf:2: invalid authentication method \"@users\""
        );
        assert!(e("local @dbs all trust").contains(":1: file inclusion"));
        assert!(e("hostx all all 1.2.3.4/32 trust").contains("invalid connection type \"hostx\""));
        assert!(e("host all all 1.2.3.4/40 trust").contains("invalid CIDR mask"));
        assert!(e("host all all 1.2.3.4 255.0.255.0 trust").contains("invalid IP mask"));
        assert!(e("host all all 1.2.3.4/32 kerberos").contains("invalid authentication method"));
        assert!(e("host all all 1.2.3.4/32").contains("end-of-line"));
    }
}
