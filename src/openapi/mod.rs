//! The OpenAPI 3.1 document of the HTTP API (API.md §13), generated from the
//! route table (`http::router::table`) and the serde types through `schemars`
//! (JSON Schema 2020-12, the dialect of OpenAPI 3.1).
//!
//! - `ops.rs`: one operation entry per route id (the only edit a new route needs);
//! - `shapes.rs`: typed descriptions of bodies handlers build with `json!`;
//! - this file: the builder (paths, guard statuses, components), built once.
//!
//! Every operation documents the statuses of the guards (API.md §3): `400`,
//! `403` (`forbidden`, `forbidden_host`, `forbidden_origin`, insufficient
//! scope), `413`, `415`, `429`; token routes add `401`. `405` is documented
//! once in `components/responses` and in `info.description`: it answers a
//! method that is *not* an operation of the path, with an `Allow` header
//! listing exactly the documented methods.

pub mod bodies;
pub mod ops;
pub mod shapes;

use crate::http::router::{self, Auth, RouteId};
use ops::{Body, Op, operation};
use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// OpenAPI version of the document.
pub const OPENAPI_VERSION: &str = "3.1.0";

/// Statuses every operation can answer through the guards (API.md §3, §12).
pub const GUARD_STATUSES: [u16; 5] = [400, 403, 413, 415, 429];

/// Statuses token routes add (API.md §3 guard 4).
pub const TOKEN_STATUSES: [u16; 1] = [401];

/// Routes of the table that have no operation, as `"METHOD /pattern"`.
/// Empty when the document is complete (checked by `tests/openapi.rs`).
pub fn missing_operations() -> Vec<String> {
    router::table()
        .iter()
        .filter(|(_, _, id, _)| operation(*id).is_none())
        .map(|(m, p, _, _)| format!("{m} {p}"))
        .collect()
}

/// The document, built on first use and kept for the daemon's lifetime.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

/// The document serialized once (what `GET /openapi.json` answers).
pub fn document_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| serde_json::to_vec(document()).unwrap_or_default())
}

fn generator(serialize: bool) -> SchemaGenerator {
    let s = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    });
    let s = if serialize {
        s.for_serialize()
    } else {
        s.for_deserialize()
    };
    s.into_generator()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        400 => "bad_request: malformed JSON, a missing or invalid field or query parameter",
        401 => "unauthorized: missing, wrong or expired bearer token",
        403 => {
            "forbidden (peer not loopback, cwd outside workspaces, insufficient scope), forbidden_host, forbidden_origin"
        }
        404 => "not_found",
        405 => "method_not_allowed: the path exists for other methods (see Allow)",
        409 => "conflict / not_running: the resource is not in a state that allows this",
        406 => "not_acceptable: the Accept header allows no answer this route gives",
        410 => "gone: a one-time URL already used or expired",
        413 => "payload_too_large: body over 1 MiB",
        415 => "unsupported_media_type: a non-empty body that is not application/json",
        422 => "unprocessable / launch_failed / invalid_config",
        429 => "rate_limited / queue_full (see Retry-After)",
        503 => "unavailable: shutting down, or too many open streams",
        _ => "error",
    }
}

fn header(desc: &str, required: bool) -> Value {
    json!({"description": desc, "required": required, "schema": {"type": "string"}})
}

fn error_response(status: u16) -> Value {
    let mut r = json!({
        "description": reason(status),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    });
    let h = match status {
        401 => Some(("WWW-Authenticate", "Bearer challenge", true)),
        405 => Some(("Allow", "the methods this path serves", true)),
        429 => Some(("Retry-After", "seconds to wait", true)),
        503 => Some(("Retry-After", "seconds to wait", false)),
        _ => None,
    };
    if let Some((k, d, req)) = h {
        r["headers"] = json!({ k: header(d, req) });
    }
    r
}

fn success_response(op: &Op, g: &mut SchemaGenerator) -> Value {
    let (status, body) = op.ok;
    let mut r = json!({"description": reason(status)});
    r["content"] = match body {
        Body::Json(f) => json!({"application/json": {"schema": f(g)}}),
        Body::Text => json!({"text/plain": {"schema": {"type": "string"}}}),
        Body::Sse => json!({"text/event-stream": {"schema": {"type": "string"}}}),
    };
    if !op.headers.is_empty() {
        let hs: Map<String, Value> = op
            .headers
            .iter()
            .map(|h| (h.to_string(), header(h, true)))
            .collect();
        r["headers"] = Value::Object(hs);
    }
    r
}

/// OpenAPI path template of a route pattern: `{}` → `{name}` in order.
fn template(pattern: &str, names: &[&str]) -> String {
    let mut names = names.iter();
    pattern
        .split('/')
        .map(|s| match s {
            "{}" => format!("{{{}}}", names.next().copied().unwrap_or("param")),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every status an operation of this route documents, sorted.
pub fn statuses(op: &Op, auth: Auth) -> BTreeSet<u16> {
    let mut s: BTreeSet<u16> = GUARD_STATUSES.into_iter().collect();
    if auth != Auth::Open {
        s.extend(TOKEN_STATUSES);
    }
    s.extend(op.errors.iter().copied());
    s.insert(op.ok.0);
    s
}

fn operation_json(
    op: &Op,
    op_id: String,
    auth: Auth,
    resp: &mut SchemaGenerator,
    req: &mut SchemaGenerator,
) -> Value {
    let mut params = Vec::new();
    for p in op.path_params {
        params.push(json!({"name": p, "in": "path", "required": true,
                           "schema": {"type": "string", "minLength": 1}}));
    }
    for (name, schema, desc) in op.query {
        params.push(json!({"name": name, "in": "query", "required": false,
                           "description": desc, "schema": schema(resp)}));
    }
    if auth == Auth::TokenOrQuery {
        params.push(json!({"name": "token", "in": "query", "required": false,
                           "description": "the bearer token, for EventSource clients that cannot send headers",
                           "schema": {"type": "string"}}));
    }
    if op.last_event_id {
        params.push(
            json!({"name": "Last-Event-ID", "in": "header", "required": false,
                           "description": "resume after this id / byte offset",
                           "schema": {"type": "string", "pattern": "^[0-9]+$"}}),
        );
    }
    let mut responses = Map::new();
    for s in statuses(op, auth) {
        let v = if s == op.ok.0 {
            success_response(op, resp)
        } else if op.foreign_errors {
            json!({"description": reason(s), "content": {"application/json": {"schema": {}}}})
        } else {
            json!({"$ref": format!("#/components/responses/{s}")})
        };
        responses.insert(s.to_string(), v);
    }
    let mut o = json!({
        "operationId": op_id,
        "summary": op.summary,
        "tags": [op.tag],
        "responses": responses,
        "security": match auth {
            Auth::Open => json!([]),
            Auth::Token => json!([{"bearer": []}]),
            Auth::TokenOrQuery => json!([{"bearer": []}, {"queryToken": []}]),
        },
    });
    if !params.is_empty() {
        o["parameters"] = Value::Array(params);
    }
    if let Some((schema, required)) = op.body {
        o["requestBody"] = json!({
            "required": required,
            "content": {"application/json": {"schema": schema(req)}},
        });
    }
    o
}

/// Build the document from the route table. Routes without an operation are
/// left out (and named by [`missing_operations`]).
pub fn build() -> Value {
    let mut resp = generator(true);
    let mut req = generator(false);
    // ErrorBody is referenced by components/responses: generate it first.
    ops::error_schema(&mut resp);
    let mut paths: Map<String, Value> = Map::new();
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut codes: BTreeSet<u16> = BTreeSet::new();
    for (method, pattern, id, auth) in router::table() {
        let Some(op) = operation(*id) else { continue };
        let path = template(pattern, op.path_params);
        let mut op_id = op.id.to_string();
        if !used.insert(op_id.clone()) {
            // An alias (e.g. `POST /execute`): the same operation under another path.
            op_id = format!("{}Alias{}", op.id, alias_suffix(pattern));
            used.insert(op_id.clone());
        }
        codes.extend(statuses(&op, *auth));
        let o = operation_json(&op, op_id, *auth, &mut resp, &mut req);
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[method.to_ascii_lowercase()] = o;
    }
    let mut schemas = resp.take_definitions(true);
    for (k, v) in req.take_definitions(true) {
        schemas.entry(k).or_insert(v);
    }
    let mut responses = Map::new();
    for c in codes.iter().copied().filter(|c| *c >= 400).chain([405]) {
        responses.insert(c.to_string(), error_response(c));
    }
    json!({
        "openapi": OPENAPI_VERSION,
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "orchestratr",
            "version": crate::VERSION,
            "description": "The HTTP API of the orchestratr daemon (docs/api.md). Every path is \
                served both at / and under /api. A method a path does not list answers \
                405 method_not_allowed with an Allow header (components/responses/405); \
                an unknown path answers 404 not_found. Errors are \
                {\"error\",\"code\"[,\"details\"]} (ErrorBody).",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [
            {"url": "/", "description": "plain paths"},
            {"url": "/api", "description": "the same routes under /api"},
        ],
        "security": [],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "the token file beside config.yml (API.md §3, §12)"},
                "queryToken": {"type": "apiKey", "in": "query", "name": "token",
                               "description": "the same token as ?token= (SSE routes only)"},
            },
        },
    })
}

fn alias_suffix(pattern: &str) -> String {
    pattern
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mut c = s.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The route id of each `(method, OpenAPI path)` in the document, for tests.
pub fn route_paths() -> Vec<(&'static str, String, RouteId, Auth)> {
    router::table()
        .iter()
        .filter_map(|(m, p, id, a)| {
            operation(*id).map(|op| (*m, template(p, op.path_params), *id, *a))
        })
        .collect()
}
