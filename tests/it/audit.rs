//! The audit log (API.md §12): lines for allowed and denied control actions,
//! `GET /audit`, `orchestratr audit --verify` catching an edited line, and no
//! torn line after `kill -9` during a burst of audited actions.

use crate::common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

const CFG: &str = r#"
apps:
  - name: x
    command: "sleep 300"
"#;

fn audit_lines(d: &Daemon) -> Vec<Value> {
    let text = std::fs::read_to_string(d.state_dir.join("audit.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

#[test]
fn allowed_and_denied_actions_are_audited_before_the_reply() {
    let d = Daemon::start(CFG);
    // allowed: create a token (admin)
    let (st, v) = d.post_json_auth("/tokens", &json!({"name": "phone", "preset": "approver"}));
    assert_eq!(st, 201, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let tok = v["token"].as_str().expect("token").to_string();
    // the line is on disk when the reply arrives: no polling
    let lines = audit_lines(&d);
    let last = lines.last().expect("a line");
    assert_eq!(last["action"], "create_token", "{last}");
    assert_eq!(last["target"], id.as_str());
    assert_eq!(last["outcome"], "ok");
    assert_eq!(last["status"], 201);
    assert_eq!(last["actor"]["token_id"], "admin");
    assert_eq!(last["actor"]["via"], "http");
    assert_eq!(last["actor"]["peer"], "127.0.0.1");
    assert!(is_rfc3339_ms(last["time"].as_str().unwrap_or("")), "{last}");
    // denied: 403 by scope, with the token id
    let a = format!("Bearer {tok}");
    let r = d.request("POST", "/shutdown", &[("Authorization", &a)], b"");
    assert_error(&r, 403, "forbidden");
    let last = audit_lines(&d).last().cloned().expect("line");
    assert_eq!(
        (
            last["action"].as_str(),
            last["outcome"].as_str(),
            last["status"].as_u64()
        ),
        (Some("shutdown"), Some("denied"), Some(403)),
        "{last}"
    );
    assert_eq!(last["actor"]["token_id"], id.as_str());
    // denied: 401, no token id
    let r = d.request("POST", "/apps/x/launch", &[], b"");
    assert_error(&r, 401, "unauthorized");
    let last = audit_lines(&d).last().cloned().expect("line");
    assert_eq!(
        (last["status"].as_u64(), &last["actor"]["token_id"]),
        (Some(401), &Value::Null)
    );
    // denied by guard 3 before routing: audited too
    let r = d.request("GET", "/apps", &[("Origin", "http://evil.example")], b"");
    assert_error(&r, 403, "forbidden_origin");
    let last = audit_lines(&d).last().cloned().expect("line");
    assert_eq!(last["status"], 403);
    // plain reads and open routes are not audited
    let n = audit_lines(&d).len();
    assert_eq!(d.get("/apps").status, 200);
    let (st, _) = d.post("/apps/x/ready");
    assert_eq!(st, 200);
    let r = d.request(
        "GET",
        "/tokens",
        &[("Authorization", &d.auth_header())],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(audit_lines(&d).len(), n);
    // an approval decision by the phone token is audited with its id
    let r = d.request(
        "POST",
        "/approvals",
        &[("Authorization", &a), ("Content-Type", "application/json")],
        json!({"title": "deploy?", "timeout_ms": 60000})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 201, "{r}");
    let appr = r.json()["id"].as_str().expect("id").to_string();
    let r = d.request(
        "POST",
        &format!("/approvals/{appr}"),
        &[("Authorization", &a), ("Content-Type", "application/json")],
        json!({"decision": "approve"}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{r}");
    let last = audit_lines(&d).last().cloned().expect("line");
    assert_eq!(last["action"], "decide_approval");
    assert_eq!(last["target"], appr.as_str());
    assert_eq!(last["actor"]["token_id"], id.as_str());
    // GET /audit (admin only) pages by seq
    let r = d.request(
        "GET",
        "/audit?since=0&limit=2",
        &[("Authorization", &d.auth_header())],
        b"",
    );
    assert_eq!(r.status, 200, "{r}");
    let v = r.json();
    assert_eq!(v["entries"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["total"].as_u64(), Some(audit_lines(&d).len() as u64));
    assert_eq!(v["entries"][0]["seq"], 1);
    let r = d.request("GET", "/audit", &[("Authorization", &a)], b"");
    assert_error(&r, 403, "forbidden");
    // mode 0600
    let meta = std::fs::metadata(d.state_dir.join("audit.jsonl")).expect("meta");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    // the CLI shows it
    let o = d.cli(&["audit", "--limit", "3"]);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(
        stdout_str(&o).contains("decide_approval"),
        "{}",
        describe(&o)
    );
}

#[test]
fn verify_walks_the_chain_and_names_an_edited_line() {
    let d = Daemon::start(CFG);
    for i in 0..5 {
        let (st, v) = d.post_json_auth(
            "/tokens",
            &json!({"name": format!("t{i}"), "scopes": ["read"]}),
        );
        assert_eq!(st, 201, "{v}");
    }
    let o = d.cli(&["audit", "--verify"]);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(stdout_str(&o).contains("intact"), "{}", describe(&o));
    // edit line 2 (t1 → t9): line 3's prev_sha256 no longer matches
    let p = d.state_dir.join("audit.jsonl");
    let text = std::fs::read_to_string(&p).expect("read");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert!(lines.len() >= 5);
    lines[1] = lines[1].replace("\"outcome\":\"ok\"", "\"outcome\":\"ok \"");
    std::fs::write(&p, lines.join("\n") + "\n").expect("write");
    let o = d.cli(&["audit", "--verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        stdout_str(&o).contains("audit.jsonl:3:"),
        "names the first broken line: {}",
        describe(&o)
    );
}

#[test]
fn rotated_files_chain_and_verify() {
    let d = Daemon::start(&format!("{CFG}\naudit_max_bytes: 4096\n"));
    for i in 0..40 {
        let (st, _) = d.post_json_auth(
            "/tokens",
            &json!({"name": format!("t{i}"), "scopes": ["read"]}),
        );
        assert_eq!(st, 201);
    }
    assert!(d.state_dir.join("audit.jsonl.1").exists(), "rotated");
    let o = d.cli(&["audit", "--verify"]);
    assert!(o.status.success(), "{}", describe(&o));
    let r = d.request(
        "GET",
        "/audit?since=30&limit=100",
        &[("Authorization", &d.auth_header())],
        b"",
    );
    let v = r.json();
    assert_eq!(v["total"], 10, "{v}");
    assert_eq!(v["entries"][0]["seq"], 31);
}

#[test]
fn kill_9_during_a_burst_leaves_no_torn_line() {
    let d = Daemon::start(CFG);
    let port = d.port;
    let auth = d.auth_header();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    for _ in 0..4 {
        let (stop, auth) = (stop.clone(), auth.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // a token route that changes state: audited (404: no such app)
                if try_request(
                    port,
                    "POST",
                    "/apps/nope/stop",
                    &[("Authorization", &auth)],
                    b"",
                )
                .is_err()
                {
                    break;
                }
            }
        }));
    }
    wait_for(
        Duration::from_secs(10),
        "a burst of audited actions",
        || {
            std::fs::read_to_string(d.state_dir.join("audit.jsonl"))
                .map(|t| t.lines().count() >= 200)
                .unwrap_or(false)
        },
    );
    let dirs = d.kill9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    // simulate the worst case too: a torn write left at the end
    let p = dirs.state.join("audit.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&p)
        .expect("open");
    std::io::Write::write_all(&mut f, b"{\"time\":\"2026-").expect("append");
    drop(f);
    let d = Daemon::start_in(dirs, &[]);
    let text = std::fs::read_to_string(&p).expect("read");
    assert!(text.ends_with('\n'), "no torn last line");
    for l in text.lines() {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}"));
    }
    let repair = audit_lines(&d)
        .into_iter()
        .find(|l| l["action"] == "audit.repair")
        .expect("the repair is audited");
    assert_eq!(repair["outcome"], "repaired");
    let o = d.cli(&["audit", "--verify"]);
    assert!(o.status.success(), "{}", describe(&o));
}

#[test]
fn follow_survives_an_admin_token_rotation() {
    let d = Daemon::start(CFG);
    let (st, _) = d.post_json_auth("/tokens", &json!({"name": "before", "scopes": ["read"]}));
    assert_eq!(st, 201);
    let out = d.dirs.scratch().join("follow.out");
    let mut cmd = d.dirs.command();
    cmd.args(["audit", "--follow", "--json", "--since", "0"])
        .stdout(std::fs::File::create(&out).expect("out"))
        .stderr(std::process::Stdio::null());
    let mut child = ChildGuard::spawn(&mut cmd);
    let seen = |what: &str| {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .contains(what)
    };
    wait_for(Duration::from_secs(10), "the first line", || {
        seen("create_token")
    });
    let (st, v) = d.post_json_auth("/tokens/rotate", &json!({"grace_s": 0}));
    assert_eq!(st, 200, "{v}");
    let new = d.dirs.read_token().expect("token");
    let a = format!("Bearer {new}");
    let r = d.request(
        "POST",
        "/tokens",
        &[("Authorization", &a), ("Content-Type", "application/json")],
        json!({"name": "after", "scopes": ["read"]})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 201, "{r}");
    wait_for(Duration::from_secs(10), "lines after the rotation", || {
        seen("rotate_token")
            && std::fs::read_to_string(&out)
                .unwrap_or_default()
                .matches("create_token")
                .count()
                >= 2
    });
    assert!(
        child.0.try_wait().expect("wait").is_none(),
        "follow still running"
    );
    child.kill_and_reap();
}
