//! `http_route`: sends an HTTP request to a named output by path prefix and method, as a web
//! server's location blocks do.
//!
//! `{"routes": [{"prefix": "/static/", "methods": ["GET", "HEAD"], "output": "files"}, ...]}`
//!
//! 1. The **longest** prefix the request path starts with picks the routes, so the order of the
//!    routes in the config does not matter between prefixes. A prefix is a plain string prefix
//!    of the path as sent (before any `?query`, still percent-encoded): `/api` also matches
//!    `/apis`; end it with `/` to match a folder only.
//! 2. Among the routes with that prefix, the one that allows the method wins (no `methods`: any
//!    method). Two routes with the same prefix may not allow the same method.
//! 3. The stage answers by itself when no route takes the request: `404` when no prefix
//!    matches; `405` with `Allow` when the prefix matches but not the method, or `501` when the
//!    method is not one HTTP defines.
//!
//! Its outputs are the routes' output names, each once, in the order they first appear.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::closest;
use crate::{BuildError, Output, Outputs, Request, Stage, StageFactory, Step};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    routes: Vec<RouteParams>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteParams {
    prefix: String,
    /// Absent: any method.
    methods: Option<Vec<String>>,
    output: String,
}

/// The methods HTTP defines (RFC 9110 §9, and PATCH); a route's methods are a bit set over them.
const METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

/// The bit of any method not in [`METHODS`]; only a route without `methods` has it.
const OTHER: u16 = 1 << 15;

/// A route without `methods`.
const ANY: u16 = u16::MAX;

fn method_bit(method: &str) -> u16 {
    METHODS.iter().position(|&m| m == method).map_or(OTHER, |i| 1 << i)
}

#[derive(Clone)]
pub struct HttpRoute {
    names: Vec<String>,
    /// By prefix length, longest first: the first group whose prefix matches is the longest.
    groups: Vec<Group>,
}

/// The routes sharing one prefix.
#[derive(Clone)]
struct Group {
    prefix: Box<str>,
    /// (methods, output), at most one route per method.
    routes: Vec<(u16, Output)>,
    /// The `Allow` value of a `405`: the methods of all the group's routes.
    allow: Box<[u8]>,
}

impl HttpRoute {
    pub fn new(params: Params) -> Result<Self, BuildError> {
        if params.routes.is_empty() {
            return Err(BuildError::bad("routes", "`routes` has no route"));
        }
        let mut names: Vec<String> = Vec::new();
        let mut groups: Vec<Group> = Vec::new();
        for (i, route) in params.routes.iter().enumerate() {
            let at = |field: &str| format!("routes[{i}].{field}");
            if !route.prefix.starts_with('/') {
                return Err(BuildError::bad(at("prefix"), format!("prefix `{}` must start with `/`", route.prefix)));
            }
            if route.output.is_empty() {
                return Err(BuildError::bad(at("output"), "`output` must name an output"));
            }
            let methods = match &route.methods {
                None => ANY,
                Some(methods) => method_set(methods, &at("methods"))?,
            };
            let output = match names.iter().position(|n| *n == route.output) {
                Some(index) => Output(index as u16),
                None => {
                    names.push(route.output.clone());
                    Output(names.len() as u16 - 1)
                }
            };
            match groups.iter_mut().find(|g| *g.prefix == *route.prefix) {
                Some(group) => {
                    if let Some(&(earlier, _)) = group.routes.iter().find(|(m, _)| m & methods != 0) {
                        let shared = describe(earlier & methods);
                        return Err(BuildError::bad(
                            at("methods"),
                            format!("prefix `{}` already routes {shared} elsewhere", route.prefix),
                        ));
                    }
                    group.routes.push((methods, output));
                }
                None => groups.push(Group {
                    prefix: route.prefix.as_str().into(),
                    routes: vec![(methods, output)],
                    allow: [].into(),
                }),
            }
        }
        for group in &mut groups {
            let all = group.routes.iter().fold(0, |acc, (m, _)| acc | m);
            group.allow = describe(all).into_bytes().into();
        }
        groups.sort_by_key(|g| std::cmp::Reverse(g.prefix.len()));
        Ok(HttpRoute { names, groups })
    }
}

/// The bit set of a route's `methods`, refusing what HTTP does not define.
fn method_set(methods: &[String], field: &str) -> Result<u16, BuildError> {
    if methods.is_empty() {
        return Err(BuildError::bad(
            field,
            "`methods` is empty, so the route takes nothing; leave it out to take any method",
        ));
    }
    let mut set = 0;
    for (j, method) in methods.iter().enumerate() {
        let bit = method_bit(method);
        if bit == OTHER {
            let hint = if METHODS.contains(&method.to_ascii_uppercase().as_str()) {
                format!("; methods are case-sensitive: `{}`", method.to_ascii_uppercase())
            } else {
                closest(method, METHODS).map(|m| format!("; did you mean `{m}`?")).unwrap_or_default()
            };
            return Err(BuildError::bad(format!("{field}[{j}]"), format!("unknown method `{method}`{hint}")));
        }
        set |= bit;
    }
    Ok(set)
}

/// The methods in `set`, as an `Allow` value (`GET, HEAD`).
fn describe(set: u16) -> String {
    let named = METHODS.iter().enumerate().filter(|&(i, _)| set & (1 << i) != 0).map(|(_, m)| *m);
    named.collect::<Vec<_>>().join(", ")
}

impl StageFactory for HttpRoute {
    fn outputs(&self) -> Outputs {
        Outputs::Named(self.names.clone())
    }

    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

impl Stage for HttpRoute {
    fn handle(&mut self, req: &mut Request) -> Step {
        let path = req.http.path();
        let Some(group) = self.groups.iter().find(|g| path.starts_with(&*g.prefix)) else {
            req.response.set_text(404, "Not Found\n");
            return Step::Respond;
        };
        let bit = method_bit(req.http.method());
        match group.routes.iter().find(|(methods, _)| methods & bit != 0) {
            Some(&(_, output)) => Step::Next(output),
            None if bit == OTHER => {
                req.response.set_text(501, "Not Implemented\n");
                Step::Respond
            }
            None => {
                req.response.set_text(405, "Method Not Allowed\n");
                req.response.headers.set("Allow", &group.allow);
                Step::Respond
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kinds::test_support::{header, http_request};

    fn route(params: serde_json::Value) -> Result<HttpRoute, BuildError> {
        HttpRoute::new(serde_json::from_value(params).unwrap())
    }

    fn site() -> HttpRoute {
        route(json!({"routes": [
            {"prefix": "/", "methods": ["GET", "HEAD"], "output": "files"},
            {"prefix": "/static/", "methods": ["GET", "HEAD"], "output": "files"},
            {"prefix": "/compute", "methods": ["POST"], "output": "compute"},
            {"prefix": "/compute", "methods": ["GET"], "output": "form"},
            {"prefix": "/any/", "output": "any"},
        ]}))
        .unwrap()
    }

    /// Where `method target` goes: `Ok(output name)`, or `Err(status)` when answered at once.
    fn send(r: &HttpRoute, method: &str, target: &str) -> Result<String, (u16, Option<String>)> {
        let mut req = http_request(method, target, &[]);
        match r.instance(0).handle(&mut req) {
            Step::Next(Output(i)) => Ok(r.names[i as usize].clone()),
            Step::Respond => Err((req.response.status, header(&req, "Allow"))),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn outputs_name_each_route_output_once_in_order() {
        assert_eq!(
            site().outputs(),
            Outputs::Named(vec!["files".into(), "compute".into(), "form".into(), "any".into()])
        );
    }

    #[test]
    fn longest_prefix_wins_whatever_the_order() {
        let r = site();
        assert_eq!(send(&r, "GET", "/static/a.css?v=2"), Ok("files".into()));
        assert_eq!(send(&r, "GET", "/index.html"), Ok("files".into()));
        assert_eq!(send(&r, "POST", "/compute"), Ok("compute".into()));
        assert_eq!(send(&r, "POST", "/compute/deep"), Ok("compute".into()));
        assert_eq!(send(&r, "GET", "/compute"), Ok("form".into()));
        assert_eq!(send(&r, "DELETE", "/any/x"), Ok("any".into()));
        assert_eq!(send(&r, "BREW", "/any/x"), Ok("any".into()));
    }

    #[test]
    fn unmatched_path_is_404_and_unmatched_method_is_405_with_allow() {
        let r =
            route(json!({"routes": [{"prefix": "/static/", "methods": ["HEAD", "GET"], "output": "files"}]})).unwrap();
        assert_eq!(send(&r, "GET", "/other"), Err((404, None)));
        assert_eq!(send(&r, "POST", "/static/x"), Err((405, Some("GET, HEAD".into()))));
        let r = site();
        assert_eq!(send(&r, "PUT", "/compute"), Err((405, Some("GET, POST".into()))));
        // The longest prefix decides even when a shorter one would allow the method.
        assert_eq!(send(&r, "POST", "/static/x"), Err((405, Some("GET, HEAD".into()))));
    }

    #[test]
    fn a_method_http_does_not_define_is_501() {
        assert_eq!(send(&site(), "BREW", "/static/x"), Err((501, None)));
    }

    #[test]
    fn answers_carry_a_plain_text_body() {
        let mut req = http_request("GET", "/nowhere", &[]);
        let r = route(json!({"routes": [{"prefix": "/a", "output": "a"}]})).unwrap();
        assert!(matches!(r.instance(0).handle(&mut req), Step::Respond));
        assert_eq!(req.response.bytes(), b"Not Found\n");
        assert_eq!(header(&req, "Content-Type").as_deref(), Some("text/plain; charset=utf-8"));
    }

    #[test]
    fn bad_params_name_their_field() {
        let bad = |params| route(params).err().unwrap();
        assert_eq!(bad(json!({"routes": []})), BuildError::bad("routes", "`routes` has no route"));
        assert_eq!(
            bad(json!({"routes": [{"prefix": "/", "output": "a"}, {"prefix": "static", "output": "b"}]})),
            BuildError::bad("routes[1].prefix", "prefix `static` must start with `/`")
        );
        assert_eq!(
            bad(json!({"routes": [{"prefix": "/", "methods": ["GET", "GTE"], "output": "a"}]})),
            BuildError::bad("routes[0].methods[1]", "unknown method `GTE`; did you mean `GET`?")
        );
        assert_eq!(
            bad(json!({"routes": [{"prefix": "/", "methods": ["get"], "output": "a"}]})),
            BuildError::bad("routes[0].methods[0]", "unknown method `get`; methods are case-sensitive: `GET`")
        );
        assert_eq!(
            bad(json!({"routes": [{"prefix": "/", "methods": [], "output": "a"}]})),
            BuildError::bad(
                "routes[0].methods",
                "`methods` is empty, so the route takes nothing; leave it out to take any method"
            )
        );
        assert_eq!(
            bad(json!({"routes": [
                {"prefix": "/x", "methods": ["GET", "POST"], "output": "a"},
                {"prefix": "/x", "methods": ["POST", "PUT"], "output": "b"},
            ]})),
            BuildError::bad("routes[1].methods", "prefix `/x` already routes POST elsewhere")
        );
        assert_eq!(
            bad(
                json!({"routes": [{"prefix": "/", "output": "a"}, {"prefix": "/", "methods": ["GET"], "output": "b"}]})
            ),
            BuildError::bad("routes[1].methods", "prefix `/` already routes GET elsewhere")
        );
    }

    #[test]
    fn serde_errors_name_the_route_field() {
        let err = crate::build("http_route", &json!({"routes": [{"prefix": "/", "output": "a", "method": ["GET"]}]}))
            .err()
            .unwrap();
        assert_eq!(
            err,
            BuildError::bad(
                "routes[0].method",
                "unknown field `method`, expected one of `prefix`, `methods`, `output`"
            )
        );
    }
}
