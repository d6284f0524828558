//! `pcp_watchdog_info`: see `pcp::cli`.

fn main() {
    std::process::exit(pcp::cli::run(pcp::cli::Tool::WatchdogInfo));
}
