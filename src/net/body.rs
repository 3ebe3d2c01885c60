//! Answer bodies written from where they are instead of being copied into a connection's output
//! buffer: a large shared buffer (a cached file), or an open file (a large static file).
//!
//! A file is sent in pieces of at most [`FILE_PIECE`] bytes: a piece is read (`pread`) when
//! the one before it has been taken by the socket, so a connection that does not read holds one
//! piece of its file in memory, never the file. The bytes read are the `len` the head
//! announced: a file that shrinks under a response cannot be completed, and the connection is
//! closed (its `Content-Length` would otherwise lie).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use seda_stages::FileBody;

/// The most of a file a connection holds in memory at once.
pub(crate) const FILE_PIECE: usize = 64 * 1024;

pub(crate) enum Body {
    /// A shared buffer and how much of it is sent.
    Shared {
        bytes: Arc<[u8]>,
        sent: usize,
    },
    File(FileStream),
}

pub(crate) struct FileStream {
    file: Arc<File>,
    /// Where the next piece is read from, and where the body ends.
    next: u64,
    end: u64,
    /// The piece read and not yet all sent; `piece_sent` bytes of it are.
    piece: Vec<u8>,
    piece_sent: usize,
}

impl Body {
    pub fn shared(bytes: Arc<[u8]>) -> Body {
        Body::Shared { bytes, sent: 0 }
    }

    pub fn file(body: &FileBody) -> Body {
        Body::File(FileStream {
            file: body.file.clone(),
            next: body.offset,
            end: body.offset + body.len,
            piece: Vec::new(),
            piece_sent: 0,
        })
    }

    /// Makes the next bytes ready to send: reads the next piece of a file once the last one is
    /// sent. Err: the file could not be read to the length announced.
    pub fn prepare(&mut self) -> io::Result<()> {
        let Body::File(stream) = self else { return Ok(()) };
        if stream.piece_sent < stream.piece.len() || stream.next == stream.end {
            return Ok(());
        }
        let want = (stream.end - stream.next).min(FILE_PIECE as u64) as usize;
        stream.piece.resize(want, 0);
        stream.piece_sent = 0;
        let mut filled = 0;
        while filled < want {
            match stream.file.read_at(&mut stream.piece[filled..], stream.next + filled as u64) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        stream.next += want as u64;
        Ok(())
    }

    /// The bytes ready to send now.
    pub fn ready(&self) -> &[u8] {
        match self {
            Body::Shared { bytes, sent } => &bytes[*sent..],
            Body::File(stream) => &stream.piece[stream.piece_sent..],
        }
    }

    /// Whether [`Body::ready`] is all that is left, so what follows the body may be sent after
    /// it in the same write.
    pub fn ready_is_all(&self) -> bool {
        match self {
            Body::Shared { .. } => true,
            Body::File(stream) => stream.next == stream.end,
        }
    }

    /// Marks up to `n` ready bytes as sent; returns how many it took.
    pub fn advance(&mut self, n: usize) -> usize {
        let take = n.min(self.ready().len());
        match self {
            Body::Shared { sent, .. } => *sent += take,
            Body::File(stream) => {
                stream.piece_sent += take;
                if stream.piece_sent == stream.piece.len() && stream.next == stream.end {
                    // All sent: the piece's memory goes now, not when the answer is popped.
                    stream.piece = Vec::new();
                    stream.piece_sent = 0;
                }
            }
        }
        take
    }

    /// Whether every byte is sent.
    pub fn done(&self) -> bool {
        self.ready().is_empty() && self.ready_is_all()
    }

    /// The bytes it holds in memory unsent: a shared buffer's rest (it is kept alive for this
    /// answer, though not a copy), a file's piece.
    pub fn held(&self) -> usize {
        self.ready().len()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file_of(len: usize) -> (Arc<File>, Vec<u8>) {
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let path = std::env::temp_dir().join(format!("seda-body-{}-{len}", std::process::id()));
        std::fs::File::create(&path).unwrap().write_all(&bytes).unwrap();
        let file = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        (Arc::new(file), bytes)
    }

    #[test]
    fn a_file_is_sent_piece_by_piece_holding_one_piece_at_most() {
        let len = 3 * FILE_PIECE + 100;
        let (file, bytes) = file_of(len);
        let mut body = Body::file(&FileBody { file, offset: 10, len: (len - 20) as u64 });
        let mut sent = Vec::new();
        while !body.done() {
            body.prepare().unwrap();
            assert!(body.held() <= FILE_PIECE);
            // The socket takes odd amounts.
            let take = body.ready().len().min(10_000);
            sent.extend_from_slice(&body.ready()[..take]);
            assert_eq!(body.advance(take), take);
        }
        assert!(sent == bytes[10..len - 10], "every byte in place");
        assert_eq!(body.held(), 0);
    }

    #[test]
    fn a_file_shorter_than_announced_is_an_error() {
        let (file, _) = file_of(100);
        let mut body = Body::file(&FileBody { file, offset: 0, len: 200 });
        body.prepare().unwrap_err();
    }
}
