//! The request header parsers of the HTTP stages on arbitrary values: `Accept-Encoding`
//! (`gzip`'s choice) and `If-Modified-Since` (`static_file` and `file_cache`'s 304).
//!
//! `Range` has no parser yet (issue 11, defect 10 adds byte ranges): add it here when it lands.
//!
//! Checked: neither panics. `Accept-Encoding`: an `identity` listed in front changes nothing
//! (it names neither gzip nor `*`). `If-Modified-Since`: the file's own time, as an HTTP date,
//! is "not modified", whatever (past) time the first 8 bytes make it.

#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use seda_stages::fuzzing::accepts_gzip;
use seda_stages::http::{http_date, not_modified, HttpRequest, Version};

fuzz_target!(|data: &[u8]| {
    let gzip = accepts_gzip(data);
    let mut with_identity = b"identity, ".to_vec();
    with_identity.extend_from_slice(data);
    assert_eq!(accepts_gzip(&with_identity), gzip, "identity in front changed the choice");

    // A file time between 1970 and now, from the input: a date in the future is ignored (RFC 9110
    // 13.1.3), so a file time past now would not be "not modified" even as its own date.
    let now = std::time::SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_secs().max(1));
    let seconds = data.iter().take(8).fold(0u64, |n, &b| n << 8 | u64::from(b)) % now;
    let modified = UNIX_EPOCH + Duration::from_secs(seconds);
    let mut request = HttpRequest::default();
    request.set_line("GET", "/", Version::Http11);
    request.push_header("If-Modified-Since", data);
    let _ = not_modified(&request, modified);

    request.clear();
    request.set_line("GET", "/", Version::Http11);
    request.push_header("If-Modified-Since", http_date(modified).as_bytes());
    assert!(not_modified(&request, modified), "its own time, {}", http_date(modified));
});
