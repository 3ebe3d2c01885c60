//! Why a request was turned away while it was being framed, and the answer each reason gets.
//! Every rejection ends the connection: once framing is lost, nothing after it can be trusted to
//! start a request.

use super::fixed_replies;
use super::status::Status;

/// A request that cannot be framed. Send [`Reject::response`], then close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// 400: the request line, a header field or a chunk is not HTTP/1.1.
    BadRequest(BadRequest),
    /// 431: the head (or the trailer section) is longer than
    /// [`Limits::max_head_bytes`](super::Limits::max_head_bytes).
    HeadTooLarge,
    /// 414: the request line does not end within
    /// [`Limits::max_head_bytes`](super::Limits::max_head_bytes): its target is too long.
    UriTooLong,
    /// 431: more header fields than [`Limits::max_headers`](super::Limits::max_headers).
    TooManyHeaders,
    /// 413: the body is longer than [`Limits::max_body_bytes`](super::Limits::max_body_bytes).
    BodyTooLarge,
    /// 501: a transfer coding other than `chunked` was applied before it.
    TransferCodingNotImplemented,
    /// 505: a well-formed version other than HTTP/1.0 and HTTP/1.1.
    VersionNotSupported,
}

/// The kinds of 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadRequest {
    /// The request line or a header field does not parse.
    Malformed,
    /// `Content-Length` is not digits, or two of them differ.
    InvalidContentLength,
    /// Both `Content-Length` and `Transfer-Encoding`: the two framings could disagree
    /// (request smuggling), so neither is trusted.
    ContentLengthWithTransferEncoding,
    /// `Transfer-Encoding` whose last coding is not `chunked`, or on an HTTP/1.0 request.
    InvalidTransferEncoding,
    /// An HTTP/1.1 request without exactly one `Host` field.
    InvalidHost,
    /// A chunk-size line that does not parse or is too long, or chunk data not ended by CRLF.
    InvalidChunk,
}

impl Reject {
    pub const fn status(self) -> Status {
        match self {
            Reject::BadRequest(_) => Status::BAD_REQUEST,
            Reject::UriTooLong => Status::URI_TOO_LONG,
            Reject::HeadTooLarge | Reject::TooManyHeaders => Status::HEADER_FIELDS_TOO_LARGE,
            Reject::BodyTooLarge => Status::CONTENT_TOO_LARGE,
            Reject::TransferCodingNotImplemented => Status::NOT_IMPLEMENTED,
            Reject::VersionNotSupported => Status::VERSION_NOT_SUPPORTED,
        }
    }

    /// The complete response, `Connection: close` included; static, built at compile time.
    pub const fn response(self) -> &'static [u8] {
        match self {
            Reject::BadRequest(_) => fixed_replies::BAD_REQUEST,
            Reject::UriTooLong => fixed_replies::URI_TOO_LONG,
            Reject::HeadTooLarge | Reject::TooManyHeaders => fixed_replies::HEADER_FIELDS_TOO_LARGE,
            Reject::BodyTooLarge => fixed_replies::CONTENT_TOO_LARGE,
            Reject::TransferCodingNotImplemented => fixed_replies::NOT_IMPLEMENTED,
            Reject::VersionNotSupported => fixed_replies::VERSION_NOT_SUPPORTED,
        }
    }
}
