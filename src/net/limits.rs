//! How the framer applies the bounds a connection's requests must keep ([`Limits`], a config
//! type: the config sets them, this module reads them).
//!
//! Every bound is checked on the bytes buffered so far, so a client that never finishes a head or
//! a chunk line is cut off at the bound, not when it stops sending.

pub use crate::config::Limits;

/// How many header slots the head parser has on its stack. [`Limits::max_headers`] above this is
/// taken as this: a head with more fields than that is answered 431 either way.
pub const HEADER_SLOTS: usize = 128;

impl Limits {
    /// The header slots the parser offers: `max_headers`, capped at [`HEADER_SLOTS`].
    pub(crate) fn header_slots(&self) -> usize {
        self.max_headers.min(HEADER_SLOTS)
    }
}
