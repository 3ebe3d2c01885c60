//! The HTTP/1.1 client side of the load generator: response framing ([`response`]), one
//! connection on mio or a ring ([`conn`], [`ring_io`]), TLS for https:// ([`tls`]), and the sending thread that
//! drives its connections ([`driver`]).

pub mod conn;
pub mod driver;
pub mod response;
pub mod ring_io;
pub mod tls;

use super::mix::Mix;
use super::options::HttpTarget;

/// Each request kind of the mix as the bytes sent for it, and whether it is a HEAD: the request
/// line, `Host` (unless the kind sets its own), the kind's headers in order, `Content-Length`
/// when there is a body or the method usually has one, then the body.
pub fn encode_requests(target: &HttpTarget, mix: &Mix) -> (Vec<Vec<u8>>, Vec<bool>) {
    mix.kinds
        .iter()
        .map(|k| {
            let mut bytes = format!("{} {} HTTP/1.1\r\n", k.method, k.path).into_bytes();
            if !k.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
                bytes.extend_from_slice(format!("Host: {}\r\n", target.authority).as_bytes());
            }
            for (name, value) in &k.headers {
                bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
            if !k.body.is_empty() || !matches!(k.method.as_str(), "GET" | "HEAD" | "DELETE" | "OPTIONS") {
                bytes.extend_from_slice(format!("Content-Length: {}\r\n", k.body.len()).as_bytes());
            }
            bytes.extend_from_slice(b"\r\n");
            bytes.extend_from_slice(&k.body);
            (bytes, k.method == "HEAD")
        })
        .unzip()
}
