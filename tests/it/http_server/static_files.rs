//! The static file stages behind the HTTP source, served from a temporary web root: what is not
//! a regular file, conditional and range requests, directories, files that change, large files
//! streamed rather than held, and gzip kept off the answers to small requests.

use std::io::Write;
use std::path::Path;

use super::*;

both_placements!(a_fifo_is_refused_at_once_and_holds_no_file_thread);

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
