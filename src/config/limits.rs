//! The bounds an HTTP source's requests must keep, and the defaults a public server can live
//! with. A config type: validation sets them from the source's fields; the HTTP framer reads them.
//!
//! Every bound is checked on the bytes buffered so far, so a client that never finishes a head or
//! a chunk line is cut off at the bound, not when it stops sending.

/// Bounds on one request. Exceeding one is answered with the status in its doc, then the
/// connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The request line and header fields, the blank line included (431 past it). The same bound
    /// applies to the trailer section of a chunked body. Default 16 KiB.
    pub max_head_bytes: usize,
    /// Header fields in one head (431 past it); at most the framer's header slots (128). Default 64.
    pub max_headers: usize,
    /// The decoded body (413 past it). A `Content-Length` over it is refused before any of the
    /// body is read. Default 1 MiB.
    pub max_body_bytes: usize,
    /// One chunk-size line, extensions included (400 past it). Default 4 KiB.
    pub max_chunk_line_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_head_bytes: 16 * 1024, max_headers: 64, max_body_bytes: 1024 * 1024, max_chunk_line_bytes: 4096 }
    }
}
