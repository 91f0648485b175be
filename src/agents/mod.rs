// Why this file is past ~600 lines: because the `Agents` handle and its actor share the session table's private types; the parts with their own job (tmux, engine, input, record, wrapper) are already split out.
//! Interactive coding agents in tmux (API.md §10).
//!
//! [`Agents`] is a handle shared by the HTTP workers; one monitor thread runs
//! the status engine every [`TICK_MS`]. Records live in
//! `<state>/agents/<id>/agent.json` (saved atomically before a change is
//! visible), the pane's output in `<state>/agents/<id>/output.log` (written by
//! tmux's `pipe-pane`, so it keeps flowing while the daemon is down).
//!
//! Status sources, highest rank first: process death, then the agent's hook
//! report, then a pending approval whose `context.agent_id` names the
//! session, then screen patterns (captured only when the log grew),
//! then silence. Layout: `engine.rs` (status engine), `input.rs` (input queue),
//! `tmux.rs` (the private server), `wrapper.rs` (`agent-exec`), this file
//! (spawn, re-adoption, kill, queries).

mod engine;
mod input;
pub mod procs;
pub mod record;
pub mod status;
pub mod tmux;
pub mod wrapper;

use crate::approvals::Approvals;
use crate::config::ExecConfig;
use crate::config::agents::SessionSpec;
use crate::events::{Bus, NewEvent};
use record::{Agent, Source, Status};
use serde_json::json;
use status::Screen;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tmux::Tmux;

/// Status engine period, milliseconds.
pub const TICK_MS: u64 = 200;
/// How often the engine lists tmux panes to notice vanished sessions, milliseconds.
pub const PANE_SCAN_MS: u64 = 2000;
/// Grace between SIGTERM and SIGKILL when killing a session, milliseconds.
pub const KILL_GRACE_MS: u64 = 2000;
/// Default pane size.
pub const DEFAULT_SIZE: (u16, u16) = (200, 50);

/// Errors of the agents layer; `http/agents.rs` maps them to statuses.
#[derive(Debug, Clone)]
pub enum AgentError {
    /// No such agent type, or it has no `interactive` argv (400).
    UnknownType(String),
    /// A bad request value (400).
    Invalid(String),
    /// `working_dir` outside `workspaces` (403).
    Forbidden(String),
    /// `max_sessions` reached (409 conflict).
    Conflict(String),
    /// tmux missing, too old or failing (422 launch_failed).
    LaunchFailed {
        /// What went wrong.
        message: String,
        /// `tmux -V` output, or `none`.
        tmux_version: String,
        /// The agent's argv[0].
        argv0: String,
    },
    /// No such session (404).
    NotFound(String),
    /// The session is not running (409 not_running).
    NotRunning(String),
    /// tmux or the file system failed (500).
    Internal(String),
}

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentError::UnknownType(m)
            | AgentError::Invalid(m)
            | AgentError::Forbidden(m)
            | AgentError::Conflict(m)
            | AgentError::NotRunning(m)
            | AgentError::Internal(m) => f.write_str(m),
            AgentError::LaunchFailed { message, .. } => f.write_str(message),
            AgentError::NotFound(id) => write!(f, "no agent session '{id}'"),
        }
    }
}

/// A spawn request (`POST /agents/spawn` body, already type-checked).
#[derive(Debug, Clone, Default)]
pub struct SpawnRequest {
    /// The `agents:` type.
    pub agent_type: String,
    /// Working directory (must be inside `workspaces`); default: home.
    pub working_dir: Option<String>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Free label.
    pub name: Option<String>,
    /// A first message, sent once the agent has started.
    pub prompt: Option<String>,
    /// Pane size (cols, rows).
    pub size: Option<(u16, u16)>,
}

/// Runtime state of a live session.
struct Live {
    spec: SessionSpec,
    hook: Option<(Status, Option<String>)>,
    last_len: u64,
    last_growth: Instant,
    screen: Screen,
    killing: bool,
    /// When this daemon started tracking it (a pane listing older than this
    /// cannot show it).
    since: Instant,
    /// Inputs of this session, applied in order by its input thread.
    inputs: Option<crossbeam_channel::Sender<input::Input>>,
}

struct State {
    agents: BTreeMap<String, (Agent, Option<Live>)>,
}

struct Inner {
    root: PathBuf,
    tmux: Tmux,
    bus: Bus,
    approvals: Approvals,
    cfg: Mutex<ExecConfig>,
    state: Mutex<State>,
    stop: AtomicBool,
    sys: Mutex<Option<sysinfo::System>>,
}

/// Handle on the agents layer (cheap to clone).
#[derive(Clone)]
pub struct Agents(Arc<Inner>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn log_path(root: &Path, id: &str) -> PathBuf {
    root.join(id).join("output.log")
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

impl Agents {
    /// Start the layer: re-adopt tagged sessions of a previous daemon (API.md §10
    /// "Restart"), mark vanished ones `lost`, and start the monitor thread.
    pub fn start(
        state_dir: &Path,
        cfg: ExecConfig,
        bus: Bus,
        approvals: Approvals,
    ) -> (Agents, JoinHandle<()>) {
        let root = state_dir.join("agents");
        let _ = crate::fsutil::create_private_dir(&root);
        let tmux = Tmux::new(&root);
        let inner = Arc::new(Inner {
            root,
            tmux,
            bus,
            approvals,
            cfg: Mutex::new(cfg),
            state: Mutex::new(State {
                agents: BTreeMap::new(),
            }),
            stop: AtomicBool::new(false),
            sys: Mutex::new(sysinfo::System::new().ok()),
        });
        let me = Agents(inner);
        me.adopt();
        let m = me.clone();
        let t = std::thread::Builder::new()
            .name("agents".into())
            .spawn(move || m.monitor())
            .unwrap_or_else(|_| std::thread::spawn(|| {}));
        (me, t)
    }

    /// Apply a reloaded config: live sessions take their type's new patterns,
    /// delays and limits.
    pub fn reconfigure(&self, cfg: ExecConfig) {
        let mut st = lock(&self.0.state);
        for (a, live) in st.agents.values_mut() {
            if let (Some(l), Some(s)) = (
                live.as_mut(),
                cfg.agents
                    .get(&a.agent_type)
                    .and_then(|t| t.session.clone()),
            ) {
                l.spec = s;
            }
        }
        *lock(&self.0.cfg) = cfg;
    }

    /// Stop the monitor thread (sessions keep running: they are the user's work).
    pub fn shutdown(&self) {
        self.0.stop.store(true, Ordering::SeqCst);
        // Closing the input queues ends the input threads.
        for (_, l) in lock(&self.0.state).agents.values_mut() {
            if let Some(l) = l {
                l.inputs = None;
            }
        }
    }

    /// The tmux server handle (tests, `attach`).
    pub fn tmux(&self) -> &Tmux {
        &self.0.tmux
    }

    fn emit(&self, kind: &str, data: serde_json::Value) {
        self.0.bus.emit(NewEvent::daemon(kind, None, data));
    }

    fn save(&self, a: &Agent) {
        if let Err(e) = record::save(&self.0.root, a) {
            log::warn!("cannot save agent {}: {e}", a.session_id);
        }
    }

    fn adopt(&self) {
        let panes = self
            .0
            .tmux
            .list_panes()
            .or_else(|| {
                std::thread::sleep(Duration::from_millis(200));
                self.0.tmux.list_panes()
            })
            .unwrap_or_default();
        let cfg = lock(&self.0.cfg).clone();
        let mut st = lock(&self.0.state);
        for mut a in record::load_all(&self.0.root) {
            let id = a.session_id.clone();
            if a.status.is_final() {
                st.agents.insert(id, (a, None));
                continue;
            }
            let spec = cfg
                .agents
                .get(&a.agent_type)
                .and_then(|t| t.session.clone());
            match (panes.iter().find(|p| p.tag == id), spec) {
                (Some(p), Some(spec)) => {
                    a.tmux_session = p.session_id.clone();
                    a.tmux_pane = p.pane_id.clone();
                    let len = file_len(&log_path(&self.0.root, &id));
                    a.output_bytes = len;
                    let hook = (a.status_source == Source::Hook)
                        .then(|| (a.status, a.waiting_reason.clone()));
                    log::info!("re-adopted agent {id} ({})", p.pane_id);
                    st.agents.insert(
                        id,
                        (
                            a,
                            Some(Live {
                                spec,
                                hook,
                                last_len: len,
                                last_growth: Instant::now(),
                                screen: Screen::Plain,
                                killing: false,
                                since: Instant::now(),
                                inputs: None,
                            }),
                        ),
                    );
                }
                (found, _) => {
                    let exit = wrapper::read_exit(&self.0.root.join(&id));
                    // A session still in tmux ended (or lost its type); one that
                    // vanished is `lost`, whatever its wrapper managed to record.
                    a.exit_code = exit.map(|e| e.code);
                    if found.is_some() {
                        // Ended while we were away, or its type is gone from the config.
                        if let Some(p) = found {
                            let _ = self.0.tmux.kill_session(&p.session_id);
                        }
                        a.status = Status::Exited;
                    } else {
                        a.status = Status::Lost;
                    }
                    a.status_source = Source::Process;
                    a.exited_at = Some(crate::time::now_rfc3339());
                    self.save(&a);
                    let kind = if a.status == Status::Lost {
                        "agent.lost"
                    } else {
                        "agent.exited"
                    };
                    self.emit(
                        kind,
                        json!({"session_id": id, "exit_code": a.exit_code, "resume_id": a.resume_id}),
                    );
                    st.agents.insert(id, (a, None));
                }
            }
        }
    }

    /// Spawn a session (API.md §10 `POST /agents/spawn`).
    ///
    /// Errors: [`AgentError::UnknownType`], [`AgentError::Forbidden`],
    /// [`AgentError::Conflict`] (`max_sessions`), [`AgentError::LaunchFailed`].
    pub fn spawn(&self, req: SpawnRequest) -> Result<Agent, AgentError> {
        let cfg = lock(&self.0.cfg).clone();
        let ty = cfg.agents.get(&req.agent_type).ok_or_else(|| {
            AgentError::UnknownType(format!("unknown agent type '{}'", req.agent_type))
        })?;
        let spec = ty.session.clone().ok_or_else(|| {
            AgentError::UnknownType(format!(
                "agent type '{}' has no interactive argv",
                req.agent_type
            ))
        })?;
        let cwd = match &req.working_dir {
            Some(w) => crate::executor::resolve_cwd(w, &cfg.workspaces)
                .map_err(|e| AgentError::Forbidden(e.to_string()))?,
            None => dirs::home_dir().unwrap_or_else(|| PathBuf::from("/")),
        };
        let argv0 = spec.interactive[0].clone();
        let launch_failed = |message: String, v: String| AgentError::LaunchFailed {
            message,
            tmux_version: v,
            argv0: argv0.clone(),
        };
        let version = self.0.tmux.check_version().map_err(|e| match &e {
            tmux::TmuxError::Unsupported(v) => launch_failed(e.to_string(), v.clone()),
            tmux::TmuxError::Failed(_) => launch_failed(e.to_string(), "none".into()),
        })?;
        let exe = std::env::current_exe()
            .map_err(|e| AgentError::Internal(format!("cannot find own binary: {e}")))?;
        let id = crate::executor::record::new_id(&format!("sess-{}", req.agent_type));
        let dir = self.0.root.join(&id);
        let mut env = ty.env.clone();
        env.extend(req.env.clone());
        env.insert("ORCHESTRATR_AGENT_ID".into(), id.clone());
        let wspec = wrapper::Spec {
            argv: spec.interactive.clone(),
            env,
        };
        let io = |e: std::io::Error| {
            AgentError::Internal(format!("cannot prepare {}: {e}", dir.display()))
        };
        crate::fsutil::create_private_dir(&dir).map_err(io)?;
        let b = serde_json::to_vec(&wspec).map_err(|e| AgentError::Internal(e.to_string()))?;
        crate::fsutil::write_atomic(&dir.join("spec.json"), &b, 0o600).map_err(io)?;
        let log = log_path(&self.0.root, &id);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io)?;
        let (cols, rows) = req.size.unwrap_or(DEFAULT_SIZE);
        let mut st = lock(&self.0.state);
        let live_of_type = st
            .agents
            .values()
            .filter(|(a, l)| a.agent_type == req.agent_type && l.is_some())
            .count();
        if live_of_type >= spec.max_sessions {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(AgentError::Conflict(format!(
                "agent type '{}' already has {live_of_type} sessions (max_sessions = {})",
                req.agent_type, spec.max_sessions
            )));
        }
        let wargv = vec![
            exe.display().to_string(),
            "agent-exec".to_string(),
            dir.display().to_string(),
        ];
        let (session, pane, pid) = self
            .0
            .tmux
            .new_session(&id, &cwd, cols, rows, &wargv)
            .map_err(|e| {
                let _ = std::fs::remove_dir_all(&dir);
                launch_failed(e.to_string(), version.clone())
            })?;
        if let Err(e) = self.0.tmux.pipe_pane(&pane, &log) {
            let _ = self.0.tmux.kill_session(&session);
            let _ = std::fs::remove_dir_all(&dir);
            return Err(launch_failed(e.to_string(), version));
        }
        std::fs::write(dir.join("go"), b"").map_err(io)?;
        let now = crate::time::now_rfc3339();
        let a = Agent {
            session_id: id.clone(),
            agent_type: req.agent_type.clone(),
            name: req.name.clone(),
            status: Status::Starting,
            status_source: Source::Process,
            waiting_reason: None,
            working_dir: cwd.display().to_string(),
            tmux_session: session,
            tmux_pane: pane,
            pid: Some(pid),
            created_at: now.clone(),
            last_activity: Some(now),
            exited_at: None,
            exit_code: None,
            memory_mb: None,
            cpu_percent: None,
            output_bytes: 0,
            resume_id: None,
        };
        self.save(&a);
        st.agents.insert(
            id.clone(),
            (
                a.clone(),
                Some(Live {
                    spec,
                    hook: None,
                    last_len: 0,
                    last_growth: Instant::now(),
                    screen: Screen::Plain,
                    killing: false,
                    since: Instant::now(),
                    inputs: None,
                }),
            ),
        );
        drop(st);
        self.emit(
            "agent.spawned",
            json!({"session_id": id, "agent_type": a.agent_type, "name": a.name, "working_dir": a.working_dir}),
        );
        if let Some(p) = req.prompt.filter(|p| !p.is_empty()) {
            let me = self.clone();
            let id2 = id.clone();
            std::thread::spawn(move || {
                let end = Instant::now() + Duration::from_secs(60);
                while Instant::now() < end {
                    match me.get(&id2).map(|a| a.status) {
                        Some(Status::Starting) => std::thread::sleep(Duration::from_millis(100)),
                        Some(s) if !s.is_final() => {
                            let _ = me.input_text(&id2, &p, true);
                            return;
                        }
                        _ => return,
                    }
                }
            });
        }
        Ok(a)
    }

    /// Sessions, oldest first, optionally filtered.
    pub fn list(&self, status: Option<Status>, agent_type: Option<&str>) -> Vec<Agent> {
        lock(&self.0.state)
            .agents
            .values()
            .map(|(a, _)| a)
            .filter(|a| status.is_none_or(|s| a.status == s))
            .filter(|a| agent_type.is_none_or(|t| a.agent_type == t))
            .cloned()
            .collect()
    }

    /// One session as recorded (no process-tree figures; cheap).
    pub fn peek(&self, id: &str) -> Option<Agent> {
        lock(&self.0.state).agents.get(id).map(|(a, _)| a.clone())
    }

    /// One session, with `memory_mb` and `cpu_percent` of a live one.
    pub fn get(&self, id: &str) -> Option<Agent> {
        let mut a = lock(&self.0.state).agents.get(id).map(|(a, _)| a.clone())?;
        if !a.status.is_final()
            && let Some(pid) = a.pid
        {
            if let Some(sys) = lock(&self.0.sys).as_mut() {
                let (m, c) = procs::usage(sys, pid);
                a.memory_mb = Some(m);
                a.cpu_percent = Some(c);
            }
        }
        Some(a)
    }

    /// Path of a session's output log. Errors: [`AgentError::NotFound`].
    pub fn output_path(&self, id: &str) -> Result<PathBuf, AgentError> {
        if lock(&self.0.state).agents.contains_key(id) {
            Ok(log_path(&self.0.root, id))
        } else {
            Err(AgentError::NotFound(id.into()))
        }
    }

    /// Is the session over (or unknown)?
    pub fn is_final(&self, id: &str) -> bool {
        lock(&self.0.state)
            .agents
            .get(id)
            .is_none_or(|(a, _)| a.status.is_final())
    }

    /// The live pane of `id` with the state lock held. Errors: not found / not running.
    fn live_pane<'a>(
        &self,
        st: &'a mut State,
        id: &str,
    ) -> Result<(&'a mut Agent, &'a mut Live), AgentError> {
        let (a, l) = st
            .agents
            .get_mut(id)
            .ok_or_else(|| AgentError::NotFound(id.into()))?;
        match l {
            Some(l) if !l.killing && self.0.tmux.pane_alive(&a.tmux_pane) => Ok((a, l)),
            _ => Err(AgentError::NotRunning(format!(
                "agent '{id}' is not running"
            ))),
        }
    }

    /// The visible screen `(text, cols, rows, cursor_x, cursor_y)`.
    /// Errors: not found; not running once the pane is gone.
    pub fn screen(&self, id: &str) -> Result<(String, u32, u32, u32, u32), AgentError> {
        let pane = lock(&self.0.state)
            .agents
            .get(id)
            .map(|(a, _)| a.tmux_pane.clone())
            .ok_or_else(|| AgentError::NotFound(id.into()))?;
        self.0
            .tmux
            .capture(&pane)
            .map_err(|_| AgentError::NotRunning(format!("agent '{id}' has no pane any more")))
    }

    /// `attach` argv for a person at the machine. Errors: not found.
    pub fn attach_argv(&self, id: &str) -> Result<Vec<String>, AgentError> {
        let st = lock(&self.0.state);
        let (a, _) = st
            .agents
            .get(id)
            .ok_or_else(|| AgentError::NotFound(id.into()))?;
        Ok(self.0.tmux.attach_argv(&a.tmux_session))
    }

    /// Kill a session: SIGTERM its process tree, SIGKILL after
    /// [`KILL_GRACE_MS`], then kill the tmux session. Errors: not found.
    pub fn kill(&self, id: &str) -> Result<Agent, AgentError> {
        let (pid, session) = {
            let mut st = lock(&self.0.state);
            let (a, l) = st
                .agents
                .get_mut(id)
                .ok_or_else(|| AgentError::NotFound(id.into()))?;
            // Only a live session's PID is ours to signal: an ended one's may
            // have been reused by an unrelated process.
            let pid = match l {
                Some(l) => {
                    l.killing = true;
                    a.pid
                }
                None => None,
            };
            (pid, a.tmux_session.clone())
        };
        if let Some(pid) = pid {
            procs::terminate_tree(pid, Duration::from_millis(KILL_GRACE_MS));
        }
        // Session ids restart with the tmux server: kill the session that
        // carries our tag (falling back to the recorded id only if tmux cannot
        // be listed and the session was live).
        match self.0.tmux.list_panes() {
            Some(panes) => {
                if let Some(p) = panes.iter().find(|p| p.tag == id) {
                    let _ = self.0.tmux.kill_session(&p.session_id);
                }
            }
            None if pid.is_some() => {
                let _ = self.0.tmux.kill_session(&session);
            }
            None => {}
        }
        let mut st = lock(&self.0.state);
        let (a, l) = st
            .agents
            .get_mut(id)
            .ok_or_else(|| AgentError::NotFound(id.into()))?;
        let was_live = l.take().is_some();
        if was_live {
            a.exit_code = wrapper::read_exit(&self.0.root.join(id)).map(|e| e.code);
            a.exited_at = Some(crate::time::now_rfc3339());
            a.output_bytes = file_len(&log_path(&self.0.root, id));
            self.set_status(a, Status::Exited, Source::Process, None);
            self.emit(
                "agent.killed",
                json!({"session_id": id, "exit_code": a.exit_code}),
            );
        }
        Ok(a.clone())
    }
}
