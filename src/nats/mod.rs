//! NATS: a pipeline's stages spread over hosts, on a proven messaging system rather than a
//! protocol of our own.
//!
//! - [`request`]: the `nats_request` stage kind. It sends the request's payload (and chosen
//!   attributes as headers) to a subject and waits for the reply as an operation of the
//!   completion layer ([`seda_stages::AsyncOp`]): no worker waits.
//! - [`service`]: the `nats` source. It serves a subject in a queue group, so that N hosts share
//!   its messages; each message is a request, and the pipeline's answer goes to its reply
//!   subject. Stopping drains: unsubscribe, finish what was taken, then exit.
//! - [`jetstream`]: the `jetstream` source, durable work: a durable pull consumer whose
//!   messages are acknowledged only when their requests complete, redelivered when they fail,
//!   dead-lettered after `max_deliver` deliveries.
//! - [`publish`]: the `jetstream_publish` stage kind, which continues once the stream has stored
//!   the message, deduplicated by its message id.
//! - [`wire`]: what the two say to each other beyond the payload (the answer's status, a
//!   failure's reason), and the checks on what comes off the network.
//! - [`client`]: the one small tokio runtime (one thread) every NATS client of the process
//!   runs on; the engine's threads only hand it work.

pub mod client;
pub mod jetstream;
pub mod publish;
pub mod request;
pub mod service;
pub mod wire;

pub use jetstream::JetStreamSource;
pub use publish::{JetStreamPublish, JetStreamPublishParams};
pub use request::{NatsRequest, NatsRequestParams};
pub use service::NatsSource;

use seda_stages::Registry;

/// `registry` with the NATS stage kinds (`nats_request`, `jetstream_publish`) added, unless it
/// has them already.
pub fn register(mut registry: Registry) -> Registry {
    if registry.kind("nats_request").is_none() {
        registry = registry.with_kind::<NatsRequest>("nats_request");
    }
    if registry.kind("jetstream_publish").is_none() {
        registry = registry.with_kind::<JetStreamPublish>("jetstream_publish");
    }
    registry
}

/// The server a config names when it names none: one on this host.
pub(crate) fn default_server() -> String {
    "nats://127.0.0.1:4222".into()
}

/// Checks a server URL as a config gives it: `nats://host:port` (or `host:port`).
pub(crate) fn check_server(server: &str) -> Result<(), String> {
    let rest = server.strip_prefix("nats://").unwrap_or(server);
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| format!("`{server}` names no port"))?;
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return Err(format!("`{server}` is not a NATS server URL"));
    }
    port.parse::<u16>().map_err(|_| format!("`{server}` has no valid port"))?;
    Ok(())
}

/// Checks a subject (or, with `wildcards` false, a queue group's name): dot-separated tokens of
/// printable characters other than whitespace; `*` for one token and a final `>` for the rest
/// where wildcards are allowed.
pub(crate) fn check_subject(subject: &str, wildcards: bool) -> Result<(), String> {
    const MAX: usize = 256;
    if subject.is_empty() || subject.len() > MAX {
        return Err(format!("must be 1 to {MAX} bytes, not {}", subject.len()));
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{subject}` has whitespace or control characters"));
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return Err(format!("`{subject}` has an empty token"));
        }
        let wild = *token == "*" || (*token == ">" && i == tokens.len() - 1);
        if token.contains(['*', '>']) && !(wildcards && wild) {
            return Err(format!("`{subject}` has a wildcard where none is allowed"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_servers_are_checked() {
        assert_eq!(check_subject("work.hash", true), Ok(()));
        assert_eq!(check_subject("work.*.x.>", true), Ok(()));
        assert!(check_subject("work.>.x", true).is_err());
        assert!(check_subject("work.*", false).is_err());
        assert!(check_subject("a..b", true).is_err());
        assert!(check_subject("a b", true).is_err());
        assert!(check_subject("", true).is_err());
        assert_eq!(check_server("nats://127.0.0.1:4222"), Ok(()));
        assert_eq!(check_server("10.0.0.1:4222"), Ok(()));
        assert!(check_server("nats://127.0.0.1").is_err());
        assert!(check_server("nats://:4222").is_err());
        assert!(check_server("nats://h:99999").is_err());
    }
}
