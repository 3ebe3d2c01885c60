//! `static_file`: serves the file a GET or HEAD names under `root`, read on the completion
//! layer's file threads. `{"root": "configs/www", "max_bytes": 16777216, "stream_over_bytes":
//! 1048576}`
//!
//! A file over `stream_over_bytes`, and any file for a HEAD, is opened and not read: it travels
//! as `response.file` and the HTTP writer streams it (or, for a HEAD, only states its length).
//! A `200` is cut to the request's single byte range ([`crate::range`]).
//!
//! The stage handles its own read's completion (it continues at [`Output::SELF`]):
//! 1. First visit (`req.file` is `None`): a method other than GET or HEAD is answered `405` with
//!    `Allow: GET, HEAD`; a path with a `..` segment `403` (as a symlink out of the root is, so
//!    every escape looks the same); a malformed path `400`. Otherwise it asks for the read.
//! 2. Second visit (`req.file` is set, the bytes in `req.response.body`): `200` with
//!    `Content-Type` (by extension) and `Last-Modified`, or `304` with no body when
//!    `If-Modified-Since` allows it (exactly the file's time, not in the future:
//!    [`http::not_modified`]); a missing file `404`; a directory `301` to its path with the
//!    trailing slash; one outside the root or not a regular file `403`, one over `max_bytes`
//!    `403` too (the server declines to serve it; `413` is about request bodies), any other I/O
//!    error `500`. Then on to `next`.
//!
//! On the way out it **leaves `req.file` in place**: it tells a following `file_cache` that this
//! response was just read (and when the file was modified); the stage that consumes it takes it.
//!
//! `root` is resolved (relative to the working directory) when the pipeline is built, and must
//! be an existing directory.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::http::{self, PathError};
use crate::{
    range, BuildError, FileError, FileMeta, FileOp, IoOp, Output, Outputs, Request, Stage, StageFactory, Step,
};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    root: PathBuf,
    #[serde(default = "sixteen_mib")]
    max_bytes: u64,
    #[serde(default = "one_mib")]
    stream_over_bytes: u64,
    #[serde(default = "ten_seconds")]
    read_timeout_ms: u64,
}

/// A read of at most `stream_over_bytes` (1 MiB) that takes longer is a disk in trouble.
fn ten_seconds() -> u64 {
    10_000
}

fn sixteen_mib() -> u64 {
    16 << 20
}

/// Past this a file is streamed from the file as the socket drains: read whole per request, 40
/// slow clients of a 16 MiB file would pin 640 MiB.
fn one_mib() -> u64 {
    1 << 20
}

#[derive(Clone)]
pub struct StaticFile {
    root: Arc<Path>,
    max_bytes: u64,
    stream_over: u64,
    read_timeout: Duration,
    /// Reused for formatting `Last-Modified`.
    date: String,
    counts: Arc<Counts>,
}

/// How the files answered were delivered, across instances.
#[derive(Default)]
struct Counts {
    /// Read whole into the response.
    read: AtomicU64,
    /// Opened and not read: streamed by the writer (a large file) or only measured (a HEAD).
    unread: AtomicU64,
}

impl StaticFile {
    pub fn new(params: Params) -> Result<Self, BuildError> {
        let shown = params.root.display();
        let root = params.root.canonicalize().map_err(|e| BuildError::bad("root", format!("root `{shown}`: {e}")))?;
        if !root.is_dir() {
            return Err(BuildError::bad("root", format!("root `{shown}` is not a directory")));
        }
        if params.max_bytes == 0 {
            return Err(BuildError::bad("max_bytes", "`max_bytes` must be at least 1"));
        }
        if params.read_timeout_ms == 0 {
            return Err(BuildError::bad("read_timeout_ms", "`read_timeout_ms` must be at least 1"));
        }
        Ok(StaticFile {
            root: root.into(),
            max_bytes: params.max_bytes,
            stream_over: params.stream_over_bytes,
            read_timeout: Duration::from_millis(params.read_timeout_ms),
            date: String::new(),
            counts: Arc::default(),
        })
    }

    fn start(&self, req: &mut Request) -> Step {
        if !matches!(req.http.method(), "GET" | "HEAD") {
            req.response.set_text(405, "Method Not Allowed\n");
            req.response.headers.set("Allow", b"GET, HEAD");
            return Step::Respond;
        }
        match http::file_path(req.http.path()) {
            Ok(relative) => {
                let op = FileOp {
                    relative,
                    root: self.root.clone(),
                    max_bytes: self.max_bytes,
                    stream_over: self.stream_over,
                    unread: req.http.is_head(),
                    read_timeout: self.read_timeout,
                };
                Step::Io(IoOp::ReadFile(op), Output::SELF)
            }
            Err(PathError::Traversal) => {
                req.response.set_text(403, "Forbidden\n");
                Step::Respond
            }
            Err(PathError::Malformed) => {
                req.response.set_text(400, "Bad Request\n");
                Step::Respond
            }
        }
    }

    fn finish(&mut self, req: &mut Request, result: Result<FileMeta, FileError>) {
        let meta = match result {
            Ok(meta) => meta,
            Err(FileError::NotFound) => return req.response.set_text(404, "Not Found\n"),
            Err(FileError::Directory) => return redirect_to_directory(req),
            Err(FileError::Forbidden | FileError::TooLarge) => return req.response.set_text(403, "Forbidden\n"),
            Err(FileError::TimedOut) => {
                req.response.set_text(503, "Service Unavailable\n");
                return req.response.headers.set("Retry-After", b"1");
            }
            Err(FileError::Io(_)) => return req.response.set_text(500, "Internal Server Error\n"),
        };
        let delivered = if req.response.file.is_some() { &self.counts.unread } else { &self.counts.read };
        delivered.fetch_add(1, Relaxed);
        self.date.clear();
        let _ = write!(self.date, "{}", httpdate::HttpDate::from(meta.modified));
        let response = &mut req.response;
        if http::not_modified(&req.http, meta.modified) {
            response.status = 304;
            response.body.clear();
            response.file = None;
            response.headers.set("Last-Modified", self.date.as_bytes());
        } else {
            response.status = 200;
            response.headers.set("Content-Type", http::content_type(served_name(req.http.path())).as_bytes());
            response.headers.set("Last-Modified", self.date.as_bytes());
            range::apply(req);
        }
    }
}

/// `301` to the directory's path with its trailing slash (where its `index.html` is served),
/// the query kept. Leading slashes are collapsed to one: `//host/` in a `Location` would name
/// another host.
fn redirect_to_directory(req: &mut Request) {
    let mut location = String::with_capacity(req.http.target().len() + 2);
    location.push('/');
    location.push_str(req.http.path().trim_start_matches('/'));
    location.push('/');
    if let Some(query) = req.http.query() {
        location.push('?');
        location.push_str(query);
    }
    req.response.set_text(301, "Moved Permanently\n");
    req.response.headers.set("Location", location.as_bytes());
}

/// The name whose extension gives the content type: a folder is served by its `index.html`.
fn served_name(path: &str) -> &str {
    if path.ends_with('/') {
        "index.html"
    } else {
        path
    }
}

impl StageFactory for StaticFile {
    fn outputs(&self) -> Outputs {
        Outputs::Single
    }

    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(self.clone())
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("files_read", self.counts.read.load(Relaxed)), ("files_unread", self.counts.unread.load(Relaxed))]
    }
}

impl Stage for StaticFile {
    fn handle(&mut self, req: &mut Request) -> Step {
        match &req.file {
            None => self.start(req),
            Some(read) => {
                let result = read.result.clone();
                self.finish(req, result);
                Step::Next(Output::NEXT)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use serde_json::json;

    use super::*;
    use crate::kinds::test_support::{header, http_request, temp_dir};
    use crate::FileRead;

    fn stage(root: &Path) -> StaticFile {
        StaticFile::new(serde_json::from_value(json!({ "root": root })).unwrap()).unwrap()
    }

    const MODIFIED: Duration = Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT

    /// What the engine's file thread does: the bytes into the body, the outcome into `req.file`.
    fn complete(req: &mut Request, result: Result<&[u8], FileError>) {
        req.response.body = result.map(<[u8]>::to_vec).unwrap_or_default();
        let result = result.map(|b| FileMeta { len: b.len() as u64, modified: UNIX_EPOCH + MODIFIED, path: None });
        req.file = Some(FileRead { result });
    }

    /// The read the first visit asks for.
    fn read_op(step: Step) -> FileOp {
        match step {
            Step::Io(IoOp::ReadFile(op), Output::SELF) => op,
            other => panic!("expected a file read, got {other:?}"),
        }
    }

    #[test]
    fn get_reads_the_file_then_answers_200_with_type_and_date() {
        let root = temp_dir("static-200");
        let mut s = stage(&root);
        let mut req = http_request("GET", "/docs/?lang=en", &[]);
        let op = read_op(s.handle(&mut req));
        assert_eq!(
            op,
            FileOp {
                relative: "docs/index.html".into(),
                root: root.canonicalize().unwrap().into(),
                max_bytes: 16 << 20,
                stream_over: 1 << 20,
                unread: false,
                read_timeout: Duration::from_secs(10),
            }
        );
        complete(&mut req, Ok(b"<p>hi</p>"));
        assert!(matches!(s.handle(&mut req), Step::Next(Output::NEXT)));
        assert_eq!(req.response.status, 200);
        assert_eq!(req.response.bytes(), b"<p>hi</p>");
        assert_eq!(header(&req, "Content-Type").as_deref(), Some("text/html; charset=utf-8"));
        assert_eq!(header(&req, "Last-Modified").as_deref(), Some("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(header(&req, "Accept-Ranges").as_deref(), Some("bytes"));
        assert_eq!(req.response.headers.len(), 3);
        assert!(req.file.is_some(), "left for a following file_cache");
    }

    #[test]
    fn if_modified_since_answers_304_with_no_body() {
        let mut s = stage(&temp_dir("static-304"));
        let mut req = http_request("GET", "/a.css", &[("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        read_op(s.handle(&mut req));
        complete(&mut req, Ok(b"body {}"));
        assert!(matches!(s.handle(&mut req), Step::Next(Output::NEXT)));
        assert_eq!(req.response.status, 304);
        assert!(req.response.bytes().is_empty());
        assert_eq!(header(&req, "Last-Modified").as_deref(), Some("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(header(&req, "Content-Type"), None);

        // Modified a second after the client's copy: the whole file.
        let mut req = http_request("GET", "/a.css", &[("If-Modified-Since", "Sun, 06 Nov 1994 08:49:36 GMT")]);
        read_op(s.handle(&mut req));
        complete(&mut req, Ok(b"body {}"));
        s.handle(&mut req);
        assert_eq!(req.response.status, 200);
        assert_eq!(header(&req, "Content-Type").as_deref(), Some("text/css; charset=utf-8"));
    }

    #[test]
    fn traversal_is_refused_403_without_a_read() {
        let mut s = stage(&temp_dir("static-traversal"));
        for target in ["/../etc/passwd", "/a/%2e%2e/%2e%2e/etc/passwd", "/a%2f..%2fb"] {
            let mut req = http_request("GET", target, &[]);
            assert!(matches!(s.handle(&mut req), Step::Respond), "{target}");
            assert_eq!(req.response.status, 403, "{target}");
        }
        let mut req = http_request("GET", "/a%zz", &[]);
        assert!(matches!(s.handle(&mut req), Step::Respond));
        assert_eq!(req.response.status, 400);
    }

    #[test]
    fn other_methods_are_405_with_allow() {
        let mut s = stage(&temp_dir("static-405"));
        let mut req = http_request("POST", "/a.txt", &[]);
        assert!(matches!(s.handle(&mut req), Step::Respond));
        assert_eq!(req.response.status, 405);
        assert_eq!(header(&req, "Allow").as_deref(), Some("GET, HEAD"));
        let mut req = http_request("HEAD", "/a.txt", &[]);
        assert!(read_op(s.handle(&mut req)).unread, "a HEAD does not read the file");
    }

    #[test]
    fn failed_reads_map_to_their_status() {
        let mut s = stage(&temp_dir("static-errors"));
        let cases = [
            (FileError::NotFound, 404),
            (FileError::Forbidden, 403),
            (FileError::TooLarge, 403),
            (FileError::TimedOut, 503),
            (FileError::Io(std::io::ErrorKind::Other), 500),
        ];
        for (error, status) in cases {
            let mut req = http_request("GET", "/x.bin", &[]);
            read_op(s.handle(&mut req));
            complete(&mut req, Err(error));
            assert!(matches!(s.handle(&mut req), Step::Next(Output::NEXT)));
            assert_eq!(req.response.status, status, "{error:?}");
            assert_eq!(header(&req, "Last-Modified"), None);
        }
    }

    #[test]
    fn a_directory_without_its_slash_is_redirected_with_the_slash() {
        let mut s = stage(&temp_dir("static-301"));
        for (target, location) in
            [("/docs", "/docs/"), ("//docs?x=1", "/docs/?x=1"), ("http://h/a%20b/c?", "/a%20b/c/?")]
        {
            let mut req = http_request("GET", target, &[]);
            read_op(s.handle(&mut req));
            complete(&mut req, Err(FileError::Directory));
            assert!(matches!(s.handle(&mut req), Step::Next(Output::NEXT)));
            assert_eq!(req.response.status, 301, "{target}");
            assert_eq!(header(&req, "Location").as_deref(), Some(location), "{target}");
        }
    }

    #[test]
    fn root_must_be_an_existing_directory() {
        let dir = temp_dir("static-root");
        let missing = dir.join("missing");
        let err = StaticFile::new(serde_json::from_value(json!({ "root": missing })).unwrap()).err().unwrap();
        let message = format!("root `{}`: No such file or directory (os error 2)", missing.display());
        assert_eq!(err, BuildError::bad("root", message));
        let file = dir.join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = StaticFile::new(serde_json::from_value(json!({ "root": file })).unwrap()).err().unwrap();
        assert_eq!(err, BuildError::bad("root", format!("root `{}` is not a directory", file.display())));
        let err =
            StaticFile::new(serde_json::from_value(json!({ "root": dir, "max_bytes": 0 })).unwrap()).err().unwrap();
        assert_eq!(err, BuildError::bad("max_bytes", "`max_bytes` must be at least 1"));
    }
}
