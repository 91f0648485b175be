//! Delegation into a live agent session (API.md §10 "POST /delegate may name
//! session_id", docs/api.md "Delegation into a live session"), end to end: the
//! real binary, a real private tmux server per test, and the scripted stand-in
//! agent (tests/fixtures/standin_agent.py).

use crate::agent_support::Env;
use crate::common;

use common::*;
use serde_json::{Value, json};
use std::process::Command;

impl Env {
    /// Spawn a stand-in and wait until it is idle (up and silent).
    fn spawn_idle(&self, name: &str) -> String {
        let r = self.call(
            "POST",
            "/agents/spawn",
            Some(
                &json!({"agent_type": "standin", "working_dir": self.ws, "name": name,
                         "env": {"STANDIN_LOG": self.ws.join(format!("{name}.txt"))}}),
            ),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let id = r.json()["session_id"].as_str().unwrap().to_string();
        wait_for(DEADLINE, "the agent idle", || {
            self.agent(&id)["status"] == "idle"
        });
        id
    }
    fn delegate(&self, body: &Value) -> Resp {
        self.call("POST", "/delegate", Some(body))
    }
    fn ticket(&self, id: &str) -> Value {
        let r = self.call("GET", &format!("/tasks/{id}"), None);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }
    fn wait_ticket(&self, id: &str, status: &str) -> Value {
        wait_some(DEADLINE, &format!("ticket {id} {status}"), || {
            let t = self.ticket(id);
            (t["status"] == status).then_some(t)
        })
    }
}

fn received(env: &Env, name: &str) -> String {
    std::fs::read_to_string(env.ws.join(format!("{name}.txt"))).unwrap_or_default()
}

#[test]
fn a_task_sent_into_a_live_session_completes_when_it_goes_idle() {
    let env = Env::new();
    // A git work tree, for files_modified.
    let git = |args: &[&str]| {
        let st = Command::new("git")
            .arg("-C")
            .arg(&env.ws)
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    let id = env.spawn_idle("one");
    let r = env.delegate(&json!({
        "agent_type": "standin", "session_id": id, "task": "busy 8",
        "context": {"files": ["a.rs"]}
    }));
    assert_eq!(r.status, 202, "{}", r.text());
    let acc = r.json();
    assert_eq!(acc["session_id"], id.as_str(), "{acc}");
    assert_eq!(acc["status"], "running", "{acc}");
    let tid = acc["ticket_id"].as_str().unwrap().to_string();
    // The text (task, then the context as plain text) arrives in the pane.
    wait_for(DEADLINE, "the task in the pane", || {
        let got = received(&env, "one");
        got.contains("busy 8") && got.contains("- a.rs")
    });
    // Running while the agent works.
    let t = env.ticket(&tid);
    assert!(
        t["status"] == "running" || t["status"] == "completed",
        "{t}"
    );
    assert_eq!(t["session_id"], id.as_str());
    // The agent works (and leaves a file behind), then goes idle.
    std::fs::write(env.ws.join("made.txt"), b"x").unwrap();
    let done = env.wait_ticket(&tid, "completed");
    let msg = done["result"]["message"].as_str().unwrap();
    assert!(msg.contains("WORKING 7"), "{done}");
    assert!(!msg.contains('\x1b'), "plain text: {msg:?}");
    assert!(
        !msg.contains("standin ready"),
        "only output since the send: {msg:?}"
    );
    assert_eq!(
        done["result"]["files_modified"],
        json!(["made.txt"]),
        "{done}"
    );
    assert_eq!(env.agent(&id)["status"], "idle");
    // The execution record shows it.
    let e = env.call("GET", &format!("/executions/{tid}"), None).json();
    assert_eq!(e["task"], "agent:standin", "{e}");
    assert_eq!(e["session_id"], id.as_str(), "{e}");
    assert_eq!(e["pid"], env.agent(&id)["pid"], "{e}");
    assert_eq!(e["status"], "completed");
    let out = env
        .call("GET", &format!("/executions/{tid}/output"), None)
        .text();
    assert!(out.contains("WORKING 0"), "{out}");
    // A session-backed ticket is not retried.
    let r = env.call("POST", &format!("/executions/{tid}/retry"), None);
    assert_error(&r, 409, "conflict");
}

#[test]
fn an_agent_that_exits_non_zero_fails_the_ticket() {
    let env = Env::new();
    let id = env.spawn_idle("q");
    let r = env.delegate(&json!({"agent_type": "standin", "session_id": id, "task": "quit"}));
    assert_eq!(r.status, 202, "{}", r.text());
    let tid = r.json()["ticket_id"].as_str().unwrap().to_string();
    let t = env.wait_ticket(&tid, "failed");
    assert_eq!(t["result"]["exit_code"], 3, "{t}");
    assert!(
        t["result"]["error"].as_str().unwrap().contains("code 3"),
        "{t}"
    );
    // Now the session is over: 409 not_running.
    let r = env.delegate(&json!({"agent_type": "standin", "session_id": id, "task": "x"}));
    assert_error(&r, 409, "not_running");
}

#[test]
fn a_ticket_times_out_and_leaves_the_agent_running() {
    let env = Env::new();
    let id = env.spawn_idle("t");
    let r = env.delegate(&json!({
        "agent_type": "standin", "session_id": id, "task": "busy 100", "timeout_ms": 800
    }));
    assert_eq!(r.status, 202, "{}", r.text());
    let tid = r.json()["ticket_id"].as_str().unwrap().to_string();
    let t = env.wait_ticket(&tid, "timeout");
    assert!(
        t["result"]["error"].as_str().unwrap().contains("timed out"),
        "{t}"
    );
    assert!(
        t["result"]["message"].as_str().unwrap().contains("WORKING"),
        "{t}"
    );
    let a = env.agent(&id);
    assert!(a["status"] == "running" || a["status"] == "idle", "{a}");
}

#[test]
fn unknown_foreign_and_bad_sessions_are_refused() {
    let env = Env::new();
    let r = env.delegate(&json!({
        "agent_type": "standin", "session_id": "sess-standin-000000000000", "task": "x"
    }));
    assert_error(&r, 404, "not_found");
    let id = env.spawn_idle("o");
    let r = env.delegate(&json!({"agent_type": "shell", "session_id": id, "task": "x"}));
    let e = assert_error(&r, 400, "bad_request");
    assert!(e.to_string().contains("standin"), "{e}");
    let r = env.call("DELETE", &format!("/agents/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = env.delegate(&json!({"agent_type": "standin", "session_id": id, "task": "x"}));
    assert_error(&r, 409, "not_running");
    // Nothing was recorded for the refused requests.
    let l = env.call("GET", "/executions", None).json();
    assert_eq!(l["total"], 0, "{l}");
}

#[test]
fn a_running_ticket_is_followed_again_after_a_daemon_restart() {
    let mut env = Env::new();
    let id = env.spawn_idle("r");
    let gone = env.spawn_idle("g");
    let r = env.delegate(&json!({"agent_type": "standin", "session_id": id, "task": "busy 40"}));
    assert_eq!(r.status, 202, "{}", r.text());
    let tid = r.json()["ticket_id"].as_str().unwrap().to_string();
    let r = env.delegate(&json!({"agent_type": "standin", "session_id": gone, "task": "busy 200"}));
    assert_eq!(r.status, 202, "{}", r.text());
    let tid_gone = r.json()["ticket_id"].as_str().unwrap().to_string();
    wait_for(DEADLINE, "both tasks in their panes", || {
        received(&env, "r").contains("busy 40") && received(&env, "g").contains("busy 200")
    });
    let gone_session = env.agent(&gone)["tmux_session"]
        .as_str()
        .unwrap()
        .to_string();
    let dirs = env.d.take().unwrap().kill9();
    // One agent dies while the daemon is down: its tmux session vanishes.
    let _ = Command::new("tmux")
        .arg("-S")
        .arg(env.state.join("agents/tmux.sock"))
        .args(["kill-session", "-t", &gone_session])
        .env_remove("TMUX")
        .output();
    env.d = Some(Daemon::start_in(dirs, &[]));
    let t = env.wait_ticket(&tid, "completed");
    assert!(
        t["result"]["message"]
            .as_str()
            .unwrap()
            .contains("WORKING 39"),
        "{t}"
    );
    let t = env.wait_ticket(&tid_gone, "lost");
    assert!(t["result"]["error"].is_string(), "{t}");
}
