//! Every v1 route of API.md §4, at `/X` and at `/api/X`.

use crate::common;

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const PREFIXES: [&str; 2] = ["", "/api"];

const THREE_APPS: &str = r#"
apps:
  - name: zeta
    command: "sleep 300"
    description: "last one"
  - name: alpha
    command: "sleep 300"
    description: "first one"
    chord: "a"
    ready_cmd: "true"
    ready_timeout_ms: 3000
  - name: mid
    command: "sleep 300"
"#;

#[test]
fn health_fields_at_both_prefixes() {
    let d = Daemon::start(THREE_APPS);
    for p in PREFIXES {
        let r = d.get(&format!("{p}/health"));
        assert_eq!(r.status, 200, "{p}/health: {}", r.text());
        let ct = r.header("content-type").unwrap_or("");
        assert!(ct.starts_with("application/json"), "content-type {ct:?}");
        let v = r.json();
        assert_eq!(v["status"], "ok", "{v}");
        assert_eq!(v["version"], "0.1.0", "{v}");
        assert!(v["uptime_seconds"].is_u64(), "uptime_seconds: {v}");
        assert_eq!(v["pid"].as_u64(), Some(d.pid as u64), "{v}");
        assert_eq!(v["port"].as_u64(), Some(d.port as u64), "{v}");
        // docs/api.md §4 extras
        assert_eq!(v["apps"].as_u64(), Some(3), "{v}");
        assert!(v["config_dir"].is_string(), "{v}");
        assert!(
            !r.text().contains(&d.token),
            "health must never leak the token"
        );
    }
}

#[test]
fn apps_list_sorted_in_envelope() {
    let d = Daemon::start(THREE_APPS);
    for p in PREFIXES {
        let (st, v) = d.get_json(&format!("{p}/apps"));
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["total"], 3, "{v}");
        let apps = v["apps"].as_array().expect("apps array");
        let names: Vec<&str> = apps.iter().map(|a| a["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["alpha", "mid", "zeta"]);
        for a in apps {
            for key in [
                "name",
                "description",
                "command",
                "environment",
                "chord",
                "ready_cmd",
                "ready_timeout_ms",
                "detached",
                "source",
                "state",
            ] {
                assert!(a.get(key).is_some(), "App lacks {key}: {a}");
            }
            assert_eq!(a["state"]["name"], a["name"], "{a}");
        }
    }
}

#[test]
fn app_detail_and_unknown_app() {
    let d = Daemon::start(THREE_APPS);
    for p in PREFIXES {
        let (st, a) = d.get_json(&format!("{p}/apps/alpha"));
        assert_eq!(st, 200, "{a}");
        assert_eq!(a["name"], "alpha");
        assert_eq!(a["command"], "sleep 300");
        assert_eq!(a["description"], "first one");
        assert_eq!(a["chord"], "a");
        assert_eq!(a["ready_cmd"], "true");
        assert_eq!(a["ready_timeout_ms"], 3000);
        assert_eq!(a["environment"], "native", "default environment");
        assert_eq!(a["detached"], false, "default detached");
        assert!(
            a["source"]
                .as_str()
                .is_some_and(|s| s.contains("config.yml")),
            "source names config.yml: {a}"
        );
        assert_eq!(a["state"]["status"], "stopped", "{a}");

        // defaults for a minimal entry
        let (_, m) = d.get_json(&format!("{p}/apps/mid"));
        assert_eq!(m["ready_timeout_ms"], 5000, "default ready_timeout_ms: {m}");
        assert!(m["ready_cmd"].is_null(), "{m}");

        let r = d.get(&format!("{p}/apps/nope"));
        assert_error(&r, 404, "not_found");
        let r = d.get(&format!("{p}/apps/nope/state"));
        assert_error(&r, 404, "not_found");
    }
}

#[test]
fn state_of_never_launched_app_is_zero() {
    let d = Daemon::start(THREE_APPS);
    for p in PREFIXES {
        let (st, s) = d.get_json(&format!("{p}/apps/mid/state"));
        assert_eq!(st, 200, "{s}");
        assert_eq!(s["name"], "mid");
        assert_eq!(s["status"], "stopped");
        assert_eq!(s["launched"], false);
        assert_eq!(s["ready"], false);
        for k in [
            "launched_at",
            "ready_at",
            "pid",
            "memory_mb",
            "cpu_percent",
            "exit_code",
            "error",
            "error_at",
        ] {
            assert!(s.get(k).is_some(), "AppState lacks {k}: {s}");
            assert!(s[k].is_null(), "{k} must be null in the zero state: {s}");
        }
        assert!(
            s["alive"].is_null() || s["alive"] == false,
            "alive in zero state: {s}"
        );
    }
}

#[test]
fn launched_without_pid() {
    let d = Daemon::start(THREE_APPS);
    for p in PREFIXES {
        let (st, v) = d.post(&format!("{p}/apps/mid/launched"));
        assert_eq!(st, 200, "{v}");
        assert_eq!(
            v,
            json!({"status": "ok", "app": "mid", "state": "launched"})
        );
        let s = d.app_state("mid");
        assert_eq!(s["status"], "launched", "{s}");
        assert_eq!(s["launched"], true, "{s}");
        assert!(
            s["launched_at"].as_str().is_some_and(is_rfc3339_ms),
            "launched_at: {s}"
        );
        // back to stopped for the next prefix
        let (st, _) = d.post(&format!("{p}/apps/mid/stopped"));
        assert_eq!(st, 200);
    }
    // an app.launched event was emitted
    d.wait_event(DEADLINE, "type=app.launched", |_| true);
    // an explicit empty JSON object body is fine too
    let (st, v) = d.post_json("/apps/mid/launched", &json!({}));
    assert_eq!(st, 200, "{v}");
    // unknown app
    let r = d.request("POST", "/apps/nope/launched", &[], b"");
    assert_error(&r, 404, "not_found");
}

#[test]
fn launched_with_pid_invalid_values() {
    let d = Daemon::start(THREE_APPS);
    for bad in [
        json!({"pid": 0}),
        json!({"pid": -5}),
        json!({"pid": "12"}),
        json!({"pid": 1.5}),
    ] {
        let r = d.post_json_resp("/apps/mid/launched", &bad, false);
        assert_error(&r, 400, "bad_request");
    }
    // a pid that is not alive → 422 unprocessable
    let mut c = Command::new("true").spawn().unwrap();
    let dead = c.id();
    c.wait().unwrap();
    let r = d.post_json_resp("/apps/mid/launched", &json!({"pid": dead}), false);
    assert_error(&r, 422, "unprocessable");
}

#[test]
fn launched_with_pid_tracks_process_exit() {
    for p in PREFIXES {
        let d = Daemon::start(THREE_APPS);
        // own process group, in case the daemon signals the group
        let mut sleeper = ChildGuard::spawn(Command::new("sleep").arg("300").process_group(0));
        let pid = sleeper.pid();
        let (st, v) = d.post_json(&format!("{p}/apps/mid/launched"), &json!({"pid": pid}));
        assert_eq!(st, 200, "{v}");
        assert_eq!(
            v,
            json!({"status": "ok", "app": "mid", "state": "launched"})
        );
        let s = d.wait_state("mid", "pid tracked and alive", |s| {
            s["pid"].as_u64() == Some(pid as u64) && s["alive"] == true
        });
        assert_eq!(s["status"], "launched");

        // kill and reap it (reaping matters: a zombie still "exists")
        sleeper.kill_and_reap();
        let s = d.wait_state("mid", "stopped after its process died", |s| {
            s["status"] == "stopped"
        });
        assert!(s["alive"] == false || s["alive"].is_null(), "{s}");
        assert!(
            s["exit_code"].is_null(),
            "not our child: exit_code unknown: {s}"
        );
        d.wait_event(DEADLINE, "type=app.exited", |_| true);
    }
}

#[test]
fn ready_then_stopped_idempotent() {
    let d = Daemon::start(THREE_APPS);
    for p in PREFIXES {
        let (st, v) = d.post(&format!("{p}/apps/zeta/ready"));
        assert_eq!(st, 200, "{v}");
        assert_eq!(v, json!({"status": "ok", "app": "zeta", "state": "ready"}));
        let s = d.app_state("zeta");
        assert_eq!(s["status"], "ready", "{s}");
        assert_eq!(s["ready"], true, "{s}");
        assert_eq!(s["launched"], true, "ready implies launched: {s}");
        assert!(s["ready_at"].as_str().is_some_and(is_rfc3339_ms), "{s}");

        for _ in 0..2 {
            let (st, v) = d.post(&format!("{p}/apps/zeta/stopped"));
            assert_eq!(st, 200, "{v}");
            assert_eq!(
                v,
                json!({"status": "ok", "app": "zeta", "state": "stopped"})
            );
        }
        let s = d.app_state("zeta");
        assert_eq!(s["status"], "stopped", "{s}");
        assert_eq!(s["ready"], false, "{s}");
    }
    d.wait_event(DEADLINE, "type=app.ready", |_| true);
    d.wait_event(DEADLINE, "type=app.stopped", |_| true);
    // stopped on a never-launched app is fine as well (idempotent)
    let (st, _) = d.post("/apps/alpha/stopped");
    assert_eq!(st, 200);
    for r in ["ready", "stopped"] {
        let resp = d.request("POST", &format!("/apps/nope/{r}"), &[], b"");
        assert_error(&resp, 404, "not_found");
    }
}

#[test]
fn message_is_delivered_as_app_message_event() {
    let d = Daemon::start(THREE_APPS);
    for p in PREFIXES {
        let (st, v) = d.post_json(
            &format!("{p}/apps/alpha/message"),
            &json!({"source": "tester", "type": "ping", "data": {"x": 1}}),
        );
        assert_eq!(st, 202, "{v}");
        let id = v["id"].as_u64().expect("message id");
        let ev = d.wait_event(DEADLINE, "type=app.message", |e| e["id"] == id);
        assert_eq!(ev["type"], "app.message");
        assert_eq!(ev["target"], "alpha", "{ev}");
        assert_eq!(ev["source"], "tester", "{ev}");
        assert!(ev["time"].as_str().is_some_and(is_rfc3339_ms), "{ev}");
        assert!(
            ev["data"].to_string().contains("ping"),
            "the message type is carried in data: {ev}"
        );
    }
}

#[test]
fn post_events_validation() {
    let d = Daemon::start("apps: []\n");
    for p in PREFIXES {
        let path = format!("{p}/events");
        // valid, data defaults to {}
        let (st, v) = d.post_json(
            &path,
            &json!({"source": "espansr", "type": "sync_complete"}),
        );
        assert_eq!(st, 202, "{v}");
        let id = v["id"].as_u64().unwrap();
        let ev = d.wait_event(DEADLINE, "type=sync_complete", |e| e["id"] == id);
        assert_eq!(ev["data"], json!({}), "data default: {ev}");
        assert_eq!(ev["source"], "espansr");
        assert!(ev["target"].is_null(), "{ev}");
        assert!(ev["time"].as_str().is_some_and(is_rfc3339_ms), "{ev}");

        // any JSON as data, valid type shapes
        let longest = format!("a{}", "b".repeat(63));
        for (ty, data) in [
            ("a", json!([1, 2])),
            ("0x.y:z-w_v", json!("s")),
            (longest.as_str(), json!(null)),
        ] {
            let (st, v) = d.post_json(&path, &json!({"source": "s", "type": ty, "data": data}));
            assert_eq!(st, 202, "type {ty:?}: {v}");
        }

        // bad type patterns
        let too_long = format!("a{}", "b".repeat(64));
        for ty in [
            "Bad",
            "has space",
            ".dot",
            "-dash",
            "",
            "é",
            "a/b",
            too_long.as_str(),
        ] {
            let r = d.post_json_resp(&path, &json!({"source": "s", "type": ty}), false);
            assert_error(&r, 400, "bad_request");
        }
        // missing fields are named
        let r = d.post_json_resp(&path, &json!({"type": "x"}), false);
        let v = assert_error(&r, 400, "bad_request");
        assert!(v["error"].as_str().unwrap().contains("source"), "{v}");
        let r = d.post_json_resp(&path, &json!({"source": "x"}), false);
        let v = assert_error(&r, 400, "bad_request");
        assert!(v["error"].as_str().unwrap().contains("type"), "{v}");
        // unknown fields ignored
        let (st, v) = d.post_json(&path, &json!({"source": "s", "type": "ok", "whatever": 1}));
        assert_eq!(st, 202, "{v}");
    }
    // ids strictly increase
    let a = d.publish("seq", "s", json!({}));
    let b = d.publish("seq", "s", json!({}));
    assert!(b > a);
}

#[test]
fn get_events_filters() {
    let d = Daemon::start(THREE_APPS);
    // `app.*` types are the daemon's (API.md §9): an app message is one.
    let (st, v) = d.post_json(
        "/apps/mid/message",
        &json!({"source": "src1", "type": "custom", "data": {"n": 1}}),
    );
    assert_eq!(st, 202, "{v}");
    let e1 = v["id"].as_u64().unwrap();
    let e2 = d.publish("application.other", "src2", json!({"n": 2}));
    let e3 = d.publish("zz.exact", "src1", json!({"n": 3}));
    let (st, v) = d.post_json(
        "/apps/alpha/message",
        &json!({"source": "src2", "type": "hi"}),
    );
    assert_eq!(st, 202, "{v}");
    let e4 = v["id"].as_u64().unwrap();
    let e5 = d.publish("zz.exactly", "src3", json!({"n": 5}));

    for p in PREFIXES {
        let ids = |q: &str| -> Vec<u64> {
            let (st, v) = d.get_json(&format!("{p}/events?{q}"));
            assert_eq!(st, 200, "{q}: {v}");
            assert!(v["last_id"].is_u64(), "last_id: {v}");
            let evs = v["events"].as_array().unwrap();
            let ids: Vec<u64> = evs.iter().map(|e| e["id"].as_u64().unwrap()).collect();
            let mut sorted = ids.clone();
            sorted.sort();
            assert_eq!(ids, sorted, "events in ascending id order");
            ids
        };
        let since = e1 - 1;
        assert_eq!(
            ids(&format!("since={since}&limit=1000")),
            vec![e1, e2, e3, e4, e5]
        );
        assert_eq!(ids(&format!("since={e3}")), vec![e4, e5]);
        assert_eq!(ids(&format!("since={since}&type=zz.exact")), vec![e3]);
        assert_eq!(ids(&format!("since={since}&type=app.*")), vec![e1, e4]);
        assert_eq!(
            ids(&format!("since={since}&type=app.*,zz.exactly")),
            vec![e1, e4, e5]
        );
        assert_eq!(ids(&format!("since={since}&source=src1")), vec![e1, e3]);
        assert_eq!(ids(&format!("since={since}&target=alpha")), vec![e4]);
        assert_eq!(
            ids(&format!("since={since}&source=src2&type=app.*")),
            vec![e4]
        );
        assert_eq!(ids(&format!("since={since}&limit=2")).len(), 2);
        assert_eq!(ids(&format!("since={since}&limit=1000")).len(), 5);
        assert_eq!(ids(&format!("since={e5}")), Vec::<u64>::new());
        // without since: everything retained, including daemon events
        let all = ids("limit=1000");
        for e in [e1, e2, e3, e4, e5] {
            assert!(all.contains(&e));
        }
        for bad in [
            "limit=1001",
            "limit=0",
            "limit=-1",
            "limit=abc",
            "since=abc",
        ] {
            let r = d.get(&format!("{p}/events?{bad}"));
            assert_error(&r, 400, "bad_request");
        }
    }
    // last_id is at least the id of the last event returned (API.md leaves
    // open whether it is that id or the newest id overall)
    let (_, v) = d.get_json(&format!("/events?since={}&limit=2", e1 - 1));
    assert!(v["last_id"].as_u64().unwrap() >= e2, "{v}");
}

#[test]
fn reload_route() {
    let d = Daemon::start(THREE_APPS);
    for p in PREFIXES {
        let (st, v) = d.post(&format!("{p}/reload"));
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["status"], "ok");
        assert_eq!(v["total"], 3);
        assert_eq!(v["apps"].as_array().unwrap().len(), 3);
        for k in ["warnings", "added", "removed", "changed"] {
            assert!(v[k].is_array(), "{k}: {v}");
        }
    }
    // a new app shows up after an explicit reload
    d.dirs.write(
        "config.yml",
        &format!("{THREE_APPS}  - name: newbie\n    command: \"sleep 1\"\n"),
    );
    let (st, v) = d.post("/api/reload");
    assert_eq!(st, 200, "{v}");
    let names: Vec<&str> = v["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"newbie"), "{v}");
    assert_eq!(v["total"], 4);
    assert!(d.app_names().contains(&"newbie".to_string()));
}

#[test]
fn shutdown_with_token() {
    for p in PREFIXES {
        let mut d = Daemon::start("apps: []\n");
        let r = d.post_auth_resp(&format!("{p}/shutdown"));
        assert_eq!(r.status, 202, "{}", r.text());
        assert_eq!(r.json(), json!({"status": "stopping"}));
        let st = d.wait_exit(DEADLINE);
        assert_eq!(st.code(), Some(0), "exit status {st:?}\n{}", d.log());
        assert!(
            !d.dirs.port_file().exists(),
            "port file removed on clean shutdown"
        );
    }
}

#[test]
fn events_show_daemon_started() {
    let d = Daemon::start("apps: []\n");
    let ev = d.wait_event(DEADLINE, "type=daemon.*", |e| e["type"] == "daemon.started");
    assert!(ev["id"].as_u64().unwrap() >= 1);
    let _: Value = ev;
}

#[test]
fn wait_short_smoke() {
    // The harness's own polling helper honours its deadline.
    assert!(!wait_until(Duration::from_millis(50), || false));
    assert!(wait_until(Duration::from_millis(50), || true));
}
