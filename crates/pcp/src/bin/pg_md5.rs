//! `pg_md5`: see `pcp::pwtools`.

fn main() {
    std::process::exit(pcp::pwtools::pg_md5(std::env::args_os().skip(1).collect()));
}
