//! The HTTP/1.1 client side of the load generator: response framing ([`response`]), one
//! connection on mio ([`conn`]), and the sending thread that drives its connections
//! ([`driver`]).

pub mod conn;
pub mod driver;
pub mod response;

use super::mix::Mix;
use super::options::HttpTarget;

/// Each request kind of the mix as the bytes sent for it, and whether it is a HEAD.
pub fn encode_requests(target: &HttpTarget, mix: &Mix) -> (Vec<Vec<u8>>, Vec<bool>) {
    mix.kinds
        .iter()
        .map(|k| {
            let mut bytes = format!("{} {} HTTP/1.1\r\nHost: {}\r\n", k.method, k.path, target.authority).into_bytes();
            if k.body_bytes > 0 || !matches!(k.method.as_str(), "GET" | "HEAD" | "DELETE" | "OPTIONS") {
                bytes.extend_from_slice(format!("Content-Length: {}\r\n", k.body_bytes).as_bytes());
            }
            bytes.extend_from_slice(b"\r\n");
            bytes.resize(bytes.len() + k.body_bytes, b'x');
            (bytes, k.method == "HEAD")
        })
        .unzip()
}
