//! HTTP status codes and the reason phrases the response writer puts on the status line.

/// A status code, 100..=999.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Status(u16);

impl Status {
    pub const CONTINUE: Status = Status(100);
    pub const OK: Status = Status(200);
    pub const NO_CONTENT: Status = Status(204);
    pub const NOT_MODIFIED: Status = Status(304);
    pub const BAD_REQUEST: Status = Status(400);
    pub const NOT_FOUND: Status = Status(404);
    pub const CONTENT_TOO_LARGE: Status = Status(413);
    pub const URI_TOO_LONG: Status = Status(414);
    pub const HEADER_FIELDS_TOO_LARGE: Status = Status(431);
    pub const INTERNAL_SERVER_ERROR: Status = Status(500);
    pub const NOT_IMPLEMENTED: Status = Status(501);
    pub const SERVICE_UNAVAILABLE: Status = Status(503);
    pub const VERSION_NOT_SUPPORTED: Status = Status(505);

    /// The status with this code, if it has three digits.
    pub const fn new(code: u16) -> Option<Status> {
        if code >= 100 && code <= 999 {
            Some(Status(code))
        } else {
            None
        }
    }

    pub const fn code(self) -> u16 {
        self.0
    }

    /// The reason phrase (RFC 9110 §15); empty for a code it does not name, which the status
    /// line allows.
    pub const fn reason(self) -> &'static str {
        named(self.0).0
    }

    /// The whole status line, `HTTP/1.1 200 OK` and its CRLF, for a code with a reason phrase
    /// (written as one copy per response instead of piece by piece); `None` for any other.
    pub const fn line(self) -> Option<&'static str> {
        named(self.0).1
    }

    /// Whether a response with this status is written without `Content-Length`: 1xx and 204
    /// may not have one, and a 304's would have to be the length of the full 200 body, which
    /// the writer does not know (RFC 9110 §8.6).
    pub const fn forbids_content_length(self) -> bool {
        self.0 < 200 || self.0 == 204 || self.0 == 304
    }

    /// Whether a response with this status carries no body (1xx, 204, 304).
    pub const fn forbids_body(self) -> bool {
        self.forbids_content_length()
    }
}

/// The codes with a reason phrase: each with its phrase and its whole status line, both from
/// one list.
macro_rules! named_statuses {
    ($($code:literal $reason:literal,)*) => {
        /// A code's reason phrase and status line (`""` and `None` for a code not named here).
        const fn named(code: u16) -> (&'static str, Option<&'static str>) {
            match code {
                $($code => ($reason, Some(concat!("HTTP/1.1 ", stringify!($code), " ", $reason, "\r\n"))),)*
                _ => ("", None),
            }
        }
    };
}

named_statuses! {
    100 "Continue",
    101 "Switching Protocols",
    200 "OK",
    201 "Created",
    202 "Accepted",
    204 "No Content",
    206 "Partial Content",
    301 "Moved Permanently",
    302 "Found",
    303 "See Other",
    304 "Not Modified",
    307 "Temporary Redirect",
    308 "Permanent Redirect",
    400 "Bad Request",
    401 "Unauthorized",
    403 "Forbidden",
    404 "Not Found",
    405 "Method Not Allowed",
    408 "Request Timeout",
    411 "Length Required",
    413 "Content Too Large",
    414 "URI Too Long",
    417 "Expectation Failed",
    429 "Too Many Requests",
    431 "Request Header Fields Too Large",
    500 "Internal Server Error",
    501 "Not Implemented",
    502 "Bad Gateway",
    503 "Service Unavailable",
    504 "Gateway Timeout",
    505 "HTTP Version Not Supported",
}
