//! The PostgreSQL v3 frontend/backend wire protocol as pgpool-rs needs it: locating
//! message boundaries in a byte stream without copying bodies, parsing the startup
//! family of packets (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest),
//! building the handful of messages pgpool itself originates (errors, authentication
//! requests, ParameterStatus, BackendKeyData, ReadyForQuery, result sets), and the
//! password exchanges (cleartext, md5, SCRAM-SHA-256) on both the client and server side.

pub mod auth;
pub mod build;
pub mod message;
pub mod scram;
pub mod startup;

pub use message::{scan_header, FrameError, MessageHeader, MAX_MESSAGE_LEN};
pub use startup::{parse_startup, StartupError, StartupPacket};
