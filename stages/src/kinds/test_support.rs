//! Helpers for the HTTP kinds' tests: requests as an HTTP source frames them.

use crate::http::Version;
use crate::Request;

/// A request `method target` with the given header fields, as the HTTP source admits it.
pub fn http_request(method: &str, target: &str, headers: &[(&str, &str)]) -> Request {
    let mut req = Request::default();
    req.http.set_line(method, target, Version::Http11);
    for (name, value) in headers {
        req.http.push_header(name, value.as_bytes());
    }
    req
}

/// A response header as text, for assertions.
pub fn header(req: &Request, name: &str) -> Option<String> {
    req.response.headers.get(name).map(|v| String::from_utf8(v.to_vec()).unwrap())
}

/// A fresh directory under the system temp dir, unique to this process and `name`.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("seda-stages-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
