//! The `Agent` object of API.md §10 and its record on disk,
//! `<state>/agents/<id>/agent.json` (written atomically before a change
//! becomes visible through the API or an event).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where a session stands (API.md §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Spawned, no output yet.
    Starting,
    /// Working.
    Running,
    /// Waiting for its next instruction.
    Idle,
    /// Needs a person: a permission prompt, a question.
    Waiting,
    /// Its process ended.
    Exited,
    /// It could not be started.
    Error,
    /// Its tmux session vanished while the daemon was down.
    Lost,
}

impl Status {
    /// Over for good?
    pub fn is_final(self) -> bool {
        matches!(self, Status::Exited | Status::Error | Status::Lost)
    }
    /// Parse a status name.
    pub fn parse(s: &str) -> Option<Status> {
        serde_json::from_value(serde_json::Value::String(s.into())).ok()
    }
}

/// Which rule decided the status (API.md §10, ranked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Process start or death.
    Process,
    /// The agent's own hook (`POST /agents/{id}/status`).
    Hook,
    /// A pending approval from the session.
    Approval,
    /// A screen pattern (or fresh output).
    Screen,
    /// No output for `idle_after_ms`.
    Silence,
}

/// A session (API.md §10 `Agent`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Agent {
    /// `sess-<type>-<12 hex>`.
    pub session_id: String,
    /// The `agents:` type.
    pub agent_type: String,
    /// Free label from the spawn request.
    pub name: Option<String>,
    /// See [`Status`].
    pub status: Status,
    /// See [`Source`].
    pub status_source: Source,
    /// Why it waits (approval title, matched screen line, hook reason).
    pub waiting_reason: Option<String>,
    /// Absolute working directory.
    pub working_dir: String,
    /// tmux session id (`$N`).
    pub tmux_session: String,
    /// tmux pane id (`%N`).
    pub tmux_pane: String,
    /// PID of the pane's first process (the `agent-exec` wrapper).
    pub pid: Option<u32>,
    /// RFC 3339 ms.
    pub created_at: String,
    /// Last output or input (RFC 3339 ms).
    pub last_activity: Option<String>,
    /// When it ended (RFC 3339 ms).
    pub exited_at: Option<String>,
    /// Exit code (`128+N` for signal N).
    pub exit_code: Option<i32>,
    /// Resident memory of the pane's process tree, MiB (live only).
    pub memory_mb: Option<f64>,
    /// CPU of the pane's process tree, percent of one core (live only).
    pub cpu_percent: Option<f64>,
    /// Size of `output.log`, bytes.
    pub output_bytes: u64,
    /// What the agent reported to resume it (`resume` argv `{resume_id}`).
    pub resume_id: Option<String>,
}

/// `<root>/<id>` (root = `<state>/agents`).
pub fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Save atomically (0600).
pub fn save(root: &Path, a: &Agent) -> std::io::Result<()> {
    let b = serde_json::to_vec_pretty(a).map_err(std::io::Error::other)?;
    crate::fsutil::write_atomic(&dir(root, &a.session_id).join("agent.json"), &b, 0o600)
}

/// Every readable record under `root`.
pub fn load_all(root: &Path) -> Vec<Agent> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut v: Vec<Agent> = rd
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("agent.json")).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    v.sort_by(|a: &Agent, b: &Agent| a.created_at.cmp(&b.created_at));
    v
}
