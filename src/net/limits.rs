//! The bounds a connection's requests must keep, and the defaults a public server can live with.
//!
//! Every bound is checked on the bytes buffered so far, so a client that never finishes a head or
//! a chunk line is cut off at the bound, not when it stops sending.

/// How many header slots the head parser has on its stack. [`Limits::max_headers`] above this is
/// taken as this: a head with more fields than that is answered 431 either way.
pub const HEADER_SLOTS: usize = 128;

/// Bounds on one request. Exceeding one is answered with the status in its doc, then the
/// connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The request line and header fields, the blank line included (431 past it). The same bound
    /// applies to the trailer section of a chunked body. Default 16 KiB.
    pub max_head_bytes: usize,
    /// Header fields in one head (431 past it); at most [`HEADER_SLOTS`]. Default 64.
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

impl Limits {
    /// The header slots the parser offers: `max_headers`, capped at [`HEADER_SLOTS`].
    pub(crate) fn header_slots(&self) -> usize {
        self.max_headers.min(HEADER_SLOTS)
    }
}
