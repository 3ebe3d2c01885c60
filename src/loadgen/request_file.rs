//! A request file (`--requests FILE`): many kinds of request, one JSON object a line, each
//! with its method, target, headers, body and weight, and a name the results are given under.
//!
//! ```text
//! {"name": "home", "path": "/", "weight": 8}
//! {"name": "order", "method": "POST", "url": "http://127.0.0.1:8080/api/orders", "headers": {"Content-Type": "application/json"}, "body": "{\"item\": 7}", "weight": 2}
//! {"name": "upload", "method": "PUT", "path": "/files/a", "body_file": "a.bin"}
//! ```
//!
//! Blank lines and lines starting with `#` are skipped. Every request goes to the target's
//! address: a `url` must name the target's host and port (its path is what is sent). A
//! `body_file` is read relative to the request file's folder. The file is read whole before the
//! run, so every error (with its line) comes before the first request.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use seda_stages::http::is_token_byte;

use super::mix::{RequestKind, MAX_BODY_BYTES};
use super::options::{parse_target, HttpTarget, Target};

/// The most kinds of request a file may hold: each has its own results, so its own histograms.
pub const MAX_KINDS: usize = 1000;

/// The longest request file read.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// One line as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    name: Option<String>,
    method: Option<String>,
    url: Option<String>,
    path: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
    body_file: Option<String>,
    weight: Option<u32>,
}

/// Reads and checks a request file; `target` is where every request goes (none in-process,
/// where only a `path` is taken, as the `path` attribute).
pub fn read(path: &Path, target: Option<&HttpTarget>) -> Result<Vec<RequestKind>, String> {
    let text = read_limited(path, MAX_FILE_BYTES)
        .map_err(|e| format!("cannot read the request file {}: {e}", path.display()))?;
    let text = String::from_utf8(text).map_err(|_| format!("request file {}: not UTF-8", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    parse(&text, dir, target).map_err(|e| format!("request file {}: {e}", path.display()))
}

/// Parses a request file's text; body files are read from `dir`.
pub fn parse(text: &str, dir: &Path, target: Option<&HttpTarget>) -> Result<Vec<RequestKind>, String> {
    let mut kinds: Vec<RequestKind> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let at = |why: String| format!("line {}: {why}", i + 1);
        if kinds.len() == MAX_KINDS {
            return Err(at(format!("more than {MAX_KINDS} requests")));
        }
        let line: Line = serde_json::from_str(trimmed).map_err(|e| at(e.to_string()))?;
        let kind = kind_of(line, dir, target).map_err(at)?;
        if kinds.iter().any(|k| k.name == kind.name) {
            return Err(at(format!("the name `{}` is taken by an earlier line", kind.name)));
        }
        kinds.push(kind);
    }
    if kinds.is_empty() {
        return Err("the file has no requests".into());
    }
    Ok(kinds)
}

fn kind_of(line: Line, dir: &Path, target: Option<&HttpTarget>) -> Result<RequestKind, String> {
    let method = line.method.unwrap_or_else(|| "GET".into());
    check_method(&method)?;
    let path = match (line.url, line.path) {
        (Some(_), Some(_)) => return Err("give `url` or `path`, not both".into()),
        (None, None) => return Err("no `url` or `path`".into()),
        (None, Some(path)) => path,
        (Some(url), None) => match (parse_target(&url)?, target) {
            (Target::Http(u), Some(t)) if u.host == t.host && u.port == t.port && u.tls == t.tls => u.path,
            (Target::Http(_), Some(t)) => {
                return Err(format!("`{url}` is not on the target {} (every request goes there)", t.origin()))
            }
            (Target::Http(u), None) => u.path,
            (Target::Pipeline(_), _) => return Err(format!("`{url}` is not a URL")),
        },
    };
    check_path(&path)?;
    let headers: Vec<(String, String)> = line.headers.into_iter().collect();
    for (name, value) in &headers {
        check_header(name, value)?;
    }
    let body = match (line.body, line.body_file) {
        (Some(_), Some(_)) => return Err("give `body` or `body_file`, not both".into()),
        (Some(body), None) if body.len() > MAX_BODY_BYTES => {
            return Err(format!("the body is longer than {MAX_BODY_BYTES} bytes"))
        }
        (Some(body), None) => body.into_bytes(),
        (None, Some(file)) => read_body(&dir.join(file))?,
        (None, None) => Vec::new(),
    };
    let weight = match line.weight {
        Some(0) => return Err("`weight` must be at least 1".into()),
        Some(w) => w,
        None => 1,
    };
    let mut kind = RequestKind::new(&method, &path, body, weight);
    if let Some(name) = line.name {
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            return Err(format!("the name {name:?} must be 1 to 100 characters, none a control character"));
        }
        kind.name = name;
    }
    kind.headers = headers;
    Ok(kind)
}

/// A body from a file, at most [`MAX_BODY_BYTES`].
pub fn read_body(path: &Path) -> Result<Vec<u8>, String> {
    read_limited(path, MAX_BODY_BYTES as u64).map_err(|e| format!("cannot read the body file {}: {e}", path.display()))
}

/// A file's bytes, or an error if it is longer than `limit`.
fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!("longer than {limit} bytes")));
    }
    Ok(bytes)
}

/// A method is a token: `GET`, `POST`, `PURGE`.
pub fn check_method(method: &str) -> Result<(), String> {
    if method.is_empty() || method.len() > 32 || !method.bytes().all(is_token_byte) {
        return Err(format!("`{method}` is not a method (a token such as GET or POST)"));
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), String> {
    if !(path.starts_with('/') || path == "*") {
        return Err(format!("path `{path}` does not start with /"));
    }
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("path {path:?} has spaces or control characters"));
    }
    Ok(())
}

/// A header seda load may send: a token name, a value without line breaks or NUL, and not one
/// that frames the body (seda load sets `Content-Length` from the body itself).
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(format!("`{name}` is not a header name"));
    }
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!("the value of header `{name}` has a line break or NUL"));
    }
    if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding") {
        return Err(format!("header `{name}` is set by seda load from the body"));
    }
    Ok(())
}

/// `Name: value`, as `-H` takes it.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s.split_once(':').ok_or_else(|| format!("`{s}` is not `Name: value`"))?;
    let (name, value) = (name.trim(), value.trim());
    check_header(name, value)?;
    Ok((name.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> HttpTarget {
        match parse_target("http://127.0.0.1:8080/").unwrap() {
            Target::Http(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lines_become_named_weighted_requests() {
        let dir = std::env::temp_dir().join(format!("seda-request-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("b.bin"), b"\x00\x01body").unwrap();
        let text = r#"
# comment
{"name": "home", "path": "/", "weight": 8}
{"method": "POST", "url": "http://127.0.0.1:8080/api?x=1", "headers": {"X-B": "2", "A": "1"}, "body": "{}", "weight": 2}
{"name": "up", "method": "PUT", "path": "/f", "body_file": "b.bin"}
"#;
        let kinds = parse(text, &dir, Some(&target())).unwrap();
        let names: Vec<&str> = kinds.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["home", "POST /api?x=1", "up"]);
        assert_eq!((kinds[0].weight, kinds[1].weight, kinds[2].weight), (8, 2, 1));
        assert_eq!(kinds[1].headers, [("A".to_string(), "1".to_string()), ("X-B".to_string(), "2".to_string())]);
        assert_eq!((kinds[1].body.as_slice(), kinds[2].body.as_slice()), (&b"{}"[..], &b"\x00\x01body"[..]));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_lines_say_which_and_why() {
        let err = |text: &str| parse(text, Path::new("."), Some(&target())).unwrap_err();
        assert!(err(r#"{"path": "/", "colour": 1}"#).starts_with("line 1: unknown field `colour`"));
        assert_eq!(
            err("\n{\"url\": \"http://other:8080/\"}"),
            "line 2: `http://other:8080/` is not on the target http://127.0.0.1:8080 (every request goes there)"
        );
        assert!(err(r#"{"path": "/", "headers": {"Content-Length": "5"}}"#).contains("set by seda load from the body"));
        assert!(err(r#"{"path": "/", "headers": {"X": "a\r\nEvil: 1"}}"#).contains("line break"));
        assert!(err(r#"{"path": "/", "method": "G T"}"#).contains("is not a method"));
        assert!(err(r#"{"path": "/", "weight": 0}"#).contains("at least 1"));
        assert!(err(r#"{"path": "x"}"#).contains("does not start with /"));
        assert!(err(r#"{"path": "/", "body_file": "/nonexistent/b"}"#).contains("cannot read the body file"));
        assert!(err("{\"name\": \"a\", \"path\": \"/\"}\n{\"name\": \"a\", \"path\": \"/b\"}").contains("`a` is taken"));
        assert_eq!(err("# nothing\n"), "the file has no requests");
    }

    #[test]
    fn a_header_argument_is_a_name_and_a_value() {
        assert_eq!(parse_header("X-Token:  abc: d ").unwrap(), ("X-Token".to_string(), "abc: d".to_string()));
        assert!(parse_header("no colon").unwrap_err().contains("is not `Name: value`"));
        assert!(parse_header("Bad Name: x").unwrap_err().contains("is not a header name"));
    }
}
