//! File reads: regular files have no readiness, so, as SEDA's aDisk did, a few threads do the
//! blocking reads and post each completion like any other: the request goes on to its next
//! stage's queue, carrying the outcome in `req.file` and the bytes in `req.response.body`.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;

use seda_stages::{FileError, FileMeta, FileOp, FileRead, Request};

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
    /// Where the request continues.
    pub next: StageId,
    pub env: Box<Envelope>,
}

pub(crate) fn run(mut ctx: Ctx, rx: flume::Receiver<FileMsg>) {
    let interval = ctx.shared.plan.metrics_interval.as_nanos() as u64;
    // Blocks for the first message, then takes what else is queued before handing the
    // completions over in one flush.
    while let Ok(mut msg) = rx.recv() {
        loop {
            let FileMsg::Read(FileJob { op, next, mut env }) = msg else {
                ctx.flush();
                return;
            };
            if ctx.shared.aborting() || now_ns() >= env.deadline_ns {
                ctx.finish(env, Outcome::TimedOut { stage: next }, now_ns());
            } else {
                let result = read(&op, &mut env.req);
                env.req.file = Some(FileRead { result });
                ctx.send(env, next);
            }
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

/// Reads the file `op` names into `req.response.body`, refusing what resolves outside the root.
fn read(op: &FileOp, req: &mut Request) -> Result<FileMeta, FileError> {
    // Resolve every symlink first, then open the resolved path without following a link
    // that may have been put in its place since.
    let path = op.root.join(&op.relative).canonicalize().map_err(error)?;
    if !path.starts_with(&op.root) {
        return Err(FileError::Forbidden);
    }
    let mut file = File::options().read(true).custom_flags(libc::O_NOFOLLOW).open(&path).map_err(error)?;
    let meta = file.metadata().map_err(error)?;
    if !meta.is_file() {
        return Err(FileError::Forbidden);
    }
    if meta.len() > op.max_bytes {
        return Err(FileError::TooLarge);
    }
    let body = &mut req.response.body;
    body.clear();
    body.reserve(meta.len() as usize);
    file.read_to_end(body).map_err(error)?;
    let modified = meta.modified().map_err(error)?;
    Ok(FileMeta { len: body.len() as u64, modified })
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
