//! `pcp_reload_config`: see `pcp::cli`.

fn main() {
    std::process::exit(pcp::cli::run(pcp::cli::Tool::ReloadConfig));
}
