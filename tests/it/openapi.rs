//! The OpenAPI document (API.md §13): every route of the route table has an
//! operation, each operation documents the statuses its guards can answer,
//! `405` answers exactly the undocumented methods, the served document is the
//! generated one, and it validates as OpenAPI 3.1 (structurally here; with
//! `openapi-spec-validator` when the test venv has it).

use crate::common;

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
    // Concrete path -> the documented methods of the most specific templates
    // it matches: a literal segment beats `{id}` (`/agents/spawn` is only
    // `/agents/spawn`, not `/agents/{id}`), as in the router.
    let mask = |template: &str, path: &str| -> Option<Vec<bool>> {
        let t: Vec<&str> = template.split('/').collect();
        let p: Vec<&str> = path.split('/').collect();
        (t.len() == p.len() && t.iter().zip(&p).all(|(a, b)| a.starts_with('{') || a == b))
            .then(|| t.iter().map(|a| !a.starts_with('{')).collect())
    };
    let paths = doc["paths"].as_object().expect("paths");
    let mut by_path: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in paths.keys() {
        let c = concrete(path);
        let found: Vec<_> = paths
            .iter()
            .filter_map(|(template, item)| mask(template, &c).map(|m| (m, item)))
            .collect();
        let best = found.iter().map(|(m, _)| m.clone()).max();
        for (m, item) in &found {
            if Some(m) == best.as_ref() {
                let methods = item.as_object().expect("item").keys();
                by_path
                    .entry(c.clone())
                    .or_default()
                    .extend(methods.map(|m| m.to_ascii_uppercase()));
            }
        }
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

/// What schemathesis found (docs/api.md "OpenAPI") stays fixed.
#[test]
fn schemathesis_findings_stay_fixed() {
    let d = Daemon::start(CFG);
    // A query parameter given twice is ambiguous: 400.
    let r = d.get("/events?limit=1&limit=2");
    assert_error(&r, 400, "bad_request");
    assert!(r.text().contains("'limit'"), "{}", r.text());
    // A whitespace-only JSON body is malformed JSON, not "no body".
    let ct = [("Content-Type", "application/json")];
    let r = d.request("POST", "/apps/x/launched", &ct, b"\n");
    assert_error(&r, 400, "bad_request");
    let r = d.request("POST", "/apps/x/launched", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    // pid 1 (killpg(1) would be kill(-1)) and the daemon's own pid are never adopted.
    for pid in [1, d.pid] {
        let (s, v) = d.post_json("/apps/x/launched", &serde_json::json!({ "pid": pid }));
        assert_eq!(s, 422, "pid {pid}: {v}");
    }
    // A kernel thread (empty cmdline; kthreadd is pid 2 on Linux hosts) is never adopted.
    if std::fs::read("/proc/2/cmdline").is_ok_and(|c| c.is_empty()) {
        let (s, v) = d.post_json("/apps/x/launched", &serde_json::json!({"pid": 2}));
        assert_eq!(s, 422, "{v}");
    }
    // An integral float is an integer (JSON Schema makes no difference).
    let (s, v) = d.post_json("/apps/x/launched", &serde_json::json!({"pid": 0.5}));
    assert_eq!(s, 400, "{v}");
    let body = br#"{"task": "nope", "timeout_ms": 4312057976123002.0}"#;
    let auth = d.auth_header();
    let r = d.request(
        "POST",
        "/executions",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body,
    );
    assert_error(&r, 404, "not_found"); // parsed; the task is unknown
    // The largest `since` is no overflow (it panicked the handler: a 500).
    let r = d.request(
        "GET",
        "/audit?since=18446744073709551615&limit=1",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["entries"], serde_json::json!([]));
    // `/agents/spawn` is the spawn route only, not `/agents/{id}`.
    let r = d.request("GET", "/agents/spawn", &[("Authorization", &auth)], b"");
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("POST"));
}

mod json_uint {
    use orchestratr::http::{MAX_JSON_UINT, json_u64};
    use proptest::prelude::*;
    use serde_json::Value;

    proptest! {
        /// `n` and `n.0` are the same integer up to 2^53; nothing above it,
        /// nothing negative or fractional, is one.
        #[test]
        fn integral_numbers_parse_either_way(n in 0u64..=MAX_JSON_UINT, frac in 1u32..1000) {
            let int: Value = serde_json::from_str(&n.to_string()).expect("int");
            let float: Value = serde_json::from_str(&format!("{n}.0")).expect("float");
            prop_assert_eq!(json_u64(&int), Some(n));
            prop_assert_eq!(json_u64(&float), Some(n));
            let neg: Value = serde_json::from_str(&format!("-{}", n.max(1))).expect("neg");
            prop_assert_eq!(json_u64(&neg), None);
            let fractional: Value = serde_json::from_str(&format!("{}.{frac:03}", n.min(1 << 40))).expect("fr");
            prop_assert_eq!(json_u64(&fractional), None);
        }

        #[test]
        fn above_2_pow_53_is_rejected(n in (MAX_JSON_UINT + 1)..=u64::MAX) {
            let v: Value = serde_json::from_str(&n.to_string()).expect("int");
            prop_assert_eq!(json_u64(&v), None);
        }
    }

    #[test]
    fn non_numbers_are_rejected() {
        for s in [r#""5""#, "true", "null", "[]", "{}"] {
            let v: Value = serde_json::from_str(s).expect("json");
            assert_eq!(json_u64(&v), None, "{s}");
        }
    }
}
