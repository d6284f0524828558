//! `pcp_detach_node`: see `pcp::cli`.

fn main() {
    std::process::exit(pcp::cli::run(pcp::cli::Tool::DetachNode));
}
