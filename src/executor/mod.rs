//! The executor (API.md §7): queued, registered, non-interactive runs with
//! live, resumable output; delegation to coding agents.
//!
//! One thread owns the queues and records (`actor.rs`); this file is its
//! handle ([`Executor`]), the commands it serves and [`ExecError`]. Each run
//! has its own process group, writes `output.log` itself (stdout and stderr
//! opened on it with `O_APPEND`, output.rs), and has one run thread (`run.rs`)
//! that decides the exit by `wait`. A run is `starting` on disk before it is
//! spawned (exactly-once, recovery.rs). Results come
//! back to the actor as commands, so all state changes happen on its thread;
//! records are written by the shared record writer (`persist.rs` over
//! `crate::records`), coalesced, off the actor's hot path.
//!
//! Scheduling is `state.rs`, request resolution `resolve.rs` (request data
//! never reaches a shell: argv templates only, `{prompt}` fills exactly one
//! argv element, a request's `cwd` must resolve inside a configured workspace
//! root), `git status` around delegations `delegation.rs`, cancel/timeout/drain
//! `kill.rs`, recovery at start `recovery.rs`.

mod actor;
pub mod delegation;
mod kill;
pub mod live;
pub mod output;
pub mod persist;
pub mod record;
mod recovery;
pub mod resolve;
mod run;
pub mod state;

pub use delegation::{files_modified, git_status};
pub use resolve::resolve_cwd;

use crate::actor::call;
use crate::config::{ExecConfig, Retention};
use crate::events::Bus;
use crossbeam_channel::{Sender, unbounded};
use output::Output;
use record::{ExecStatus, Execution};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Grace between SIGTERM and SIGKILL when cancelling or timing out, milliseconds.
pub const KILL_GRACE_MS: u64 = 5000;
/// Lines of output in a ticket's `result.message`.
pub const TICKET_MESSAGE_LINES: usize = 20;

/// What to run.
#[derive(Debug, Clone)]
pub enum SubmitSpec {
    /// A registered task (`POST /executions`).
    Task {
        /// Task name.
        task: String,
        /// Extra argv elements (only if the task has `allow_args`).
        args: Vec<String>,
        /// Working dir request (must be inside a workspace).
        cwd: Option<String>,
        /// Overrides the task's `timeout_ms`.
        timeout_ms: Option<u64>,
    },
    /// A delegation to an agent (`POST /delegate`).
    Delegate {
        /// Agent type.
        agent: String,
        /// The rendered prompt (one argv element).
        prompt: String,
        /// Working dir request (must be inside a workspace).
        cwd: Option<String>,
        /// Overrides the agent's `timeout_ms`.
        timeout_ms: Option<u64>,
    },
}

/// Errors of the executor layer (the HTTP layer maps them).
#[derive(Debug, Clone)]
pub enum ExecError {
    /// No such task (404).
    UnknownTask(String),
    /// No such agent type (400).
    UnknownAgent(String),
    /// The agent type has no `delegate` argv, only `interactive` (400).
    NoDelegate(String),
    /// `args` given but the task does not allow them (422).
    ArgsNotAllowed(String),
    /// `cwd` outside every workspace (403).
    Forbidden(String),
    /// The pool's queue is full (429); retry after this many seconds.
    QueueFull {
        /// Pool name.
        pool: String,
        /// Suggested `Retry-After`, seconds.
        retry_after_s: u64,
    },
    /// The daemon is shutting down (503).
    ShuttingDown,
    /// No such execution (404).
    NotFound(String),
    /// Already finished (409), with the standing record.
    Finished(Box<Execution>),
    /// A session-backed ticket cannot be retried (409): delegate again.
    NotRetryable(String),
    /// The executor thread is gone.
    Closed,
}

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExecError::UnknownTask(t) => write!(f, "no task named '{t}'"),
            ExecError::UnknownAgent(a) => write!(f, "unknown agent_type '{a}'"),
            ExecError::NoDelegate(a) => write!(
                f,
                "agent type '{a}' has no `delegate` command (interactive only): spawn a session \
                 with POST /agents, or add `delegate:` to agents.{a} in config.yml"
            ),
            ExecError::ArgsNotAllowed(t) => {
                write!(f, "task '{t}' does not accept args (set allow_args: true)")
            }
            ExecError::Forbidden(m) => f.write_str(m),
            ExecError::QueueFull { pool, .. } => write!(f, "the queue of pool '{pool}' is full"),
            ExecError::ShuttingDown => {
                f.write_str("the daemon is shutting down; no new executions")
            }
            ExecError::NotFound(id) => write!(f, "no execution '{id}'"),
            ExecError::Finished(e) => write!(
                f,
                "execution '{}' already finished ({})",
                e.id,
                e.status.as_str()
            ),
            ExecError::NotRetryable(id) => write!(
                f,
                "execution '{id}' was sent into a live agent session and cannot be retried: \
                 POST /delegate again"
            ),
            ExecError::Closed => f.write_str("executor is shut down"),
        }
    }
}
impl std::error::Error for ExecError {}

type Reply<T> = Sender<Result<T, ExecError>>;

/// An execution with everything a reader needs.
#[derive(Clone)]
pub struct ExecHandle {
    /// Current public record (with `queue_position`).
    pub exec: Execution,
    /// Its output.
    pub output: Arc<Output>,
    /// Changed files of a finished delegation.
    pub files_modified: Option<Vec<String>>,
}

enum Cmd {
    Submit(SubmitSpec, Option<String>, Reply<Execution>),
    Get(String, Sender<Option<ExecHandle>>),
    List {
        status: Option<ExecStatus>,
        task: Option<String>,
        limit: usize,
        reply: Sender<(Vec<Execution>, usize)>,
    },
    Cancel(String, Reply<Execution>),
    Retry(String, Reply<Execution>),
    /// A run's `starting` record is on disk: spawn it now (actor.rs `spawn`).
    Spawn(String),
    Exited {
        id: String,
        code: Option<i32>,
        signal: Option<i32>,
        files_modified: Option<Vec<String>>,
    },
    /// A delegation's `git status` before it starts (delegation.rs).
    GitBefore {
        id: String,
        status: Option<Vec<String>>,
    },
    /// Open a session-backed ticket (live.rs).
    OpenLive(live::LiveSpec, Reply<Execution>),
    /// The `git status` of a session-backed ticket before its task was sent.
    LiveGit {
        id: String,
        status: Option<Vec<String>>,
    },
    /// A session-backed ticket reached a final state (live.rs follower).
    EndLive(live::LiveEnd),
    /// Session-backed tickets still `running` (recovery of their followers).
    ListLive(Sender<Vec<live::Followed>>),
    Reconfigure(Box<ExecConfig>, Retention),
    Drain(Duration, Sender<()>),
    Stop,
}

/// Handle to the executor actor. Cheap to clone.
#[derive(Clone)]
pub struct Executor {
    tx: Sender<Cmd>,
}

impl Executor {
    /// Start the executor: load records from `<state_dir>/executions`, re-queue
    /// pending runs, mark running ones `lost` (killing their surviving process
    /// groups), and begin scheduling.
    pub fn start(
        state_dir: &Path,
        cfg: ExecConfig,
        retention: Retention,
        bus: Bus,
    ) -> (Executor, JoinHandle<()>) {
        let (tx, rx) = unbounded();
        let root = state_dir.join("executions");
        let self_tx = tx.clone();
        let h = std::thread::Builder::new()
            .name("executor".into())
            .spawn(move || {
                let mut st = actor::State::new(root, cfg, retention, bus, self_tx);
                st.recover();
                st.run(rx);
            })
            .unwrap_or_else(|e| panic!("cannot spawn executor thread: {e}"));
        (Executor { tx }, h)
    }

    /// Queue a run. Returns the record (pending, or already running).
    ///
    /// Errors: `UnknownTask`, `UnknownAgent`, `ArgsNotAllowed`, `Forbidden`,
    /// `QueueFull`, `ShuttingDown`.
    pub fn submit(&self, spec: SubmitSpec) -> Result<Execution, ExecError> {
        call(&self.tx, |r| Cmd::Submit(spec, None, r)).unwrap_or(Err(ExecError::Closed))
    }

    /// One execution with its output handle.
    pub fn get(&self, id: &str) -> Option<ExecHandle> {
        call(&self.tx, |r| Cmd::Get(id.to_string(), r)).flatten()
    }

    /// Executions, newest first, filtered; returns the page and the filtered total.
    pub fn list(
        &self,
        status: Option<ExecStatus>,
        task: Option<String>,
        limit: usize,
    ) -> (Vec<Execution>, usize) {
        call(&self.tx, |reply| Cmd::List {
            status,
            task,
            limit,
            reply,
        })
        .unwrap_or_default()
    }

    /// Cancel: a pending run leaves its queue; a running one gets SIGTERM, then
    /// SIGKILL after 5 s. Blocks the caller until the record is `cancelled`.
    ///
    /// Errors: `NotFound`, `Finished`.
    pub fn cancel(&self, id: &str) -> Result<Execution, ExecError> {
        call(&self.tx, |r| Cmd::Cancel(id.to_string(), r)).unwrap_or(Err(ExecError::Closed))
    }

    /// Queue a new run of the same spec with `retry_of` set.
    ///
    /// Errors: `NotFound`, `QueueFull`, `ShuttingDown`.
    pub fn retry(&self, id: &str) -> Result<Execution, ExecError> {
        call(&self.tx, |r| Cmd::Retry(id.to_string(), r)).unwrap_or(Err(ExecError::Closed))
    }

    /// Open a ticket backed by a live agent session (API.md §10): a `running`
    /// record with no process of its own, on disk before this returns. The
    /// caller then starts its follower ([`live::follow`]).
    ///
    /// Errors: `ShuttingDown`.
    pub fn open_live(&self, spec: live::LiveSpec) -> Result<Execution, ExecError> {
        call(&self.tx, |r| Cmd::OpenLive(spec, r)).unwrap_or(Err(ExecError::Closed))
    }

    /// Record a session-backed ticket's `git status` before its task was sent.
    pub fn live_git(&self, id: &str, status: Option<Vec<String>>) {
        let _ = self.tx.send(Cmd::LiveGit {
            id: id.to_string(),
            status,
        });
    }

    /// End a session-backed ticket (ignored when it is already final).
    pub fn end_live(&self, end: live::LiveEnd) {
        let _ = self.tx.send(Cmd::EndLive(end));
    }

    /// Session-backed tickets still `running`.
    pub fn live_running(&self) -> Vec<live::Followed> {
        call(&self.tx, Cmd::ListLive).unwrap_or_default()
    }

    /// Apply a reloaded config; running executions are not disturbed.
    pub fn reconfigure(&self, cfg: ExecConfig, retention: Retention) {
        let _ = self.tx.send(Cmd::Reconfigure(Box::new(cfg), retention));
    }

    /// Graceful shutdown, step 1: refuse new runs (503), give running ones up to
    /// `grace`, then SIGTERM/SIGKILL them (`cancelled`, `error: "daemon shutdown"`).
    /// Blocks until no run is left. Pending runs stay queued on disk for the next start.
    pub fn drain(&self, grace: Duration) {
        let _ = call(&self.tx, |r| Cmd::Drain(grace, r));
    }

    /// Stop the thread (after [`Executor::drain`]).
    pub fn stop(&self) {
        let _ = self.tx.send(Cmd::Stop);
    }
}
