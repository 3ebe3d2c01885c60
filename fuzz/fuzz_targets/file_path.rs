//! Percent-decoding and path resolution for static files (`seda_stages::http::file_path`) on
//! arbitrary request paths.
//!
//! Checked: it never panics; a path it accepts is relative and made only of plain names (no
//! `..`, no root, no `.`), none holding a NUL, `/` or `\`, so joined to a root it stays under
//! it; and a name percent-encoded byte by byte comes back as that name.

#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use seda_stages::http::file_path;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else { return };
    if let Ok(relative) = file_path(path) {
        assert!(relative.is_relative(), "{path:?} gave {relative:?}");
        for component in relative.components() {
            let Component::Normal(name) = component else { panic!("{path:?} gave {relative:?}") };
            let name = name.to_str().expect("decoded from UTF-8 and checked");
            assert!(!name.contains(['\0', '/', '\\']) && name != "..", "{path:?} gave {relative:?}");
        }
        let root = Path::new("/srv/www");
        assert!(root.join(&relative).starts_with(root), "{path:?} gave {relative:?}");
    }

    // The input as one name, every byte percent-encoded: it decodes back to itself, or is
    // refused if it could climb out of the root.
    let encoded: String = std::iter::once("/".to_string()).chain(data.iter().map(|b| format!("%{b:02X}"))).collect();
    match file_path(&encoded) {
        Ok(relative) if !path.is_empty() && path != "." => assert_eq!(relative, Path::new(path), "{encoded}"),
        Ok(relative) => assert_eq!(relative, Path::new("index.html")),
        Err(_) => assert!(path == ".." || path.contains(['\0', '/', '\\']), "{encoded} refused"),
    }
});
