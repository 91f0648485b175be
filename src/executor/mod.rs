//! The executor actor (API.md §7): queued, registered, non-interactive runs with
//! live, resumable output; delegation to coding agents.
//!
//! One thread owns the queues and records. Each run has its own process group and
//! one run thread (`run.rs`) that polls stdout and stderr together into
//! `output.log` (neither pipe can fill and block the child) and decides the exit
//! by `wait`, never by end-of-pipe. Results come back to the actor as commands,
//! so all state changes happen on its thread; records are written by the
//! persister thread (`persist.rs`), coalesced, off the actor's hot path.
//!
//! Request data never reaches a shell: argv templates only, `{prompt}` fills
//! exactly one argv element, and a request's `cwd` must resolve inside a
//! configured workspace root.

pub mod output;
pub mod persist;
pub mod record;
mod run;

use crate::actor::call;
use crate::config::{ExecConfig, PoolSpec, Retention};
use crate::events::{Bus, NewEvent};
use crossbeam_channel::{Receiver, Sender, select_biased, unbounded};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use output::Output;
use record::{ExecRecord, ExecStatus, Execution};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    /// The executor thread is gone.
    Closed,
}

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExecError::UnknownTask(t) => write!(f, "no task named '{t}'"),
            ExecError::UnknownAgent(a) => write!(f, "unknown agent_type '{a}'"),
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
    StartTime {
        id: String,
        start_time: Option<u64>,
    },
    Exited {
        id: String,
        code: Option<i32>,
        signal: Option<i32>,
        files_modified: Option<Vec<String>>,
    },
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
                let mut st = State::new(root, cfg, retention, bus, self_tx);
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

#[derive(Debug, Clone, Copy, PartialEq)]
enum EndReason {
    Cancel,
    Timeout,
    Shutdown,
}

struct Running {
    pgid: i32,
    started: Instant,
    deadline: Option<Instant>,
    kill_at: Option<Instant>,
    reason: Option<EndReason>,
    cancel_replies: Vec<Reply<Execution>>,
}

struct State {
    root: PathBuf,
    cfg: ExecConfig,
    retention: Retention,
    bus: Bus,
    self_tx: Sender<Cmd>,
    records: HashMap<String, ExecRecord>,
    outputs: HashMap<String, Arc<Output>>,
    queues: BTreeMap<String, VecDeque<String>>,
    running: HashMap<String, Running>,
    starts: HashMap<String, VecDeque<Instant>>,
    next_wake: Option<Instant>,
    seq: u64,
    accepting: bool,
    drain: Option<(Instant, Sender<()>, bool)>,
    sys: Option<sysinfo::System>,
    persister: persist::Persister,
}

fn now() -> String {
    crate::time::now_rfc3339()
}

/// Resolve a request `cwd` (after `~` and symlinks) and check it lies inside one of
/// `workspaces`. Returns the canonical path.
///
/// Errors: [`ExecError::Forbidden`] naming the path.
pub fn resolve_cwd(requested: &str, workspaces: &[String]) -> Result<PathBuf, ExecError> {
    let p = crate::proc::expand_tilde(requested);
    let forbidden = || {
        ExecError::Forbidden(format!(
            "cwd '{requested}' is not inside a configured workspace (config 'workspaces')"
        ))
    };
    let canon = p.canonicalize().map_err(|_| forbidden())?;
    let inside = workspaces.iter().any(|w| {
        crate::proc::expand_tilde(w)
            .canonicalize()
            .is_ok_and(|root| canon.starts_with(&root))
    });
    if inside && canon.is_dir() {
        Ok(canon)
    } else {
        Err(forbidden())
    }
}

fn home() -> PathBuf {
    dirs::home_dir().unwrap_or_else(|| PathBuf::from("/"))
}

/// `git status --porcelain` paths in `dir`, or `None` when it is not a git work tree.
pub fn git_status(dir: &Path) -> Option<Vec<String>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["status", "--porcelain", "--untracked-files=all"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.len() > 3)
            .map(|l| l.to_string())
            .collect(),
    )
}

/// Paths whose porcelain line is new after the run (renames give the new path).
pub fn files_modified(before: &[String], after: &[String]) -> Vec<String> {
    let mut out: Vec<String> = after
        .iter()
        .filter(|l| !before.contains(l))
        .map(|l| {
            let p = &l[3..];
            p.rsplit(" -> ")
                .next()
                .unwrap_or(p)
                .trim_matches('"')
                .to_string()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

impl State {
    fn new(
        root: PathBuf,
        cfg: ExecConfig,
        retention: Retention,
        bus: Bus,
        self_tx: Sender<Cmd>,
    ) -> State {
        let _ = crate::fsutil::create_private_dir(&root);
        let persister = persist::Persister::start(root.clone());
        State {
            persister,
            root,
            cfg,
            retention,
            bus,
            self_tx,
            records: HashMap::new(),
            outputs: HashMap::new(),
            queues: BTreeMap::new(),
            running: HashMap::new(),
            starts: HashMap::new(),
            next_wake: None,
            seq: 0,
            accepting: true,
            drain: None,
            sys: sysinfo::System::new().ok(),
        }
    }

    fn output_path(&self, id: &str) -> PathBuf {
        record::exec_dir(&self.root, id).join("output.log")
    }

    fn pool(&self, name: &str) -> PoolSpec {
        self.cfg.pools.get(name).copied().unwrap_or_default()
    }

    fn persist(&self, id: &str) {
        if let Some(r) = self.records.get(id) {
            self.persister.save(r);
        }
    }

    /// The public view with `queue_position`.
    fn view(&self, id: &str) -> Option<Execution> {
        let r = self.records.get(id)?;
        let mut e = r.exec.clone();
        e.queue_position = if e.status == ExecStatus::Pending {
            self.queues
                .get(&e.pool)
                .and_then(|q| q.iter().position(|x| x == id))
                .map(|p| p + 1)
        } else {
            None
        };
        if let Some(o) = self.outputs.get(id) {
            e.output_bytes = o.len();
        }
        Some(e)
    }

    /// Persist, update the output's snapshot, optionally publish an event.
    fn changed(&mut self, id: &str, event: Option<&str>) {
        if let Some(o) = self.outputs.get(id)
            && let Some(r) = self.records.get_mut(id)
        {
            r.exec.output_bytes = o.len();
        }
        self.persist(id);
        let Some(v) = self.view(id) else { return };
        // Shown to the world only once it is on disk (persist.rs invariant).
        let out = self.outputs.get(id).cloned();
        let bus = self.bus.clone();
        let kind = event.map(str::to_string);
        self.persister.after(move || {
            if let Some(o) = out {
                let final_ = v.status.is_final();
                o.set_state(v.clone(), final_);
            }
            if let Some(kind) = kind {
                bus.emit(NewEvent::daemon(&kind, None, json!(v)));
            }
        });
    }

    /// Send `value` on `reply` once everything it may show is on disk.
    fn reply_after<T: Send + 'static>(&self, reply: Sender<T>, value: T) {
        self.persister.after(move || {
            let _ = reply.send(value);
        });
    }

    fn start_time_of(&mut self, pid: u32) -> Option<u64> {
        crate::proc::process_start_time(self.sys.as_mut()?, pid)
    }

    /// Runs of `pool_name` now running.
    fn running_in(&self, pool_name: &str) -> usize {
        self.running
            .keys()
            .filter(|id| {
                self.records
                    .get(*id)
                    .is_some_and(|r| r.exec.pool == pool_name)
            })
            .count()
    }

    fn recover(&mut self) {
        let records = record::load_all(&self.root);
        let (mut requeued, mut lost) = (0, 0);
        for mut r in records {
            self.seq = self.seq.max(r.seq);
            let id = r.exec.id.clone();
            let was_running = r.exec.status == ExecStatus::Running;
            match r.exec.status {
                ExecStatus::Pending => {
                    self.queues
                        .entry(r.exec.pool.clone())
                        .or_default()
                        .push_back(id.clone());
                    requeued += 1;
                }
                ExecStatus::Running => {
                    if let Some(pid) = r.exec.pid {
                        let leader = self.start_time_of(pid);
                        let ours = match (leader, r.pid_start_time) {
                            (Some(now), Some(then)) => now == then,
                            (None, _) => crate::proc::group_alive(pid as i32),
                            (Some(_), None) => false,
                        };
                        if ours && killpg(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok() {
                            log::warn!(
                                "killed surviving process group {pid} of lost execution {id}"
                            );
                        }
                    }
                    r.exec.status = ExecStatus::Lost;
                    r.exec.error = Some("the daemon stopped while it was running".into());
                    r.exec.finished_at = Some(now());
                    lost += 1;
                }
                _ => {}
            }
            let out = Output::new(
                &self.output_path(&id),
                r.exec.clone(),
                self.retention.output_bytes,
                false,
            );
            r.exec.output_bytes = out.len();
            self.outputs.insert(id.clone(), Arc::new(out));
            self.records.insert(id.clone(), r);
            if was_running {
                self.persist(&id);
            }
        }
        if requeued + lost > 0 {
            log::info!(
                "executions recovered: {requeued} pending re-queued, {lost} running marked lost"
            );
        }
        self.prune();
        self.schedule();
    }

    fn run(mut self, rx: Receiver<Cmd>) {
        loop {
            let timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(1))
                .max(Duration::from_millis(5));
            select_biased! {
                recv(rx) -> msg => match msg {
                    Ok(Cmd::Stop) | Err(_) => break,
                    Ok(cmd) => self.handle(cmd),
                },
                default(timeout) => {}
            }
            self.tick();
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut d: Option<Instant> = self.next_wake;
        let mut consider = |x: Option<Instant>| {
            if let Some(x) = x {
                d = Some(d.map_or(x, |y| y.min(x)));
            }
        };
        for r in self.running.values() {
            consider(r.deadline.filter(|_| r.reason.is_none()));
            consider(r.kill_at);
        }
        if let Some((dl, _, killed)) = &self.drain
            && !killed
        {
            consider(Some(*dl));
        }
        d
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Submit(spec, retry_of, reply) => {
                let r = self.submit(spec, retry_of);
                self.reply_after(reply, r);
            }
            Cmd::Get(id, reply) => {
                let h = self.view(&id).and_then(|exec| {
                    Some(ExecHandle {
                        exec,
                        output: self.outputs.get(&id)?.clone(),
                        files_modified: self
                            .records
                            .get(&id)
                            .and_then(|r| r.files_modified.clone()),
                    })
                });
                self.reply_after(reply, h);
            }
            Cmd::List {
                status,
                task,
                limit,
                reply,
            } => {
                let mut all: Vec<&ExecRecord> = self
                    .records
                    .values()
                    .filter(|r| status.is_none_or(|s| r.exec.status == s))
                    .filter(|r| task.as_ref().is_none_or(|t| r.exec.task == *t))
                    .collect();
                all.sort_by_key(|r| std::cmp::Reverse(r.seq));
                let total = all.len();
                let page: Vec<Execution> = all
                    .iter()
                    .take(limit)
                    .filter_map(|r| self.view(&r.exec.id))
                    .collect();
                self.reply_after(reply, (page, total));
            }
            Cmd::Cancel(id, reply) => self.cancel(&id, reply),
            Cmd::Retry(id, reply) => {
                let r = self.retry(&id);
                self.reply_after(reply, r);
            }
            Cmd::StartTime { id, start_time } => {
                if let Some(r) = self.records.get_mut(&id) {
                    r.pid_start_time = start_time;
                    self.persist(&id);
                }
            }
            Cmd::Exited {
                id,
                code,
                signal,
                files_modified,
            } => self.exited(&id, code, signal, files_modified),
            Cmd::Reconfigure(cfg, retention) => {
                self.cfg = *cfg;
                self.retention = retention;
                self.schedule();
            }
            Cmd::Drain(grace, reply) => {
                self.accepting = false;
                self.drain = Some((Instant::now() + grace, reply, false));
                self.check_drain();
            }
            Cmd::Stop => {}
        }
    }

    fn resolve(&self, spec: &SubmitSpec) -> Result<ExecRecord, ExecError> {
        let (task, argv, cwd, env, pool, timeout_ms, agent) = match spec {
            SubmitSpec::Task {
                task,
                args,
                cwd,
                timeout_ms,
            } => {
                let t = self
                    .cfg
                    .tasks
                    .get(task)
                    .ok_or_else(|| ExecError::UnknownTask(task.clone()))?;
                if !args.is_empty() && !t.allow_args {
                    return Err(ExecError::ArgsNotAllowed(task.clone()));
                }
                let dir = match cwd {
                    Some(c) => resolve_cwd(c, &self.cfg.workspaces)?,
                    None => t
                        .cwd
                        .as_deref()
                        .map(crate::proc::expand_tilde)
                        .unwrap_or_else(home),
                };
                (
                    task.clone(),
                    t.command.argv(args),
                    dir,
                    t.env.clone(),
                    t.pool.clone(),
                    timeout_ms.or(t.timeout_ms),
                    None,
                )
            }
            SubmitSpec::Delegate {
                agent,
                prompt,
                cwd,
                timeout_ms,
            } => {
                let a = self
                    .cfg
                    .agents
                    .get(agent)
                    .ok_or_else(|| ExecError::UnknownAgent(agent.clone()))?;
                let dir = match cwd {
                    Some(c) => resolve_cwd(c, &self.cfg.workspaces)?,
                    None => home(),
                };
                let argv = a
                    .delegate
                    .iter()
                    .map(|x| x.replace("{prompt}", prompt))
                    .collect();
                (
                    format!("agent:{agent}"),
                    argv,
                    dir,
                    a.env.clone(),
                    a.pool.clone(),
                    timeout_ms.or(a.timeout_ms),
                    Some(agent.clone()),
                )
            }
        };
        Ok(ExecRecord {
            exec: Execution {
                id: record::new_id("exec"),
                task,
                argv,
                cwd: cwd.display().to_string(),
                pool,
                status: ExecStatus::Pending,
                queue_position: None,
                pid: None,
                exit_code: None,
                signal: None,
                error: None,
                retry_of: None,
                created_at: now(),
                started_at: None,
                finished_at: None,
                duration_ms: None,
                output_bytes: 0,
                timeout_ms,
                agent,
            },
            seq: 0,
            env,
            pid_start_time: None,
            git_before: None,
            files_modified: None,
        })
    }

    fn enqueue(&mut self, mut rec: ExecRecord) -> Result<Execution, ExecError> {
        if !self.accepting {
            return Err(ExecError::ShuttingDown);
        }
        let pool = self.pool(&rec.exec.pool);
        let queued = self.queues.get(&rec.exec.pool).map_or(0, VecDeque::len);
        if queued >= pool.max_queued && !self.can_start_now(&rec.exec.pool, &pool) {
            return Err(ExecError::QueueFull {
                pool: rec.exec.pool.clone(),
                retry_after_s: if pool.starts_per_minute.is_some() {
                    60
                } else {
                    5
                },
            });
        }
        self.seq += 1;
        rec.seq = self.seq;
        let id = rec.exec.id.clone();
        let out = Output::new(
            &self.output_path(&id),
            rec.exec.clone(),
            self.retention.output_bytes,
            false,
        );
        self.outputs.insert(id.clone(), Arc::new(out));
        self.queues
            .entry(rec.exec.pool.clone())
            .or_default()
            .push_back(id.clone());
        self.records.insert(id.clone(), rec);
        self.changed(&id, Some("execution.queued"));
        self.schedule();
        self.view(&id).ok_or(ExecError::NotFound(id))
    }

    fn submit(
        &mut self,
        spec: SubmitSpec,
        retry_of: Option<String>,
    ) -> Result<Execution, ExecError> {
        if !self.accepting {
            return Err(ExecError::ShuttingDown);
        }
        let mut rec = self.resolve(&spec)?;
        rec.exec.retry_of = retry_of;
        let r = self.enqueue(rec);
        self.prune();
        r
    }

    fn retry(&mut self, id: &str) -> Result<Execution, ExecError> {
        let old = self
            .records
            .get(id)
            .ok_or_else(|| ExecError::NotFound(id.to_string()))?;
        let mut rec = old.clone();
        rec.exec.id = record::new_id("exec");
        rec.exec.status = ExecStatus::Pending;
        rec.exec.retry_of = Some(id.to_string());
        rec.exec.created_at = now();
        for f in [
            &mut rec.exec.started_at,
            &mut rec.exec.finished_at,
            &mut rec.exec.error,
        ] {
            *f = None;
        }
        rec.exec.pid = None;
        rec.exec.exit_code = None;
        rec.exec.signal = None;
        rec.exec.duration_ms = None;
        rec.exec.output_bytes = 0;
        rec.pid_start_time = None;
        rec.git_before = None;
        rec.files_modified = None;
        let r = self.enqueue(rec);
        self.prune();
        r
    }

    fn cancel(&mut self, id: &str, reply: Reply<Execution>) {
        let Some(rec) = self.records.get_mut(id) else {
            self.reply_after(reply, Err(ExecError::NotFound(id.to_string())));
            return;
        };
        match rec.exec.status {
            ExecStatus::Pending => {
                if let Some(q) = self.queues.get_mut(&rec.exec.pool) {
                    q.retain(|x| x != id);
                }
                rec.exec.status = ExecStatus::Cancelled;
                rec.exec.error = Some("cancelled while pending".into());
                rec.exec.finished_at = Some(now());
                self.changed(id, Some("execution.finished"));
                let v = self.view(id).ok_or(ExecError::NotFound(id.to_string()));
                self.reply_after(reply, v);
            }
            ExecStatus::Running => {
                if let Some(run) = self.running.get_mut(id) {
                    if run.reason.is_none() {
                        run.reason = Some(EndReason::Cancel);
                        let _ = killpg(Pid::from_raw(run.pgid), Signal::SIGTERM);
                        run.kill_at = Some(Instant::now() + Duration::from_millis(KILL_GRACE_MS));
                    }
                    run.cancel_replies.push(reply);
                }
            }
            _ => {
                let e = match self.view(id) {
                    Some(e) => ExecError::Finished(Box::new(e)),
                    None => ExecError::NotFound(id.to_string()),
                };
                self.reply_after(reply, Err(e));
            }
        }
    }

    fn tick(&mut self) {
        let now_i = Instant::now();
        for run in self.running.values_mut() {
            if run.reason.is_none()
                && let Some(d) = run.deadline
                && now_i >= d
            {
                run.reason = Some(EndReason::Timeout);
                let _ = killpg(Pid::from_raw(run.pgid), Signal::SIGTERM);
                run.kill_at = Some(now_i + Duration::from_millis(KILL_GRACE_MS));
            }
            if let Some(k) = run.kill_at
                && now_i >= k
            {
                let _ = killpg(Pid::from_raw(run.pgid), Signal::SIGKILL);
                run.kill_at = Some(now_i + Duration::from_millis(500));
            }
        }
        if let Some((dl, _, killed)) = &mut self.drain
            && !*killed
            && now_i >= *dl
        {
            *killed = true;
            for run in self.running.values_mut() {
                if run.reason.is_none() || run.reason == Some(EndReason::Timeout) {
                    run.reason = Some(EndReason::Shutdown);
                }
                let _ = killpg(Pid::from_raw(run.pgid), Signal::SIGTERM);
                if run.kill_at.is_none() {
                    run.kill_at = Some(now_i + Duration::from_millis(KILL_GRACE_MS));
                }
            }
        }
        if self.next_wake.is_some_and(|w| now_i >= w) {
            self.next_wake = None;
            self.schedule();
        }
    }

    /// Would a run submitted to `pool_name` start immediately (empty queue, a free
    /// slot, and no `starts_per_minute` limit reached)?
    fn can_start_now(&self, pool_name: &str, pool: &PoolSpec) -> bool {
        let queue_empty = self.queues.get(pool_name).is_none_or(VecDeque::is_empty);
        let running = self.running_in(pool_name);
        let spm_ok = pool.starts_per_minute.is_none_or(|spm| {
            let now_i = Instant::now();
            self.starts.get(pool_name).map_or(0, |st| {
                st.iter()
                    .filter(|t| now_i.duration_since(**t) < Duration::from_secs(60))
                    .count()
            }) < spm as usize
        });
        self.accepting && queue_empty && running < pool.max_concurrent && spm_ok
    }

    fn schedule(&mut self) {
        // No new starts once a drain began (accepting never comes back).
        if self.drain.is_some() || !self.accepting {
            return;
        }
        let pools: Vec<String> = self.queues.keys().cloned().collect();
        for pool_name in pools {
            let spec = self.pool(&pool_name);
            loop {
                if self.queues.get(&pool_name).is_none_or(VecDeque::is_empty) {
                    break;
                }
                if self.running_in(&pool_name) >= spec.max_concurrent {
                    break;
                }
                if let Some(spm) = spec.starts_per_minute {
                    let window = Duration::from_secs(60);
                    let starts = self.starts.entry(pool_name.clone()).or_default();
                    let now_i = Instant::now();
                    while starts
                        .front()
                        .is_some_and(|t| now_i.duration_since(*t) >= window)
                    {
                        starts.pop_front();
                    }
                    if starts.len() >= spm as usize {
                        if let Some(first) = starts.front() {
                            let wake = *first + window;
                            self.next_wake = Some(self.next_wake.map_or(wake, |w| w.min(wake)));
                        }
                        break;
                    }
                    starts.push_back(now_i);
                }
                let Some(id) = self
                    .queues
                    .get_mut(&pool_name)
                    .and_then(VecDeque::pop_front)
                else {
                    break;
                };
                self.launch(&id);
            }
        }
        // Queue positions changed for everyone behind: not published as events
        // (they are computed on read).
    }

    fn launch(&mut self, id: &str) {
        let Some(rec) = self.records.get(id).cloned() else {
            return;
        };
        let Some(out) = self.outputs.get(id).cloned() else {
            return;
        };
        let cwd = PathBuf::from(&rec.exec.cwd);
        let git_before = if rec.exec.agent.is_some() {
            git_status(&cwd)
        } else {
            None
        };
        let mut cmd = Command::new(&rec.exec.argv[0]);
        cmd.args(&rec.exec.argv[1..])
            .current_dir(&cwd)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        crate::proc::strip_env(&mut cmd)
            .envs(&rec.env)
            .env("ORCHESTRATR_EXECUTION_ID", id);
        let spawned = cmd.spawn();
        let started = Instant::now();
        let child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let msg = format!(
                    "cannot start '{}' in {}: {e}",
                    rec.exec.argv[0],
                    cwd.display()
                );
                let dir = record::exec_dir(&self.root, id);
                if crate::fsutil::create_private_dir(&dir)
                    .and_then(|_| out.open_for_append())
                    .is_ok()
                {
                    out.append(format!("[orchestratr: {msg}]\n").as_bytes());
                }
                if let Some(r) = self.records.get_mut(id) {
                    r.exec.status = ExecStatus::Failed;
                    r.exec.error = Some(msg);
                    r.exec.started_at = Some(now());
                    r.exec.finished_at = Some(now());
                    r.exec.duration_ms = Some(0);
                }
                self.changed(id, Some("execution.finished"));
                return;
            }
        };
        let pid = child.id();
        let tx = self.self_tx.clone();
        let wid = id.to_string();
        let dir = record::exec_dir(&self.root, id);
        let git = git_before.clone().map(|b| (cwd.clone(), b));
        let spawned_thread = std::thread::Builder::new()
            .name("exec-run".into())
            .spawn(move || {
                let sid = wid.clone();
                let stx = tx.clone();
                let r = run::supervise(child, out, dir, move |t| {
                    let _ = stx.send(Cmd::StartTime {
                        id: sid,
                        start_time: t,
                    });
                });
                let files = git.and_then(|(d, b)| git_status(&d).map(|a| files_modified(&b, &a)));
                let _ = tx.send(Cmd::Exited {
                    id: wid,
                    code: r.code,
                    signal: r.signal,
                    files_modified: files,
                });
            });
        if let Err(e) = spawned_thread {
            // Without its thread nobody would reap the run: kill it and report.
            log::error!("cannot start the thread of execution {id}: {e}");
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        let deadline = rec
            .exec
            .timeout_ms
            .map(|t| started + Duration::from_millis(t));
        self.running.insert(
            id.to_string(),
            Running {
                pgid: pid as i32,
                started,
                deadline,
                kill_at: None,
                reason: None,
                cancel_replies: Vec::new(),
            },
        );
        if let Some(r) = self.records.get_mut(id) {
            r.exec.status = ExecStatus::Running;
            r.exec.pid = Some(pid);
            r.exec.started_at = Some(now());
            r.git_before = git_before;
        }
        self.changed(id, Some("execution.started"));
    }

    fn exited(
        &mut self,
        id: &str,
        code: Option<i32>,
        signal: Option<i32>,
        files: Option<Vec<String>>,
    ) {
        let Some(run) = self.running.remove(id) else {
            return;
        };
        let duration = run.started.elapsed().as_millis() as u64;
        if let Some(r) = self.records.get_mut(id) {
            let (status, error) = match run.reason {
                Some(EndReason::Cancel) => (ExecStatus::Cancelled, Some("cancelled".to_string())),
                Some(EndReason::Shutdown) => {
                    (ExecStatus::Cancelled, Some("daemon shutdown".to_string()))
                }
                Some(EndReason::Timeout) => (
                    ExecStatus::Timeout,
                    Some(format!(
                        "timed out after {} ms",
                        r.exec.timeout_ms.unwrap_or(0)
                    )),
                ),
                None => match (code, signal) {
                    (Some(0), _) => (ExecStatus::Completed, None),
                    (Some(c), _) => (ExecStatus::Failed, Some(format!("exited with code {c}"))),
                    (None, Some(s)) => (ExecStatus::Failed, Some(format!("killed by signal {s}"))),
                    (None, None) => (ExecStatus::Failed, Some("exit status unknown".to_string())),
                },
            };
            r.exec.status = status;
            r.exec.error = error;
            r.exec.exit_code = code;
            r.exec.signal = signal;
            r.exec.finished_at = Some(now());
            r.exec.duration_ms = Some(duration);
            if r.exec.agent.is_some() {
                r.files_modified = Some(files.unwrap_or_default());
            }
        }
        self.changed(id, Some("execution.finished"));
        let v = self.view(id);
        for reply in run.cancel_replies {
            self.reply_after(reply, v.clone().ok_or(ExecError::NotFound(id.to_string())));
        }
        self.prune();
        self.schedule();
        self.check_drain();
    }

    fn check_drain(&mut self) {
        if self.running.is_empty()
            && let Some((_, reply, _)) = self.drain.take()
        {
            // Everything on disk before the daemon goes on to exit.
            self.persister.flush();
            let _ = reply.send(());
            // Keep refusing new runs; the thread stops next.
        }
    }

    /// Keep the newest `retention.executions` records; never drop pending or running ones.
    fn prune(&mut self) {
        let limit = self.retention.executions;
        if self.records.len() <= limit {
            return;
        }
        let mut finals: Vec<(u64, String)> = self
            .records
            .values()
            .filter(|r| r.exec.status.is_final())
            .map(|r| (r.seq, r.exec.id.clone()))
            .collect();
        finals.sort();
        let excess = self.records.len() - limit;
        for (_, id) in finals.into_iter().take(excess) {
            self.records.remove(&id);
            self.outputs.remove(&id);
            self.persister.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_modified_lists_new_paths_only() {
        let before = vec![" M a.rs".to_string()];
        let after = vec![
            " M a.rs".to_string(),
            "?? new.rs".to_string(),
            "R  old.rs -> renamed.rs".to_string(),
        ];
        assert_eq!(
            files_modified(&before, &after),
            vec!["new.rs", "renamed.rs"]
        );
    }

    #[test]
    fn cwd_must_be_inside_a_workspace() {
        let root = tempfile::tempdir().expect("tmp");
        let ws = root.path().join("ws");
        std::fs::create_dir_all(ws.join("proj")).expect("mkdir");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::os::unix::fs::symlink(&outside, ws.join("link")).expect("symlink");
        let w = vec![ws.display().to_string()];
        assert!(resolve_cwd(&ws.join("proj").display().to_string(), &w).is_ok());
        for bad in [
            ws.join("proj/../../outside"),
            ws.join("link"),
            outside.clone(),
            ws.join("missing"),
        ] {
            assert!(
                matches!(
                    resolve_cwd(&bad.display().to_string(), &w),
                    Err(ExecError::Forbidden(_))
                ),
                "{}",
                bad.display()
            );
        }
        assert!(resolve_cwd("/tmp", &[]).is_err());
    }
}
