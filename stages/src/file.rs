//! Reading a file through the completion layer: what a stage asks for ([`FileOp`]) and what the
//! request carries back ([`FileRead`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// Read a whole regular file, off any worker thread. Its bytes land in the request's
/// `response.body` and the outcome in [`crate::Request::file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOp {
    /// The file, relative to `root`, already checked to have no `..` segment.
    pub relative: PathBuf,
    /// The directory the file must resolve into once symlinks are followed.
    pub root: Arc<Path>,
    /// Files larger than this are not read ([`FileError::TooLarge`]).
    pub max_bytes: u64,
}

/// The outcome of a [`FileOp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRead {
    pub result: Result<FileMeta, FileError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    pub len: u64,
    pub modified: SystemTime,
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
    /// Any other I/O error.
    Io(std::io::ErrorKind),
}
