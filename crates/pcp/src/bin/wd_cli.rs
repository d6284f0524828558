//! `wd_cli`: see `pcp::wd_cli`.

fn main() {
    std::process::exit(pcp::wd_cli::main(std::env::args_os().skip(1).collect()));
}
