//! Request guards of API.md §3 / docs/api.md §3, in order.
//! Guard 1 (non-loopback peer → 403 forbidden) cannot be exercised over
//! loopback and is not tested here.

use crate::common;

use common::*;
use serde_json::json;

const CFG: &str = r#"
apps:
  - name: x
    command: "sleep 300"
"#;

#[test]
fn host_guard() {
    let d = Daemon::start(CFG);
    for host in [
        "evil.com",
        "evil.com:80",
        "localhost.evil.com",
        "127.0.0.2",
        "0.0.0.0",
    ] {
        let r = d.request("GET", "/health", &[("Host", host)], b"");
        assert_error(&r, 403, "forbidden_host");
        let r = d.request("GET", "/api/apps", &[("Host", host)], b"");
        assert_error(&r, 403, "forbidden_host");
    }
    let port_host = format!("localhost:{}", d.port);
    for host in [
        "localhost",
        port_host.as_str(),
        "127.0.0.1",
        "127.0.0.1:1",
        "[::1]",
        "[::1]:9876",
        "LOCALHOST",
    ] {
        let r = d.request("GET", "/health", &[("Host", host)], b"");
        assert_eq!(r.status, 200, "Host {host:?}: {}", r.text());
    }
    // Decision: no Host header at all passes (HTTP/1.0-style request).
    let r = raw_exchange(d.port, b"GET /health HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn allowed_hosts_extend_the_list() {
    let d = Daemon::start(&format!("allowed_hosts: [\"tunnel.example.com\"]\n{CFG}"));
    let r = d.request("GET", "/health", &[("Host", "tunnel.example.com")], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = d.request("GET", "/health", &[("Host", "evil.com")], b"");
    assert_error(&r, 403, "forbidden_host");
}

#[test]
fn origin_guard() {
    let d = Daemon::start(CFG);
    for origin in ["http://evil.com", "null", "http://localhost:3000"] {
        let r = d.request("GET", "/health", &[("Origin", origin)], b"");
        assert_error(&r, 403, "forbidden_origin");
        let r = d.request(
            "POST",
            "/events",
            &[("Origin", origin), ("Content-Type", "application/json")],
            br#"{"source":"s","type":"t"}"#,
        );
        assert_error(&r, 403, "forbidden_origin");
    }
    // guard order: Host is checked before Origin
    let r = d.request(
        "GET",
        "/health",
        &[("Host", "evil.com"), ("Origin", "http://evil.com")],
        b"",
    );
    assert_error(&r, 403, "forbidden_host");
}

#[test]
fn allowed_origins_pass() {
    let d = Daemon::start(&format!(
        "allowed_origins: [\"http://localhost:3000\"]\n{CFG}"
    ));
    let r = d.request(
        "GET",
        "/health",
        &[("Origin", "http://localhost:3000")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = d.request("GET", "/health", &[("Origin", "http://evil.com")], b"");
    assert_error(&r, 403, "forbidden_origin");
}

#[test]
fn token_routes_need_the_token() {
    let mut d = Daemon::start(CFG);
    let wrong = format!("Bearer {}", "0".repeat(64));
    let short = "Bearer abc".to_string();
    let basic = format!("Basic {}", d.token);
    let bare = d.token.clone();
    for p in ["", "/api"] {
        for path in ["/apps/x/launch", "/apps/x/stop", "/shutdown"] {
            let path = format!("{p}{path}");
            let no_auth = d.request("POST", &path, &[], b"");
            let v = assert_error(&no_auth, 401, "unauthorized");
            let www = no_auth
                .header("www-authenticate")
                .unwrap_or_else(|| panic!("no WWW-Authenticate: {v}"));
            assert!(www.starts_with("Bearer"), "WWW-Authenticate: {www}");
            for bad in [&wrong, &short, &basic, &bare] {
                let r = d.request("POST", &path, &[("Authorization", bad.as_str())], b"");
                assert_error(&r, 401, "unauthorized");
                assert!(
                    r.header("www-authenticate")
                        .is_some_and(|w| w.starts_with("Bearer"))
                );
            }
        }
    }
    // with the token the request gets past the guard
    let (st, v) = d.post_auth("/apps/x/stop");
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["code"], "not_running");
    let (st, v) = d.post_auth("/apps/nope/launch");
    assert_eq!(st, 404, "{v}");
    // the daemon is still up after all the rejected /shutdown calls
    assert_eq!(d.get("/health").status, 200);
    // order: Origin (3) before token (4)
    let r = d.request("POST", "/shutdown", &[("Origin", "http://evil.com")], b"");
    assert_error(&r, 403, "forbidden_origin");
    // order: token (4) before body checks (5)
    let r = d.request(
        "POST",
        "/apps/x/launch",
        &[("Content-Type", "text/plain")],
        b"hello",
    );
    assert_error(&r, 401, "unauthorized");
    let r = d.request(
        "POST",
        "/apps/x/launch",
        &[("Content-Type", "application/json")],
        b"{oops",
    );
    assert_error(&r, 401, "unauthorized");
    // open routes need no token
    let (st, _) = d.post("/apps/x/ready");
    assert_eq!(st, 200);
    let (st, _) = d.post("/apps/x/stopped");
    assert_eq!(st, 200);
    let r = d.post_auth_resp("/shutdown");
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(d.wait_exit(DEADLINE).code(), Some(0));
}

#[test]
fn auth_none_disables_token_check() {
    let mut d = Daemon::start(&format!("auth: none\n{CFG}"));
    let r = d.request("POST", "/apps/x/stop", &[], b"");
    assert_error(&r, 409, "not_running");
    // a wrong token is not an error either
    let r = d.request(
        "POST",
        "/apps/x/stop",
        &[("Authorization", "Bearer nope")],
        b"",
    );
    assert_error(&r, 409, "not_running");
    let r = d.request("POST", "/shutdown", &[], b"");
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(d.wait_exit(DEADLINE).code(), Some(0));
}

#[test]
fn body_size_limit() {
    let d = Daemon::start(CFG);
    let limit = 1024 * 1024;
    // exactly 1 MiB of valid JSON is accepted (padded in an ignored field: event
    // `data` itself is limited to 64 KiB, API.md §9)
    let head = r#"{"source":"s","type":"big","pad":""#;
    let tail = r#""}"#;
    let pad = limit - head.len() - tail.len();
    let exact = format!("{head}{}{tail}", "x".repeat(pad));
    assert_eq!(exact.len(), limit);
    let r = d.request(
        "POST",
        "/events",
        &[("Content-Type", "application/json")],
        exact.as_bytes(),
    );
    assert_eq!(
        r.status,
        202,
        "exactly 1 MiB: {}",
        &r.text()[..r.text().len().min(300)]
    );

    // one byte more → 413 (Content-Length)
    let over = format!("{head}{}{tail}", "x".repeat(pad + 1));
    let r = d.request(
        "POST",
        "/events",
        &[("Content-Type", "application/json")],
        over.as_bytes(),
    );
    assert_error(&r, 413, "payload_too_large");

    // a huge declared Content-Length is rejected without reading the body
    let req = format!(
        "POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{{",
        100 * limit
    );
    let r = raw_exchange(d.port, req.as_bytes()).expect("answer to a huge Content-Length");
    assert_error(&r, 413, "payload_too_large");

    // a chunked body over the limit → 413 as well
    let mut req = b"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    let body = over.as_bytes();
    for chunk in body.chunks(64 * 1024) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let r = raw_exchange(d.port, &req).expect("answer to a big chunked body");
    assert_error(&r, 413, "payload_too_large");

    // the daemon is fine afterwards
    assert_eq!(d.get("/health").status, 200);
}

#[test]
fn content_type_must_be_json() {
    let d = Daemon::start(CFG);
    let body = br#"{"source":"s","type":"t"}"#;
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let r = d.request("POST", "/events", &[("Content-Type", ct)], body);
        assert_error(&r, 415, "unsupported_media_type");
    }
    // no Content-Type at all with a non-empty body
    let r = d.request("POST", "/events", &[], body);
    assert_error(&r, 415, "unsupported_media_type");
    // parameters are allowed
    let r = d.request(
        "POST",
        "/events",
        &[("Content-Type", "application/json; charset=utf-8")],
        body,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    // an empty body is fine where the body is optional, whatever the type
    let r = d.request(
        "POST",
        "/apps/x/ready",
        &[("Content-Type", "text/plain")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = d.request("POST", "/apps/x/stopped", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn malformed_json_names_line_and_column() {
    let d = Daemon::start(CFG);
    let body = b"{\n  \"source\": \"a\",\n  oops\n}";
    for path in [
        "/events",
        "/api/events",
        "/apps/x/launched",
        "/apps/x/message",
    ] {
        let r = d.request("POST", path, &[("Content-Type", "application/json")], body);
        let v = assert_error(&r, 400, "bad_request");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains("line 3"), "message names the line: {msg}");
        assert!(msg.contains("column"), "message names the column: {msg}");
        assert_eq!(v["details"]["line"], 3, "{v}");
        assert!(
            v["details"]["column"].as_u64().is_some_and(|c| c >= 1),
            "{v}"
        );
    }
    // a body that is JSON but not an object where an object is required
    let r = d.request(
        "POST",
        "/events",
        &[("Content-Type", "application/json")],
        b"[1,2]",
    );
    assert_error(&r, 400, "bad_request");
}

#[test]
fn unknown_routes_are_404() {
    let d = Daemon::start(CFG);
    for path in [
        "/nope",
        "/api/nope",
        "/apps/x/y/z",
        "/api",
        "/healthz",
        "/api/api/health",
        "/apps/x/bogus",
    ] {
        let r = d.get(path);
        assert_error(&r, 404, "not_found");
        // unknown routes never ask for a token
        let r = d.request("POST", path, &[], b"");
        assert_error(&r, 404, "not_found");
    }
    // guards 2-3 come before 404
    let r = d.request("GET", "/nope", &[("Host", "evil.com")], b"");
    assert_error(&r, 403, "forbidden_host");
}

#[test]
fn wrong_method_is_405_with_allow() {
    let d = Daemon::start(CFG);
    let cases: &[(&str, &str, &[&str])] = &[
        ("DELETE", "/health", &["GET"]),
        ("POST", "/health", &["GET"]),
        ("POST", "/apps", &["GET"]),
        ("DELETE", "/apps/x", &["GET"]),
        ("GET", "/shutdown", &["POST"]),
        ("GET", "/apps/x/launch", &["POST"]),
        ("GET", "/apps/x/stop", &["POST"]),
        ("GET", "/reload", &["POST"]),
        ("PUT", "/events", &["GET", "POST"]),
        ("POST", "/events/stream", &["GET"]),
        ("GET", "/api/apps/x/message", &["POST"]),
    ];
    for (method, path, allow) in cases {
        let r = d.request(method, path, &[], b"");
        assert_error(&r, 405, "method_not_allowed");
        let a = r
            .header("allow")
            .unwrap_or_else(|| panic!("{method} {path}: no Allow header"));
        for m in *allow {
            assert!(
                a.to_ascii_uppercase().contains(m),
                "{method} {path}: Allow {a:?} lacks {m}"
            );
        }
    }
    // wrong method on a token route never asks for a token
    let r = d.request("GET", "/apps/x/launch", &[], b"");
    assert_eq!(r.status, 405);
    // Host guard comes first
    let r = d.request("DELETE", "/health", &[("Host", "evil.com")], b"");
    assert_error(&r, 403, "forbidden_host");
}

#[test]
fn missing_required_fields_name_the_field() {
    let d = Daemon::start(CFG);
    let r = d.post_json_resp("/apps/x/message", &json!({"type": "t"}), false);
    let v = assert_error(&r, 400, "bad_request");
    assert!(v["error"].as_str().unwrap().contains("source"), "{v}");
}

#[test]
fn guards_apply_to_the_event_stream() {
    let d = Daemon::start(CFG);
    match SseClient::open(d.port, "/events/stream", &[("Host", "evil.com")]) {
        Ok(_) => panic!("stream opened with a foreign Host"),
        Err(r) => {
            assert_error(&r, 403, "forbidden_host");
        }
    }
    match SseClient::open(
        d.port,
        "/api/events/stream",
        &[("Origin", "http://evil.com")],
    ) {
        Ok(_) => panic!("stream opened with a foreign Origin"),
        Err(r) => {
            assert_error(&r, 403, "forbidden_origin");
        }
    }
}

#[test]
fn idle_and_slow_connections_do_not_block_the_daemon() {
    use std::io::Write;
    let d = Daemon::start(CFG);
    let mut idle = Vec::new();
    for i in 0..40 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
        if i % 2 == 0 {
            // a request head that never completes
            s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .unwrap();
        }
        idle.push(s);
    }
    let r = match try_request(d.port, "GET", "/health", &[], b"") {
        Ok(r) => r,
        Err(e) => panic!(
            "GET /health while 40 idle connections are open: {e}\ndaemon threads: {}",
            thread_summary(d.pid)
        ),
    };
    assert_eq!(r.status, 200);
    let id = d.publish("still.alive", "t", json!({}));
    assert!(id > 0);
    drop(idle);
    assert_eq!(d.get("/health").status, 200);
}

#[test]
fn oversized_headers_do_not_kill_the_daemon() {
    let d = Daemon::start(CFG);
    let big = "a".repeat(2 * 1024 * 1024);
    let req = format!(
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"
    );
    // any answer (an error status) or a closed connection is fine
    if let Ok(r) = raw_exchange(d.port, req.as_bytes()) {
        assert!(r.status >= 400 || r.status == 200, "{}", r.status);
    }
    assert_eq!(d.get("/health").status, 200, "daemon still serves");
}

/// `name(wchan) xN` for every thread of a process, for diagnostics.
fn thread_summary(pid: u32) -> String {
    let mut counts = std::collections::BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            let p = t.path();
            let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
            let wchan = std::fs::read_to_string(p.join("wchan")).unwrap_or_default();
            *counts
                .entry(format!("{}({})", comm.trim(), wchan.trim()))
                .or_insert(0) += 1;
        }
    }
    counts
        .iter()
        .map(|(k, v)| format!("{k} x{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A handler that panics answers `500 internal` and its worker lives on: after
/// more panics than there are workers, normal requests are still served.
#[test]
fn a_panicking_handler_answers_500_and_workers_live_on() {
    let dirs = Dirs::new();
    let d = Daemon::start_env(dirs, &[], &[("ORCHESTRATR_TEST_PANIC_ROUTE", "1")]);
    for _ in 0..20 {
        let r = d.get("/__test/panic");
        assert_error(&r, 500, "internal");
    }
    for _ in 0..20 {
        assert_eq!(d.get("/health").status, 200);
    }
    let log = d.log();
    assert!(log.contains("panicked"), "panic not logged:\n{log}");
}
