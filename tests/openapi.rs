//! The OpenAPI document (API.md §13): every route of the route table has an
//! operation, each operation documents the statuses its guards can answer,
//! `405` answers exactly the undocumented methods, the served document is the
//! generated one, and it validates as OpenAPI 3.1 (structurally here; with
//! `openapi-spec-validator` when the test venv has it).

mod common;

use common::*;
use orchestratr::http::router::{self, Auth};
use orchestratr::openapi;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const CFG: &str = r#"
apps:
  - name: x
    command: "sleep 300"
"#;

#[test]
fn every_route_has_an_operation() {
    let missing = openapi::missing_operations();
    assert!(
        missing.is_empty(),
        "routes without an OpenAPI operation (add an entry in src/openapi/ops.rs): {missing:?}"
    );
    let doc = openapi::document();
    for (method, path, id, _) in openapi::route_paths() {
        let op = &doc["paths"][&path][method.to_ascii_lowercase()];
        assert!(op.is_object(), "no operation {method} {path} ({id:?})");
    }
    // Aliases are operations of their own.
    assert!(doc["paths"]["/execute"]["post"].is_object());
    assert!(doc["paths"]["/executions"]["post"].is_object());
    // Operation ids are unique.
    let mut ids = BTreeSet::new();
    for (_, item) in doc["paths"].as_object().expect("paths") {
        for (_, op) in item.as_object().expect("path item") {
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
        }
    }
    assert_eq!(ids.len(), router::table().len());
}

#[test]
fn guard_statuses_are_documented() {
    let doc = openapi::document();
    for (method, path, id, auth) in openapi::route_paths() {
        let op = &doc["paths"][&path][method.to_ascii_lowercase()];
        let codes: BTreeSet<&str> = op["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = vec!["400", "403", "413", "415", "429"];
        if auth != Auth::Open {
            want.push("401");
            assert!(
                !op["security"].as_array().expect("security").is_empty(),
                "{method} {path} needs a security requirement"
            );
        } else {
            assert_eq!(op["security"], serde_json::json!([]), "{method} {path}");
        }
        if path.contains('{') {
            want.push("404");
        }
        for w in want {
            assert!(
                codes.contains(w),
                "{method} {path} ({id:?}) lacks {w}: {codes:?}"
            );
        }
        // Every referenced response exists.
        for (_, r) in op["responses"].as_object().expect("responses") {
            if let Some(rf) = r["$ref"].as_str() {
                let name = rf.trim_start_matches("#/components/responses/");
                assert!(doc["components"]["responses"][name].is_object(), "{rf}");
            }
        }
    }
    let streams = [
        "/events/stream",
        "/executions/{id}/stream",
        "/apps/{name}/stream",
    ];
    for s in streams {
        let ok = &doc["paths"][s]["get"]["responses"]["200"]["content"];
        assert!(ok["text/event-stream"].is_object(), "{s}: {ok}");
    }
    for s in ["/executions/{id}/output", "/apps/{name}/output"] {
        let ok = &doc["paths"][s]["get"]["responses"]["200"]["content"];
        assert!(ok["text/plain"].is_object(), "{s}: {ok}");
    }
    assert_eq!(doc["servers"][0]["url"], "/");
    assert_eq!(doc["servers"][1]["url"], "/api");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

/// A concrete path for an OpenAPI template: every `{param}` becomes `x`.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "x" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn live_daemon_serves_the_document_and_405_matches_it() {
    let d = Daemon::start(CFG);
    for prefix in ["", "/api"] {
        let r = d.get(&format!("{prefix}/openapi.json"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/json"))
        );
        assert_eq!(&r.json(), openapi::document());
    }
    // 405 via the router: a method a path does not document answers 405 with
    // an Allow header naming exactly the documented methods.
    let doc = openapi::document();
    let mut by_path: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let methods = item
            .as_object()
            .expect("item")
            .keys()
            .map(|m| m.to_ascii_uppercase());
        by_path.entry(concrete(path)).or_default().extend(methods);
    }
    for (path, methods) in &by_path {
        for m in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if methods.contains(m) {
                continue;
            }
            let r = d.request(m, path, &[("Authorization", &d.auth_header())], b"");
            assert_error(&r, 405, "method_not_allowed");
            let allow: BTreeSet<String> = r
                .header("allow")
                .expect("Allow header")
                .split(',')
                .map(|s| s.trim().to_string())
                .collect();
            assert_eq!(&allow, methods, "{m} {path}");
        }
    }
    // 401 on a token route without the token, documented as such.
    let r = d.request("GET", "/executions", &[], b"");
    assert_error(&r, 401, "unauthorized");
}

#[test]
fn document_is_structurally_openapi_3_1() {
    let doc = openapi::document();
    assert_eq!(
        doc["openapi"].as_str().map(|s| s.starts_with("3.1.")),
        Some(true)
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    // Every $ref resolves inside the document.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let ptr = r.strip_prefix('#').expect("local $ref");
        assert!(doc.pointer(ptr).is_some(), "dangling $ref {r}");
    }
    // Path parameters are declared for every template segment.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let names: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (m, op) in item.as_object().expect("item") {
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, names, "{m} {path}");
        }
    }
}

/// Validate with `openapi-spec-validator` (PyPI) when `.venv` has it
/// (`scripts/test` installs it); skipped with a note otherwise.
#[test]
fn document_validates_with_openapi_spec_validator() {
    let py = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let ok = py.exists()
        && std::process::Command::new(&py)
            .args(["-c", "import openapi_spec_validator"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: .venv has no openapi-spec-validator (run scripts/test once)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("openapi.json");
    std::fs::write(&f, serde_json::to_vec(openapi::document()).expect("json")).expect("write");
    let o = std::process::Command::new(&py)
        .args([
            "-c",
            "import sys, json\n\
             from openapi_spec_validator import validate\n\
             from openapi_spec_validator.validation import OpenAPIV31SpecValidator\n\
             validate(json.load(open(sys.argv[1])), cls=OpenAPIV31SpecValidator)\n\
             print('valid')",
        ])
        .arg(&f)
        .output()
        .expect("python");
    assert!(
        o.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}
