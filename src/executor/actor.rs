// Why this file is past ~600 lines: because every state change of a run goes through this one loop (submit, start, exit, cancel, retention); scheduling, resolution, kill, recovery and delegation are already split out.
//! The executor actor's thread: owns the records, outputs and running runs,
//! turns commands into state changes, launches runs (each in its own process
//! group with a run thread, run.rs), and enforces timeouts, cancels and the
//! shutdown drain. Scheduling decisions come from state.rs, request resolution
//! from resolve.rs, `git status` from delegation.rs (off this thread), and
//! records reach disk through the record writer (persist.rs) before anything
//! shows them.

use super::delegation;
use super::output::Output;
use super::persist;
use super::record::{self, ExecRecord, ExecStatus, Execution};
use super::resolve;
use super::run;
use super::state::{Next, Scheduler};
use super::{Cmd, ExecError, ExecHandle, Reply, SubmitSpec};
use crate::config::{ExecConfig, PoolSpec, Retention};
use crate::events::{Bus, NewEvent};
use crossbeam_channel::{Receiver, Sender, select_biased};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) fn now() -> String {
    crate::time::now_rfc3339()
}

/// Why the daemon ends a run (sets its final status).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum EndReason {
    Cancel,
    Timeout,
    Shutdown,
}

/// A launched run, as the actor tracks it until its exit is reported.
pub(super) struct Running {
    /// Its process group (= the leader's PID).
    pub(super) pgid: i32,
    pub(super) started: Instant,
    /// When its `timeout_ms` ends.
    pub(super) deadline: Option<Instant>,
    /// When SIGKILL follows the SIGTERM already sent.
    pub(super) kill_at: Option<Instant>,
    /// Why it is being ended, if it is.
    pub(super) reason: Option<EndReason>,
    /// Cancel requests answered once it exited.
    pub(super) cancel_replies: Vec<Reply<Execution>>,
}

/// The executor actor's state, owned by its thread.
pub(super) struct State {
    pub(super) root: PathBuf,
    pub(super) cfg: ExecConfig,
    pub(super) retention: Retention,
    pub(super) bus: Bus,
    pub(super) self_tx: Sender<Cmd>,
    pub(super) records: HashMap<String, ExecRecord>,
    pub(super) outputs: HashMap<String, Arc<Output>>,
    /// Queues, slots and start windows (state.rs).
    pub(super) sched: Scheduler,
    pub(super) running: HashMap<String, Running>,
    /// Delegations holding a slot while their `git status` snapshot is taken.
    pub(super) preparing: HashSet<String>,
    /// Runs holding a slot whose `starting` record is being committed; spawned
    /// by `Cmd::Spawn` once it is on disk.
    pub(super) starting: HashSet<String>,
    pub(super) next_wake: Option<Instant>,
    pub(super) seq: u64,
    pub(super) accepting: bool,
    pub(super) drain: Option<(Instant, Sender<()>, bool)>,
    pub(super) sys: Option<sysinfo::System>,
    pub(super) persister: persist::Persister,
}

impl State {
    pub(super) fn new(
        root: PathBuf,
        cfg: ExecConfig,
        retention: Retention,
        bus: Bus,
        self_tx: Sender<Cmd>,
    ) -> State {
        let _ = crate::fsutil::create_private_dir(&root);
        let persister = persist::start(root.clone());
        State {
            persister,
            root,
            cfg,
            retention,
            bus,
            self_tx,
            records: HashMap::new(),
            outputs: HashMap::new(),
            sched: Scheduler::default(),
            running: HashMap::new(),
            preparing: HashSet::new(),
            starting: HashSet::new(),
            next_wake: None,
            seq: 0,
            accepting: true,
            drain: None,
            sys: sysinfo::System::new().ok(),
        }
    }

    pub(super) fn output_path(&self, id: &str) -> PathBuf {
        record::exec_dir(&self.root, id).join("output.log")
    }

    fn pool(&self, name: &str) -> PoolSpec {
        self.cfg.pools.get(name).copied().unwrap_or_default()
    }

    pub(super) fn persist(&self, id: &str) {
        if let Some(r) = self.records.get(id) {
            self.persister.save(r);
        }
    }

    /// The public view with `queue_position`.
    pub(super) fn view(&self, id: &str) -> Option<Execution> {
        let r = self.records.get(id)?;
        let mut e = r.exec.clone();
        e.queue_position = if e.status == ExecStatus::Pending {
            self.sched.position(&e.pool, id)
        } else {
            None
        };
        if let Some(o) = self.outputs.get(id) {
            e.output_bytes = o.len();
        }
        Some(e)
    }

    /// Persist, update the output's snapshot, optionally publish an event.
    pub(super) fn changed(&mut self, id: &str, event: Option<&str>) {
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
    pub(super) fn reply_after<T: Send + 'static>(&self, reply: Sender<T>, value: T) {
        self.persister.after(move || {
            let _ = reply.send(value);
        });
    }

    pub(super) fn start_time_of(&mut self, pid: u32) -> Option<u64> {
        crate::proc::process_start_time(self.sys.as_mut()?, pid)
    }

    pub(super) fn run(mut self, rx: Receiver<Cmd>) {
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
            Cmd::Spawn(id) => self.spawn(&id),
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
            Cmd::GitBefore { id, status } => self.git_before(&id, status),
            Cmd::OpenLive(spec, reply) => {
                let r = self.open_live(spec);
                self.reply_after(reply, r);
            }
            Cmd::LiveGit { id, status } => self.live_git(&id, status),
            Cmd::EndLive(end) => self.end_live(end),
            Cmd::ListLive(reply) => {
                let v = self.list_live();
                let _ = reply.send(v);
            }
            Cmd::Stop => {}
        }
    }

    fn enqueue(&mut self, mut rec: ExecRecord) -> Result<Execution, ExecError> {
        if !self.accepting {
            return Err(ExecError::ShuttingDown);
        }
        let pool = self.pool(&rec.exec.pool);
        if let Err(full) = self.sched.admit(&rec.exec.pool, &pool, Instant::now()) {
            return Err(ExecError::QueueFull {
                pool: rec.exec.pool.clone(),
                retry_after_s: full.retry_after_s,
            });
        }
        self.seq += 1;
        rec.seq = self.seq;
        let id = rec.exec.id.clone();
        let out = Output::new(
            &self.output_path(&id),
            rec.exec.clone(),
            self.retention.output_bytes,
        );
        self.outputs.insert(id.clone(), Arc::new(out));
        self.sched.enqueue(&rec.exec.pool, &id);
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
        let mut rec = resolve::resolve(&self.cfg, &spec)?;
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
        if old.exec.session_id.is_some() {
            return Err(ExecError::NotRetryable(id.to_string()));
        }
        let rec = resolve::retry_record(old);
        let r = self.enqueue(rec);
        self.prune();
        r
    }

    pub(super) fn schedule(&mut self) {
        // No new starts once a drain began (accepting never comes back).
        if self.drain.is_some() || !self.accepting {
            return;
        }
        for pool_name in self.sched.pools() {
            let spec = self.pool(&pool_name);
            loop {
                match self.sched.next_start(&pool_name, &spec, Instant::now()) {
                    Next::Start(id) => self.begin(&id),
                    Next::Wait(wake) => {
                        if let Some(wake) = wake {
                            self.next_wake = Some(self.next_wake.map_or(wake, |w| w.min(wake)));
                        }
                        break;
                    }
                }
            }
        }
        // Queue positions changed for everyone behind: not published as events
        // (they are computed on read).
    }

    /// A run got its slot: a delegation first takes its `git status` snapshot
    /// off this thread (delegation.rs), then launches; a task launches now.
    fn begin(&mut self, id: &str) {
        let Some(rec) = self.records.get(id) else {
            self.sched.release(id);
            return;
        };
        if rec.exec.agent.is_none() {
            self.launch(id, None);
            return;
        }
        self.preparing.insert(id.to_string());
        let tx = self.self_tx.clone();
        let wid = id.to_string();
        delegation::snapshot_async(PathBuf::from(&rec.exec.cwd), move |status| {
            let _ = tx.send(Cmd::GitBefore { id: wid, status });
        });
    }

    /// The `git status` snapshot of a delegation arrived: launch it, unless it
    /// was cancelled meanwhile or a drain began (then it waits in its queue,
    /// pending on disk for the next start).
    fn git_before(&mut self, id: &str, status: Option<Vec<String>>) {
        if !self.preparing.remove(id) {
            return;
        }
        if self.drain.is_some() || !self.accepting {
            if let Some(pool) = self.records.get(id).map(|r| r.exec.pool.clone()) {
                self.sched.requeue_front(&pool, id);
            } else {
                self.sched.release(id);
            }
            self.check_drain();
            return;
        }
        self.launch(id, status);
    }

    /// Step 1 of a start (exactly-once, API.md §7): the run becomes `starting`
    /// and is spawned only once that record is on disk (`Cmd::Spawn`, sent by
    /// the record writer after the commit; several starts share one commit).
    /// `git_before` is a delegation's snapshot taken before it starts.
    fn launch(&mut self, id: &str, git_before: Option<Vec<String>>) {
        let Some(r) = self.records.get_mut(id) else {
            self.sched.release(id);
            return;
        };
        r.exec.status = ExecStatus::Starting;
        r.git_before = git_before;
        self.starting.insert(id.to_string());
        self.changed(id, None);
        let tx = self.self_tx.clone();
        let wid = id.to_string();
        self.persister.after(move || {
            let _ = tx.send(Cmd::Spawn(wid));
        });
    }

    /// A run could not be spawned: `failed`, with the reason in its log.
    fn spawn_failed(&mut self, id: &str, msg: String) {
        if let Some(out) = self.outputs.get(id) {
            out.note(format!("[orchestratr: {msg}]\n").as_bytes());
        }
        if let Some(r) = self.records.get_mut(id) {
            r.exec.status = ExecStatus::Failed;
            r.exec.error = Some(msg);
            r.exec.started_at = Some(now());
            r.exec.finished_at = Some(now());
            r.exec.duration_ms = Some(0);
        }
        self.sched.release(id);
        self.changed(id, Some("execution.finished"));
        self.schedule();
        self.check_drain();
    }

    /// Step 2 of a start: the `starting` record is on disk. Spawn the run in
    /// its own process group, stdout and stderr on `output.log` (`O_APPEND`),
    /// with its run thread (run.rs). A run cancelled meanwhile is not spawned;
    /// one caught by a drain goes back to the head of its queue (`pending`: it
    /// was never spawned).
    fn spawn(&mut self, id: &str) {
        if !self.starting.remove(id) {
            return;
        }
        let (Some(rec), Some(out)) = (self.records.get(id).cloned(), self.outputs.get(id).cloned())
        else {
            self.sched.release(id);
            return;
        };
        if self.drain.is_some() || !self.accepting {
            self.sched.requeue_front(&rec.exec.pool, id);
            if let Some(r) = self.records.get_mut(id) {
                r.exec.status = ExecStatus::Pending;
            }
            self.changed(id, None);
            self.check_drain();
            return;
        }
        let cwd = PathBuf::from(&rec.exec.cwd);
        let log = crate::fsutil::create_private_dir(&record::exec_dir(&self.root, id))
            .and_then(|_| out.begin_run())
            .and_then(|f| Ok((f.try_clone()?, f)));
        let (stdout, stderr) = match log {
            Ok(pair) => pair,
            Err(e) => {
                let msg = format!("cannot open {}: {e}", out.path().display());
                self.spawn_failed(id, msg);
                return;
            }
        };
        let mut cmd = Command::new(&rec.exec.argv[0]);
        cmd.args(&rec.exec.argv[1..])
            .current_dir(&cwd)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        crate::proc::strip_env(&mut cmd)
            .envs(&rec.env)
            .env(crate::proc::EXECUTION_ID_ENV, id);
        let spawned = cmd.spawn();
        drop(cmd); // closes the daemon's copies of the child's descriptors
        let started = Instant::now();
        let child = match spawned {
            Ok(c) => c,
            Err(e) => {
                out.end_run();
                let msg = format!(
                    "cannot start '{}' in {}: {e}",
                    rec.exec.argv[0],
                    cwd.display()
                );
                self.spawn_failed(id, msg);
                return;
            }
        };
        let pid = child.id();
        let start_time = self.start_time_of(pid);
        let tx = self.self_tx.clone();
        let wid = id.to_string();
        let git = rec.git_before.clone().map(|b| (cwd.clone(), b));
        let spawned_thread = std::thread::Builder::new()
            .name("exec-run".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                let r = run::supervise(child, out);
                let files = git.and_then(|(d, b)| {
                    delegation::git_status(&d).map(|a| delegation::files_modified(&b, &a))
                });
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
            r.pid_start_time = start_time;
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
        self.sched.release(id);
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

    pub(super) fn check_drain(&mut self) {
        if self.running.is_empty()
            && self.preparing.is_empty()
            && self.starting.is_empty()
            && let Some((_, reply, _)) = self.drain.take()
        {
            // Everything on disk before the daemon goes on to exit.
            self.persister.flush();
            let _ = reply.send(());
            // Keep refusing new runs; the thread stops next.
        }
    }

    /// Keep the newest `retention.executions` records; never drop pending or running ones.
    pub(super) fn prune(&mut self) {
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
