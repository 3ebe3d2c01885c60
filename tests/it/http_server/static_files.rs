//! The static file stages behind the HTTP source, served from a temporary web root: what is not
//! a regular file, conditional and range requests, directories, files that change, large files
//! streamed rather than held, and gzip kept off the answers to small requests.

use std::io::{Read, Write};
use std::path::Path;

use super::*;
use crate::support::eventually;

both_placements!(
    a_fifo_is_refused_at_once_and_holds_no_file_thread,
    an_absolute_form_target_is_served_by_its_path,
    if_modified_since_is_304_only_for_the_files_own_time_and_never_a_future_one,
    a_directory_without_its_slash_is_redirected_301,
    head_answers_from_the_open_file_without_reading_it,
    single_byte_ranges_are_206_or_416_and_lists_are_answered_whole,
    a_changed_file_is_served_fresh_not_from_the_cache,
    large_files_are_streamed_from_the_file_not_read_whole_per_request,
    a_file_that_shrinks_while_it_is_streamed_ends_its_connection,
    gzip_of_a_large_file_is_declined_and_small_answers_go_on,
    a_files_gzip_form_is_made_once_per_version,
);

/// [`start`] with the plan built here, giving back the factory of stage `name` too, whose
/// counters say what its instances did.
fn start_counting(config: Value, name: &str) -> (Server, Arc<dyn StageFactory>) {
    let mut plan = plan(config);
    let factory = plan.stages[plan.stage(name).expect("the stage exists")].factory.clone();
    let gate = Arc::new(Gate::default());
    install(&mut plan, "wait", Arc::new(WaitFactory(gate.clone())));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let told = |at| {
            if let seda::run::Listening::Source(addr) = at {
                tx.send(addr).unwrap();
            }
        };
        seda::run::Runner::new(plan).stop_on(&flag).on_listening(told).run_to_end().expect("the server runs").summary
    });
    let addr = rx.recv_timeout(Duration::from_secs(30)).expect("the server listens");
    (Server { addr, admin: None, stop, thread, gate }, factory)
}

fn counter(factory: &Arc<dyn StageFactory>, name: &str) -> u64 {
    factory.counters().into_iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| v)
}

/// Makes a named pipe at `path`: opening it for reading blocks until a writer comes.
fn make_fifo(path: &Path) {
    let name = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: `name` is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0, "mkfifo {}", path.display());
}

fn a_fifo_is_refused_at_once_and_holds_no_file_thread(reactor: Reactor) {
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

fn an_absolute_form_target_is_served_by_its_path(reactor: Reactor) {
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

fn if_modified_since_is_304_only_for_the_files_own_time_and_never_a_future_one(reactor: Reactor) {
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

fn a_directory_without_its_slash_is_redirected_301(reactor: Reactor) {
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

fn head_answers_from_the_open_file_without_reading_it(reactor: Reactor) {
    let web = WebRoot::new("static-head");
    let (server, read) = start_counting(static_config(reactor, &web.root()), "read");
    let mut stream = connect(server.addr);
    let mut buf = Vec::new();
    for (path, length) in [("/index.html", "12"), ("/big.bin", "4194304")] {
        let head = exchange(&mut stream, &mut buf, &format!("HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
        assert_eq!((head.status, head.header("content-length")), (200, Some(length)), "{path}");
        assert!(head.header("last-modified").is_some() && head.header("content-type").is_some());
    }
    // The next request on the connection is framed right after the head: no body was sent.
    assert_eq!(exchange(&mut stream, &mut buf, &get("/index.html")).body, b"<h1>hi</h1>\n");
    assert_eq!((counter(&read, "files_read"), counter(&read, "files_unread")), (1, 2), "only the GET read");
    drop(stream);
    server.stop();
}

fn ranged(target: &str, range: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: t\r\nRange: {range}\r\n\r\n")
}

fn single_byte_ranges_are_206_or_416_and_lists_are_answered_whole(reactor: Reactor) {
    let web = WebRoot::new("static-range");
    let server = start(static_config(reactor, &web.root()));
    let mut stream = connect(server.addr);
    let mut buf = Vec::new();
    // A read (the first), then the same from the cache.
    for _ in 0..2 {
        let whole = exchange(&mut stream, &mut buf, &get("/index.html"));
        assert_eq!((whole.status, whole.header("accept-ranges")), (200, Some("bytes")));
        for (range, body, content_range) in [
            ("bytes=0-3", &b"<h1>"[..], "bytes 0-3/12"),
            ("bytes=4-", b"hi</h1>\n", "bytes 4-11/12"),
            ("bytes=-3", b"1>\n", "bytes 9-11/12"),
            ("bytes=10-99", b">\n", "bytes 10-11/12"),
        ] {
            let part = exchange(&mut stream, &mut buf, &ranged("/index.html", range));
            assert_eq!((part.status, part.body.as_slice()), (206, body), "{range}");
            assert_eq!(part.header("content-range"), Some(content_range), "{range}");
        }
        let unsatisfiable = exchange(&mut stream, &mut buf, &ranged("/index.html", "bytes=12-"));
        assert_eq!((unsatisfiable.status, unsatisfiable.header("content-range")), (416, Some("bytes */12")));
        let list = exchange(&mut stream, &mut buf, &ranged("/index.html", "bytes=0-1,3-4"));
        assert_eq!((list.status, list.body.as_slice()), (200, &b"<h1>hi</h1>\n"[..]));
    }
    // A large file, streamed: the part is read from the file at its offset.
    let all = big_body(4 * 1024 * 1024);
    let part = exchange(&mut stream, &mut buf, &ranged("/big.bin", "bytes=1000000-1999999"));
    assert_eq!((part.status, part.header("content-range")), (206, Some("bytes 1000000-1999999/4194304")));
    assert!(part.body == all[1_000_000..2_000_000], "the part's bytes");
    let tail = exchange(&mut stream, &mut buf, &ranged("/big.bin", "bytes=-10"));
    assert_eq!((tail.status, tail.body.as_slice()), (206, &all[all.len() - 10..]));
    let past = exchange(&mut stream, &mut buf, &ranged("/big.bin", "bytes=4194304-"));
    assert_eq!((past.status, past.header("content-range")), (416, Some("bytes */4194304")));
    drop(stream);
    server.stop();
}

fn a_changed_file_is_served_fresh_not_from_the_cache(reactor: Reactor) {
    let web = WebRoot::new("static-changed");
    let page = Path::new(&web.root()).join("page.txt");
    std::fs::write(&page, "one\n").unwrap();
    let (server, cache) = start_counting(static_config(reactor, &web.root()), "cache");
    let mut stream = connect(server.addr);
    let mut buf = Vec::new();
    for _ in 0..2 {
        assert_eq!(exchange(&mut stream, &mut buf, &get("/page.txt")).body, b"one\n");
    }
    assert_eq!(counter(&cache, "hits"), 1);
    // Another length.
    std::fs::write(&page, "changed\n").unwrap();
    assert_eq!(exchange(&mut stream, &mut buf, &get("/page.txt")).body, b"changed\n");
    // The same length, another modification time.
    std::fs::write(&page, "CHANGED\n").unwrap();
    let earlier = std::time::SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options().write(true).open(&page).unwrap().set_modified(earlier).unwrap();
    let response = exchange(&mut stream, &mut buf, &get("/page.txt"));
    assert_eq!(response.body, b"CHANGED\n");
    assert_eq!(response.header("last-modified"), Some(seda::stages::http::http_date(earlier).as_str()));
    assert_eq!(counter(&cache, "stale"), 2);
    // Unchanged since: a hit again.
    assert_eq!(exchange(&mut stream, &mut buf, &get("/page.txt")).body, b"CHANGED\n");
    assert_eq!(counter(&cache, "hits"), 2);
    drop(stream);
    server.stop();
}

fn large_files_are_streamed_from_the_file_not_read_whole_per_request(reactor: Reactor) {
    const CLIENTS: usize = 40;
    const SIZE: usize = 16 * 1024 * 1024;
    let web = WebRoot::new("static-stream");
    let huge = big_body(SIZE);
    std::fs::write(Path::new(&web.root()).join("huge.bin"), &huge).unwrap();
    let (server, read) = start_counting(static_config(reactor, &web.root()), "read");
    // Each asks by its own path (`//huge.bin`, `///huge.bin`, ...): every one a cache miss. None
    // reads its answer yet.
    let mut clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|i| {
            let mut stream = connect(server.addr);
            let path = format!("{}huge.bin", "/".repeat(i + 2));
            stream.write_all(get(&path).as_bytes()).unwrap();
            stream
        })
        .collect();
    eventually("every request for the large file to be answered", || counter(&read, "files_unread") == CLIENTS as u64);
    assert_eq!(counter(&read, "files_read"), 0, "no request read the file whole");
    // The server answers others meanwhile.
    let mut other = connect(server.addr);
    assert_eq!(exchange(&mut other, &mut Vec::new(), &get("/index.html")).status, 200);
    // And each slow client gets every byte once it reads.
    for stream in clients.iter_mut().take(2) {
        let response = read_response(stream, &mut Vec::new(), false);
        assert_eq!(response.status, 200);
        assert!(response.body == huge, "every byte in place");
    }
    drop((clients, other));
    let summary = server.stop();
    assert_eq!(summary.ledger.completed, CLIENTS as u64 + 1);
}

/// [`static_config`] with a `gzip` stage between a cache hit and the send.
fn gzip_config(reactor: Reactor, root: &str) -> Value {
    let mut config = static_config(reactor, root);
    config["stages"]["cache"]["next"]["hit"] = json!("zip");
    config["stages"]["zip"] = json!({ "kind": "gzip", "pool": "main", "next": "send" });
    config
}

fn gzip_get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n")
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

/// A text that compresses, `n` bytes long.
fn text(n: usize) -> Vec<u8> {
    b"the quick brown fox jumps over the lazy dog. ".iter().copied().cycle().take(n).collect()
}

fn gzip_of_a_large_file_is_declined_and_small_answers_go_on(reactor: Reactor) {
    const SIZE: usize = 16 * 1024 * 1024;
    let web = WebRoot::new("static-gzip-large");
    let root = Path::new(&web.root()).to_path_buf();
    std::fs::write(root.join("huge.txt"), text(SIZE)).unwrap();
    std::fs::write(root.join("small.txt"), text(1000)).unwrap();
    let (server, zip) = start_counting(gzip_config(reactor, &web.root()), "zip");
    // Four clients ask for the large file gzipped and do not read yet.
    let mut large: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut stream = connect(server.addr);
            stream.write_all(gzip_get("/huge.txt").as_bytes()).unwrap();
            stream
        })
        .collect();
    // A small file meanwhile: answered, and compressed.
    let mut small = connect(server.addr);
    let response = exchange(&mut small, &mut Vec::new(), &gzip_get("/small.txt"));
    assert_eq!((response.status, response.header("content-encoding")), (200, Some("gzip")));
    assert_eq!(gunzip(&response.body), text(1000));
    // The large ones come back whole and as they are: over the cap, not compressed.
    for stream in &mut large {
        let response = read_response(stream, &mut Vec::new(), false);
        assert_eq!((response.status, response.header("content-encoding")), (200, None));
        assert_eq!(response.header("vary"), Some("Accept-Encoding"));
        assert!(response.body.len() == SIZE && response.body == text(SIZE), "the file as it is");
    }
    assert_eq!(counter(&zip, "compressed"), 1, "only the small file was compressed");
    drop((large, small));
    server.stop();
}

fn a_files_gzip_form_is_made_once_per_version(reactor: Reactor) {
    let web = WebRoot::new("static-gzip-once");
    let page = Path::new(&web.root()).join("page.txt");
    std::fs::write(&page, text(200_000)).unwrap();
    let (server, zip) = start_counting(gzip_config(reactor, &web.root()), "zip");
    let mut stream = connect(server.addr);
    let mut buf = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..4 {
        let response = exchange(&mut stream, &mut buf, &gzip_get("/page.txt"));
        assert_eq!((response.status, response.header("content-encoding")), (200, Some("gzip")));
        bodies.push(response.body);
    }
    assert_eq!(gunzip(&bodies[0]), text(200_000));
    assert!(bodies.iter().all(|b| *b == bodies[0]));
    // Once: the cache stored the first read's body, and every answer shares that version.
    assert_eq!(counter(&zip, "compressed"), 1);
    // A new version of the file: compressed again, once.
    std::fs::write(&page, text(100_000)).unwrap();
    for _ in 0..3 {
        let response = exchange(&mut stream, &mut buf, &gzip_get("/page.txt"));
        assert_eq!(gunzip(&response.body), text(100_000));
    }
    assert_eq!(counter(&zip, "compressed"), 2);
    drop(stream);
    server.stop();
}

fn a_file_that_shrinks_while_it_is_streamed_ends_its_connection(reactor: Reactor) {
    const SIZE: usize = 16 * 1024 * 1024;
    let web = WebRoot::new("static-shrink");
    let path = Path::new(&web.root()).join("huge.bin");
    std::fs::write(&path, big_body(SIZE)).unwrap();
    let server = start(static_config(reactor, &web.root()));
    // A small receive buffer, so that most of the file is still to be read when it shrinks.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(get("/huge.bin").as_bytes()).unwrap();
    let mut first = [0u8; 1024];
    stream.read_exact(&mut first).unwrap();
    assert!(first.starts_with(b"HTTP/1.1 200 OK\r\n"));
    std::fs::File::options().write(true).open(&path).unwrap().set_len(100_000).unwrap();
    // The rest of the answer cannot be what its Content-Length said: the server closes
    // rather than send fewer bytes and leave the client waiting for the others.
    let rest = read_to_close(&mut stream);
    assert!(first.len() + rest.len() < SIZE, "closed short: {} bytes", first.len() + rest.len());
    // The server goes on.
    assert_eq!(exchange(&mut connect(server.addr), &mut Vec::new(), &get("/index.html")).status, 200);
    server.stop();
}
