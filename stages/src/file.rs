//! Reading a file through the completion layer: what a stage asks for ([`FileOp`]) and what the
//! request carries back ([`FileRead`]).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Read a whole regular file, off any worker thread. Its bytes land in the request's
/// `response.body` and the outcome in [`crate::Request::file`]; or, for a large file or a HEAD,
/// the file is opened and not read, and lands in `response.file` (a [`FileBody`]) for the
/// writer to send as the socket drains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOp {
    /// The file, relative to `root`, already checked to have no `..` segment.
    pub relative: PathBuf,
    /// The directory the file must resolve into once symlinks are followed.
    pub root: Arc<Path>,
    /// Files larger than this are not read ([`FileError::TooLarge`]).
    pub max_bytes: u64,
    /// Files larger than this are opened, not read: they are streamed from the file.
    pub stream_over: u64,
    /// Open the file and do not read it (a HEAD: only its length and time are wanted).
    pub unread: bool,
    /// A read not done within this is given up ([`FileError::TimedOut`]), even when the
    /// request has no deadline of its own.
    pub read_timeout: Duration,
}

/// A response body sent from an open file, `len` bytes from `offset`, read in bounded pieces
/// as the socket takes them, so a large file is never held in memory whole.
#[derive(Debug, Clone)]
pub struct FileBody {
    pub file: Arc<File>,
    pub offset: u64,
    pub len: u64,
}

impl PartialEq for FileBody {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.file, &other.file) && (self.offset, self.len) == (other.offset, other.len)
    }
}

impl Eq for FileBody {}

/// The outcome of a [`FileOp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRead {
    pub result: Result<FileMeta, FileError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    pub len: u64,
    pub modified: SystemTime,
    /// The file as resolved (symlinks followed), for a cache to check it has not changed;
    /// `None` when not known.
    pub path: Option<Arc<Path>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileError {
    NotFound,
    /// A directory: the path wants its trailing `/` (its `index.html` is then served).
    Directory,
    /// Outside the root once resolved, not a regular file (a FIFO, socket or device), or not
    /// readable.
    Forbidden,
    TooLarge,
    /// Not read within [`FileOp::read_timeout`].
    TimedOut,
    /// Any other I/O error.
    Io(std::io::ErrorKind),
}
