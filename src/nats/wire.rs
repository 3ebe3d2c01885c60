//! What a `nats` source and a `nats_request` stage say to each other beyond the payload: the
//! answer's status, and a failed request's reason. Everything read off the network is checked
//! here before it reaches a request.

use async_nats::HeaderMap;
use seda_stages::Request;

/// The status a pipeline answered with (an HTTP status: 200, 404, 503, ...).
pub const STATUS: &str = "Seda-Status";
/// Set when the worker's pipeline did not complete the request: why.
pub const ERROR: &str = "Seda-Error";
/// The answer's content type, when the worker's pipeline gave one.
pub const CONTENT_TYPE: &str = "Content-Type";

/// Headers a message may bring into a request's attributes, at most.
pub const MAX_ATTRS: usize = 32;
/// An attribute's name, and its value, at most (bytes).
pub const MAX_ATTR_NAME: usize = 64;
pub const MAX_ATTR_VALUE: usize = 1_024;
/// A failure's reason, at most (bytes): the rest is cut.
pub const MAX_ERROR: usize = 256;

/// What a worker's reply says, checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// A seda worker's answer: its status, and content type if any.
    Response { status: u16, content_type: Option<String> },
    /// A seda worker's pipeline failed, rejected or timed out the request.
    Failed { status: u16, reason: String },
    /// A reply from a service that is not seda (no status): the payload alone.
    Plain,
}

/// Reads a reply's headers. A status that is not a number from 100 to 599 is a failure.
pub fn read_answer(headers: Option<&HeaderMap>) -> Answer {
    let Some(headers) = headers else { return Answer::Plain };
    let Some(status) = headers.get(STATUS) else { return Answer::Plain };
    let status = match status.as_str().trim().parse::<u16>() {
        Ok(status) if (100..600).contains(&status) => status,
        _ => return Answer::Failed { status: 502, reason: "nats reply: a bad Seda-Status".into() },
    };
    if let Some(reason) = headers.get(ERROR) {
        return Answer::Failed { status, reason: cut(reason.as_str(), MAX_ERROR) };
    }
    let content_type = headers.get(CONTENT_TYPE).map(|v| cut(v.as_str(), MAX_ATTR_VALUE));
    Answer::Response { status, content_type }
}

/// Sets a message's headers as the request's attributes: the first [`MAX_ATTRS`] whose name
/// and value fit the bounds; the rest are left out (and so are the protocol's own).
pub fn headers_to_attrs(headers: Option<&HeaderMap>, req: &mut Request) {
    let Some(headers) = headers else { return };
    let mut taken = 0;
    for (name, values) in headers.iter() {
        let name: &str = name.as_ref();
        let Some(value) = values.first() else { continue };
        let value = value.as_str();
        if taken == MAX_ATTRS || name.len() > MAX_ATTR_NAME || value.len() > MAX_ATTR_VALUE || name == STATUS {
            continue;
        }
        req.attrs.set(name.into(), value.into());
        taken += 1;
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
pub fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, *value);
        }
        map
    }

    #[test]
    fn answers_are_read_and_checked() {
        assert_eq!(read_answer(None), Answer::Plain);
        assert_eq!(
            read_answer(Some(&headers(&[(STATUS, "201"), (CONTENT_TYPE, "text/plain")]))),
            Answer::Response { status: 201, content_type: Some("text/plain".into()) }
        );
        assert_eq!(
            read_answer(Some(&headers(&[(STATUS, "503"), (ERROR, "rejected: queue full")]))),
            Answer::Failed { status: 503, reason: "rejected: queue full".into() }
        );
        for bad in ["99", "600", "x", ""] {
            assert_eq!(
                read_answer(Some(&headers(&[(STATUS, bad)]))),
                Answer::Failed { status: 502, reason: "nats reply: a bad Seda-Status".into() },
                "{bad}"
            );
        }
        let long = "é".repeat(MAX_ERROR);
        let Answer::Failed { reason, .. } = read_answer(Some(&headers(&[(STATUS, "500"), (ERROR, &long)]))) else {
            panic!()
        };
        assert_eq!(reason.len(), MAX_ERROR);
    }

    #[test]
    fn only_bounded_headers_become_attributes() {
        let mut map = headers(&[("tier", "gold"), (STATUS, "200")]);
        map.insert("x".repeat(MAX_ATTR_NAME + 1).as_str(), "v");
        map.insert("big", "v".repeat(MAX_ATTR_VALUE + 1));
        for i in 0..2 * MAX_ATTRS {
            map.insert(format!("h{i}").as_str(), "1");
        }
        let mut req = Request::default();
        headers_to_attrs(Some(&map), &mut req);
        assert_eq!(req.attrs.len(), MAX_ATTRS);
        assert_eq!(req.attrs.get("big"), None);
        assert_eq!(req.attrs.get(STATUS), None);
    }
}
