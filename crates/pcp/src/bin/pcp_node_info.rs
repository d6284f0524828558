//! `pcp_node_info`: see `pcp::cli`.

fn main() {
    std::process::exit(pcp::cli::run(pcp::cli::Tool::NodeInfo));
}
