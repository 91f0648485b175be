//! Agents in tmux (API.md §10), end to end: the real binary, a real private
//! tmux server per test (its socket lives in the test's own state dir), and a
//! scripted stand-in agent (tests/fixtures/standin_agent.py).

use crate::agent_support::{Env, config};
use crate::common;

use common::*;
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

impl Env {
    fn spawn(&self, name: &str) -> Value {
        let r = self.call(
            "POST",
            "/agents/spawn",
            Some(
                &json!({"agent_type": "standin", "working_dir": self.ws, "name": name,
                         "env": {"STANDIN_LOG": self.ws.join(format!("{name}.txt"))}}),
            ),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()
    }
    fn wait_status(&self, id: &str, status: &str, source: &str) -> Value {
        wait_some(DEADLINE, &format!("{id} {status} by {source}"), || {
            let a = self.agent(id);
            (a["status"] == status && a["status_source"] == source).then_some(a)
        })
    }
    fn send(&self, id: &str, text: &str) {
        let r = self.call(
            "POST",
            &format!("/agents/{id}/input"),
            Some(&json!({"text": text, "submit": true})),
        );
        assert_eq!(r.status, 202, "{}", r.text());
    }
    fn output(&self, id: &str) -> String {
        self.call("GET", &format!("/agents/{id}/output"), None)
            .text()
    }
}

fn received(env: &Env, name: &str) -> String {
    std::fs::read_to_string(env.ws.join(format!("{name}.txt"))).unwrap_or_default()
}

#[test]
fn spawn_list_statuses_and_kill() {
    let env = Env::new();
    let a = env.spawn("one");
    let id = a["session_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("sess-standin-"), "{a}");
    assert!(a["tmux_pane"].as_str().unwrap().starts_with('%'));
    // First output, then silence → idle.
    env.wait_status(&id, "idle", "silence");
    assert!(
        env.output(&id).starts_with("standin ready"),
        "output from the first byte"
    );
    // A busy phase → running by screen pattern, then idle again.
    env.send(&id, "busy 15");
    env.wait_status(&id, "running", "screen");
    env.wait_status(&id, "idle", "silence");
    // A question → waiting with the matched line; answering it clears it.
    env.send(&id, "ask");
    let w = env.wait_status(&id, "waiting", "screen");
    assert!(
        w["waiting_reason"].as_str().unwrap().contains("Proceed?"),
        "{w}"
    );
    env.send(&id, "y");
    env.wait_status(&id, "idle", "silence");
    wait_for(DEADLINE, "the answer recorded", || {
        received(&env, "one").contains("answer:y")
    });
    // argv and env never appear on the tmux server's (or the wrapper's) command
    // line; the spec file is gone once read.
    assert!(!env.state.join(format!("agents/{id}/spec.json")).exists());
    for p in all_pids() {
        let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("tmux.sock") || cmd.contains("agent-exec") {
            assert!(
                !cmd.contains("standin_agent.py") && !cmd.contains("one.txt"),
                "{cmd}"
            );
        }
    }
    // List, filters.
    let l = env.call("GET", "/agents?agent_type=standin", None).json();
    assert_eq!(l["total"], 1);
    let l = env.call("GET", "/agents?status=exited", None).json();
    assert_eq!(l["total"], 0);
    // Screen.
    let s = env
        .call("GET", &format!("/agents/{id}/screen"), None)
        .json();
    assert!(s["text"].as_str().unwrap().contains("ready>"), "{s}");
    // Kill leaves no process of the session.
    let pid = env.agent(&id)["pid"].as_u64().unwrap() as u32;
    let before: Vec<u32> = all_pids()
        .into_iter()
        .filter(|p| proc_stat(*p).is_some_and(|s| s.3 == pid || s.0 == pid))
        .collect();
    assert!(!before.is_empty());
    let r = env.call("DELETE", &format!("/agents/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "terminated");
    wait_for(DEADLINE, "no process of the session", || {
        before.iter().all(|p| !pid_alive(*p))
    });
    assert_eq!(env.agent(&id)["status"], "exited");
    let r = env.call(
        "POST",
        &format!("/agents/{id}/input"),
        Some(&json!({"text": "x"})),
    );
    assert_error(&r, 409, "not_running");
    let r = env.call("DELETE", "/agents/sess-nope-000000000000", None);
    assert_error(&r, 404, "not_found");
}

#[test]
fn input_arrives_verbatim() {
    let env = Env::new();
    let id = env.spawn("verb")["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    env.wait_status(&id, "idle", "silence");
    let nasty = r#"$(touch pwned) `id` ; echo "q" | cat && x='y' > z \ %1 #{pane_id} ~ *"#;
    env.send(&id, nasty);
    wait_for(DEADLINE, "the nasty line", || {
        received(&env, "verb").contains(nasty)
    });
    env.send(&id, "line one\nline two\n  indented");
    wait_for(DEADLINE, "three lines", || {
        received(&env, "verb").contains("line one\nline two\n  indented\n")
    });
    assert!(!env.ws.join("pwned").exists());
    assert_eq!(
        received(&env, "verb"),
        format!("{nasty}\nline one\nline two\n  indented\n")
    );
}

#[test]
fn hook_report_wins_over_screen_and_approval_makes_waiting() {
    let env = Env::new();
    let id = env.spawn("hook")["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    env.wait_status(&id, "idle", "silence");
    // A pending approval naming the session → waiting with its title.
    let (st, ap) = env.d().post_json_auth(
        "/approvals",
        &json!({"title": "Run rm -rf build?", "context": {"agent_id": id}}),
    );
    assert_eq!(st, 201, "{ap}");
    let w = env.wait_status(&id, "waiting", "approval");
    assert_eq!(w["waiting_reason"], "Run rm -rf build?");
    let apid = ap["id"].as_str().unwrap();
    env.d().post_json_auth(
        &format!("/approvals/{apid}"),
        &json!({"decision": "approve"}),
    );
    env.wait_status(&id, "idle", "silence");
    // The agent's own report wins over the screen's question.
    let r = env.call(
        "POST",
        &format!("/agents/{id}/status"),
        Some(&json!({"status": "running", "resume_id": "abc-123"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    env.send(&id, "ask");
    wait_for(DEADLINE, "the question on screen", || {
        env.call("GET", &format!("/agents/{id}/screen"), None)
            .json()["text"]
            .as_str()
            .is_some_and(|t| t.contains("(y/n)"))
    });
    // The engine judges the screen in the same tick that records the new
    // output size: once `output_bytes` covers the question, it has decided.
    let len = env.output(&id).len() as u64;
    wait_for(DEADLINE, "the engine saw the question", || {
        env.agent(&id)["output_bytes"].as_u64().unwrap() >= len
    });
    let a = env.agent(&id);
    assert_eq!(
        (a["status"].as_str(), a["status_source"].as_str()),
        (Some("running"), Some("hook"))
    );
    assert_eq!(a["resume_id"], "abc-123");
    let r = env.call(
        "POST",
        &format!("/agents/{id}/status"),
        Some(&json!({"status": "bogus"})),
    );
    assert_error(&r, 400, "bad_request");
}

#[test]
fn exit_status_and_output_resume_by_offset() {
    let env = Env::new();
    let id = env.spawn("ex")["session_id"].as_str().unwrap().to_string();
    env.wait_status(&id, "idle", "silence");
    for i in 0..5 {
        env.send(&id, &format!("message {i} ünïcödé"));
    }
    wait_for(DEADLINE, "five echoes", || {
        env.output(&id).contains("echo: message 4")
    });
    env.send(&id, "quit");
    let a = env.wait_status(&id, "exited", "process");
    assert_eq!(a["exit_code"], 3, "{a}");
    let full = env.output(&id).into_bytes();
    // Ranges concatenate to the whole log.
    let mut got = Vec::new();
    let mut off = 0;
    while off < full.len() {
        let r = env.call(
            "GET",
            &format!("/agents/{id}/output?offset={off}&limit=7"),
            None,
        );
        assert_eq!(r.header("X-Output-Offset"), Some(off.to_string().as_str()));
        got.extend_from_slice(&r.body);
        off += r.body.len();
    }
    assert_eq!(got, full);
    // SSE resumed at an offset gives the rest exactly once, then ends.
    let mid = full.len() / 2;
    let mut s = SseClient::connect(
        env.d().port,
        &format!("/agents/{id}/stream?offset={mid}"),
        &[("Authorization", &env.d().auth_header())],
    );
    let frames = s.read_until_closed(DEADLINE).expect("stream ends");
    let mut text = String::new();
    for f in frames
        .iter()
        .filter(|f| f.event.as_deref() == Some("output"))
    {
        text.push_str(f.json()["text"].as_str().unwrap());
    }
    assert_eq!(text.as_bytes(), &full[mid..]);
}

#[test]
fn errors_and_limits() {
    let env = Env::new();
    let r = env.call(
        "POST",
        "/agents/spawn",
        Some(&json!({"agent_type": "nope"})),
    );
    assert_error(&r, 400, "bad_request");
    let r = env.call(
        "POST",
        "/agents/spawn",
        Some(&json!({"agent_type": "shell", "working_dir": "/"})),
    );
    assert_error(&r, 403, "forbidden");
    let r = env.d().get("/agents");
    assert_eq!(r.status, 401);
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            env.spawn(&format!("m{i}"))["session_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let r = env.call(
        "POST",
        "/agents",
        Some(&json!({"agent_type": "standin", "working_dir": env.ws})),
    );
    assert_error(&r, 409, "conflict");
    let at = env
        .call("GET", &format!("/agents/{}/attach", ids[0]), None)
        .json();
    assert_eq!(at["command"][1], "-S");
    for id in &ids {
        assert_eq!(
            env.call("DELETE", &format!("/agents/{id}"), None).status,
            200
        );
    }
}

#[test]
fn restart_readopts_sessions_and_marks_vanished_lost() {
    let mut env = Env::new();
    let ids: Vec<String> = (0..3)
        .map(|i| {
            env.spawn(&format!("r{i}"))["session_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for id in &ids {
        env.wait_status(id, "idle", "silence");
    }
    let gone = env.agent(&ids[2])["tmux_session"]
        .as_str()
        .unwrap()
        .to_string();
    let dirs = env.d.take().unwrap().kill9();
    // While the daemon is down: one session killed, another keeps talking.
    let tm = |args: &[&str]| {
        Command::new("tmux")
            .arg("-S")
            .arg(env.sock())
            .args(args)
            .env_remove("TMUX")
            .output()
            .unwrap()
    };
    assert!(tm(&["kill-session", "-t", &gone]).status.success());
    let pane = {
        let p = tm(&["list-panes", "-a", "-F", "#{@orchestratr_id} #{pane_id}"]);
        String::from_utf8_lossy(&p.stdout)
            .lines()
            .find(|l| l.starts_with(&ids[0]))
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert!(
        tm(&["send-keys", "-t", &pane, "said while down", "Enter"])
            .status
            .success()
    );
    wait_for(DEADLINE, "echo while down", || {
        std::fs::read_to_string(env.state.join(format!("agents/{}/output.log", ids[0])))
            .is_ok_and(|s| s.contains("echo: said while down"))
    });
    env.d = Some(Daemon::start_in(dirs, &[]));
    let lost = env.wait_status(&ids[2], "lost", "process");
    assert!(lost["exited_at"].is_string());
    assert!(env.output(&ids[0]).contains("echo: said while down"));
    // Re-adopted sessions still take input.
    env.send(&ids[1], "after restart");
    wait_for(DEADLINE, "echo after restart", || {
        env.output(&ids[1]).contains("echo: after restart")
    });
    for id in &ids[..2] {
        assert_ne!(env.agent(id)["status"], "lost");
    }
}

fn cli(env: &Env, args: &[&str], stdin: &str, extra: &[(&str, &str)]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let d = env.d();
    let mut c = Command::new(BIN);
    c.env("ORCHESTRATR_CONFIG_DIR", &d.cfg_dir)
        .env("ORCHESTRATR_STATE_DIR", &d.state_dir)
        .env_remove("ORCHESTRATR_URL")
        .env_remove("ORCHESTRATR_TOKEN")
        .env_remove("ORCHESTRATR_AGENT_ID")
        .envs(extra.iter().copied())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut ch = c.spawn().unwrap();
    ch.stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    ch.wait_with_output().unwrap()
}

#[test]
fn claude_code_status_hook_and_cli() {
    let env = Env::new();
    let out = cli(
        &env,
        &[
            "agent",
            "spawn",
            "standin",
            "--cwd",
            env.ws.to_str().unwrap(),
            "--name",
            "cli",
            "--env",
            &format!("STANDIN_LOG={}", env.ws.join("cli.txt").display()),
        ],
        "",
        &[],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let id = stdout_str(&out).trim().to_string();
    env.wait_status(&id, "idle", "silence");
    let out = cli(&env, &["agent", "list"], "", &[]);
    assert!(
        stdout_str(&out).contains(&id) && stdout_str(&out).contains("idle"),
        "{}",
        describe(&out)
    );
    let out = cli(&env, &["agent", "send", &id, "via cli"], "", &[]);
    assert!(out.status.success(), "{}", describe(&out));
    wait_for(DEADLINE, "cli input", || {
        received(&env, "cli").contains("via cli\n")
    });
    // The Claude Code hook adapter: Notification → waiting with its message.
    let hook = |ev: &str, extra: &str| {
        let o = cli(
            &env,
            &["hook", "claude-code", "--agent-status"],
            &format!(r#"{{"hook_event_name":"{ev}","session_id":"cc-42"{extra}}}"#),
            &[("ORCHESTRATR_AGENT_ID", &id)],
        );
        assert!(
            o.status.success() && o.stdout.is_empty(),
            "{}",
            describe(&o)
        );
    };
    hook(
        "Notification",
        r#","message":"Claude needs your permission to use Bash""#,
    );
    let a = env.wait_status(&id, "waiting", "hook");
    assert_eq!(
        a["waiting_reason"],
        "Claude needs your permission to use Bash"
    );
    assert_eq!(a["resume_id"], "cc-42");
    hook("UserPromptSubmit", "");
    env.wait_status(&id, "running", "hook");
    hook("Stop", "");
    env.wait_status(&id, "idle", "hook");
    let out = cli(&env, &["agent", "screen", &id], "", &[]);
    assert!(stdout_str(&out).contains("ready>"), "{}", describe(&out));
    let out = cli(&env, &["agent", "kill", &id], "", &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(env.agent(&id)["status"], "exited");
    // Events: input carries the length only, never the text.
    let evs = env.d().events("type=agent.*&limit=1000");
    let kinds: Vec<&str> = evs.iter().filter_map(|e| e["type"].as_str()).collect();
    for k in [
        "agent.spawned",
        "agent.status",
        "agent.input",
        "agent.killed",
    ] {
        assert!(kinds.contains(&k), "{k} missing in {kinds:?}");
    }
    let input = evs.iter().find(|e| e["type"] == "agent.input").unwrap();
    assert_eq!(input["data"]["length"], 7);
    assert!(!input.to_string().contains("via cli"));
}

#[test]
fn orchestratr_ask_inside_a_session_makes_it_waiting() {
    let env = Env::new();
    let r = env.call(
        "POST",
        "/agents/spawn",
        Some(&json!({"agent_type": "shell", "working_dir": env.ws})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["session_id"].as_str().unwrap().to_string();
    // The pane inherits the daemon's config/state dirs through the tmux server.
    env.send(
        &id,
        &format!("{BIN} ask --title 'Deploy to prod?' --timeout 60s; echo asked-$?"),
    );
    if !wait_until(DEADLINE, || env.agent(&id)["status_source"] == "approval") {
        panic!(
            "not waiting: {}\nscreen: {}",
            env.agent(&id),
            env.output(&id)
        );
    }
    assert_eq!(env.agent(&id)["waiting_reason"], "Deploy to prod?");
    let pending = env.call("GET", "/approvals?status=pending", None).json();
    let ap = &pending["approvals"][0];
    assert_eq!(ap["context"]["agent_id"], id.as_str());
    let apid = ap["id"].as_str().unwrap();
    env.d().post_json_auth(
        &format!("/approvals/{apid}"),
        &json!({"decision": "approve"}),
    );
    wait_for(DEADLINE, "ask returned", || {
        env.output(&id).contains("asked-0")
    });
    wait_for(DEADLINE, "no longer waiting on the approval", || {
        env.agent(&id)["status_source"] != "approval"
    });
}

#[test]
fn reload_applies_to_new_spawns() {
    let env = Env::new();
    let id = env.spawn("a")["session_id"].as_str().unwrap().to_string();
    let cfg = config(&env.ws).replace("max_sessions: 4", "max_sessions: 1");
    std::fs::write(env.d().cfg_dir.join("config.yml"), cfg).unwrap();
    let (st, v) = env.d().post_auth("/reload");
    assert!(st < 300, "{v}");
    let body = json!({"agent_type": "standin", "working_dir": env.ws});
    wait_for(DEADLINE, "max_sessions 1 applies", || {
        env.call("POST", "/agents/spawn", Some(&body)).status == 409
    });
    assert_eq!(
        env.call("DELETE", &format!("/agents/{id}"), None).status,
        200
    );
    let r = env.call("POST", "/agents/spawn", Some(&body));
    assert_eq!(r.status, 201, "{}", r.text());
}

#[test]
fn live_stream_resumes_by_offset_with_every_byte_once() {
    let env = Env::new();
    let r = env.call(
        "POST",
        "/agents/spawn",
        Some(
            &json!({"agent_type": "standin", "working_dir": env.ws, "prompt": "first message",
                     "env": {"STANDIN_LOG": env.ws.join("live.txt")}}),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["status"], "starting");
    let id = r.json()["session_id"].as_str().unwrap().to_string();
    let auth = env.d().auth_header();
    let path = format!("/agents/{id}/stream");
    let mut s = SseClient::connect(env.d().port, &path, &[("Authorization", &auth)]);
    let mut text = String::new();
    let mut last: Option<String> = None;
    let mut statuses = Vec::new();
    let mut read_until =
        |s: &mut SseClient, text: &mut String, last: &mut Option<String>, what: &str| {
            wait_for(DEADLINE, what, || {
                if let Some(f) = s.next_frame(Duration::from_millis(200)) {
                    match f.event.as_deref() {
                        Some("output") => {
                            let v = f.json();
                            let off = v["offset"].as_u64().unwrap() as usize;
                            assert_eq!(off, text.len(), "no gap, no repeat");
                            text.push_str(v["text"].as_str().unwrap());
                            assert_eq!(f.id.as_deref().unwrap(), text.len().to_string());
                            *last = f.id.clone();
                        }
                        Some("status") => {
                            statuses.push(f.json()["status"].as_str().unwrap().to_string())
                        }
                        _ => {}
                    }
                }
                text.contains(what)
            });
        };
    // The spawn prompt arrives once the agent has started.
    read_until(&mut s, &mut text, &mut last, "echo: first message");
    env.send(&id, "second");
    read_until(&mut s, &mut text, &mut last, "echo: second");
    drop(s);
    env.send(&id, "third while away");
    wait_for(DEADLINE, "third in the log", || {
        env.output(&id).contains("echo: third")
    });
    let lei = last.clone().unwrap();
    let mut s = SseClient::connect(
        env.d().port,
        &path,
        &[("Authorization", &auth), ("Last-Event-ID", &lei)],
    );
    read_until(&mut s, &mut text, &mut last, "echo: third while away");
    env.send(&id, "quit");
    let frames = s
        .read_until_closed(DEADLINE)
        .expect("stream ends with the session");
    for f in frames
        .iter()
        .filter(|f| f.event.as_deref() == Some("output"))
    {
        text.push_str(f.json()["text"].as_str().unwrap());
    }
    assert!(frames.iter().any(|f| f.event.as_deref() == Some("end")));
    assert_eq!(text, env.output(&id), "every byte exactly once");
    assert!(
        statuses
            .iter()
            .any(|s| s == "starting" || s == "running" || s == "idle")
    );
}

#[test]
fn missing_tmux_is_launch_failed_with_details() {
    let dirs = Dirs::new();
    let ws = dirs.scratch().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    dirs.write("config.yml", &config(&ws));
    let d = Daemon::start_env(dirs, &[], &[("ORCHESTRATR_TMUX", "/nonexistent/tmux")]);
    let auth = d.auth_header();
    let r = d.request(
        "POST",
        "/agents/spawn",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        json!({"agent_type": "shell", "working_dir": ws})
            .to_string()
            .as_bytes(),
    );
    let v = assert_error(&r, 422, "launch_failed");
    assert_eq!(v["details"]["tmux_version"], "none", "{v}");
    assert_eq!(v["details"]["argv0"], "/bin/sh", "{v}");
}

#[test]
fn old_tmux_is_launch_failed_naming_its_version() {
    use std::os::unix::fs::PermissionsExt;
    let dirs = Dirs::new();
    let ws = dirs.scratch().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let fake = dirs.scratch().join("tmux27");
    std::fs::write(&fake, "#!/bin/sh\necho 'tmux 2.7'\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    dirs.write("config.yml", &config(&ws));
    let d = Daemon::start_env(dirs, &[], &[("ORCHESTRATR_TMUX", fake.to_str().unwrap())]);
    let auth = d.auth_header();
    let r = d.request(
        "POST",
        "/agents/spawn",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        json!({"agent_type": "standin", "working_dir": ws})
            .to_string()
            .as_bytes(),
    );
    let v = assert_error(&r, 422, "launch_failed");
    assert_eq!(v["details"]["tmux_version"], "tmux 2.7", "{v}");
    assert_eq!(v["details"]["argv0"], "python3", "{v}");
    assert!(v["error"].as_str().unwrap().contains("3.2"), "{v}");
}
