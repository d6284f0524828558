//! `pcp_stop_pgpool`: see `pcp::cli`.

fn main() {
    std::process::exit(pcp::cli::run(pcp::cli::Tool::StopPgpool));
}
