//! The blocking approval clients against the real binary: `orchestratr hook
//! claude-code` (PreToolUse JSON in, Claude Code's decision JSON out; every
//! failure is a deny with exit 2) and `orchestratr ask` (exit 0/1/2).

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// helpers

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/claude-code")
        .join(name)
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fs::read(fixture(name)).expect("fixture")).expect("fixture json")
}

/// A CLI process running in the background with stdin from a file and
/// stdout/stderr in files.
struct Bg {
    child: ChildGuard,
    out: PathBuf,
    err: PathBuf,
}

/// What a finished CLI process left.
struct Done {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn spawn(dirs: &Dirs, args: &[&str], stdin: Option<&Path>) -> Bg {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let out = dirs.scratch().join(format!("bg-{n}.stdout"));
    let err = dirs.scratch().join(format!("bg-{n}.stderr"));
    let mut c = dirs.command();
    c.args(args)
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap());
    match stdin {
        Some(p) => c.stdin(fs::File::open(p).expect("stdin file")),
        None => c.stdin(Stdio::null()),
    };
    Bg {
        child: ChildGuard::spawn(&mut c),
        out,
        err,
    }
}

/// Spawn with `input` bytes as stdin.
fn spawn_with_input(dirs: &Dirs, args: &[&str], input: &[u8]) -> Bg {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let p = dirs.scratch().join(format!("stdin-{n}"));
    fs::write(&p, input).unwrap();
    spawn(dirs, args, Some(&p))
}

fn finish(mut bg: Bg, timeout: Duration) -> Done {
    let st = wait_child(&mut bg.child.0, timeout);
    Done {
        code: st.code(),
        stdout: fs::read_to_string(&bg.out).unwrap_or_default(),
        stderr: fs::read_to_string(&bg.err).unwrap_or_default(),
    }
}

fn describe_done(d: &Done) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        d.code, d.stdout, d.stderr
    )
}

/// Parse the hook's stdout: exactly one line, exactly Claude Code's shape.
/// Returns the reason.
fn hook_answer(d: &Done, decision: &str) -> String {
    let lines: Vec<&str> = d.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "one JSON line on stdout: {}",
        describe_done(d)
    );
    let v: Value = serde_json::from_str(lines[0]).expect("hook stdout is JSON");
    let reason = v["hookSpecificOutput"]["permissionDecisionReason"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason: {v}"))
        .to_string();
    assert_eq!(
        v,
        json!({"hookSpecificOutput": {"hookEventName": "PreToolUse",
            "permissionDecision": decision, "permissionDecisionReason": reason}}),
        "{}",
        describe_done(d)
    );
    assert!(!reason.is_empty());
    reason
}

fn auth_get(d: &Daemon, path: &str) -> Resp {
    let a = d.auth_header();
    d.request("GET", path, &[("Authorization", a.as_str())], b"")
}

/// The first pending approval from `source`, polling until one exists.
fn wait_pending(d: &Daemon, source: &str) -> Value {
    wait_some(DEADLINE, "a pending approval", || {
        let v = auth_get(d, "/approvals?status=pending").json();
        v["approvals"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["source"] == source).cloned())
    })
}

fn decide(d: &Daemon, id: &Value, body: Value) -> Value {
    let r = d.post_json_resp(&format!("/approvals/{}", id.as_str().unwrap()), &body, true);
    assert_eq!(r.status, 200, "decide: {}", r.text());
    r.json()
}

const WAIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// hook claude-code

#[test]
fn hook_allows_when_approved_over_http() {
    let d = Daemon::start("");
    let bg = spawn(
        &d.dirs,
        &[
            "hook",
            "claude-code",
            "--timeout",
            "2m",
            "--match",
            "Bash|Edit|Write|MultiEdit",
        ],
        Some(&fixture("bash.json")),
    );
    let a = wait_pending(&d, "claude-code");
    let input = fixture_json("bash.json");
    let cmd = input["tool_input"]["command"].as_str().unwrap();
    assert_eq!(a["title"], format!("Bash: {cmd}"));
    let detail = a["detail"].as_str().unwrap();
    assert!(detail.contains(cmd), "{detail}");
    assert!(
        detail.contains("Clean build outputs and rebuild for production"),
        "{detail}"
    );
    assert!(detail.contains("/home/dev/src/webapp"), "{detail}");
    assert_eq!(a["options"], json!(["approve", "deny"]));
    assert_eq!(a["default"], "deny");
    let ctx = &a["context"];
    assert_eq!(ctx["session_id"], input["session_id"]);
    assert_eq!(ctx["cwd"], input["cwd"]);
    assert_eq!(ctx["tool_name"], "Bash");
    assert_eq!(ctx["tool_input"], input["tool_input"]);
    let span = humantime::parse_rfc3339(a["expires_at"].as_str().unwrap())
        .unwrap()
        .duration_since(humantime::parse_rfc3339(a["created_at"].as_str().unwrap()).unwrap())
        .unwrap();
    assert_eq!(span, Duration::from_secs(120), "--timeout 2m");

    decide(
        &d,
        &a["id"],
        json!({"decision": "approve", "comment": "looks fine", "by": "phone"}),
    );
    let done = finish(bg, WAIT);
    assert_eq!(done.code, Some(0), "{}", describe_done(&done));
    let reason = hook_answer(&done, "allow");
    assert!(
        reason.contains("phone") && reason.contains("looks fine"),
        "{reason}"
    );
}

#[test]
fn hook_denies_when_denied_over_http() {
    let d = Daemon::start("");
    let bg = spawn(
        &d.dirs,
        &["hook", "claude-code", "--timeout", "2m"],
        Some(&fixture("edit.json")),
    );
    let a = wait_pending(&d, "claude-code");
    assert_eq!(a["title"], "Edit /home/dev/src/webapp/src/config.ts");
    let detail = a["detail"].as_str().unwrap();
    assert!(detail.contains("-2/+3 lines"), "{detail}");
    assert!(
        detail.contains("- ") && detail.contains("retries: 3"),
        "{detail}"
    );
    assert!(
        detail.contains("+ ") && detail.contains("timeoutMs"),
        "{detail}"
    );
    assert_eq!(a["context"]["tool_name"], "Edit");

    decide(
        &d,
        &a["id"],
        json!({"decision": "deny", "comment": "keep 3 retries", "by": "laptop"}),
    );
    let done = finish(bg, WAIT);
    assert_eq!(done.code, Some(0), "{}", describe_done(&done));
    let reason = hook_answer(&done, "deny");
    assert!(reason.contains("keep 3 retries"), "{reason}");
}

#[test]
fn hook_expiry_denies_with_exit_2() {
    let d = Daemon::start("");
    let done = finish(
        spawn(
            &d.dirs,
            &["hook", "claude-code", "--timeout", "1s"],
            Some(&fixture("write.json")),
        ),
        WAIT,
    );
    assert_eq!(done.code, Some(2), "{}", describe_done(&done));
    hook_answer(&done, "deny");
    assert!(done.stderr.contains("expired"), "{}", describe_done(&done));

    let v = auth_get(&d, "/approvals").json();
    let a = &v["approvals"][0];
    assert_eq!(a["status"], "expired", "{v}");
    assert_eq!(a["decision"], "deny");
    assert_eq!(a["title"], "Write /home/dev/src/webapp/scripts/deploy.sh");
    let content = fixture_json("write.json")["tool_input"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let detail = a["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("6 lines, {} bytes", content.len())),
        "{detail}"
    );
    assert!(detail.contains("set -euo pipefail"), "{detail}");
}

#[test]
fn hook_expiry_with_default_allow_allows() {
    let d = Daemon::start("");
    let done = finish(
        spawn(
            &d.dirs,
            &[
                "hook",
                "claude-code",
                "--timeout",
                "1s",
                "--default",
                "allow",
            ],
            Some(&fixture("bash.json")),
        ),
        WAIT,
    );
    assert_eq!(done.code, Some(0), "{}", describe_done(&done));
    let reason = hook_answer(&done, "allow");
    assert!(reason.contains("expired"), "{reason}");
    let v = auth_get(&d, "/approvals").json();
    assert_eq!(v["approvals"][0]["status"], "expired");
    assert_eq!(v["approvals"][0]["decision"], "approve");
}

#[test]
fn hook_denies_when_the_daemon_is_down() {
    // No port file at all.
    let dirs = Dirs::new();
    let done = finish(
        spawn(&dirs, &["hook", "claude-code"], Some(&fixture("bash.json"))),
        WAIT,
    );
    assert_eq!(done.code, Some(2), "{}", describe_done(&done));
    hook_answer(&done, "deny");
    assert!(
        done.stderr.contains("not running"),
        "{}",
        describe_done(&done)
    );

    // A stale port file naming a closed port (connection refused).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    fs::write(dirs.port_file(), format!("{port}\n")).unwrap();
    let done = finish(
        spawn(&dirs, &["hook", "claude-code"], Some(&fixture("edit.json"))),
        WAIT,
    );
    assert_eq!(done.code, Some(2), "{}", describe_done(&done));
    hook_answer(&done, "deny");
    assert!(!done.stderr.trim().is_empty());
}

#[test]
fn hook_match_skips_tools_that_do_not_match() {
    // No daemon: a skipped tool never needs one.
    let dirs = Dirs::new();
    for m in ["Edit|Write|MultiEdit", "Bas", "bash"] {
        let done = finish(
            spawn(
                &dirs,
                &["hook", "claude-code", "--match", m],
                Some(&fixture("bash.json")),
            ),
            WAIT,
        );
        assert_eq!(done.code, Some(0), "--match {m}: {}", describe_done(&done));
        let reason = hook_answer(&done, "allow");
        assert!(reason.contains("does not match"), "{reason}");
    }
    // A matching tool still asks (and is denied here: no daemon).
    let done = finish(
        spawn(
            &dirs,
            &["hook", "claude-code", "--match", "Bash|Edit"],
            Some(&fixture("bash.json")),
        ),
        WAIT,
    );
    assert_eq!(done.code, Some(2), "{}", describe_done(&done));
    hook_answer(&done, "deny");
}

#[test]
fn hook_bad_input_denies_with_exit_2() {
    let d = Daemon::start("");
    let ours: Vec<(&[u8], Vec<&str>)> = vec![
        (b"not json", vec![]),
        (b"", vec![]),
        (b"[1,2]", vec![]),
        (
            br#"{"hook_event_name":"PreToolUse","tool_input":{}}"#,
            vec![],
        ),
        (
            br#"{"hook_event_name":"PostToolUse","tool_name":"Bash","tool_input":{}}"#,
            vec![],
        ),
        (
            br#"{"tool_name":"Bash","tool_input":{"command":"ls"}}"#,
            vec!["--match", "("],
        ),
    ];
    for (input, extra) in ours {
        let mut args = vec!["hook", "claude-code", "--timeout", "30s"];
        args.extend(extra.iter());
        let done = finish(spawn_with_input(&d.dirs, &args, input), WAIT);
        assert_eq!(
            done.code,
            Some(2),
            "input {:?} {extra:?}: {}",
            String::from_utf8_lossy(input),
            describe_done(&done)
        );
        hook_answer(&done, "deny");
        assert!(!done.stderr.trim().is_empty(), "reason on stderr");
    }
    // Bad flags are usage errors, which also exit 2.
    for args in [
        vec!["hook", "claude-code", "--timeout", "soon"],
        vec!["hook", "claude-code", "--timeout", "0s"],
        vec!["hook", "claude-code", "--default", "maybe"],
    ] {
        let done = finish(
            spawn_with_input(&d.dirs, &args, b"{\"tool_name\":\"Bash\"}"),
            WAIT,
        );
        assert_eq!(done.code, Some(2), "{args:?}: {}", describe_done(&done));
        assert!(!done.stderr.trim().is_empty());
    }
    let v = auth_get(&d, "/approvals").json();
    assert_eq!(v["total"], 0, "bad input never creates an approval: {v}");
}

// ---------------------------------------------------------------------------
// ask

fn ask(dirs: &Dirs, title: &str, extra: &[&str]) -> Bg {
    let mut args = vec!["ask", "--title", title];
    args.extend_from_slice(extra);
    spawn(dirs, &args, None)
}

#[test]
fn ask_exit_codes() {
    let d = Daemon::start("");

    // approved → 0, decision on stdout
    let bg = ask(
        &d.dirs,
        "ship it?",
        &["--timeout", "2m", "--detail", "v1.2"],
    );
    let a = wait_pending(&d, "cli");
    assert_eq!(a["title"], "ship it?");
    assert_eq!(a["detail"], "v1.2");
    decide(&d, &a["id"], json!({"decision": "approve"}));
    let done = finish(bg, WAIT);
    assert_eq!(done.code, Some(0), "{}", describe_done(&done));
    assert_eq!(done.stdout.trim(), "approve");

    // denied → 1
    let bg = ask(&d.dirs, "drop the db?", &["--source", "script"]);
    let a = wait_pending(&d, "script");
    decide(&d, &a["id"], json!({"decision": "deny"}));
    let done = finish(bg, WAIT);
    assert_eq!(done.code, Some(1), "{}", describe_done(&done));
    assert_eq!(done.stdout.trim(), "deny");

    // a custom option → 0 with the option; --json prints the approval
    let bg = ask(
        &d.dirs,
        "when?",
        &[
            "--option",
            "now",
            "--option",
            "later",
            "--default",
            "later",
            "--json",
        ],
    );
    let a = wait_pending(&d, "cli");
    assert_eq!(a["options"], json!(["now", "later"]));
    assert_eq!(a["default"], "later");
    decide(&d, &a["id"], json!({"decision": "now"}));
    let done = finish(bg, WAIT);
    assert_eq!(done.code, Some(0), "{}", describe_done(&done));
    let v: Value = serde_json::from_str(&done.stdout).expect("--json output");
    assert_eq!(v["status"], "decided");
    assert_eq!(v["decision"], "now");

    // expired → 2 (the default is printed)
    let done = finish(ask(&d.dirs, "too slow", &["--timeout", "1s"]), WAIT);
    assert_eq!(done.code, Some(2), "{}", describe_done(&done));
    assert_eq!(done.stdout.trim(), "deny");
    assert!(done.stderr.contains("expired"), "{}", describe_done(&done));

    // a bad request → 2
    let done = finish(
        ask(&d.dirs, "x", &["--option", "a", "--default", "b"]),
        WAIT,
    );
    assert_eq!(done.code, Some(2), "{}", describe_done(&done));
    assert!(done.stderr.contains("default"), "{}", describe_done(&done));

    // daemon down → 2
    let dirs = Dirs::new();
    let done = finish(ask(&dirs, "anyone?", &[]), WAIT);
    assert_eq!(done.code, Some(2), "{}", describe_done(&done));
    assert!(done.stdout.trim().is_empty());
}

#[test]
fn ask_survives_a_daemon_restart() {
    let d = Daemon::start("");
    let bg = ask(&d.dirs, "still there?", &["--timeout", "5m"]);
    let a = wait_pending(&d, "cli");
    let old_port = d.port;
    let dirs = d.stop_into_dirs();
    let d = Daemon::start_in(dirs, &[]);
    // (port 0: the new daemon most likely listens elsewhere; ask re-discovers it)
    let _ = old_port;
    let again = wait_pending(&d, "cli");
    assert_eq!(again["id"], a["id"]);
    decide(
        &d,
        &a["id"],
        json!({"decision": "approve", "by": "after-restart"}),
    );
    let done = finish(bg, WAIT);
    assert_eq!(done.code, Some(0), "{}", describe_done(&done));
    assert_eq!(done.stdout.trim(), "approve");
}
