//! `pcp_health_check_stats`: see `pcp::cli`.

fn main() {
    std::process::exit(pcp::cli::run(pcp::cli::Tool::HealthCheckStats));
}
