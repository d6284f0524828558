//! What the pcp_* tools print, in Pgpool-II 4.3's formats (plain and `-v`).

use crate::client::NodeInfo;

/// Local time `YYYY-MM-DD HH:MM:SS` of Unix seconds (strftime "%F %T").
pub fn local_time(secs: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(secs, 0) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.format("%Y-%m-%d %H:%M:%S").to_string()
        }
        chrono::LocalResult::None => String::new(),
    }
}

/// `-v` layout: each title left-aligned to the longest one, " : ", the value; a blank
/// line after the record.
pub fn titled(titles: &[&str], values: &[String]) -> String {
    let width = titles.iter().map(|t| t.len()).max().unwrap_or(0);
    let mut s = String::new();
    for (t, v) in titles.iter().zip(values) {
        s.push_str(&format!("{t:<width$} : {v}\n"));
    }
    s.push('\n');
    s
}

pub fn node_count(n: i64, verbose: bool) -> String {
    if verbose {
        format!("Node Count\n____________\n {n}\n")
    } else {
        format!("{n}\n")
    }
}

fn status_name(n: &NodeInfo) -> &'static str {
    match n.status {
        0 => "unused",
        1 => "waiting",
        2 => "up",
        3 if n.quarantine => "quarantine",
        3 => "down",
        _ => "unknown",
    }
}

fn role_name(role: i64) -> &'static str {
    match role {
        0 => "main",
        1 => "replica",
        2 => "primary",
        3 => "standby",
        _ => "unknown",
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "none"
    } else {
        s
    }
}

pub fn node_info(nodes: &[NodeInfo], all: bool, verbose: bool) -> String {
    const TITLES: [&str; 12] = [
        "Hostname",
        "Port",
        "Status",
        "Weight",
        "Status Name",
        "Backend Status Name",
        "Role",
        "Backend Role",
        "Replication Delay",
        "Replication State",
        "Replication Sync State",
        "Last Status Change",
    ];
    let mut out = String::new();
    let mut printed = false;
    for n in nodes {
        if !all && n.hostname.is_empty() {
            continue;
        }
        printed = true;
        let v = [
            n.hostname.clone(),
            n.port.to_string(),
            n.status.to_string(),
            format!("{:.6}", n.weight),
            status_name(n).to_string(),
            n.pg_status.clone(),
            role_name(n.role).to_string(),
            n.pg_role.clone(),
            n.delay.clone(),
            or_none(&n.replication_state).to_string(),
            or_none(&n.replication_sync_state).to_string(),
            local_time(n.status_changed),
        ];
        if verbose {
            out.push_str(&titled(&TITLES, &v));
        } else {
            out.push_str(&v.join(" "));
            out.push('\n');
        }
    }
    if !printed {
        out.push_str("No node information available\n\n");
    }
    out
}

pub fn health_check_stats(v: &[String], verbose: bool) -> String {
    const TITLES: [&str; 20] = [
        "Node Id",
        "Host Name",
        "Port",
        "Status",
        "Role",
        "Last Status Change",
        "Total Count",
        "Success Count",
        "Fail Count",
        "Skip Count",
        "Retry Count",
        "Average Retry Count",
        "Max Retry Count",
        "Max Health Check Duration",
        "Minimum Health Check Duration",
        "Average Health Check Duration",
        "Last Health Check",
        "Last Successful Health Check",
        "Last Skip Health Check",
        "Last Failed Health Check",
    ];
    if verbose {
        titled(&TITLES, v)
    } else {
        format!("{}\n", v.join(" "))
    }
}

pub fn pool_status(rows: &[(String, String, String)], verbose: bool) -> String {
    let mut out = String::new();
    for (i, (n, v, d)) in rows.iter().enumerate() {
        if verbose {
            out.push_str(&format!(
                "Name [{i:3}]:\t{n}\nValue:      \t{v}\nDescription:\t{d}\n\n"
            ));
        } else {
            out.push_str(&format!("name : {n}\nvalue: {v}\ndesc : {d}\n\n"));
        }
    }
    out
}

pub fn proc_count(pids: &[i64], verbose: bool) -> String {
    let mut out = String::new();
    if verbose {
        out.push_str("No \t | \t PID\n_____________________\n");
        for (i, p) in pids.iter().enumerate() {
            out.push_str(&format!("{i} \t | \t {p}\n"));
        }
        out.push_str(&format!("\nTotal Processes:{}\n", pids.len()));
    } else {
        for p in pids {
            out.push_str(&format!("{p} "));
        }
        out.push('\n');
    }
    out
}

/// `rows` hold the 17 wire fields (SHOW POOL_POOLS order); 16 are printed.
pub fn proc_info(rows: &[Vec<String>], all: bool, verbose: bool) -> String {
    const TITLES: [&str; 16] = [
        "Database",
        "Username",
        "Start time",
        "Client connection count",
        "Major",
        "Minor",
        "Backend connection time",
        "Client connection time",
        "Client idle duration",
        "Client disconnection time",
        "Pool Counter",
        "Backend PID",
        "Connected",
        "PID",
        "Backend ID",
        "Status",
    ];
    // Wire order: pool_pid start_time client_connection_count pool_id backend_id
    // database username backend_connection_time client_connection_time
    // client_disconnection_time client_idle_duration major minor pool_counter
    // backendpid connected status.
    const ORDER: [usize; 16] = [5, 6, 1, 2, 11, 12, 7, 8, 10, 9, 13, 14, 15, 0, 4, 16];
    let mut out = String::new();
    let mut printed = false;
    for r in rows {
        if !all && r.get(5).is_none_or(|d| d.is_empty()) {
            continue;
        }
        printed = true;
        let v: Vec<String> = ORDER
            .iter()
            .map(|&i| r.get(i).cloned().unwrap_or_default())
            .collect();
        if verbose {
            out.push_str(&titled(&TITLES, &v));
        } else {
            out.push_str(&v.join(" "));
            out.push('\n');
        }
    }
    if !printed {
        out.push_str("No process information available\n\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_records_of_4_3_and_4_4() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let head = [
            "NodeInfo",
            "h1",
            "5433",
            "2",
            "0",
            "up",
            "1610612735.250000",
            "3",
            "standby",
        ];
        let tail = ["streaming", "async", "1700000000"];
        // 4.3: the delay, in bytes (or pgpool-rs's seconds text)
        let r43 = f(&[&head[..], &["123"], &tail[..]].concat());
        let n = NodeInfo::from_fields(&r43);
        assert_eq!(
            (n.delay.as_str(), n.replication_state.as_str()),
            ("123", "streaming")
        );
        assert_eq!(
            (n.replication_sync_state.as_str(), n.status_changed),
            ("async", 1_700_000_000)
        );
        // 4.4 and later: the by-time flag, then the delay (microseconds when set)
        let r44 = f(&[&head[..], &["1", "2500000"], &tail[..]].concat());
        let n = NodeInfo::from_fields(&r44);
        assert_eq!(
            (n.delay.as_str(), n.replication_state.as_str()),
            ("2.500000", "streaming")
        );
        assert_eq!((n.port, n.role, n.status_changed), (5433, 3, 1_700_000_000));
        assert!((n.weight - 0.75).abs() < 1e-6);
        let r44 = f(&[&head[..], &["0", "4096"], &tail[..]].concat());
        assert_eq!(NodeInfo::from_fields(&r44).delay, "4096");
    }

    #[test]
    fn node_info_formats() {
        let n = NodeInfo {
            hostname: "127.0.0.1".into(),
            port: 55432,
            status: 2,
            quarantine: false,
            pg_status: "up".into(),
            weight: 715827882.333333 / crate::client::RAND_MAX,
            role: 2,
            pg_role: "primary".into(),
            delay: "0".into(),
            replication_state: String::new(),
            replication_sync_state: String::new(),
            status_changed: 0,
        };
        let plain = node_info(std::slice::from_ref(&n), false, false);
        assert!(
            plain.starts_with("127.0.0.1 55432 2 0.333333 up up primary primary 0 none none "),
            "{plain}"
        );
        let v = node_info(&[n], false, true);
        assert!(
            v.starts_with("Hostname               : 127.0.0.1\nPort                   : 55432\n")
        );
        assert!(v.contains("Replication Sync State : none\n"));
        assert!(v.ends_with("\n\n"));
        assert_eq!(
            node_info(&[], false, false),
            "No node information available\n\n"
        );
    }

    #[test]
    fn other_formats() {
        assert_eq!(node_count(3, false), "3\n");
        assert_eq!(proc_count(&[1, 2], false), "1 2 \n");
        assert_eq!(
            pool_status(&[("port".into(), "9999".into(), "d".into())], false),
            "name : port\nvalue: 9999\ndesc : d\n\n"
        );
        let mut stats: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        stats[19] = String::new();
        assert!(health_check_stats(&stats, false).ends_with("18 \n"));
        let v = health_check_stats(&stats, true);
        assert!(v.starts_with("Node Id                       : 0\n"), "{v}");
    }
}

/// A small JSON reader, enough for the watchdog document.
mod json {
    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        Num(f64),
        Str(String),
        Arr(Vec<Value>),
        Obj(Vec<(String, Value)>),
    }

    impl Value {
        pub fn get(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }
        pub fn int(&self, key: &str) -> Option<i64> {
            match self.get(key)? {
                Value::Num(n) => Some(*n as i64),
                Value::Bool(b) => Some(*b as i64),
                _ => None,
            }
        }
        pub fn str(&self, key: &str) -> Option<&str> {
            match self.get(key)? {
                Value::Str(s) => Some(s),
                _ => None,
            }
        }
    }

    pub fn parse(s: &str) -> Option<Value> {
        let mut p = P {
            b: s.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        Some(v)
    }

    struct P<'a> {
        b: &'a [u8],
        i: usize,
    }

    impl P<'_> {
        fn ws(&mut self) {
            while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
        }
        fn eat(&mut self, c: u8) -> Option<()> {
            self.ws();
            (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
        }
        fn value(&mut self) -> Option<Value> {
            self.ws();
            match *self.b.get(self.i)? {
                b'{' => {
                    self.i += 1;
                    let mut m = Vec::new();
                    if self.eat(b'}').is_some() {
                        return Some(Value::Obj(m));
                    }
                    loop {
                        self.ws();
                        let Value::Str(k) = self.value()? else {
                            return None;
                        };
                        self.eat(b':')?;
                        m.push((k, self.value()?));
                        if self.eat(b',').is_none() {
                            self.eat(b'}')?;
                            return Some(Value::Obj(m));
                        }
                    }
                }
                b'[' => {
                    self.i += 1;
                    let mut a = Vec::new();
                    if self.eat(b']').is_some() {
                        return Some(Value::Arr(a));
                    }
                    loop {
                        a.push(self.value()?);
                        if self.eat(b',').is_none() {
                            self.eat(b']')?;
                            return Some(Value::Arr(a));
                        }
                    }
                }
                b'"' => {
                    self.i += 1;
                    let mut s = Vec::new();
                    while let Some(&c) = self.b.get(self.i) {
                        self.i += 1;
                        match c {
                            b'"' => return Some(Value::Str(String::from_utf8_lossy(&s).into())),
                            b'\\' => {
                                let e = *self.b.get(self.i)?;
                                self.i += 1;
                                s.push(match e {
                                    b'n' => b'\n',
                                    b't' => b'\t',
                                    b'r' => b'\r',
                                    other => other,
                                });
                            }
                            _ => s.push(c),
                        }
                    }
                    None
                }
                b't' if self.b[self.i..].starts_with(b"true") => {
                    self.i += 4;
                    Some(Value::Bool(true))
                }
                b'f' if self.b[self.i..].starts_with(b"false") => {
                    self.i += 5;
                    Some(Value::Bool(false))
                }
                b'n' if self.b[self.i..].starts_with(b"null") => {
                    self.i += 4;
                    Some(Value::Null)
                }
                _ => {
                    let start = self.i;
                    while self.i < self.b.len()
                        && matches!(
                            self.b[self.i],
                            b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                        )
                    {
                        self.i += 1;
                    }
                    std::str::from_utf8(&self.b[start..self.i])
                        .ok()?
                        .parse()
                        .ok()
                        .map(Value::Num)
                }
            }
        }
    }
}

/// pcp_watchdog_info output from the server's JSON document.
pub fn watchdog_info(doc: &str, verbose: bool) -> Result<String, String> {
    let bad = || "command failed. invalid response\n".to_string();
    let root = json::parse(doc).ok_or_else(bad)?;
    let nodes = match root.get("WatchdogNodes") {
        Some(json::Value::Arr(a)) => a,
        _ => return Err(bad()),
    };
    let remote = root.int("RemoteNodeCount").ok_or_else(bad)?;
    let member_remote = root.int("MemberRemoteNodeCount").unwrap_or(-1);
    let quorum_needed = root.int("NodesRequireForQuorum").unwrap_or(-1);
    let quorum = root.int("QuorumStatus").ok_or_else(bad)?;
    let alive = root.int("AliveNodeCount").ok_or_else(bad)?;
    let escalated = if root.int("Escalated").ok_or_else(bad)? != 0 {
        "YES"
    } else {
        "NO"
    };
    let leader = root.str("LeaderNodeName").ok_or_else(bad)?;
    let leader_host = root.str("LeaderHostName").ok_or_else(bad)?;
    let mut out = String::new();
    if verbose {
        let q = match quorum {
            0 => "QUORUM IS ON THE EDGE",
            1 => "QUORUM EXIST",
            -1 => "QUORUM ABSENT",
            -2 => "NO LEADER NODE",
            _ => "UNKNOWN",
        };
        out.push_str("Watchdog Cluster Information \n");
        out.push_str(&format!("Total Nodes              : {}\n", remote + 1));
        out.push_str(&format!("Remote Nodes             : {remote}\n"));
        out.push_str(&format!("Member Remote Nodes      : {member_remote}\n"));
        out.push_str(&format!("Alive Remote Nodes       : {alive}\n"));
        out.push_str(&format!("Nodes required for quorum: {quorum_needed}\n"));
        out.push_str(&format!("Quorum state             : {q}\n"));
        out.push_str(&format!("Local node escalation    : {escalated}\n"));
        out.push_str(&format!("Leader Node Name         : {leader}\n"));
        out.push_str(&format!("Leader Host Name         : {leader_host}\n\n"));
        out.push_str("Watchdog Node Information \n");
    } else {
        out.push_str(&format!(
            "{} {} {escalated} {leader} {leader_host}\n\n",
            remote + 1,
            member_remote + 1
        ));
    }
    for n in nodes {
        let s = |k: &str| n.str(k).map(str::to_string).ok_or_else(bad);
        let i = |k: &str| n.int(k).ok_or_else(bad);
        let membership = n.int("Membership").unwrap_or(0);
        let membership_str = n
            .str("MembershipString")
            .unwrap_or("NOT-Available")
            .to_string();
        if verbose {
            out.push_str(&format!("Node Name         : {}\n", s("NodeName")?));
            out.push_str(&format!("Host Name         : {}\n", s("HostName")?));
            out.push_str(&format!("Delegate IP       : {}\n", s("DelegateIP")?));
            out.push_str(&format!("Pgpool port       : {}\n", i("PgpoolPort")?));
            out.push_str(&format!("Watchdog port     : {}\n", i("WdPort")?));
            out.push_str(&format!("Node priority     : {}\n", i("Priority")?));
            out.push_str(&format!("Status            : {}\n", i("State")?));
            out.push_str(&format!("Status Name       : {}\n", s("StateName")?));
            out.push_str(&format!("Membership Status : {membership_str}\n\n"));
        } else {
            out.push_str(&format!(
                "{} {} {} {} {} {} {membership} {membership_str}\n",
                s("NodeName")?,
                s("HostName")?,
                i("PgpoolPort")?,
                i("WdPort")?,
                i("State")?,
                s("StateName")?
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod wd_tests {
    #[test]
    fn watchdog_document() {
        let doc = r#"{"NodeCount":1,"RemoteNodeCount":0,"MemberRemoteNodeCount":0,"QuorumStatus":1,
            "AliveNodeCount":0,"Escalated":1,"LeaderNodeName":"h:9999 Linux h","LeaderHostName":"h",
            "WatchdogNodes":[{"ID":0,"NodeName":"h:9999 Linux h","HostName":"h","DelegateIP":"",
            "WdPort":9000,"PgpoolPort":9999,"State":4,"StateName":"LEADER","Priority":1,
            "Membership":1,"MembershipString":"MEMBER"}]}"#;
        assert_eq!(
            super::watchdog_info(doc, false).unwrap(),
            "1 1 YES h:9999 Linux h h\n\nh:9999 Linux h h 9999 9000 4 LEADER 1 MEMBER\n"
        );
        assert!(super::watchdog_info("{", false).is_err());
    }
}
