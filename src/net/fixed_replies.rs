//! Responses that never change, as static bytes: the answers to rejected requests, `503` for
//! admission control, and `100 Continue`. Written once at compile time, sent as they are; a unit
//! test checks each against what [`write_response`](super::write_response) would produce.

/// `400 Bad Request`, then close.
pub static BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// `413 Content Too Large`, then close.
pub static CONTENT_TOO_LARGE: &[u8] =
    b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// `414 URI Too Long` (a request line longer than the head's bound), then close.
pub static URI_TOO_LONG: &[u8] = b"HTTP/1.1 414 URI Too Long\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// `431 Request Header Fields Too Large`, then close.
pub static HEADER_FIELDS_TOO_LARGE: &[u8] =
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// `501 Not Implemented` (a transfer coding other than chunked), then close.
pub static NOT_IMPLEMENTED: &[u8] = b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// `505 HTTP Version Not Supported`, then close.
pub static VERSION_NOT_SUPPORTED: &[u8] =
    b"HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// `503 Service Unavailable` with `Retry-After: 1`; the connection stays open.
pub static SERVICE_UNAVAILABLE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n";
/// `503 Service Unavailable` with `Retry-After: 1`, then close.
pub static SERVICE_UNAVAILABLE_CLOSE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// `503 Service Unavailable` with `Retry-After: 1` to an HTTP/1.0 client whose connection stays open.
pub static SERVICE_UNAVAILABLE_HTTP10: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n";
/// `408 Request Timeout`: a head did not arrive in time; then close.
pub static REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// The interim `100 Continue`, sent before reading a body the client holds back for it.
pub static CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The `503` that fits `reply` (admission control turning a request away).
pub fn service_unavailable(reply: super::Reply) -> &'static [u8] {
    if reply.close {
        SERVICE_UNAVAILABLE_CLOSE
    } else if reply.http10 {
        SERVICE_UNAVAILABLE_HTTP10
    } else {
        SERVICE_UNAVAILABLE
    }
}

#[cfg(test)]
mod tests {
    use super::super::{write_response, Reply, Response, Status};
    use super::*;

    fn written(status: Status, headers: &[(&str, &[u8])], reply: Reply) -> Vec<u8> {
        let mut out = Vec::new();
        write_response(&mut out, &Response { status, headers, body: b"" }, reply);
        out
    }

    #[test]
    fn fixed_rejects_match_the_writer() {
        let close = Reply { close: true, ..Reply::default() };
        assert_eq!(BAD_REQUEST, written(Status::BAD_REQUEST, &[], close));
        assert_eq!(CONTENT_TOO_LARGE, written(Status::CONTENT_TOO_LARGE, &[], close));
        assert_eq!(URI_TOO_LONG, written(Status::URI_TOO_LONG, &[], close));
        assert_eq!(HEADER_FIELDS_TOO_LARGE, written(Status::HEADER_FIELDS_TOO_LARGE, &[], close));
        assert_eq!(NOT_IMPLEMENTED, written(Status::NOT_IMPLEMENTED, &[], close));
        assert_eq!(VERSION_NOT_SUPPORTED, written(Status::VERSION_NOT_SUPPORTED, &[], close));
    }

    #[test]
    fn fixed_503s_match_the_writer() {
        let retry: &[(&str, &[u8])] = &[("Retry-After", b"1")];
        for reply in [
            Reply::default(),
            Reply { close: true, ..Reply::default() },
            Reply { http10: true, ..Reply::default() },
            Reply { head_only: true, ..Reply::default() },
        ] {
            assert_eq!(service_unavailable(reply), written(Status::SERVICE_UNAVAILABLE, retry, reply), "{reply:?}");
        }
    }

    #[test]
    fn fixed_continue_matches_the_writer() {
        assert_eq!(CONTINUE, written(Status::CONTINUE, &[], Reply::default()));
    }
}
