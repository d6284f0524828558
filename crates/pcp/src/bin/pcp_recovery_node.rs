//! `pcp_recovery_node`: see `pcp::cli`.

fn main() {
    std::process::exit(pcp::cli::run(pcp::cli::Tool::RecoveryNode));
}
