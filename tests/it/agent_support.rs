//! The harness the agent tests share (agents, live delegation): a daemon with
//! the scripted stand-in agent (tests/fixtures/standin_agent.py) configured,
//! plus its private tmux server, killed on drop.

use crate::common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The stand-in agent script.
pub fn fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/standin_agent.py")
        .display()
        .to_string()
}

/// A config with the `standin` and `shell` agent types and `ws` as workspace.
pub fn config(ws: &Path) -> String {
    format!(
        r#"workspaces: ["{ws}"]
agents:
  standin:
    interactive: ["python3", "{fx}"]
    detect: shell
    prompt_patterns: ["(y/n)"]
    busy_patterns: ["WORKING"]
    idle_after_ms: 700
    submit_delay_ms: 50
    max_sessions: 4
  shell:
    interactive: ["/bin/sh"]
    detect: shell
"#,
        ws = ws.display(),
        fx = fixture()
    )
}

/// A daemon plus the tmux server it starts; the server is killed on drop.
pub struct Env {
    pub d: Option<Daemon>,
    pub ws: PathBuf,
    pub state: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dirs = Dirs::new();
        let ws = dirs.scratch().join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        dirs.write("config.yml", &config(&ws));
        let state = dirs.state.clone();
        let d = Daemon::start_in(dirs, &[]);
        Env {
            d: Some(d),
            ws,
            state,
        }
    }
    pub fn d(&self) -> &Daemon {
        self.d.as_ref().unwrap()
    }
    pub fn sock(&self) -> PathBuf {
        self.state.join("agents/tmux.sock")
    }
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let auth = self.d().auth_header();
        let b = body.map(|b| b.to_string()).unwrap_or_default();
        let mut h = vec![("Authorization", auth.as_str())];
        if body.is_some() {
            h.push(("Content-Type", "application/json"));
        }
        self.d().request(method, path, &h, b.as_bytes())
    }
    pub fn agent(&self, id: &str) -> Value {
        let r = self.call("GET", &format!("/agents/{id}"), None);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(self.sock())
            .arg("kill-server")
            .env_remove("TMUX")
            .output();
    }
}
