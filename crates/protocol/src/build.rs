//! Builders for the messages pgpool originates itself, appended to a caller-owned
//! buffer so that a whole reply can be written with one system call.

/// Starts a typed message; returns the offset to hand to [`finish`].
pub fn begin(buf: &mut Vec<u8>, tag: u8) -> usize {
    let start = buf.len();
    buf.push(tag);
    buf.extend_from_slice(&[0, 0, 0, 0]);
    start
}

/// Writes the length word of the message started at `start`.
pub fn finish(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start - 1) as u32;
    buf[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
}

pub fn put_cstr(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend_from_slice(s);
    buf.push(0);
}

/// ErrorResponse (or NoticeResponse with `tag = b'N'`) with severity, SQLSTATE and text.
pub fn error_response(buf: &mut Vec<u8>, severity: &str, code: &str, message: &str) {
    notice_or_error(buf, b'E', severity, code, message);
}

pub fn notice_or_error(buf: &mut Vec<u8>, tag: u8, severity: &str, code: &str, message: &str) {
    fields(buf, tag, severity, code, message, None);
}

/// ErrorResponse with a DETAIL field.
pub fn error_with_detail(
    buf: &mut Vec<u8>,
    severity: &str,
    code: &str,
    message: &str,
    detail: Option<&str>,
) {
    fields(buf, b'E', severity, code, message, detail);
}

fn fields(
    buf: &mut Vec<u8>,
    tag: u8,
    severity: &str,
    code: &str,
    message: &str,
    detail: Option<&str>,
) {
    let s = begin(buf, tag);
    buf.push(b'S');
    put_cstr(buf, severity.as_bytes());
    buf.push(b'V');
    put_cstr(buf, severity.as_bytes());
    buf.push(b'C');
    put_cstr(buf, code.as_bytes());
    buf.push(b'M');
    put_cstr(buf, message.as_bytes());
    if let Some(d) = detail {
        buf.push(b'D');
        put_cstr(buf, d.as_bytes());
    }
    buf.push(0);
    finish(buf, s);
}

fn auth_request(buf: &mut Vec<u8>, code: u32, extra: &[u8]) {
    let s = begin(buf, b'R');
    buf.extend_from_slice(&code.to_be_bytes());
    buf.extend_from_slice(extra);
    finish(buf, s);
}

pub fn auth_ok(buf: &mut Vec<u8>) {
    auth_request(buf, 0, &[]);
}

pub fn auth_cleartext(buf: &mut Vec<u8>) {
    auth_request(buf, 3, &[]);
}

pub fn auth_md5(buf: &mut Vec<u8>, salt: [u8; 4]) {
    auth_request(buf, 5, &salt);
}

pub fn auth_sasl(buf: &mut Vec<u8>, mechanism: &str) {
    let mut extra = Vec::with_capacity(mechanism.len() + 2);
    put_cstr(&mut extra, mechanism.as_bytes());
    extra.push(0);
    auth_request(buf, 10, &extra);
}

pub fn auth_sasl_continue(buf: &mut Vec<u8>, data: &[u8]) {
    auth_request(buf, 11, data);
}

pub fn auth_sasl_final(buf: &mut Vec<u8>, data: &[u8]) {
    auth_request(buf, 12, data);
}

pub fn parameter_status(buf: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let s = begin(buf, b'S');
    put_cstr(buf, name);
    put_cstr(buf, value);
    finish(buf, s);
}

pub fn backend_key_data(buf: &mut Vec<u8>, pid: u32, key: u32) {
    let s = begin(buf, b'K');
    buf.extend_from_slice(&pid.to_be_bytes());
    buf.extend_from_slice(&key.to_be_bytes());
    finish(buf, s);
}

pub fn ready_for_query(buf: &mut Vec<u8>, status: u8) {
    let s = begin(buf, b'Z');
    buf.push(status);
    finish(buf, s);
}

/// Frontend simple Query.
pub fn query(buf: &mut Vec<u8>, sql: &str) {
    let s = begin(buf, b'Q');
    put_cstr(buf, sql.as_bytes());
    finish(buf, s);
}

/// Frontend PasswordMessage / SASLResponse (same tag, raw payload).
pub fn password_message(buf: &mut Vec<u8>, payload: &[u8]) {
    let s = begin(buf, b'p');
    buf.extend_from_slice(payload);
    finish(buf, s);
}

pub fn sasl_initial_response(buf: &mut Vec<u8>, mechanism: &str, data: &[u8]) {
    let s = begin(buf, b'p');
    put_cstr(buf, mechanism.as_bytes());
    buf.extend_from_slice(&(data.len() as u32).to_be_bytes());
    buf.extend_from_slice(data);
    finish(buf, s);
}

/// NegotiateProtocolVersion: the newest minor version supported and the protocol
/// options (`_pq_.*`) that were not recognised.
/// NegotiateProtocolVersion: the newest version the server speaks of the major version
/// the client asked for, sent as PostgreSQL sends it (the whole version number, major in
/// the high 16 bits: libpq 18 takes anything below 3.0 for a downgrade and gives up), and
/// the protocol options it does not know.
pub fn negotiate_protocol_version(buf: &mut Vec<u8>, newest: (u16, u16), unknown: &[&str]) {
    let s = begin(buf, b'v');
    let version = (u32::from(newest.0) << 16) | u32::from(newest.1);
    buf.extend_from_slice(&version.to_be_bytes());
    buf.extend_from_slice(&(unknown.len() as u32).to_be_bytes());
    for o in unknown {
        put_cstr(buf, o.as_bytes());
    }
    finish(buf, s);
}

pub fn terminate(buf: &mut Vec<u8>) {
    let s = begin(buf, b'X');
    finish(buf, s);
}

/// RowDescription for all-text columns.
pub fn row_description(buf: &mut Vec<u8>, columns: &[&str]) {
    let s = begin(buf, b'T');
    buf.extend_from_slice(&(columns.len() as u16).to_be_bytes());
    for name in columns {
        put_cstr(buf, name.as_bytes());
        buf.extend_from_slice(&0u32.to_be_bytes()); // table oid
        buf.extend_from_slice(&0u16.to_be_bytes()); // column number
        buf.extend_from_slice(&25u32.to_be_bytes()); // text
        buf.extend_from_slice(&(-1i16).to_be_bytes());
        buf.extend_from_slice(&(-1i32).to_be_bytes());
        buf.extend_from_slice(&0u16.to_be_bytes()); // text format
    }
    finish(buf, s);
}

pub fn data_row<S: AsRef<[u8]>>(buf: &mut Vec<u8>, values: &[S]) {
    let s = begin(buf, b'D');
    buf.extend_from_slice(&(values.len() as u16).to_be_bytes());
    for v in values {
        let v = v.as_ref();
        buf.extend_from_slice(&(v.len() as u32).to_be_bytes());
        buf.extend_from_slice(v);
    }
    finish(buf, s);
}

pub fn command_complete(buf: &mut Vec<u8>, tag: &str) {
    let s = begin(buf, b'C');
    put_cstr(buf, tag.as_bytes());
    finish(buf, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse_error_fields, scan_header};

    #[test]
    fn negotiate_protocol_version_carries_the_whole_version() {
        let mut b = Vec::new();
        negotiate_protocol_version(&mut b, (3, 0), &["_pq_.x"]);
        assert_eq!(b[0], b'v');
        assert_eq!(&b[5..9], &196608u32.to_be_bytes());
        assert_eq!(&b[9..13], &1u32.to_be_bytes());
        assert_eq!(&b[13..], b"_pq_.x\0");
    }

    #[test]
    fn error_round_trip() {
        let mut b = Vec::new();
        error_response(&mut b, "FATAL", "53300", "Sorry, too many clients already");
        let h = scan_header(&b).unwrap().unwrap();
        assert_eq!(h.total_len(), b.len());
        let f = parse_error_fields(&b[5..]);
        assert_eq!(f.code, "53300");
    }

    #[test]
    fn several_messages_in_one_buffer() {
        let mut b = Vec::new();
        auth_ok(&mut b);
        backend_key_data(&mut b, 1, 2);
        ready_for_query(&mut b, b'I');
        assert_eq!(b.len(), 9 + 13 + 6);
        assert_eq!(&b[b.len() - 6..], b"Z\0\0\0\x05I");
    }
}
