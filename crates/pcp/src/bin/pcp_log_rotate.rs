//! `pcp_log_rotate`: see `pcp::cli`.

fn main() {
    std::process::exit(pcp::cli::run(pcp::cli::Tool::LogRotate));
}
