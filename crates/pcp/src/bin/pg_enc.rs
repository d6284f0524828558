//! `pg_enc`: see `pcp::pwtools`.

fn main() {
    std::process::exit(pcp::pwtools::pg_enc(std::env::args_os().skip(1).collect()));
}
