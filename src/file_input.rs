//! Reading a file the user names (a config, a run record's parts) without trusting it: it must
//! be a regular file, and it is read only up to a size limit. A FIFO or a device under the
//! expected name would otherwise block the reader forever or feed it without end.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("not a regular file")]
    NotRegular,
    #[error("larger than {limit} bytes")]
    TooLarge { limit: u64 },
}

impl InputError {
    /// The kind of I/O error, if it is one (a missing file is told apart this way).
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            InputError::Io(e) => Some(e.kind()),
            _ => None,
        }
    }
}

/// The whole of the file at `path`, if it is at most `limit` bytes: for a file the user names
/// on the command line, which may be a pipe on purpose (`seda run <(make-config)`), so it is
/// read as it comes, but never past the limit.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    let file = File::open(path)?;
    if file.metadata()?.is_dir() {
        return Err(InputError::Io(io::Error::from(io::ErrorKind::IsADirectory)));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(InputError::TooLarge { limit });
    }
    Ok(bytes)
}

/// The whole of the regular file at `path`, if it is at most `limit` bytes.
///
/// It is opened with `O_NONBLOCK`, so that opening a FIFO with no writer returns at once
/// instead of waiting for one, and refused unless `fstat` says it is a regular file.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    let file: File = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(InputError::NotRegular);
    }
    if meta.len() > limit {
        return Err(InputError::TooLarge { limit });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow while it is read: the limit holds whatever its size said.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(InputError::TooLarge { limit });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_at_once_and_a_large_file_by_its_size() {
        let dir = std::env::temp_dir().join(format!("seda-file-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: the path is a valid NUL-terminated string that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        assert!(matches!(read_regular(&fifo, 100), Err(InputError::NotRegular)));
        let file = dir.join("file");
        std::fs::write(&file, b"0123456789").unwrap();
        assert_eq!(read_regular(&file, 10).unwrap(), b"0123456789");
        assert!(matches!(read_regular(&file, 9), Err(InputError::TooLarge { limit: 9 })));
        assert_eq!(read_regular(&dir.join("missing"), 9).unwrap_err().io_kind(), Some(io::ErrorKind::NotFound));
        assert_eq!(read_bounded(&file, 10).unwrap(), b"0123456789");
        assert!(matches!(read_bounded(&file, 9), Err(InputError::TooLarge { limit: 9 })));
        assert!(read_bounded(&dir, 9).is_err(), "a directory is no config");
        let _ = std::fs::remove_dir_all(dir);
    }
}
