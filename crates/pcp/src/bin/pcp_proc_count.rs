//! `pcp_proc_count`: see `pcp::cli`.

fn main() {
    std::process::exit(pcp::cli::run(pcp::cli::Tool::ProcCount));
}
