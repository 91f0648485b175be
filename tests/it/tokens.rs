//! Scoped tokens, scopes, rotation, revocation, IP allowlist and rate limits
//! (API.md §12, docs/api.md "Tokens, scopes, rate limits, audit"), against the
//! real binary over real HTTP.

use crate::common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

const CFG: &str = r#"
tasks:
  - name: hi
    command: ["echo", "hi"]
"#;

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// `POST /tokens` with the admin token; returns (token string, id).
fn create(d: &Daemon, body: Value) -> (String, String) {
    let (st, v) = d.post_json_auth("/tokens", &body);
    assert_eq!(st, 201, "POST /tokens {body}: {v}");
    let t = v["token"].as_str().expect("token").to_string();
    assert!(t.starts_with("ort_"), "{t}");
    assert!(v.get("sha256").is_none(), "never the hash: {v}");
    (t, v["id"].as_str().expect("id").to_string())
}

fn call(d: &Daemon, method: &str, path: &str, token: &str, body: Option<Value>) -> Resp {
    let a = bearer(token);
    let mut h = vec![("Authorization", a.as_str())];
    let b = body.map(|b| b.to_string()).unwrap_or_default();
    if !b.is_empty() {
        h.push(("Content-Type", "application/json"));
    }
    d.request(method, path, &h, b.as_bytes())
}

/// One representative route per scope, with a body that gets past the guard
/// to a non-403 answer when the scope is held.
fn probe(d: &Daemon, scope: &str, token: &str) -> Resp {
    match scope {
        "read" => call(d, "GET", "/executions", token, None),
        "execute" => call(
            d,
            "POST",
            "/executions",
            token,
            Some(json!({"task": "nope"})),
        ),
        "approve" => call(
            d,
            "POST",
            "/approvals",
            token,
            Some(json!({"title": "ok?", "timeout_ms": 60000})),
        ),
        "admin" => call(d, "GET", "/tokens", token, None),
        other => panic!("no probe for {other}"),
    }
}

fn assert_scope_denied(r: &Resp, scope: &str) {
    let v = assert_error(r, 403, "forbidden");
    assert_eq!(v["details"]["required_scope"], scope, "{v}");
    let www = r.header("www-authenticate").unwrap_or_default();
    assert!(
        www.starts_with("Bearer") && www.contains("error=\"insufficient_scope\""),
        "WWW-Authenticate: {www}"
    );
}

#[test]
fn each_scope_and_preset_allows_exactly_its_route_classes() {
    let d = Daemon::start(CFG);
    let all = ["read", "execute", "approve", "admin"];
    let mut cases: Vec<(Value, Vec<&str>)> = all
        .iter()
        .map(|s| {
            (
                json!({"name": format!("only-{s}"), "scopes": [s]}),
                vec![*s],
            )
        })
        .collect();
    cases.push((json!({"name": "p1", "preset": "read-only"}), vec!["read"]));
    cases.push((
        json!({"name": "p2", "preset": "approver"}),
        vec!["read", "approve"],
    ));
    cases.push((
        json!({"name": "p3", "preset": "ci"}),
        vec!["read", "execute"],
    ));
    cases.push((
        json!({"name": "p4", "preset": "mcp"}),
        vec!["read", "execute", "approve"],
    ));
    for (body, allowed) in cases {
        let (tok, _) = create(&d, body.clone());
        for s in all {
            let r = probe(&d, s, &tok);
            if allowed.contains(&s) {
                assert!(
                    r.status != 403 && r.status != 401,
                    "{body} on {s}: expected allowed, got {r}"
                );
            } else {
                assert_scope_denied(&r, s);
            }
        }
        // every token route refuses a token without admin for shutdown
        if !allowed.contains(&"admin") {
            assert_scope_denied(&call(&d, "POST", "/shutdown", &tok, None), "admin");
        }
    }
    // the admin token file holds every scope
    for s in all {
        let r = probe(&d, s, &d.token);
        assert!(r.status != 403 && r.status != 401, "admin on {s}: {r}");
    }
    // the list never shows secrets and has the envelope
    let (st, v) = {
        let r = call(&d, "GET", "/tokens", &d.token, None);
        (r.status, r.json())
    };
    assert_eq!(st, 200);
    assert_eq!(v["total"], 8, "{v}");
    assert!(!v.to_string().contains("ort_"), "{v}");
    // bad requests
    for bad in [
        json!({"name": "x"}),
        json!({"name": "x", "scopes": ["root"]}),
        json!({"name": "x", "preset": "god"}),
        json!({"name": "x", "scopes": ["read"], "preset": "ci"}),
        json!({"name": "x", "scopes": ["read"], "allowed_ips": ["10.0.0.0/99"]}),
        json!({"scopes": ["read"]}),
    ] {
        let r = d.post_json_resp("/tokens", &bad, true);
        assert_error(&r, 400, "bad_request");
    }
}

#[test]
fn expired_token_is_401_saying_it_expired() {
    let d = Daemon::start(CFG);
    let (tok, id) = create(
        &d,
        json!({"name": "short", "scopes": ["read"], "expires_in_s": 1}),
    );
    // it works until it expires (unless this machine is very slow)
    let first = probe(&d, "read", &tok);
    assert!(first.status == 200 || first.status == 401, "{first}");
    wait_for(Duration::from_secs(5), "the token to expire", || {
        probe(&d, "read", &tok).status == 401
    });
    let r = probe(&d, "read", &tok);
    let v = assert_error(&r, 401, "unauthorized");
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(msg.contains("expired") && msg.contains(&id), "{msg}");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|w| w.contains("invalid_token"))
    );
}

#[test]
fn rotation_without_grace_cuts_the_old_token_and_the_cli_follows() {
    let d = Daemon::start(CFG);
    let old = d.token.clone();
    let r = call(&d, "POST", "/tokens/rotate", &old, Some(json!({})));
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.json()["grace_s"], 0);
    assert!(!r.text().contains(&old), "never returns a token");
    let new = d.dirs.read_token().expect("token file");
    assert_ne!(new, old);
    assert_eq!(new.len(), 64);
    assert_error(&probe(&d, "read", &old), 401, "unauthorized");
    assert_eq!(probe(&d, "admin", &new).status, 200);
    // the CLI reads the token file on every invocation
    let o = d.cli(&["token", "list", "--json"]);
    assert!(o.status.success(), "{}", describe(&o));
    let o = d.cli(&["token", "rotate", "--grace", "0"]);
    assert!(o.status.success(), "{}", describe(&o));
    let o = d.cli(&["executions", "--json"]);
    assert!(o.status.success(), "{}", describe(&o));
}

#[test]
fn rotation_with_grace_keeps_the_old_token_until_the_grace_ends() {
    let d = Daemon::start(CFG);
    let old = d.token.clone();
    let r = call(
        &d,
        "POST",
        "/tokens/rotate",
        &old,
        Some(json!({"grace_s": 2})),
    );
    assert_eq!(r.status, 200, "{r}");
    let new = d.dirs.read_token().expect("token file");
    assert_eq!(probe(&d, "read", &new).status, 200);
    assert_eq!(
        probe(&d, "read", &old).status,
        200,
        "old token inside grace"
    );
    wait_for(Duration::from_secs(6), "the grace period to end", || {
        probe(&d, "read", &old).status == 401
    });
    assert_eq!(probe(&d, "read", &new).status, 200);
    let r = call(
        &d,
        "POST",
        "/tokens/rotate",
        &new,
        Some(json!({"grace_s": 999999})),
    );
    assert_error(&r, 400, "bad_request");
}

#[test]
fn revocation_applies_to_the_next_request_and_the_next_sse_reconnect() {
    let d = Daemon::start(CFG);
    let (st, e) = d.post_json_auth("/executions", &json!({"task": "hi"}));
    assert_eq!(st, 202, "{e}");
    let eid = e["id"].as_str().expect("id").to_string();
    let (tok, id) = create(&d, json!({"name": "viewer", "preset": "read-only"}));
    let path = format!("/executions/{eid}/stream?token={tok}");
    let mut s = SseClient::connect(d.port, &path, &[]);
    let _ = s.next_event(Duration::from_secs(5));
    drop(s);
    assert_eq!(probe(&d, "read", &tok).status, 200);
    let r = call(&d, "DELETE", &format!("/tokens/{id}"), &d.token, None);
    assert_eq!(r.status, 200, "{r}");
    assert_error(&probe(&d, "read", &tok), 401, "unauthorized");
    match SseClient::open(d.port, &path, &[]) {
        Ok(_) => panic!("a revoked token reopened the stream"),
        Err(r) => {
            assert_error(&r, 401, "unauthorized");
        }
    }
    // revoked tokens are gone from the list; unknown id → 404
    let v = call(&d, "GET", "/tokens", &d.token, None).json();
    assert_eq!(v["total"], 0, "{v}");
    let r = call(&d, "DELETE", &format!("/tokens/{id}"), &d.token, None);
    assert_error(&r, 404, "not_found");
}

#[test]
fn ip_allowlist_behind_a_trusted_proxy() {
    let d = Daemon::start(&format!(
        "{CFG}\nip_allowlist: [\"10.1.0.0/16\"]\ntrusted_proxies: [\"127.0.0.1\"]\n"
    ));
    let get = |xff: Option<&str>| {
        let mut h = vec![];
        if let Some(x) = xff {
            h.push(("X-Forwarded-For", x));
        }
        d.request("GET", "/apps", &h, b"")
    };
    assert_eq!(get(Some("10.1.2.3")).status, 200);
    assert_eq!(get(Some("203.0.113.9, 10.1.2.3")).status, 200);
    assert_error(&get(Some("10.2.0.1")), 403, "forbidden");
    assert_error(&get(None), 403, "forbidden");
    // /health stays open (liveness probe)
    assert_eq!(d.get("/health").status, 200);
}

#[test]
fn ip_allowlist_without_a_trusted_proxy_ignores_forwarded_for() {
    let d = Daemon::start(&format!(
        "{CFG}\nip_allowlist: [\"127.0.0.0/8\", \"::1\"]\n"
    ));
    let r = d.request("GET", "/apps", &[("X-Forwarded-For", "10.9.9.9")], b"");
    assert_eq!(r.status, 200, "{r}");
    // a token restricted to another network is refused from loopback
    let (tok, _) = create(
        &d,
        json!({"name": "remote", "scopes": ["read"], "allowed_ips": ["10.0.0.0/8"]}),
    );
    let a = bearer(&tok);
    let r = d.request(
        "GET",
        "/executions",
        &[("Authorization", &a), ("X-Forwarded-For", "10.1.1.1")],
        b"",
    );
    assert_error(&r, 403, "forbidden");
}

#[test]
fn per_token_allowed_ips_through_a_trusted_proxy() {
    let d = Daemon::start(&format!("{CFG}\ntrusted_proxies: [\"127.0.0.1\"]\n"));
    let (tok, _) = create(
        &d,
        json!({"name": "remote", "scopes": ["read"], "allowed_ips": ["10.0.0.0/8"]}),
    );
    let a = bearer(&tok);
    let with = |x: &str| {
        d.request(
            "GET",
            "/executions",
            &[("Authorization", &a), ("X-Forwarded-For", x)],
            b"",
        )
    };
    assert_eq!(with("10.1.1.1").status, 200);
    assert_error(&with("192.168.0.1"), 403, "forbidden");
}

fn rl_headers(r: &Resp) -> (u64, u64, u64) {
    let n = |k: &str| {
        r.header(k)
            .unwrap_or_else(|| panic!("no {k} in {r}"))
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("bad {k} in {r}"))
    };
    (
        n("x-ratelimit-limit"),
        n("x-ratelimit-remaining"),
        n("x-ratelimit-reset"),
    )
}

#[test]
fn rate_limit_429_with_headers_then_recovery() {
    let d = Daemon::start(&format!(
        "{CFG}\nrate_limits:\n  read: \"3/2s\"\n  failed_auth: \"3/60s\"\n"
    ));
    let (tok, _) = create(&d, json!({"name": "ci", "preset": "ci"}));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    for left in [2u64, 1, 0] {
        let r = probe(&d, "read", &tok);
        assert_eq!(r.status, 200, "{r}");
        let (limit, remaining, reset) = rl_headers(&r);
        assert_eq!((limit, remaining), (3, left), "{r}");
        assert!(
            reset >= now && reset <= now + 5,
            "reset {reset} vs now {now}"
        );
    }
    let r = probe(&d, "read", &tok);
    let v = assert_error(&r, 429, "rate_limited");
    assert_eq!(
        v["details"],
        json!({"class": "read", "limit": 3, "window_s": 2})
    );
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("n");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert_eq!(rl_headers(&r).1, 0);
    // another class of the same token is not affected
    let r = probe(&d, "execute", &tok);
    assert_eq!(r.status, 404, "{r}");
    // the admin token is not limited by default
    for _ in 0..5 {
        assert_eq!(probe(&d, "read", &d.token).status, 200);
    }
    // recovery after the window
    wait_for(Duration::from_secs(5), "the read bucket to refill", || {
        probe(&d, "read", &tok).status == 200
    });
    // failed auth from one peer: 401 until the bucket is empty, then 429,
    // and a valid token from the same peer is never throttled by it
    let wrong = format!("ort_{}_{}", "0".repeat(12), "0".repeat(64));
    for _ in 0..3 {
        assert_error(&probe(&d, "read", &wrong), 401, "unauthorized");
    }
    let r = probe(&d, "read", &wrong);
    let v = assert_error(&r, 429, "rate_limited");
    assert_eq!(v["details"]["class"], "failed_auth");
    assert!(r.header("retry-after").is_some());
    assert_eq!(probe(&d, "admin", &d.token).status, 200);
}

#[test]
fn broken_tokens_file_keeps_the_previous_set_and_reports_config_invalid() {
    let d = Daemon::start(CFG);
    let (tok, _) = create(&d, json!({"name": "keep", "scopes": ["read"]}));
    let path = d.cfg_dir.join("tokens.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&path).expect("tokens.json").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    std::fs::write(&path, "{ \"tokens\": [ oops").expect("write");
    d.wait_event(Duration::from_secs(5), "type=config.invalid", |e| {
        e["data"].to_string().contains("tokens.json")
    });
    assert_eq!(probe(&d, "read", &tok).status, 200, "previous set kept");
}

#[test]
fn cli_creates_lists_revokes_and_rotates() {
    let d = Daemon::start(CFG);
    let o = d.cli(&[
        "token",
        "create",
        "phone",
        "--preset",
        "approver",
        "--expires",
        "30d",
        "--json",
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    let v: Value = serde_json::from_str(&stdout_str(&o)).expect("json");
    let tok = v["token"].as_str().expect("token");
    let id = v["id"].as_str().expect("id");
    assert_eq!(v["scopes"], json!(["read", "approve"]));
    assert!(v["expires_at"].is_string());
    // plain output: the secret alone on stdout
    let o = d.cli(&["token", "create", "ci", "--scope", "read,execute"]);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(
        stdout_str(&o).trim().starts_with("ort_"),
        "{}",
        describe(&o)
    );
    assert_eq!(probe(&d, "approve", tok).status, 201);
    let o = d.cli(&["token", "list"]);
    assert!(
        stdout_str(&o).contains("phone") && stdout_str(&o).contains(id),
        "{}",
        describe(&o)
    );
    let o = d.cli(&["token", "revoke", id]);
    assert!(o.status.success(), "{}", describe(&o));
    let o = d.cli(&["token", "revoke", id]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let o = d.cli(&["token", "rotate", "--grace", "60", "--json"]);
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(
        probe(&d, "admin", &d.token).status,
        200,
        "old token in grace"
    );
    let o = d.cli(&["token", "list", "--json"]);
    assert!(o.status.success(), "{}", describe(&o));
    let o = d.cli(&["token", "create", "x"]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
}
