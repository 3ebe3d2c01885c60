//! The one tokio runtime every NATS client of the process runs on: one thread, `seda-nats`,
//! started on first use and kept for the process's life. The engine's threads never block on
//! it: they spawn a task (a request, a reply to publish) and return.

use std::sync::OnceLock;
use std::time::Duration;

use async_nats::{Client, ConnectOptions};
use tokio::runtime::{Builder, Runtime};

/// The module's runtime.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("seda-nats")
            .enable_all()
            .build()
            .expect("the NATS runtime's thread starts")
    })
}

/// A client of `server`, named `name` in the server's monitoring. It connects in the background
/// and keeps reconnecting, so a host may start before its server does: until it is connected,
/// requests wait (up to their timeout) and subscriptions are made once it is.
pub fn connect(server: &str, name: &str) -> Result<Client, String> {
    let options = ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        // Each request says its own timeout.
        .request_timeout(None);
    runtime().block_on(options.connect(server)).map_err(|e| format!("NATS server `{server}`: {e}"))
}

/// A JetStream context on `client`, made on the module's runtime (it starts a task of its own).
pub fn jetstream(client: Client) -> async_nats::jetstream::Context {
    let _on_runtime = runtime().enter();
    async_nats::jetstream::new(client)
}
