//! `pcp_invalidate_query_cache`: see `pcp::cli`.

fn main() {
    std::process::exit(pcp::cli::run(pcp::cli::Tool::InvalidateQueryCache));
}
