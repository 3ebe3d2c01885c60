//! The static file stages behind the HTTP source, served from a temporary web root: what is not
//! a regular file, conditional and range requests, directories, files that change, large files
//! streamed rather than held, and gzip kept off the answers to small requests.

use std::io::Write;
use std::path::Path;

use super::*;

both_placements!(
    a_fifo_is_refused_at_once_and_holds_no_file_thread,
    an_absolute_form_target_is_served_by_its_path,
    if_modified_since_is_304_only_for_the_files_own_time_and_never_a_future_one,
    a_directory_without_its_slash_is_redirected_301,
);

/// Makes a named pipe at `path`: opening it for reading blocks until a writer comes.
fn make_fifo(path: &Path) {
    let name = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: `name` is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0, "mkfifo {}", path.display());
}

fn a_fifo_is_refused_at_once_and_holds_no_file_thread(reactor: &str) {
    let web = WebRoot::new("static-fifo");
    make_fifo(&Path::new(&web.root()).join("fifo"));
    let server = start(static_config(reactor, &web.root()));
    // As many requests for the FIFO as there are file threads (2): each would have held one.
    let mut fifos: Vec<TcpStream> = (0..2).map(|_| connect(server.addr)).collect();
    for stream in &mut fifos {
        stream.write_all(get("/fifo").as_bytes()).unwrap();
    }
    for stream in &mut fifos {
        let response = read_response(stream, &mut Vec::new(), false);
        assert_eq!(response.status, 403, "anything but a regular file is refused");
    }
    // A later cache miss still finds a file thread.
    let mut stream = connect(server.addr);
    let response = exchange(&mut stream, &mut Vec::new(), &get("/index.html"));
    assert_eq!((response.status, response.body.as_slice()), (200, &b"<h1>hi</h1>\n"[..]));
    drop((fifos, stream));
    let summary = server.stop();
    assert_eq!(summary.ledger.completed, 3);
}

fn an_absolute_form_target_is_served_by_its_path(reactor: &str) {
    let web = WebRoot::new("static-absolute");
    let server = start(static_config(reactor, &web.root()));
    let mut stream = connect(server.addr);
    let mut buf = Vec::new();
    // Twice each: once read, once from the cache (keyed by the path, not the whole target).
    for target in ["http://t/index.html", "http://t/index.html?v=2", "HTTP://t", "/index.html"] {
        let response = exchange(&mut stream, &mut buf, &get(target));
        assert_eq!((response.status, response.body.as_slice()), (200, &b"<h1>hi</h1>\n"[..]), "{target}");
    }
    drop(stream);
    assert_eq!(server.stop().ledger.completed, 4);
}

fn conditional(target: &str, since: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: {since}\r\n\r\n")
}

fn if_modified_since_is_304_only_for_the_files_own_time_and_never_a_future_one(reactor: &str) {
    let web = WebRoot::new("static-ims");
    let root = Path::new(&web.root()).to_path_buf();
    let hour = Duration::from_secs(3600);
    let set_modified = |name: &str, time: std::time::SystemTime| {
        std::fs::File::options().write(true).open(root.join(name)).unwrap().set_modified(time).unwrap();
    };
    let past = std::time::SystemTime::now() - 24 * hour;
    set_modified("index.html", past);
    std::fs::write(root.join("future.html"), "<p>later</p>\n").unwrap();
    set_modified("future.html", std::time::SystemTime::now() + 24 * hour);
    let date = |t| seda::stages::http::http_date(t);

    let server = start(static_config(reactor, &web.root()));
    let mut stream = connect(server.addr);
    let mut buf = Vec::new();
    // Each asked twice: the first is a read, the second a cache hit; both must agree.
    for _ in 0..2 {
        assert_eq!(exchange(&mut stream, &mut buf, &conditional("/index.html", &date(past))).status, 304);
        // An hour after the file's time, and still in the past: not a date this server sent.
        let later = exchange(&mut stream, &mut buf, &conditional("/index.html", &date(past + hour)));
        assert_eq!((later.status, later.body.as_slice()), (200, &b"<h1>hi</h1>\n"[..]));
        // The file's own time, but in the future: an invalid date, ignored.
        let future = std::time::SystemTime::now() + 24 * hour;
        let response = exchange(&mut stream, &mut buf, &conditional("/future.html", &date(future)));
        assert_eq!((response.status, response.body.as_slice()), (200, &b"<p>later</p>\n"[..]));
    }
    drop(stream);
    server.stop();
}

fn a_directory_without_its_slash_is_redirected_301(reactor: &str) {
    let web = WebRoot::new("static-dir");
    let docs = Path::new(&web.root()).join("docs");
    std::fs::create_dir(&docs).unwrap();
    std::fs::write(docs.join("index.html"), "<p>docs</p>\n").unwrap();
    let server = start(static_config(reactor, &web.root()));
    let mut stream = connect(server.addr);
    let mut buf = Vec::new();
    for (target, location) in [("/docs", "/docs/"), ("/docs?page=2", "/docs/?page=2"), ("//docs", "/docs/")] {
        let response = exchange(&mut stream, &mut buf, &get(target));
        assert_eq!(response.status, 301, "{target}");
        assert_eq!(response.header("location"), Some(location), "{target}");
    }
    let response = exchange(&mut stream, &mut buf, &get("/docs/"));
    assert_eq!((response.status, response.body.as_slice()), (200, &b"<p>docs</p>\n"[..]));
    drop(stream);
    server.stop();
}
