//! Approvals (API.md §8) against the real daemon binary: create/list/get/decide,
//! first answer wins, long polls that hold no worker thread, expiry applying the
//! default, persistence across a restart, retention, and the token guard.

use crate::common;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// helpers

fn auth_get(d: &Daemon, path: &str) -> Resp {
    let a = d.auth_header();
    d.request("GET", path, &[("Authorization", a.as_str())], b"")
}

fn create(d: &Daemon, body: Value) -> Value {
    let r = d.post_json_resp("/approvals", &body, true);
    assert_eq!(r.status, 201, "POST /approvals {body}: {}", r.text());
    let v = r.json();
    let id = v["id"].as_str().expect("id").to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("/approvals/{id}").as_str()),
        "Location header"
    );
    v
}

fn decide(d: &Daemon, id: &str, body: Value) -> Resp {
    d.post_json_resp(&format!("/approvals/{id}"), &body, true)
}

fn list(d: &Daemon, query: &str) -> Value {
    let r = auth_get(d, &format!("/approvals{query}"));
    assert_eq!(r.status, 200, "GET /approvals{query}: {}", r.text());
    r.json()
}

fn time_of(s: &Value) -> SystemTime {
    humantime::parse_rfc3339(s.as_str().unwrap_or_else(|| panic!("not a time: {s}")))
        .unwrap_or_else(|e| panic!("bad time {s}: {e}"))
}

/// One GET with a long read timeout, on its own connection (a long poll).
fn long_get(port: u16, token: &str, path: &str, read_timeout: Duration) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(read_timeout))?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())?;
    read_response(&mut BufReader::new(s))
}

/// Wait until the daemon holds exactly `n` long polls (`waiting` in the list).
fn wait_held(d: &Daemon, n: u64) {
    let mut last = Value::Null;
    let ok = wait_until(DEADLINE, || {
        last = list(d, "");
        last["waiting"].as_u64() == Some(n)
    });
    assert!(ok, "expected {n} held long polls, last list: {last}");
}

const APPROVAL_KEYS: [&str; 14] = [
    "id",
    "status",
    "title",
    "detail",
    "source",
    "options",
    "default",
    "decision",
    "comment",
    "decided_by",
    "created_at",
    "decided_at",
    "expires_at",
    "context",
];

// ---------------------------------------------------------------------------
// create, list, get

#[test]
fn create_fills_defaults_and_get_returns_it() {
    let d = Daemon::start("");
    let a = create(
        &d,
        json!({"title": "Run rm -rf build?", "detail": "in ~/src/x", "source": "test",
               "context": {"cwd": "/tmp"}}),
    );
    for k in APPROVAL_KEYS {
        assert!(a.get(k).is_some(), "missing key {k} in {a}");
    }
    let id = a["id"].as_str().unwrap();
    assert!(id.starts_with("appr-") && id.len() == 17, "{id}");
    assert!(id[5..].bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    assert_eq!(a["status"], "pending");
    assert_eq!(a["options"], json!(["approve", "deny"]));
    assert_eq!(a["default"], "deny");
    assert_eq!(a["context"], json!({"cwd": "/tmp"}));
    assert!(a["decision"].is_null() && a["decided_at"].is_null() && a["decided_by"].is_null());
    assert!(a["created_at"].as_str().is_some_and(is_rfc3339_ms), "{a}");
    assert!(a["expires_at"].as_str().is_some_and(is_rfc3339_ms), "{a}");
    let span = time_of(&a["expires_at"])
        .duration_since(time_of(&a["created_at"]))
        .unwrap();
    assert_eq!(span, Duration::from_millis(600_000), "default timeout");

    for p in ["", "/api"] {
        let r = auth_get(&d, &format!("{p}/approvals/{id}"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json(), a);
    }
    // wait=0 answers at once
    let r = auth_get(&d, &format!("/approvals/{id}?wait=0"));
    assert_eq!(r.json(), a);

    // custom options: default is "deny" only when offered, else the first option
    let b = create(
        &d,
        json!({"title": "Which?", "options": ["later", "now"], "timeout_ms": 5000}),
    );
    assert_eq!(b["default"], "later");
    let c = create(
        &d,
        json!({"title": "x", "options": ["approve", "deny", "skip"], "default": "skip"}),
    );
    assert_eq!(c["default"], "skip");

    // the file exists under <state>/approvals
    assert!(d.state_dir.join(format!("approvals/{id}.json")).is_file());

    // approval.requested carries the Approval, target null, source orchestratr
    let ev = d.wait_event(DEADLINE, "type=approval.requested", |e| {
        e["data"]["id"] == a["id"]
    });
    assert_eq!(ev["source"], "orchestratr");
    assert!(ev["target"].is_null());
    assert_event_summary(&ev["data"], &a);
}

/// Approval events (on the open event routes) identify the approval and its
/// outcome but never carry title, detail or context, which stay behind the token.
fn assert_event_summary(data: &Value, a: &Value) {
    for k in [
        "id",
        "status",
        "source",
        "options",
        "default",
        "decision",
        "decided_by",
        "created_at",
        "decided_at",
        "expires_at",
    ] {
        assert_eq!(data[k], a[k], "field {k} of {data}");
    }
    for k in ["title", "detail", "context", "comment"] {
        assert!(data.get(k).is_none(), "event must not carry {k}: {data}");
    }
}

#[test]
fn create_rejects_bad_bodies() {
    let d = Daemon::start("");
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "title"),
        (json!({"title": ""}), "title"),
        (json!({"title": 3}), "title"),
        (json!({"title": "x", "options": []}), "options"),
        (json!({"title": "x", "options": "approve"}), "options"),
        (json!({"title": "x", "options": ["a", 1]}), "options"),
        (json!({"title": "x", "options": ["a", ""]}), "options"),
        (json!({"title": "x", "options": ["a", "a"]}), "options"),
        (json!({"title": "x", "default": "maybe"}), "default"),
        (json!({"title": "x", "timeout_ms": 0}), "timeout_ms"),
        (json!({"title": "x", "timeout_ms": -5}), "timeout_ms"),
        (json!({"title": "x", "timeout_ms": "10"}), "timeout_ms"),
        (
            json!({"title": "x", "timeout_ms": 7u64 * 24 * 3600 * 1000 + 1}),
            "timeout_ms",
        ),
    ];
    for (body, field) in cases {
        let r = d.post_json_resp("/approvals", &body, true);
        let v = assert_error(&r, 400, "bad_request");
        assert!(
            v["error"].as_str().unwrap().contains(field),
            "error for {body} should name '{field}': {v}"
        );
    }
    // no body at all
    let r = d.post_auth_resp("/approvals");
    let v = assert_error(&r, 400, "bad_request");
    assert!(v["error"].as_str().unwrap().contains("title"), "{v}");
    assert_eq!(list(&d, "")["total"], 0, "nothing was created");
}

#[test]
fn list_is_pending_first_then_newest_and_filters_by_status() {
    let d = Daemon::start("");
    let a = create(&d, json!({"title": "a"}));
    let b = create(&d, json!({"title": "b"}));
    let c = create(&d, json!({"title": "c"}));
    let e = create(&d, json!({"title": "e"}));
    let r = decide(
        &d,
        a["id"].as_str().unwrap(),
        json!({"decision": "approve"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = decide(&d, e["id"].as_str().unwrap(), json!({"decision": "deny"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = list(&d, "");
    let ids: Vec<&str> = v["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    let id = |x: &Value| x["id"].as_str().unwrap().to_string();
    assert_eq!(ids, vec![id(&c), id(&b), id(&e), id(&a)], "{v}");
    assert_eq!(v["total"], 4);

    let p = list(&d, "?status=pending");
    assert_eq!(p["total"], 2, "{p}");
    assert!(
        p["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["status"] == "pending")
    );
    let dd = list(&d, "?status=approved,denied");
    assert_eq!(dd["total"], 2, "{dd}");
    let r = auth_get(&d, "/approvals?status=bogus");
    let v = assert_error(&r, 400, "bad_request");
    assert!(v["error"].as_str().unwrap().contains("bogus"), "{v}");
}

#[test]
fn unknown_id_is_404_and_bad_wait_is_400() {
    let d = Daemon::start("");
    let r = auth_get(&d, "/approvals/appr-000000000000");
    assert_error(&r, 404, "not_found");
    let r = auth_get(&d, "/approvals/appr-000000000000?wait=2");
    assert_error(&r, 404, "not_found");
    let r = decide(&d, "appr-000000000000", json!({"decision": "approve"}));
    assert_error(&r, 404, "not_found");
    let a = create(&d, json!({"title": "x"}));
    let id = a["id"].as_str().unwrap();
    for bad in ["abc", "301", "-1", "1.5", "99999999999999999999"] {
        let r = auth_get(&d, &format!("/approvals/{id}?wait={bad}"));
        let v = assert_error(&r, 400, "bad_request");
        assert!(v["error"].as_str().unwrap().contains("wait"), "{v}");
    }
}

#[test]
fn every_approvals_route_needs_the_token() {
    let d = Daemon::start("");
    let a = create(&d, json!({"title": "x"}));
    let id = a["id"].as_str().unwrap();
    let body = serde_json::to_vec(&json!({"title": "x", "decision": "approve"})).unwrap();
    let ct = [("Content-Type", "application/json")];
    let cases: Vec<(&str, String)> = vec![
        ("POST", "/approvals".into()),
        ("GET", "/approvals".into()),
        ("GET", format!("/approvals/{id}")),
        ("GET", format!("/approvals/{id}?wait=5")),
        ("POST", format!("/approvals/{id}")),
    ];
    for (m, p) in cases {
        let r = d.request(m, &p, &ct, if m == "POST" { &body } else { b"" });
        assert_error(&r, 401, "unauthorized");
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer")),
            "{m} {p}: WWW-Authenticate"
        );
        let r = d.request(
            m,
            &p,
            &[("Authorization", "Bearer wrong")],
            if m == "POST" { &body } else { b"" },
        );
        assert_eq!(r.status, 401, "{m} {p} with a wrong token");
    }
    // still pending: nothing got through
    assert_eq!(
        auth_get(&d, &format!("/approvals/{id}")).json()["status"],
        "pending"
    );
}

// ---------------------------------------------------------------------------
// deciding

#[test]
fn decision_rules_conflict_details_and_custom_options() {
    let d = Daemon::start("");
    let a = create(&d, json!({"title": "deploy?"}));
    let id = a["id"].as_str().unwrap();

    let r = decide(&d, id, json!({"decision": "maybe"}));
    let v = assert_error(&r, 400, "bad_request");
    assert!(v["error"].as_str().unwrap().contains("maybe"), "{v}");
    assert_eq!(v["details"]["options"], json!(["approve", "deny"]));
    let r = decide(&d, id, json!({"comment": "no decision"}));
    let v = assert_error(&r, 400, "bad_request");
    assert!(v["error"].as_str().unwrap().contains("decision"), "{v}");

    let r = decide(
        &d,
        id,
        json!({"decision": "approve", "comment": "ok", "by": "phone"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let won = r.json();
    assert_eq!(won["status"], "approved");
    assert_eq!(won["decision"], "approve");
    assert_eq!(won["comment"], "ok");
    assert_eq!(won["decided_by"], "phone");
    assert!(won["decided_at"].as_str().is_some_and(is_rfc3339_ms));

    let r = decide(&d, id, json!({"decision": "deny", "by": "laptop"}));
    let v = assert_error(&r, 409, "conflict");
    assert_eq!(v["details"], won, "409 details carry the standing approval");
    assert_eq!(
        auth_get(&d, &format!("/approvals/{id}")).json(),
        won,
        "unchanged"
    );

    let ev = d.wait_event(DEADLINE, "type=approval.decided", |e| {
        e["data"]["id"] == a["id"]
    });
    assert_event_summary(&ev["data"], &won);
    assert!(ev["target"].is_null());

    // deny → denied; a custom option → decided
    let b = create(&d, json!({"title": "b"}));
    let r = decide(&d, b["id"].as_str().unwrap(), json!({"decision": "deny"}));
    assert_eq!(r.json()["status"], "denied");
    let c = create(
        &d,
        json!({"title": "c", "options": ["approve", "deny", "later"]}),
    );
    let r = decide(&d, c["id"].as_str().unwrap(), json!({"decision": "later"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "decided");
    assert_eq!(r.json()["decision"], "later");
    // persisted on change
    let file = d
        .state_dir
        .join(format!("approvals/{}.json", c["id"].as_str().unwrap()));
    let on_disk: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    assert_eq!(on_disk["status"], "decided");
}

#[test]
fn first_answer_wins_under_20_concurrent_deciders() {
    let d = Daemon::start("");
    let a = create(&d, json!({"title": "race"}));
    let id = a["id"].as_str().unwrap().to_string();
    let n = 20;
    let barrier = Arc::new(Barrier::new(n));
    let results: Vec<(usize, Resp)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let barrier = barrier.clone();
                let (id, d) = (&id, &d);
                s.spawn(move || {
                    let decision = if i % 2 == 0 { "approve" } else { "deny" };
                    let body = json!({"decision": decision, "by": format!("client-{i}")});
                    barrier.wait();
                    (i, decide(d, id, body))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<&(usize, Resp)> = results.iter().filter(|(_, r)| r.status == 200).collect();
    assert_eq!(winners.len(), 1, "exactly one 200");
    let (wi, wr) = winners[0];
    let won = wr.json();
    assert_eq!(won["decided_by"], format!("client-{wi}"));
    let losers: Vec<&(usize, Resp)> = results.iter().filter(|(_, r)| r.status != 200).collect();
    assert_eq!(losers.len(), n - 1);
    for (_, r) in losers {
        let v = assert_error(r, 409, "conflict");
        assert_eq!(v["details"], won, "409 details = the winning decision");
    }
    // exactly one approval.decided event for it
    let decided: Vec<Value> = d
        .events("type=approval.decided&limit=1000")
        .into_iter()
        .filter(|e| e["data"]["id"] == a["id"])
        .collect();
    assert_eq!(decided.len(), 1, "{decided:?}");
}

// ---------------------------------------------------------------------------
// long polls

#[test]
fn long_poll_returns_as_soon_as_a_decision_lands() {
    let d = Daemon::start("");
    let a = create(&d, json!({"title": "wait for me"}));
    let id = a["id"].as_str().unwrap().to_string();
    let (port, token) = (d.port, d.token.clone());
    let path = format!("/approvals/{id}?wait=120");
    let poll = std::thread::spawn(move || {
        let t0 = Instant::now();
        let r = long_get(port, &token, &path, Duration::from_secs(180));
        (r, t0.elapsed())
    });
    // The poll is held by the daemon before anyone decides.
    wait_held(&d, 1);
    let r = decide(&d, &id, json!({"decision": "approve", "by": "tester"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let won = r.json();
    let (resp, took) = poll.join().unwrap();
    let resp = resp.expect("long poll answered");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json(), won, "the poll sees the decision");
    assert!(
        took < Duration::from_secs(120),
        "the poll must end with the decision, not with its 120 s wait ({took:?})"
    );
    wait_held(&d, 0);

    // already decided: a long poll answers at once with the decision
    let r = long_get(
        d.port,
        &d.token,
        &format!("/approvals/{id}?wait=300"),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(r.json(), won);
}

#[test]
fn long_poll_ends_with_pending_when_the_wait_passes() {
    let d = Daemon::start("");
    let a = create(&d, json!({"title": "slow"}));
    let id = a["id"].as_str().unwrap();
    let t0 = Instant::now();
    let r = long_get(
        d.port,
        &d.token,
        &format!("/api/approvals/{id}?wait=1"),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "pending");
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "held for the wait"
    );
}

#[test]
fn fifty_long_polls_hold_no_worker_threads() {
    let d = Daemon::start("apps:\n  - name: one\n    command: \"sleep 1\"\n");
    let a = create(&d, json!({"title": "many watchers"}));
    let id = a["id"].as_str().unwrap().to_string();
    let n = 50;
    let polls: Vec<_> = (0..n)
        .map(|_| {
            let (port, token) = (d.port, d.token.clone());
            let path = format!("/approvals/{id}?wait=120");
            std::thread::spawn(move || long_get(port, &token, &path, Duration::from_secs(180)))
        })
        .collect();
    // All 50 are held by the approvals actor (and GET /approvals itself got a
    // worker while they are held).
    wait_held(&d, n);
    for _ in 0..3 {
        let (st, h) = d.get_json("/health");
        assert_eq!(st, 200, "{h}");
        assert_eq!(h["status"], "ok");
        assert_eq!(d.get_json("/apps").0, 200);
        assert_eq!(auth_get(&d, &format!("/approvals/{id}")).status, 200);
        assert!(d.events("limit=5").len() <= 5);
    }
    assert_eq!(list(&d, "")["waiting"], n, "still held");
    let r = decide(&d, &id, json!({"decision": "deny"}));
    assert_eq!(r.status, 200, "{}", r.text());
    for p in polls {
        let r = p.join().unwrap().expect("poll answered");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["status"], "denied");
    }
    wait_held(&d, 0);
}

// ---------------------------------------------------------------------------
// expiry, persistence, retention

#[test]
fn expiry_applies_the_default_and_publishes_an_event() {
    let d = Daemon::start("");
    let a = create(
        &d,
        json!({"title": "quick", "options": ["approve", "deny", "later"], "default": "later",
               "timeout_ms": 300}),
    );
    let id = a["id"].as_str().unwrap();
    let r = long_get(
        d.port,
        &d.token,
        &format!("/approvals/{id}?wait=60"),
        Duration::from_secs(120),
    )
    .unwrap();
    let v = r.json();
    assert_eq!(v["status"], "expired", "{v}");
    assert_eq!(v["decision"], "later", "the default applies");
    assert!(v["decided_by"].is_null());
    assert!(
        time_of(&v["decided_at"]) >= time_of(&v["expires_at"]),
        "not before expires_at: {v}"
    );
    let ev = d.wait_event(DEADLINE, "type=approval.expired", |e| {
        e["data"]["id"] == a["id"]
    });
    assert_event_summary(&ev["data"], &v);
    assert_eq!(ev["source"], "orchestratr");
    let r = decide(&d, id, json!({"decision": "approve"}));
    let e = assert_error(&r, 409, "conflict");
    assert_eq!(e["details"]["status"], "expired");
    // the standard default is deny
    let b = create(&d, json!({"title": "quick2", "timeout_ms": 200}));
    let bid = b["id"].as_str().unwrap().to_string();
    let v = wait_some(DEADLINE, "approval to expire", || {
        let v = auth_get(&d, &format!("/approvals/{bid}")).json();
        (v["status"] == "expired").then_some(v)
    });
    assert_eq!(v["decision"], "deny");
}

#[test]
fn pending_approvals_survive_a_restart_and_still_expire_on_time() {
    let d = Daemon::start("");
    let long = create(&d, json!({"title": "long", "timeout_ms": 3_600_000}));
    let short = create(&d, json!({"title": "short", "timeout_ms": 8_000}));
    let overdue = create(
        &d,
        json!({"title": "overdue", "timeout_ms": 3_600_000, "options": ["approve", "deny"],
               "default": "approve"}),
    );
    let decided = create(&d, json!({"title": "done"}));
    let r = decide(
        &d,
        decided["id"].as_str().unwrap(),
        json!({"decision": "deny", "by": "x"}),
    );
    assert_eq!(r.status, 200);
    let decided = r.json();
    let (st, _) = d.post_auth("/shutdown");
    assert_eq!(st, 202);
    let mut d = d;
    assert!(d.wait_exit(DEADLINE).success(), "clean exit");
    let dirs = d.stop_into_dirs();

    // While the daemon is down, "overdue" passes its expiry.
    let f = dirs.state.join(format!(
        "approvals/{}.json",
        overdue["id"].as_str().unwrap()
    ));
    let mut v: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
    assert_eq!(v["status"], "pending");
    v["expires_at"] = json!("2020-01-01T00:00:00.000Z");
    std::fs::write(&f, serde_json::to_vec(&v).unwrap()).unwrap();

    let d = Daemon::start_in(dirs, &[]);
    let get = |x: &Value| auth_get(&d, &format!("/approvals/{}", x["id"].as_str().unwrap())).json();
    let l = get(&long);
    assert_eq!(l, long, "still pending, unchanged");
    assert_eq!(get(&decided), decided, "decided ones are kept");

    // expired at start-up, applying its default, with an event from the new daemon
    let o = get(&overdue);
    assert_eq!(o["status"], "expired", "{o}");
    assert_eq!(o["decision"], "approve");
    let ev = d.wait_event(DEADLINE, "type=approval.expired", |e| {
        e["data"]["id"] == overdue["id"]
    });
    assert_eq!(ev["data"]["status"], "expired");

    // "short" expires on time (at start-up if the restart took longer than 8 s)
    let r = long_get(
        d.port,
        &d.token,
        &format!("/approvals/{}?wait=60", short["id"].as_str().unwrap()),
        Duration::from_secs(120),
    )
    .unwrap();
    let s = r.json();
    assert_eq!(s["status"], "expired", "{s}");
    assert_eq!(s["decision"], "deny");
    assert_eq!(s["expires_at"], short["expires_at"], "expiry kept");
    assert!(
        time_of(&s["decided_at"]) >= time_of(&s["expires_at"]),
        "{s}"
    );

    // the pending one can still be answered after the restart
    let r = decide(
        &d,
        long["id"].as_str().unwrap(),
        json!({"decision": "approve"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn retention_keeps_the_newest_decided_and_every_pending() {
    let d = Daemon::start("retention:\n  approvals: 2\n");
    let mut ids = Vec::new();
    for i in 0..4 {
        let a = create(&d, json!({"title": format!("t{i}")}));
        ids.push(a["id"].as_str().unwrap().to_string());
    }
    let pending = create(&d, json!({"title": "keep me"}));
    for id in &ids {
        let r = decide(&d, id, json!({"decision": "approve"}));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let v = list(&d, "");
    let got: Vec<&str> = v["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        vec![pending["id"].as_str().unwrap(), &ids[3], &ids[2]],
        "{v}"
    );
    for (i, id) in ids.iter().enumerate() {
        let exists = d.state_dir.join(format!("approvals/{id}.json")).exists();
        assert_eq!(exists, i >= 2, "file of {id}");
        if i < 2 {
            assert_error(&auth_get(&d, &format!("/approvals/{id}")), 404, "not_found");
        }
    }
}

#[test]
fn a_reload_applies_a_lower_approvals_retention_at_once() {
    let d = Daemon::start("retention:\n  approvals: 10\n");
    let mut ids = Vec::new();
    for i in 0..3 {
        let a = create(&d, json!({"title": format!("t{i}")}));
        let id = a["id"].as_str().unwrap().to_string();
        assert_eq!(decide(&d, &id, json!({"decision": "deny"})).status, 200);
        ids.push(id);
    }
    std::fs::write(d.cfg_dir.join("config.yml"), "retention:\n  approvals: 1\n").unwrap();
    let (status, body) = d.post_json("/reload", &json!({}));
    assert_eq!(status, 200, "{body}");
    let kept = |id: &str| d.state_dir.join(format!("approvals/{id}.json")).exists();
    wait_for(DEADLINE, "older decided approvals pruned", || {
        !kept(&ids[0]) && !kept(&ids[1])
    });
    assert!(kept(&ids[2]), "the newest decided approval must stay");
}
