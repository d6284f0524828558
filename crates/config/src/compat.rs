//! Which Pgpool-II release a pgpool.conf was written for, and what that release implies for
//! the parameters the file leaves out. The table in [`crate::params`] carries 4.7's defaults;
//! a few changed on the way (4.6 emptied the `*_user` defaults, 4.7 turned
//! `log_pcp_processes` off and made `recovery_database` a parameter where 4.6 and older used
//! template1, 4.5 made a bare `delay_threshold_by_time` milliseconds where 4.4 read seconds).
//! The release is the one the file's header names (`# Pgpool-II 4.4 configuration file`, the
//! first lines of every sample since 4.0); without a header, the newest release whose new
//! parameters the file sets, and 4.3 (what pgpool-rs has been a drop-in for) when it sets none.

/// Minor version (of 4.x) assumed for a file with no hint at all.
pub const OLDEST: u32 = 3;
/// Newest Pgpool-II minor version whose parameters are all known.
pub const NEWEST: u32 = 7;

/// Parameters that first appeared after 4.3, with the minor version they appeared in.
const INTRODUCED: &[(&str, u32)] = &[
    ("delay_threshold_by_time", 4),
    ("process_management_mode", 4),
    ("process_management_strategy", 4),
    ("min_spare_children", 4),
    ("max_spare_children", 4),
    ("trusted_server_command", 4),
    ("unix_socket_directories", 4),
    ("unix_socket_group", 4),
    ("unix_socket_permissions", 4),
    ("log_pcp_processes", 5),
    ("user_redirect_preference_list", 5),
    ("log_backend_messages", 6),
    ("recovery_database", 7),
    ("work_dir", 7),
    ("wd_listen_address", 7),
    ("wd_listen_port", 7),
    ("wd_heartbeat_listen_addresses", 7),
    ("wd_heartbeat_listen_port", 7),
];

/// Defaults that changed: (parameter, first minor version with the table's default, the
/// default of the releases before it).
const OLD_DEFAULTS: &[(&str, u32, &str)] = &[
    ("health_check_user", 6, "nobody"),
    ("sr_check_user", 6, "nobody"),
    ("recovery_user", 6, "nobody"),
    ("wd_lifecheck_user", 6, "nobody"),
    // 4.4 always logged PCP worker forks and exits; 4.5 and 4.6 did by default.
    ("log_pcp_processes", 7, "on"),
    // Before 4.7 online recovery always connected to template1.
    ("recovery_database", 7, "template1"),
];

/// The 4.x minor version a header line `# Pgpool-II 4.4 configuration file` (the whole
/// comment) names, looked for in the leading comment block only. Releases before 4.3 count as 4.3, later
/// majors as the newest known.
pub fn header_version(text: &str) -> Option<u32> {
    for line in text.lines().take(10) {
        let Some(comment) = line.trim_start().strip_prefix('#') else {
            if line.trim().is_empty() {
                continue;
            }
            return None;
        };
        let words: Vec<&str> = comment.split_whitespace().collect();
        if let ["Pgpool-II" | "pgpool-II", version, "configuration", "file"] = words[..] {
            let mut parts = version.split('.');
            let major: u32 = parts.next()?.parse().ok()?;
            let minor: u32 = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
            return Some(match major {
                0..=3 => OLDEST,
                4 => minor.clamp(OLDEST, NEWEST),
                _ => NEWEST,
            });
        }
    }
    None
}

/// The newest release among those that introduced the parameters in `names` (canonical
/// names set in the file), or [`OLDEST`].
pub fn implied_by(names: impl IntoIterator<Item = &'static str>) -> u32 {
    names
        .into_iter()
        .filter_map(|n| INTRODUCED.iter().find(|(p, _)| *p == n).map(|(_, v)| *v))
        .max()
        .unwrap_or(OLDEST)
        .max(OLDEST)
}

/// The default of `name` in a file written for 4.`minor`, when it differs from the table's.
pub fn old_default(name: &str, minor: u32) -> Option<&'static str> {
    OLD_DEFAULTS
        .iter()
        .find(|(n, since, _)| *n == name && minor < *since)
        .map(|(_, _, d)| *d)
}

/// Every parameter whose default depends on the release, for the loader to fill in.
pub fn versioned_defaults() -> impl Iterator<Item = &'static str> {
    OLD_DEFAULTS.iter().map(|(n, _, _)| *n)
}

/// 4.4 read `delay_threshold_by_time` without a unit as seconds; 4.5 and later read ms.
pub fn by_time_in_seconds(minor: u32) -> bool {
    minor == 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let h = "# --------------------------------\n# Pgpool-II 4.4 configuration file\n# ---\n";
        assert_eq!(header_version(h), Some(4));
        assert_eq!(
            header_version("# Pgpool-II 4.7 configuration file\n"),
            Some(7)
        );
        assert_eq!(
            header_version("# Pgpool-II 3.7 configuration file\n"),
            Some(3)
        );
        assert_eq!(
            header_version("# pgpool-II 5.0 configuration file\n"),
            Some(7)
        );
        assert_eq!(
            header_version("port = 1\n# Pgpool-II 4.4 configuration file\n"),
            None
        );
        assert_eq!(header_version("# a pgpool-rs configuration\n"), None);
    }

    #[test]
    fn implied_versions_and_old_defaults() {
        assert_eq!(implied_by(["port", "listen_addresses"]), 3);
        assert_eq!(
            implied_by(["unix_socket_directories", "log_pcp_processes"]),
            5
        );
        assert_eq!(implied_by(["work_dir"]), 7);
        assert_eq!(old_default("sr_check_user", 5), Some("nobody"));
        assert_eq!(old_default("sr_check_user", 6), None);
        assert_eq!(old_default("recovery_database", 6), Some("template1"));
        assert_eq!(old_default("port", 3), None);
        assert!(by_time_in_seconds(4) && !by_time_in_seconds(5));
    }
}
