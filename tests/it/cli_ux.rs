//! The CLI people use (issue 8 part 2): noun groups, app logs (and the
//! `/apps/{name}/output|stream` routes behind them), newest-N events, follow
//! exit codes, errors that name the fix, config check, completions, man, remotes.

use crate::common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::sync::mpsc;

use common::*;
use serde_json::{Value, json};

const CFG: &str = r#"
apps:
  - name: talker
    command: "sh -c 'echo hello; echo second; exec sleep 300'"
    description: "says two lines"
tasks:
  - name: ok
    command: ["echo", "fine"]
  - name: three
    command: ["sh", "-c", "echo bad; exit 3"]
"#;

fn code(o: &std::process::Output) -> Option<i32> {
    o.status.code()
}

fn launch_talker(d: &mut Daemon) {
    let o = d.cli(&["app", "launch", "talker", "--json"]);
    assert_eq!(code(&o), Some(0), "{}", describe(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    d.kill_group_on_drop(v["pid"].as_u64().unwrap() as u32);
    let log = d.state_dir.join("logs/talker.log");
    wait_for(DEADLINE, "talker wrote two lines", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("second\n"))
    });
}

#[test]
fn app_output_routes_and_app_logs() {
    let mut d = Daemon::start(CFG);
    launch_talker(&mut d);
    let auth = d.auth_header();
    let h = [("Authorization", auth.as_str())];

    // GET /apps/{name}/output: text, offset and length headers, ranges.
    let r = d.request("GET", "/apps/talker/output", &h, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "hello\nsecond\n");
    assert_eq!(r.header("X-Output-Offset"), Some("0"));
    assert_eq!(r.header("X-Output-Length"), Some("13"));
    let r = d.request("GET", "/apps/talker/output?offset=6&limit=3", &h, b"");
    assert_eq!(r.text(), "sec");
    // token route; unknown app is 404
    assert_eq!(d.get("/apps/talker/output").status, 401);
    let r = d.request("GET", "/apps/nope/output", &h, b"");
    assert_error(&r, 404, "not_found");

    // SSE: id = byte offset after the chunk; resumable with Last-Event-ID.
    let mut s = SseClient::connect(d.port, "/apps/talker/stream", &h);
    let f = s.expect_event(DEADLINE);
    assert_eq!(f.event.as_deref(), Some("output"));
    assert_eq!(f.id_u64(), Some(13));
    assert_eq!(f.json(), json!({"offset": 0, "text": "hello\nsecond\n"}));
    let mut s2 = SseClient::connect(
        d.port,
        "/apps/talker/stream",
        &[("Authorization", auth.as_str()), ("Last-Event-ID", "6")],
    );
    let f = s2.expect_event(DEADLINE);
    assert_eq!(f.json()["text"], "second\n");
    drop((s, s2));

    // The CLI: `app logs` prints the bytes; `app logs -f` streams them.
    let o = d.cli(&["app", "logs", "talker"]);
    assert_eq!(code(&o), Some(0), "{}", describe(&o));
    assert_eq!(stdout_str(&o), "hello\nsecond\n");
    let mut cmd = d.dirs.command();
    cmd.args(["app", "logs", "talker", "-f"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = ChildGuard::spawn(&mut cmd);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), "hello");
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), "second");
    child.kill_and_reap();
    let _ = reader.join();

    // The table lists the app; `stop NAME` points to `app stop`.
    let o = d.cli(&["app", "list"]);
    let out = stdout_str(&o);
    assert!(out.starts_with("NAME") && out.contains("talker"), "{out}");
    let o = d.cli(&["stop", "talker"]);
    assert_eq!(code(&o), Some(2));
    assert!(
        stderr_str(&o).contains("orchestratr app stop talker"),
        "{}",
        describe(&o)
    );
    let o = d.cli(&["app", "stop", "talker"]);
    assert_eq!(code(&o), Some(0), "{}", describe(&o));
}

#[test]
fn events_show_the_newest_n_as_readable_lines() {
    let d = Daemon::start(CFG);
    let ids: Vec<u64> = (0..30)
        .map(|i| d.publish("ux.tick", "t", json!({"n": i})))
        .collect();
    let o = d.cli(&["events", "--type", "ux.tick", "-n", "3", "--json"]);
    assert_eq!(code(&o), Some(0), "{}", describe(&o));
    let got: Vec<u64> = stdout_str(&o)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(got, ids[27..].to_vec(), "the newest three, oldest first");
    // --since: everything after an id, oldest first
    let since = ids[9].to_string();
    let o = d.cli(&[
        "events", "--type", "ux.tick", "--since", &since, "-n", "2", "--json",
    ]);
    let got: Vec<u64> = stdout_str(&o)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(got, ids[10..12].to_vec());
    // readable: one line per event, `#id hh:mm:ss type …`
    let o = d.cli(&["run", "three", "--follow"]);
    assert_eq!(code(&o), Some(3));
    let o = d.cli(&["events", "--type", "execution.finished"]);
    let out = stdout_str(&o);
    let line = out.lines().last().unwrap_or_default().to_string();
    assert!(line.starts_with('#'), "{out}");
    assert!(
        line.contains("execution.finished three exec-") && line.contains("failed, exit 3"),
        "{line}"
    );
}

#[test]
fn follow_exit_codes_and_final_status_once() {
    let d = Daemon::start(CFG);
    // stderr piped (not a terminal): the final status is still printed, once.
    let o = d.cli(&["run", "three", "--follow"]);
    assert_eq!(code(&o), Some(3), "{}", describe(&o));
    assert_eq!(stdout_str(&o), "bad\n");
    let err = stderr_str(&o);
    assert_eq!(err.matches("failed, exit 3").count(), 1, "{err}");
    // logs -f on a failed run exits like run --follow
    let o = d.cli(&["exec", "list", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = v["executions"][0]["id"].as_str().unwrap().to_string();
    let o = d.cli(&["logs", "-f", &id]);
    assert_eq!(code(&o), Some(3), "{}", describe(&o));
    let o = d.cli(&["exec", "logs", &id, "--follow"]);
    assert_eq!(code(&o), Some(3), "{}", describe(&o));
    let o = d.cli(&["exec", "show", &id]);
    assert_eq!(code(&o), Some(0), "{}", describe(&o));
    assert!(stdout_str(&o).contains("argv: sh -c"), "{}", describe(&o));
}

#[test]
fn errors_name_the_fix() {
    let d = Daemon::start(CFG);
    let o = d.cli(&["run", "test"]);
    assert_eq!(code(&o), Some(1));
    let err = stderr_str(&o);
    assert!(err.contains("no task named 'test'"), "{err}");
    assert!(err.contains("configured tasks: ok, three"), "{err}");
    assert!(err.contains("config.yml"), "{err}");
    let o = d.cli(&["--url", &format!("127.0.0.1:{}", d.port), "status"]);
    assert_eq!(code(&o), Some(2));
    assert!(stderr_str(&o).contains("add http://"), "{}", describe(&o));
}

#[test]
fn start_and_serve_share_exit_codes_on_invalid_config() {
    let dirs = Dirs::new();
    dirs.write("config.yml", "apps: [\n");
    let o = dirs.cli(&["serve", "--port", "0"], &[]);
    assert_eq!(code(&o), Some(2), "{}", describe(&o));
    let o = dirs.cli(&["start", "--port", "0"], &[]);
    assert_eq!(code(&o), Some(2), "{}", describe(&o));
}

#[test]
fn config_check_and_path() {
    let dirs = Dirs::new();
    let o = dirs.cli(&["config", "check"], &[]);
    assert_eq!(code(&o), Some(0), "default config: {}", describe(&o));
    dirs.write("config.yml", "api_port: notaport\nbogus: 1\n");
    let o = dirs.cli(&["config", "check"], &[]);
    assert_eq!(code(&o), Some(2), "{}", describe(&o));
    let err = stderr_str(&o);
    let file = dirs.config_path().display().to_string();
    assert!(err.contains(&format!("{file}:")), "file:line:column: {err}");
    let o = dirs.cli(&["config", "path"], &[]);
    assert_eq!(stdout_str(&o).trim(), file);
}

#[test]
fn completions_and_man_page() {
    let dirs = Dirs::new();
    for sh in ["bash", "zsh", "fish"] {
        let o = dirs.cli(&["completions", sh], &[]);
        assert_eq!(code(&o), Some(0), "{sh}");
        let s = stdout_str(&o);
        assert!(s.contains("approval") && s.contains("exec"), "{sh}: {s}");
    }
    let o = dirs.cli(&["man"], &[]);
    assert_eq!(code(&o), Some(0));
    let s = stdout_str(&o);
    assert!(s.starts_with(".ie") || s.contains(".TH"), "roff: {s}");
    assert!(s.contains("approval") && s.contains("daemon"), "{s}");
}

#[test]
fn named_remotes() {
    let d = Daemon::start(CFG);
    let other = Dirs::new();
    let tok = other.scratch().join("tok");
    std::fs::write(&tok, &d.token).unwrap();
    let url = d.url();
    let o = other.cli(
        &[
            "remote",
            "add",
            "box",
            &url,
            "--token-file",
            tok.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code(&o), Some(0), "{}", describe(&o));
    let o = other.cli(&["remote", "add", "gone", "http://127.0.0.1:9"], &[]);
    assert_eq!(code(&o), Some(0), "{}", describe(&o));
    let f = other.cfg.join("remotes.json");
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let o = other.cli(&["remote", "list", "--json"], &[]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["remotes"][0]["name"], "box");
    assert_eq!(v["remotes"][0]["reachable"], true, "{v}");
    assert!(v["remotes"][0]["version"].is_string(), "{v}");
    assert_eq!(v["remotes"][1]["reachable"], false, "{v}");
    let o = other.cli(&["remote", "list"], &[]);
    assert!(stdout_str(&o).contains("unreachable"), "{}", describe(&o));
    // select by flag and by environment; token-protected routes work
    let o = other.cli(&["--remote", "box", "exec", "list"], &[]);
    assert_eq!(code(&o), Some(0), "{}", describe(&o));
    let o = other.cli(&["status"], &[("ORCHESTRATR_REMOTE", "box")]);
    assert_eq!(code(&o), Some(0), "{}", describe(&o));
    let o = other.cli(&["--remote", "nope", "status"], &[]);
    assert_eq!(code(&o), Some(2), "{}", describe(&o));
    assert!(
        stderr_str(&o).contains("known: box, gone"),
        "{}",
        describe(&o)
    );
    let o = other.cli(&["remote", "remove", "gone"], &[]);
    assert_eq!(code(&o), Some(0));
}

#[test]
fn help_is_sectioned_and_old_spellings_are_hidden() {
    let dirs = Dirs::new();
    let o = dirs.cli(&["--help"], &[]);
    let s = stdout_str(&o);
    for h in [
        "Apps:",
        "Executions:",
        "Approvals:",
        "Events:",
        "Daemon:",
        "Exit codes:",
    ] {
        assert!(s.contains(h), "{h}: {s}");
    }
    assert!(!s.contains("stop-app"), "{s}");
}

/// On a terminal (a pty from `script(1)`): a status line while queued, colour in
/// tables, none with `NO_COLOR`. Skipped with a printed reason without `script`.
#[test]
fn terminal_status_line_and_colour() {
    if !std::process::Command::new("sh")
        .args(["-c", "command -v script"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        println!("skipped: script(1) is not installed");
        return;
    }
    let dirs = Dirs::new();
    let gate = dirs.scratch().join("gate");
    let cfg = format!(
        "tasks:\n  - name: hold\n    command: [\"sh\", \"-c\", \"while [ ! -f {} ]; do sleep 0.05; done\"]\n\
         \x20 - name: ok\n    command: [\"echo\", \"fine\"]\npools:\n  default: {{max_concurrent: 1, max_queued: 10}}\n",
        gate.display()
    );
    dirs.write("config.yml", &cfg);
    let d = Daemon::start_in(dirs, &[]);
    let o = d.cli(&["run", "hold"]);
    assert_eq!(code(&o), Some(0), "{}", describe(&o));
    let in_pty = |cmdline: &str, env: &[(&str, &str)]| {
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &format!("{BIN} {cmdline}"), "/dev/null"])
            .env("ORCHESTRATR_CONFIG_DIR", &d.dirs.cfg)
            .env("ORCHESTRATR_STATE_DIR", &d.dirs.state)
            .env_remove("ORCHESTRATR_URL")
            .env_remove("ORCHESTRATR_TOKEN")
            .env_remove("NO_COLOR")
            .env("TERM", "xterm")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        c.spawn().expect("spawn script")
    };
    let mut child = in_pty("run ok --follow", &[]);
    // Read the terminal as it is written: the gate opens only once the CLI
    // has shown its queued status line (the API seeing the run pending is
    // not enough: the CLI may not have printed yet).
    let mut out = child.stdout.take().expect("stdout");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let sink = seen.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut out, &mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut g) = sink.lock() {
                g.extend_from_slice(&buf[..n]);
            }
        }
    });
    wait_for(DEADLINE, "the queued status line on the terminal", || {
        seen.lock()
            .map(|g| String::from_utf8_lossy(&g).contains("queued in pool default"))
            .unwrap_or(false)
    });
    std::fs::write(&gate, "").unwrap();
    let status = child.wait().expect("script exit");
    let _ = reader.join();
    let text = seen
        .lock()
        .map(|g| String::from_utf8_lossy(&g).replace('\r', ""))
        .unwrap_or_default();
    let o = std::process::Output {
        status,
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("queued in pool default (position 1)"),
        "{text}"
    );
    assert_eq!(text.matches("completed, in").count(), 1, "{text}");
    let o = in_pty("exec list", &[]).wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("\x1b["),
        "colour on a terminal"
    );
    let o = in_pty("exec list", &[("NO_COLOR", "1")])
        .wait_with_output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("\x1b["),
        "NO_COLOR"
    );
}
