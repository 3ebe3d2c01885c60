//! Panics in stage handlers are caught and counted as failures; this keeps them from also
//! printing a backtrace per request.

use std::sync::Once;

/// The prefix of every worker thread's name.
pub(crate) const WORKER_THREAD_PREFIX: &str = "seda-w";

/// Installs (once) a panic hook that stays silent for panics on worker threads, where the
/// engine catches them and records them as failed requests, and defers to the previous hook
/// everywhere else.
pub fn quiet_worker_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let on_worker = std::thread::current().name().is_some_and(|n| n.starts_with(WORKER_THREAD_PREFIX));
            if !on_worker {
                previous(info);
            }
        }));
    });
}

/// The message of a caught panic: `panic: ` and what it said, or `panic`. The failures of a
/// run are told apart from panics by this form ([`is_panic`]).
pub(crate) fn message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("{PANIC}: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("{PANIC}: {s}")
    } else {
        PANIC.to_string()
    }
}

const PANIC: &str = "panic";

/// Whether a failure's message is that of a caught panic (see [`message`]). The stage kinds
/// never fail a request with such a message themselves.
pub fn is_panic(message: &str) -> bool {
    message.strip_prefix(PANIC).is_some_and(|rest| rest.is_empty() || rest.starts_with(": "))
}
