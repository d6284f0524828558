//! PCP, Pgpool-II's control protocol, as spoken by Pgpool-II 4.3: packet framing,
//! md5-salt authentication, error reports, a client ([`client::Connection`]) and the
//! command-line front ends of the `pcp_*` tools. The server side (in the pgpool crate)
//! uses the same framing, digest and error code so both ends agree byte for byte.

pub mod auth;
pub mod cli;
pub mod client;
pub mod error;
pub mod frame;
pub mod output;
pub mod pcppass;
pub mod pwtools;
pub mod wd_cli;
