//! The built-in stage kinds, one file each, registered into a [`Registry`] by
//! [`Registry::builtin`] as a user's kinds are.

mod block;
mod chaos;
mod delay;
mod file_cache;
mod gzip;
mod hash;
mod http_route;
mod noop;
mod respond;
mod respond_static;
mod route;
mod send;
mod spin;
mod static_file;
#[cfg(test)]
pub(crate) mod test_support;

pub use gzip::accepts_gzip;

use std::sync::Arc;

use crate::registry::{Needs, Registry, StageKind};
use crate::{BuildError, StageFactory};

impl Registry {
    /// The built-in kinds, registered with the same call a user's kind goes through.
    pub fn builtin() -> Self {
        Registry::empty()
            .with_kind::<block::Block>("block")
            .with_kind::<chaos::Chaos>("chaos")
            .with_kind::<delay::Delay>("delay")
            .with_kind::<file_cache::FileCache>("file_cache")
            .with_kind::<gzip::Gzip>("gzip")
            .with_kind::<hash::Hash>("hash")
            .with_kind::<http_route::HttpRoute>("http_route")
            .with_kind::<noop::Noop>("noop")
            .with_kind::<respond::Respond>("respond")
            .with_kind::<respond_static::RespondStatic>("respond_static")
            .with_kind::<route::Route>("route")
            .with_kind::<send::SendResponse>("send")
            .with_kind::<spin::Spin>("spin")
            .with_kind::<static_file::StaticFile>("static_file")
    }
}

/// A built-in kind's factory, for the kinds' own tests.
#[cfg(test)]
pub(crate) fn build(kind: &str, params: &serde_json::Value) -> Result<Arc<dyn StageFactory>, BuildError> {
    Registry::builtin().build(kind, params)
}

impl StageKind for block::Block {
    type Params = block::Params;
    const DESCRIPTION: &'static str = "holds its worker for `micros`, as a blocking call would, then goes on";
    fn build(params: Self::Params) -> Result<Arc<dyn StageFactory>, BuildError> {
        Ok(Arc::new(block::Block::new(params)?))
    }
}

impl StageKind for chaos::Chaos {
    type Params = chaos::Params;
    const DESCRIPTION: &'static str = "fails or panics with set probabilities, reproducibly (fault tests)";
    fn build(params: Self::Params) -> Result<Arc<dyn StageFactory>, BuildError> {
        Ok(Arc::new(chaos::Chaos::new(params)?))
    }
}

impl StageKind for delay::Delay {
    type Params = delay::Params;
    const DESCRIPTION: &'static str = "waits `micros` on a timer, off the workers, then goes on";
    fn build(params: Self::Params) -> Result<Arc<dyn StageFactory>, BuildError> {
        Ok(Arc::new(delay::Delay::new(params)?))
    }
}

impl StageKind for file_cache::FileCache {
    type Params = file_cache::Params;
    const DESCRIPTION: &'static str = "file responses kept in memory by path, LRU; outputs `hit` and `miss`";
    const NEEDS: Needs = Needs::HttpRequest;
    fn build(params: Self::Params) -> Result<Arc<dyn StageFactory>, BuildError> {
        Ok(Arc::new(file_cache::FileCache::new(params)?))
    }
}

impl StageKind for gzip::Gzip {
    type Params = gzip::Params;
    const DESCRIPTION: &'static str = "compresses the response body when the client accepts gzip";
    fn build(params: Self::Params) -> Result<Arc<dyn StageFactory>, BuildError> {
        Ok(Arc::new(gzip::Gzip::new(params)?))
    }
}

impl StageKind for hash::Hash {
    type Params = hash::Params;
    const DESCRIPTION: &'static str = "SHA-256 of the payload, `rounds` times, into the response body";
    fn build(params: Self::Params) -> Result<Arc<dyn StageFactory>, BuildError> {
        Ok(Arc::new(hash::Hash::new(params)?))
    }
}

impl StageKind for http_route::HttpRoute {
    type Params = http_route::Params;
    const DESCRIPTION: &'static str = "sends an HTTP request to a named output by path prefix and method";
    const NEEDS: Needs = Needs::HttpRequest;
    fn build(params: Self::Params) -> Result<Arc<dyn StageFactory>, BuildError> {
        Ok(Arc::new(http_route::HttpRoute::new(params)?))
    }
}

impl StageKind for noop::Noop {
    type Params = noop::Params;
    const DESCRIPTION: &'static str = "passes the request on untouched (the unit of engine overhead)";
    fn build(params: Self::Params) -> Result<Arc<dyn StageFactory>, BuildError> {
        Ok(Arc::new(noop::Noop::new(params)))
    }
}

impl StageKind for respond::Respond {
    type Params = respond::Params;
    const DESCRIPTION: &'static str = "ends the request as completed, with a status and an optional fixed body";
    fn build(params: Self::Params) -> Result<Arc<dyn StageFactory>, BuildError> {
        Ok(Arc::new(respond::Respond::new(params)?))
    }
}

impl StageKind for respond_static::RespondStatic {
    type Params = respond_static::Params;
    const DESCRIPTION: &'static str = "a fixed response (status, body, content type): health checks, benchmarks";
    fn build(params: Self::Params) -> Result<Arc<dyn StageFactory>, BuildError> {
        Ok(Arc::new(respond_static::RespondStatic::new(params)?))
    }
}

impl StageKind for route::Route {
    type Params = route::Params;
    const DESCRIPTION: &'static str = "chooses a named output, by weight or by a request attribute";
    fn build(params: Self::Params) -> Result<Arc<dyn StageFactory>, BuildError> {
        Ok(Arc::new(route::Route::new(params)?))
    }
}

impl StageKind for send::SendResponse {
    type Params = send::Params;
    const DESCRIPTION: &'static str = "ends an HTTP request with the response earlier stages built";
    const NEEDS: Needs = Needs::HttpRequest;
    fn build(params: Self::Params) -> Result<Arc<dyn StageFactory>, BuildError> {
        Ok(Arc::new(send::SendResponse::new(params)))
    }
}

impl StageKind for spin::Spin {
    type Params = spin::Params;
    const DESCRIPTION: &'static str = "burns `micros` microseconds of CPU, standing in for compute";
    fn build(params: Self::Params) -> Result<Arc<dyn StageFactory>, BuildError> {
        Ok(Arc::new(spin::Spin::new(params)?))
    }
}

impl StageKind for static_file::StaticFile {
    type Params = static_file::Params;
    const DESCRIPTION: &'static str = "serves the file a GET or HEAD names under `root`, read off the workers";
    const NEEDS: Needs = Needs::HttpRequest;
    fn build(params: Self::Params) -> Result<Arc<dyn StageFactory>, BuildError> {
        Ok(Arc::new(static_file::StaticFile::new(params)?))
    }
}

/// Checks that `status` can end an HTTP exchange: 200-599. A 1xx status is informational, so a
/// client that gets one as the answer keeps waiting for the real one (RFC 9110 15.2).
pub(crate) fn final_status(status: u16) -> Result<u16, BuildError> {
    match status {
        200..=599 => Ok(status),
        100..=199 => Err(BuildError::bad(
            "status",
            format!("status {status} is informational (1xx), not a final answer: use 200-599"),
        )),
        _ => Err(BuildError::bad("status", format!("status {status} is not a final HTTP status (200-599)"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn unknown_kind_suggests_the_nearest() {
        let err = Registry::builtin().build("hsah", &Value::Null).err().unwrap();
        assert_eq!(err.to_string(), "unknown stage kind `hsah`; did you mean `hash`?");
        let err = Registry::builtin().build("zzzzzzzz", &Value::Null).err().unwrap();
        assert_eq!(err.to_string(), "unknown stage kind `zzzzzzzz`");
    }

    /// The params error of building `kind` from `params`, which must fail.
    fn bad_params(kind: &str, params: Value) -> BuildError {
        Registry::builtin().build(kind, &params).err().unwrap()
    }

    #[test]
    fn serde_errors_in_params_name_their_field() {
        assert_eq!(
            bad_params("noop", serde_json::json!({ "bogus": 1 })),
            BuildError::bad("bogus", "unknown field `bogus`, there are no fields")
        );
        assert_eq!(
            bad_params("hash", serde_json::json!({ "rounds": "four" })),
            BuildError::bad("rounds", "invalid type: string \"four\", expected u32")
        );
        assert_eq!(
            bad_params("route", serde_json::json!({ "weights": { "a": -1 } })),
            BuildError::bad("weights.a", "invalid value: integer `-1`, expected u32")
        );
    }

    #[test]
    fn serde_errors_about_the_params_as_a_whole_name_no_field() {
        assert_eq!(
            bad_params("spin", Value::Null),
            BuildError::BadParams { field: None, message: "missing field `micros`".into() }
        );
        assert_eq!(
            bad_params("hash", serde_json::json!("fast")),
            BuildError::BadParams {
                field: None,
                message: "invalid type: string \"fast\", expected struct Params".into()
            }
        );
    }
}
