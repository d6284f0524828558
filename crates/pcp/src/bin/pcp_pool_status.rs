//! `pcp_pool_status`: see `pcp::cli`.

fn main() {
    std::process::exit(pcp::cli::run(pcp::cli::Tool::PoolStatus));
}
