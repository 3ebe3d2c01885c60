//! File reads: regular files have no readiness, so, as SEDA's aDisk did, a few threads do the
//! blocking reads and post each completion like any other: the request goes on to its next
//! stage's queue, carrying the outcome in `req.file` and the bytes in `req.response.body`.
//!
//! Only regular files are read. A path may name a FIFO, a socket or a device, whose `open` or
//! `read` can block for ever and so hold a file thread (and shutdown with it): it is opened with
//! `O_NONBLOCK` (for a regular file the flag changes nothing), checked with `fstat` on the open
//! descriptor (not the path, which may change in between), and refused unless it is a regular
//! file. A read is done in bounded pieces and given up when the request's deadline or the
//! read's own timeout ([`FileOp::read_timeout`]) passes. (The clock is looked at between
//! pieces: one `read` that blocks in the kernel, on a hung network file system, is not cut
//! short.)

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use seda_stages::{FileBody, FileError, FileMeta, FileOp, FileRead, Request};

use crate::clock::now_ns;
use crate::config::StageId;
use crate::engine::{Ctx, Envelope, Outcome};

/// What a file thread is sent.
pub(crate) enum FileMsg {
    Read(FileJob),
    /// Shutdown: the thread exits once it has done what is queued before this.
    Stop,
}

pub(crate) struct FileJob {
    pub op: FileOp,
    /// The stage that asked for the read, and when: its I/O wait is recorded when it ends.
    pub from: StageId,
    pub started_ns: u64,
    /// Where the request continues.
    pub next: StageId,
    pub env: Box<Envelope>,
}

pub(crate) fn file_thread(mut ctx: Ctx, rx: flume::Receiver<FileMsg>) {
    let interval = ctx.shared.plan.metrics_interval.as_nanos() as u64;
    // Blocks for the first message, then takes what else is queued before handing the
    // completions over in one flush.
    while let Ok(mut msg) = rx.recv() {
        ctx.roll(now_ns());
        loop {
            let FileMsg::Read(FileJob { op, from, started_ns, next, mut env }) = msg else {
                ctx.flush();
                return;
            };
            if ctx.shared.aborting() || now_ns() >= env.deadline_ns {
                ctx.finish(env, Outcome::TimedOut { stage: next }, now_ns());
            } else {
                let read_deadline_ns = now_ns().saturating_add(op.read_timeout.as_nanos() as u64);
                match read(&op, &mut env.req, env.deadline_ns.min(read_deadline_ns)) {
                    Ok(result) => {
                        env.req.file = Some(FileRead { result });
                        ctx.send(env, next);
                    }
                    Err(PastDeadline) if now_ns() >= env.deadline_ns => {
                        ctx.finish(env, Outcome::TimedOut { stage: next }, now_ns())
                    }
                    // Only the read's own timeout: the stage answers it.
                    Err(PastDeadline) => {
                        env.req.file = Some(FileRead { result: Err(FileError::TimedOut) });
                        ctx.send(env, next);
                    }
                }
            }
            ctx.rec.io_wait(from, now_ns().saturating_sub(started_ns));
            match rx.try_recv() {
                Ok(more) => msg = more,
                Err(_) => break,
            }
        }
        ctx.flush();
        let now = now_ns();
        if ctx.rec.is_dirty() && now - ctx.rec.published_ns >= interval {
            ctx.publish(now);
        }
    }
}

/// The request's deadline, or the read's timeout, passed while its file was being read.
struct PastDeadline;

/// A read takes this much at a time between looks at the clock.
const READ_PIECE: usize = 256 * 1024;

/// Reads the file `op` names into `req.response.body`, refusing what resolves outside the root
/// and what is not a regular file.
fn read(op: &FileOp, req: &mut Request, deadline_ns: u64) -> Result<Result<FileMeta, FileError>, PastDeadline> {
    let (mut file, meta, path) = match open(op) {
        Ok(opened) => opened,
        Err(e) => return Ok(Err(e)),
    };
    let modified = match meta.modified() {
        Ok(modified) => modified,
        Err(e) => return Ok(Err(error(e))),
    };
    let path = Some(Arc::from(path));
    if op.unread || meta.len() > op.stream_over {
        // The writer sends it from the file as the socket drains (or, for a HEAD, only says
        // its length): the descriptor travels with the response, and nothing is read here.
        req.response.body.clear();
        req.response.file = Some(FileBody { file: Arc::new(file), offset: 0, len: meta.len() });
        return Ok(Ok(FileMeta { len: meta.len(), modified, path }));
    }
    let body = &mut req.response.body;
    body.clear();
    body.reserve(meta.len() as usize);
    // The length fstat gave is what is read, no more: a file that grows meanwhile cannot push
    // the body past `max_bytes`.
    let mut left = meta.len();
    while left > 0 {
        if now_ns() >= deadline_ns {
            body.clear();
            return Err(PastDeadline);
        }
        let piece = left.min(READ_PIECE as u64);
        match (&mut file).take(piece).read_to_end(body) {
            Ok(0) => break, // shrank since fstat: what there is
            Ok(n) => left -= n as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Ok(Err(error(e))),
        }
    }
    Ok(Ok(FileMeta { len: body.len() as u64, modified, path }))
}

/// Opens the file `op` names, and checks on the open descriptor that it is a regular file no
/// larger than `op.max_bytes`. Gives back the path it resolved to, too.
fn open(op: &FileOp) -> Result<(File, std::fs::Metadata, PathBuf), FileError> {
    // Resolve every symlink first, then open the resolved path without following a link
    // that may have been put in its place since.
    let path = op.root.join(&op.relative).canonicalize().map_err(error)?;
    if !path.starts_with(&op.root) {
        return Err(FileError::Forbidden);
    }
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    let file =
        File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(&path).map_err(error)?;
    let meta = file.metadata().map_err(error)?;
    if meta.is_dir() {
        return Err(FileError::Directory);
    }
    if !meta.is_file() {
        return Err(FileError::Forbidden);
    }
    if meta.len() > op.max_bytes {
        return Err(FileError::TooLarge);
    }
    Ok((file, meta, path))
}

fn error(e: std::io::Error) -> FileError {
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::NotADirectory => FileError::NotFound,
        ErrorKind::PermissionDenied => FileError::Forbidden,
        // ELOOP: the last component became a symlink (O_NOFOLLOW), or links loop.
        _ if e.raw_os_error() == Some(libc::ELOOP) => FileError::Forbidden,
        kind => FileError::Io(kind),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn op(root: &Path, relative: &str) -> FileOp {
        FileOp {
            relative: relative.into(),
            root: Arc::from(root.canonicalize().unwrap()),
            max_bytes: 1 << 30,
            stream_over: 1 << 30,
            unread: false,
            read_timeout: std::time::Duration::from_secs(10),
        }
    }

    fn temp_root(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("seda-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_read_past_its_deadline_is_given_up_with_nothing_kept() {
        let root = temp_root("deadline");
        std::fs::write(root.join("a.bin"), vec![7u8; 3 * READ_PIECE]).unwrap();
        let mut req = Request::default();
        assert!(matches!(read(&op(&root, "a.bin"), &mut req, 0), Err(PastDeadline)));
        assert!(req.response.body.is_empty());
        let meta = read(&op(&root, "a.bin"), &mut req, u64::MAX).ok().unwrap().unwrap();
        assert_eq!((meta.len, req.response.body.len()), (3 * READ_PIECE as u64, 3 * READ_PIECE));
    }

    #[test]
    fn only_regular_files_are_opened() {
        let root = temp_root("kinds");
        std::fs::create_dir(root.join("dir")).unwrap();
        let fifo = std::ffi::CString::new(root.join("fifo").to_str().unwrap()).unwrap();
        // SAFETY: `fifo` is a valid NUL-terminated path for the duration of the call.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        assert_eq!(open(&op(&root, "fifo")).err(), Some(FileError::Forbidden));
        assert_eq!(open(&op(&root, "missing")).err(), Some(FileError::NotFound));
        assert_eq!(open(&op(&root, "dir")).err(), Some(FileError::Directory));
    }

    #[test]
    fn a_large_file_or_a_head_is_opened_and_not_read() {
        let root = temp_root("unread");
        std::fs::write(root.join("big.bin"), vec![7u8; 1000]).unwrap();
        let canonical: Arc<std::path::Path> = Arc::from(root.canonicalize().unwrap());
        let op = |stream_over, unread| FileOp {
            relative: "big.bin".into(),
            root: canonical.clone(),
            max_bytes: 1 << 20,
            stream_over,
            unread,
            read_timeout: std::time::Duration::from_secs(10),
        };
        for (stream_over, unread) in [(999, false), (1 << 20, true)] {
            let mut req = Request::default();
            let meta = read(&op(stream_over, unread), &mut req, u64::MAX).ok().unwrap().unwrap();
            assert_eq!(meta.len, 1000);
            assert_eq!(meta.path.as_deref(), Some(&*canonical.join("big.bin")));
            assert!(req.response.body.is_empty(), "nothing read");
            let body = req.response.file.expect("the open file travels with the response");
            assert_eq!((body.offset, body.len), (0, 1000));
        }
        let mut req = Request::default();
        read(&op(1000, false), &mut req, u64::MAX).ok().unwrap().unwrap();
        assert_eq!((req.response.body.len(), req.response.file.is_none()), (1000, true), "at the bound: read whole");
    }
}
