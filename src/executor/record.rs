//! Execution records (API.md §7 `Execution`) and their persistence:
//! `<state>/executions/<id>/execution.json`, written atomically on every change
//! (swapped in with `renameat2(RENAME_EXCHANGE)`, see [`save`]).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Lifecycle of an execution (API.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecStatus {
    /// Waiting in its pool's queue.
    Pending,
    /// Holds a slot; its record is being committed to disk, and only then is its
    /// process spawned (API.md §7, v3). A `starting` record found at start-up
    /// may have been spawned: it becomes `lost`, never queued again.
    Starting,
    /// Its process runs.
    Running,
    /// Exited 0.
    Completed,
    /// Exited non-zero, died of a signal, or could not be spawned.
    Failed,
    /// Killed after its `timeout_ms`.
    Timeout,
    /// Cancelled by a client, or by daemon shutdown.
    Cancelled,
    /// The daemon was not alive to see it finish.
    Lost,
}

impl ExecStatus {
    /// Was the run possibly spawned (`starting` or `running`)? Such a run is
    /// never queued again.
    pub fn is_spawned(self) -> bool {
        matches!(self, ExecStatus::Starting | ExecStatus::Running)
    }
    /// Is this a final state?
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            ExecStatus::Pending | ExecStatus::Starting | ExecStatus::Running
        )
    }
    /// Parse the lowercase name (query `?status=`).
    pub fn parse(s: &str) -> Option<ExecStatus> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecStatus::Pending => "pending",
            ExecStatus::Starting => "starting",
            ExecStatus::Running => "running",
            ExecStatus::Completed => "completed",
            ExecStatus::Failed => "failed",
            ExecStatus::Timeout => "timeout",
            ExecStatus::Cancelled => "cancelled",
            ExecStatus::Lost => "lost",
        }
    }
}

/// The public record (API.md §7 `Execution`), plus `timeout_ms` and `agent`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Execution {
    /// `exec-<12 hex>`.
    pub id: String,
    /// Task name, or `agent:<type>` for a delegation.
    pub task: String,
    /// What runs (no shell unless the task's command is a string).
    pub argv: Vec<String>,
    /// Absolute working directory.
    pub cwd: String,
    /// Pool name.
    pub pool: String,
    /// Status.
    pub status: ExecStatus,
    /// 1-based position in the pool's queue while pending.
    pub queue_position: Option<usize>,
    /// PID (= process group id) while or after running.
    pub pid: Option<u32>,
    /// Exit code, when it exited normally.
    pub exit_code: Option<i32>,
    /// Signal that ended it, if any.
    pub signal: Option<i32>,
    /// Why it failed, was cancelled or lost.
    pub error: Option<String>,
    /// The execution this one retries.
    pub retry_of: Option<String>,
    /// RFC 3339 times.
    pub created_at: String,
    /// RFC 3339, when it started running.
    pub started_at: Option<String>,
    /// RFC 3339, when it reached a final state.
    pub finished_at: Option<String>,
    /// `finished - started`, milliseconds.
    pub duration_ms: Option<u64>,
    /// Bytes in `output.log` so far.
    pub output_bytes: u64,
    /// Time limit, milliseconds.
    pub timeout_ms: Option<u64>,
    /// Agent type, for delegations.
    pub agent: Option<String>,
    /// The live agent session a delegation was sent into (API.md §10
    /// "Delegation into a live session"); absent for runs of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// What is persisted: the public record plus what a retry or recovery needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecRecord {
    /// The public part.
    #[serde(flatten)]
    pub exec: Execution,
    /// Creation order (ids are random).
    #[serde(default)]
    pub seq: u64,
    /// Environment added to the child (from the task or agent config at submit time).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Start time of the process group leader (sysinfo, seconds since the epoch),
    /// to recognise it after a restart despite PID reuse.
    #[serde(default)]
    pub pid_start_time: Option<u64>,
    /// `git status --porcelain` lines before a delegation ran (None: not a git work tree).
    #[serde(default)]
    pub git_before: Option<Vec<String>>,
    /// Paths changed by a delegation (computed after the run).
    #[serde(default)]
    pub files_modified: Option<Vec<String>>,
    /// Of a session-backed ticket: the size of the agent's `output.log` when
    /// the task was sent, bytes (its output since then is the ticket's).
    #[serde(default)]
    pub session_offset: Option<u64>,
    /// Of a session-backed ticket: when it was opened, milliseconds since the
    /// epoch (its timeout and duration count from here, across restarts).
    #[serde(default)]
    pub session_opened_ms: Option<u64>,
}

/// `<state>/executions/<id>`.
pub fn exec_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Write `execution.json` atomically (mode 0600: it may hold task environment).
/// Not fsynced: a daemon crash cannot tear it, and one fsync per state change
/// would dominate short runs.
///
/// The new content is written to `.execution.json.swap` (truncated and
/// rewritten in place), then swapped with `execution.json` by
/// `renameat2(RENAME_EXCHANGE)` (Linux ≥ 3.15): the target always holds a
/// whole record, and the two inodes are reused for every later save instead of
/// a new temp file per save and a freed inode per rename (inode allocation
/// after many frees dominated short runs on ext4). The first save of a record,
/// or a filesystem without the exchange, falls back to temp file + rename.
///
/// Errors: I/O errors creating the dir or writing the file.
pub fn save(root: &Path, rec: &ExecRecord) -> std::io::Result<()> {
    let dir = exec_dir(root, &rec.exec.id);
    let data = serde_json::to_vec_pretty(rec).map_err(std::io::Error::other)?;
    let target = dir.join("execution.json");
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let swap = dir.join(".execution.json.swap");
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&swap);
        let mut f = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                crate::fsutil::create_private_dir(&dir)?;
                return crate::fsutil::write_atomic_nosync(&target, &data, 0o600);
            }
            Err(e) => return Err(e),
        };
        f.write_all(&data)?;
        drop(f);
        use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
        match renameat2(
            AT_FDCWD,
            &swap,
            AT_FDCWD,
            &target,
            RenameFlags::RENAME_EXCHANGE,
        ) {
            Ok(()) => Ok(()),
            // No record yet (first save), or no exchange on this filesystem.
            Err(_) => std::fs::rename(&swap, &target),
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        crate::fsutil::create_private_dir(&dir)?;
        crate::fsutil::write_atomic_nosync(&target, &data, 0o600)
    }
}

/// Load every record under `root`; unreadable ones are skipped with a warning.
pub fn load_all(root: &Path) -> Vec<ExecRecord> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(root) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path().join("execution.json");
        match std::fs::read(&p) {
            Ok(b) => match serde_json::from_slice::<ExecRecord>(&b) {
                Ok(r) => out.push(r),
                Err(err) => log::warn!(
                    "skipping unreadable execution record {}: {err}",
                    p.display()
                ),
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => log::warn!("skipping {}: {err}", p.display()),
        }
    }
    out.sort_by_key(|r| r.seq);
    out
}

/// A new random id `<prefix>-<12 hex>`.
pub fn new_id(prefix: &str) -> String {
    let mut b = [0u8; 6];
    if getrandom::fill(&mut b).is_err() {
        let t = crate::time::unix_ms(std::time::SystemTime::now()) ^ u64::from(std::process::id());
        b.copy_from_slice(&t.to_le_bytes()[..6]);
    }
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{prefix}-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_save_replaces_the_record_whole() {
        let root = tempfile::tempdir().expect("tmp");
        let mut rec: ExecRecord = serde_json::from_value(serde_json::json!({
            "id": "exec-0000000000aa", "task": "t", "argv": ["x"], "cwd": "/",
            "pool": "default", "status": "pending", "queue_position": null,
            "pid": null, "exit_code": null, "signal": null, "error": null,
            "retry_of": null, "created_at": "", "started_at": null,
            "finished_at": null, "duration_ms": null, "output_bytes": 0,
            "timeout_ms": null, "agent": null, "seq": 1
        }))
        .expect("record");
        for (i, st) in [
            ExecStatus::Pending,
            ExecStatus::Starting,
            ExecStatus::Running,
            ExecStatus::Completed,
        ]
        .into_iter()
        .enumerate()
        {
            rec.exec.status = st;
            // Shrinking and growing content alike.
            rec.exec.error = (i % 2 == 1).then(|| "x".repeat(500));
            save(root.path(), &rec).expect("save");
            let all = load_all(root.path());
            assert_eq!(all.len(), 1);
            assert_eq!(all[0].exec.status, st);
            assert_eq!(all[0].exec.error, rec.exec.error);
        }
    }
}
