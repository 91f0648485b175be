//! Delegation into a live agent session (API.md §10, docs/api.md "Delegation
//! into a live session"): `POST /delegate` with `session_id` sends the task to
//! a running agent instead of starting a `delegate` run, and the ticket follows
//! the agent's status.
//!
//! A session-backed ticket is an ordinary execution record (`task:
//! "agent:<type>"`, `session_id` set, `pid` = the pane's first process, not in
//! any pool's queue or slots). The executor actor only creates and ends it
//! ([`State::open_live`], [`State::end_live`]); a small follower thread per
//! ticket ([`follow`]) takes the `git status` snapshot, queues the input on the
//! agents layer (the path of `POST /agents/{id}/input` with submit), then
//! polls the agent's recorded status (a cheap read of the agents layer's
//! table, never a call into the executor's thread) every [`POLL_MS`]:
//!
//! - `running` (or `starting`/`waiting`) seen since the send, then `idle` → `completed`;
//! - the agent exited: code 0 → `completed`, otherwise `failed`; `lost` → `lost`;
//! - `timeout_ms` passed → `timeout` (the agent is left running: it is the
//!   user's session).
//!
//! At its end the ticket's own `output.log` receives the agent's output since
//! the send (escape sequences stripped, at most the last [`MAX_COPY_BYTES`]),
//! so `result.message` and `GET /executions/{id}/output` work as for a run.
//! Recovery: a ticket still `running` at start-up whose agent is alive is
//! followed again ([`resume`]); otherwise it becomes `lost`.

use super::actor::{State, now};
use super::output::Output;
use super::record::{ExecRecord, ExecStatus, Execution};
use super::{ExecError, Executor, delegation};
use crate::agents::Agents;
use crate::agents::record::Status;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How often a follower reads the agent's status, milliseconds (the status
/// engine decides every 200 ms, so no status is missed).
pub const POLL_MS: u64 = 50;
/// How often a follower checks that its ticket was not cancelled, milliseconds.
pub const CANCEL_CHECK_MS: u64 = 1000;
/// Most of the agent's output copied into a ticket's `output.log`, bytes.
pub const MAX_COPY_BYTES: u64 = 1024 * 1024;

/// A ticket to open (`POST /delegate` with `session_id`).
#[derive(Debug, Clone)]
pub struct LiveSpec {
    /// The agent's type (`agent_type` of the request, checked to match).
    pub agent_type: String,
    /// The session the task is sent into.
    pub session_id: String,
    /// The pane's first process.
    pub pid: Option<u32>,
    /// The agent's working directory (for `files_modified`).
    pub cwd: String,
    /// Size of the agent's `output.log` before the send, bytes.
    pub offset: u64,
    /// Time limit, milliseconds (`None`: follow until the agent is idle or ends).
    pub timeout_ms: Option<u64>,
}

/// A ticket's end, reported by its follower.
#[derive(Debug, Clone)]
pub struct LiveEnd {
    /// Ticket (execution) id.
    pub id: String,
    /// Final status.
    pub status: ExecStatus,
    /// The agent's exit code, if it exited.
    pub exit_code: Option<i32>,
    /// Why it failed, timed out or was lost.
    pub error: Option<String>,
    /// The agent's output since the send, plain text.
    pub output: Vec<u8>,
    /// Paths changed in the agent's working dir (`None`: not a git work tree).
    pub files_modified: Option<Vec<String>>,
}

/// A `running` session-backed ticket, as a follower needs it.
#[derive(Debug, Clone)]
pub struct Followed {
    /// Ticket id.
    pub id: String,
    /// The agent session.
    pub session_id: String,
    /// The agent's working directory.
    pub cwd: String,
    /// Agent log offset at the send, bytes.
    pub offset: u64,
    /// When the ticket was opened, ms since the epoch.
    pub opened_ms: u64,
    /// Time limit, milliseconds.
    pub timeout_ms: Option<u64>,
    /// `git status` before the send.
    pub git_before: Option<Vec<String>>,
}

fn epoch_ms() -> u64 {
    crate::time::unix_ms(SystemTime::now())
}

impl State {
    /// Create a `running` session-backed record (persisted before the reply).
    pub(super) fn open_live(&mut self, spec: LiveSpec) -> Result<Execution, ExecError> {
        if !self.accepting {
            return Err(ExecError::ShuttingDown);
        }
        self.seq += 1;
        let id = super::record::new_id("exec");
        let t = now();
        let rec = ExecRecord {
            exec: Execution {
                id: id.clone(),
                task: format!("agent:{}", spec.agent_type),
                argv: Vec::new(),
                cwd: spec.cwd,
                pool: "session".into(),
                status: ExecStatus::Running,
                queue_position: None,
                pid: spec.pid,
                exit_code: None,
                signal: None,
                error: None,
                retry_of: None,
                created_at: t.clone(),
                started_at: Some(t),
                finished_at: None,
                duration_ms: None,
                output_bytes: 0,
                timeout_ms: spec.timeout_ms,
                agent: Some(spec.agent_type),
                session_id: Some(spec.session_id),
            },
            seq: self.seq,
            env: Default::default(),
            pid_start_time: None,
            git_before: None,
            files_modified: None,
            session_offset: Some(spec.offset),
            session_opened_ms: Some(epoch_ms()),
        };
        let out = Output::new(
            &self.output_path(&id),
            rec.exec.clone(),
            self.retention.output_bytes,
        );
        self.outputs.insert(id.clone(), Arc::new(out));
        self.records.insert(id.clone(), rec);
        self.changed(&id, Some("execution.started"));
        self.prune();
        self.view(&id).ok_or(ExecError::NotFound(id))
    }

    /// Keep the `git status` taken before the send (for a resumed follower).
    pub(super) fn live_git(&mut self, id: &str, status: Option<Vec<String>>) {
        if let Some(r) = self.records.get_mut(id) {
            r.git_before = status;
            self.persist(id);
        }
    }

    /// Finish a session-backed ticket; ignored once it is final (cancelled).
    pub(super) fn end_live(&mut self, end: LiveEnd) {
        let Some(r) = self.records.get_mut(&end.id) else {
            return;
        };
        if r.exec.status.is_final() {
            return;
        }
        r.exec.status = end.status;
        r.exec.exit_code = end.exit_code;
        r.exec.error = end.error;
        r.exec.finished_at = Some(now());
        r.exec.duration_ms = r.session_opened_ms.map(|o| epoch_ms().saturating_sub(o));
        r.files_modified = Some(end.files_modified.unwrap_or_default());
        if !end.output.is_empty()
            && let Some(o) = self.outputs.get(&end.id)
        {
            let dir = super::record::exec_dir(&self.root, &end.id);
            let _ = crate::fsutil::create_private_dir(&dir);
            o.note(&end.output);
        }
        self.changed(&end.id, Some("execution.finished"));
        self.prune();
    }

    /// Cancel a session-backed ticket: it stops following (the agent is left
    /// alone). Returns `false` when `id` is not one.
    pub(super) fn cancel_live(&mut self, id: &str) -> bool {
        let Some(r) = self.records.get_mut(id) else {
            return false;
        };
        if r.exec.session_id.is_none() || r.exec.status.is_final() {
            return false;
        }
        r.exec.status = ExecStatus::Cancelled;
        r.exec.error = Some("cancelled (the agent session was left running)".into());
        r.exec.finished_at = Some(now());
        r.exec.duration_ms = r.session_opened_ms.map(|o| epoch_ms().saturating_sub(o));
        self.changed(id, Some("execution.finished"));
        true
    }

    /// Session-backed tickets still `running`.
    pub(super) fn list_live(&self) -> Vec<Followed> {
        self.records
            .values()
            .filter(|r| r.exec.status == ExecStatus::Running)
            .filter_map(|r| {
                Some(Followed {
                    id: r.exec.id.clone(),
                    session_id: r.exec.session_id.clone()?,
                    cwd: r.exec.cwd.clone(),
                    offset: r.session_offset.unwrap_or(0),
                    opened_ms: r.session_opened_ms.unwrap_or_else(epoch_ms),
                    timeout_ms: r.exec.timeout_ms,
                    git_before: r.git_before.clone(),
                })
            })
            .collect()
    }
}

/// The agent's output from `offset` (at most the last [`MAX_COPY_BYTES`]) as
/// plain text: escape sequences stripped, CR LF made LF.
pub fn output_since(path: &Path, offset: u64) -> Vec<u8> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = offset.max(len.saturating_sub(MAX_COPY_BYTES));
    let mut buf = Vec::new();
    if start >= len
        || f.seek(SeekFrom::Start(start)).is_err()
        || f.take(len - start).read_to_end(&mut buf).is_err()
    {
        return Vec::new();
    }
    // Carriage returns first (the stripper drops them): a line redrawn in
    // place keeps its last version.
    let text = String::from_utf8_lossy(&buf).replace("\r\n", "\n");
    let text: String = text
        .split('\n')
        .map(|l| l.trim_end_matches('\r').rsplit('\r').next().unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let plain = strip_ansi_escapes::strip(text.as_bytes());
    let mut text = String::from_utf8_lossy(&plain).into_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.into_bytes()
}

/// Start the follower thread of a ticket. With `send`, it first takes the
/// `git status` snapshot and sends the task text (with submit) to the agent;
/// without, it resumes following (recovery). If no thread can be started the
/// ticket fails at once.
pub fn follow(ex: Executor, agents: Agents, f: Followed, send: Option<String>) {
    let (ex2, id) = (ex.clone(), f.id.clone());
    let spawned = std::thread::Builder::new()
        .name("exec-live".into())
        .stack_size(256 * 1024)
        .spawn(move || run_follower(&ex, &agents, f, send));
    if let Err(e) = spawned {
        ex2.end_live(LiveEnd {
            id,
            status: ExecStatus::Failed,
            exit_code: None,
            error: Some(format!("cannot start a follower thread: {e}")),
            output: Vec::new(),
            files_modified: None,
        });
    }
}

fn run_follower(ex: &Executor, agents: &Agents, f: Followed, send: Option<String>) {
    let cwd = PathBuf::from(&f.cwd);
    let mut git_before = f.git_before.clone();
    let log = agents.output_path(&f.session_id).ok();
    let end = |status: ExecStatus,
               exit_code: Option<i32>,
               error: Option<String>,
               before: &Option<Vec<String>>| {
        let files = before.as_ref().map(|b| {
            delegation::git_status(&cwd)
                .map(|a| delegation::files_modified(b, &a))
                .unwrap_or_default()
        });
        ex.end_live(LiveEnd {
            id: f.id.clone(),
            status,
            exit_code,
            error,
            output: log
                .as_deref()
                .map(|p| output_since(p, f.offset))
                .unwrap_or_default(),
            files_modified: files,
        });
    };
    if let Some(text) = send {
        git_before = delegation::git_status(&cwd);
        ex.live_git(&f.id, git_before.clone());
        if let Err(e) = agents.input_text(&f.session_id, &text, true) {
            end(ExecStatus::Failed, None, Some(e.to_string()), &git_before);
            return;
        }
    }
    let elapsed = epoch_ms().saturating_sub(f.opened_ms);
    let deadline = f
        .timeout_ms
        .map(|t| Instant::now() + Duration::from_millis(t.saturating_sub(elapsed)));
    let mut saw_busy = false;
    let mut next_cancel_check = Instant::now() + Duration::from_millis(CANCEL_CHECK_MS);
    loop {
        let Some(a) = agents.peek(&f.session_id) else {
            end(
                ExecStatus::Lost,
                None,
                Some(format!("agent session '{}' vanished", f.session_id)),
                &git_before,
            );
            return;
        };
        match a.status {
            Status::Exited | Status::Error => {
                let (st, err) = match a.exit_code {
                    Some(0) => (ExecStatus::Completed, None),
                    Some(c) => (
                        ExecStatus::Failed,
                        Some(format!("the agent exited with code {c}")),
                    ),
                    None => (
                        ExecStatus::Failed,
                        Some("the agent ended (exit status unknown)".to_string()),
                    ),
                };
                end(st, a.exit_code, err, &git_before);
                return;
            }
            Status::Lost => {
                end(
                    ExecStatus::Lost,
                    None,
                    Some(format!("agent session '{}' was lost", f.session_id)),
                    &git_before,
                );
                return;
            }
            Status::Idle if saw_busy => {
                end(ExecStatus::Completed, None, None, &git_before);
                return;
            }
            Status::Idle => {}
            Status::Starting | Status::Running | Status::Waiting => saw_busy = true,
        }
        let now_i = Instant::now();
        if deadline.is_some_and(|d| now_i >= d) {
            end(
                ExecStatus::Timeout,
                None,
                Some(format!(
                    "timed out after {} ms (the agent session was left running)",
                    f.timeout_ms.unwrap_or(0)
                )),
                &git_before,
            );
            return;
        }
        if now_i >= next_cancel_check {
            next_cancel_check = now_i + Duration::from_millis(CANCEL_CHECK_MS);
            match ex.get(&f.id) {
                Some(h) if !h.exec.status.is_final() => {}
                _ => return,
            }
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    }
}

/// Recovery (called once both the executor and the agents layer started):
/// follow every session-backed ticket still `running` whose agent is alive;
/// end the others `lost`.
pub fn resume(ex: &Executor, agents: &Agents) {
    for f in ex.live_running() {
        let alive = agents
            .peek(&f.session_id)
            .is_some_and(|a| !a.status.is_final());
        if alive {
            follow(ex.clone(), agents.clone(), f, None);
        } else {
            ex.end_live(LiveEnd {
                id: f.id.clone(),
                status: ExecStatus::Lost,
                exit_code: None,
                error: Some(format!(
                    "the daemon stopped while following agent session '{}', which is gone",
                    f.session_id
                )),
                output: Vec::new(),
                files_modified: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_since_strips_escapes_and_keeps_the_range() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("output.log");
        std::fs::write(
            &p,
            b"old\r\n\x1b[1mnew\x1b[0m line\r\nprogress 1\rprogress 2\r\n> ",
        )
        .expect("write");
        let got = String::from_utf8(output_since(&p, 5)).expect("utf8");
        assert_eq!(got, "new line\nprogress 2\n> \n");
        assert!(output_since(&p, 10_000).is_empty());
    }
}
