// Why this file is past ~600 lines: because the registry actor owns apps, lifecycle reports and reload diffs as one state machine; the hot-read snapshot is split out (registry/snapshot.rs).
//! The registry actor: owns the loaded config (apps and settings) and every app's
//! lifecycle state (API.md §4 `App` / `AppState`), applies reloads, and turns
//! lifecycle reports and tracker results into events on the bus.
//!
//! Tracker events arrive on the same channel as commands, so a command sent after
//! the tracker reported an exit always sees that exit (FIFO).

use crate::actor::call;
use crate::config::{self, AppSpec, Config, ConfigError, Settings};
use crate::events::{Bus, NewEvent};
use crate::tracker::{StopOutcome, Tracker, TrackerError, TrackerEvent};
use crossbeam_channel::{Receiver, Sender, unbounded};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

mod snapshot;
use snapshot::Published;
pub use snapshot::{AppBodies, Snapshot};

/// Lifecycle status of an app (API.md §4 `AppState.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "AppStatus")]
pub enum Status {
    /// Not running, or never launched.
    #[default]
    Stopped,
    /// Started (by the daemon or reported by the app), not yet ready.
    Launched,
    /// Reported ready, or its readiness probe succeeded.
    Ready,
}

/// Runtime state of one app (API.md §4 `AppState`). Unknown fields are `null`.
#[derive(Debug, Clone, Serialize, Default, PartialEq, schemars::JsonSchema)]
pub struct AppState {
    /// App name.
    pub name: String,
    /// `stopped`, `launched` or `ready`.
    pub status: Status,
    /// Whether the app is launched (status `launched` or `ready`).
    pub launched: bool,
    /// Whether the app is ready.
    pub ready: bool,
    /// RFC 3339 time of the last launch.
    pub launched_at: Option<String>,
    /// RFC 3339 time it became ready.
    pub ready_at: Option<String>,
    /// The tracked (or last tracked) PID.
    pub pid: Option<u32>,
    /// Whether `pid` is alive; `null` when not tracked (no PID, or `detached`).
    pub alive: Option<bool>,
    /// Resident memory of `pid`, MiB.
    pub memory_mb: Option<f64>,
    /// CPU use of `pid`, percent of one core.
    pub cpu_percent: Option<f64>,
    /// Exit code of the last run, if it exited normally.
    pub exit_code: Option<i32>,
    /// Signal that ended the last run, if any.
    pub signal: Option<i32>,
    /// Last error (launch failure, readiness timeout).
    pub error: Option<String>,
    /// RFC 3339 time of `error`.
    pub error_at: Option<String>,
}

impl AppState {
    fn zero(name: &str) -> Self {
        AppState {
            name: name.to_string(),
            ..Default::default()
        }
    }
}

/// An app as the API shows it: its spec plus its state (API.md §4 `App`).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[schemars(rename = "App")]
pub struct AppView {
    /// The registered spec (flattened).
    #[serde(flatten)]
    pub spec: AppSpec,
    /// The runtime state.
    pub state: AppState,
}

/// Result of a reload (API.md §4 `POST /reload`, `registry.reloaded` data).
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// Names added.
    pub added: Vec<String>,
    /// Names removed.
    pub removed: Vec<String>,
    /// Names whose spec changed.
    pub changed: Vec<String>,
    /// Config warnings.
    pub warnings: Vec<String>,
    /// The registry after the reload, sorted by name.
    pub apps: Vec<AppView>,
    /// `true` when the files were unchanged and nothing was applied.
    #[serde(skip)]
    pub unchanged: bool,
}

/// Outcome of `POST /apps/{name}/launch`.
#[derive(Debug, Clone, PartialEq)]
pub enum LaunchOutcome {
    /// A new process was started.
    Launched(u32),
    /// A tracked instance is alive; nothing was started.
    AlreadyRunning(u32),
}

/// Errors of the registry layer.
#[derive(Debug)]
pub enum RegistryError {
    /// No app with this name is registered.
    NotFound(String),
    /// The app's command could not be started (the OS error).
    LaunchFailed(String),
    /// Nothing is running for this app.
    NotRunning(String),
    /// A reported PID is not alive.
    NoSuchPid(u32),
    /// A reported PID belongs to another uid than the daemon's (issue 13 part 2).
    ForeignPid {
        /// The reported PID.
        pid: u32,
        /// Its owner (the uid owning `/proc/<pid>`).
        uid: u32,
    },
    /// The config on disk is invalid; the previous registry is kept.
    Invalid(ConfigError),
    /// The registry thread is gone (daemon shutting down).
    Closed,
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryError::NotFound(n) => write!(f, "no app named '{n}'"),
            RegistryError::LaunchFailed(e) => f.write_str(e),
            RegistryError::NotRunning(n) => write!(f, "app '{n}' is not running"),
            RegistryError::NoSuchPid(p) => write!(f, "pid {p} is not a running process"),
            RegistryError::ForeignPid { pid, uid } => {
                write!(
                    f,
                    "pid {pid} belongs to uid {uid}, not to the daemon's user"
                )
            }
            RegistryError::Invalid(e) => write!(f, "{e}"),
            RegistryError::Closed => f.write_str("registry is shut down"),
        }
    }
}
impl std::error::Error for RegistryError {}

impl From<TrackerError> for RegistryError {
    fn from(e: TrackerError) -> Self {
        match e {
            TrackerError::Spawn(m) => RegistryError::LaunchFailed(m),
            TrackerError::NotRunning(n) => RegistryError::NotRunning(n),
            TrackerError::NoSuchPid(p) => RegistryError::NoSuchPid(p),
            TrackerError::Closed => RegistryError::Closed,
        }
    }
}

type Reply<T> = Sender<Result<T, RegistryError>>;

/// Called with each config a reload applied.
pub type ReloadHook = Box<dyn Fn(&Config) + Send>;

enum Cmd {
    Launched(String, Option<u32>, Reply<AppState>),
    Ready(String, Reply<AppState>),
    Stopped(String, Reply<AppState>),
    Launch(String, Reply<LaunchOutcome>),
    StopDone(String, StopOutcome, Sender<()>),
    Reload {
        force: bool,
        reply: Reply<ReloadReport>,
    },
    Tracker(TrackerEvent),
    Shutdown,
}

/// Handle to the registry actor. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    tx: Sender<Cmd>,
    tracker: Tracker,
    settings: Arc<RwLock<Arc<Settings>>>,
    published: Published,
}

impl Registry {
    /// Start the registry (and its tracker) on an already loaded `config`.
    /// `config_dir` is re-read on reloads; app output logs go to `<state>/logs/`.
    /// Returns the handle and the join handles of both threads.
    ///
    /// `on_reload` is called on the registry thread with every config that a reload
    /// applied (e.g. to hand tasks and pools to the executor).
    pub fn start(
        config: Config,
        config_dir: PathBuf,
        state_dir: PathBuf,
        bus: Bus,
        on_reload: ReloadHook,
    ) -> (Registry, Vec<JoinHandle<()>>) {
        let (tx, rx) = unbounded();
        let sink_tx = tx.clone();
        let (tracker, th) = Tracker::start(
            state_dir.join("logs"),
            Box::new(move |ev| {
                let _ = sink_tx.send(Cmd::Tracker(ev));
            }),
        );
        for w in duplicate_chords(&config.apps) {
            log::warn!("{w}");
        }
        let settings = Arc::new(RwLock::new(Arc::new(config.settings.clone())));
        let mut apps = BTreeMap::new();
        for (name, spec) in &config.apps {
            apps.insert(
                name.clone(),
                Entry {
                    spec: spec.clone(),
                    state: AppState::zero(name),
                },
            );
        }
        let published = Published::new(&apps);
        let actor = Actor {
            published: published.clone(),
            pending: Vec::new(),
            apps,
            fingerprint: config.fingerprint,
            invalid_fingerprint: None,
            config_dir,
            bus,
            tracker: tracker.clone(),
            settings: settings.clone(),
            on_reload,
        };
        let rh = std::thread::Builder::new()
            .name("registry".into())
            .spawn(move || actor.run(rx))
            .unwrap_or_else(|e| panic!("cannot spawn registry thread: {e}"));
        (
            Registry {
                tx,
                tracker,
                settings,
                published,
            },
            vec![rh, th],
        )
    }

    fn call_r<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Result<T, RegistryError> {
        call(&self.tx, make).unwrap_or(Err(RegistryError::Closed))
    }

    /// The current settings (cheap: an `Arc` clone under a read lock).
    pub fn settings(&self) -> Arc<Settings> {
        match self.settings.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The published snapshot: every app with its pre-serialized bodies
    /// (issue 7 part 7). Cheap: an `Arc` clone under a read lock, no round trip
    /// to the actor. It reflects every command the actor has answered and every
    /// event it has published; live stats lag by at most one sampling tick.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.published.get()
    }

    /// Every app, sorted by name.
    pub fn list(&self) -> Vec<AppView> {
        self.snapshot()
            .apps
            .values()
            .map(|b| b.view.clone())
            .collect()
    }

    /// Number of registered apps.
    pub fn count(&self) -> usize {
        self.snapshot().apps.len()
    }

    /// One app, or `None` when not registered.
    pub fn get(&self, name: &str) -> Option<AppView> {
        self.snapshot().apps.get(name).map(|b| b.view.clone())
    }

    /// Whether an app named `name` is registered.
    pub fn exists(&self, name: &str) -> bool {
        self.snapshot().apps.contains_key(name)
    }

    /// The app reports it has started (`POST /apps/{name}/launched`); with a PID the
    /// tracker watches that process. Every report starts a new lifecycle
    /// (API.md §9): `ready: false`, `ready_at`/`exit_code` `null`.
    ///
    /// Errors: `NotFound`, `NoSuchPid`, `ForeignPid` (the PID is another uid's).
    pub fn report_launched(&self, name: &str, pid: Option<u32>) -> Result<AppState, RegistryError> {
        self.call_r(|r| Cmd::Launched(name.to_string(), pid, r))
    }

    /// The app reports it is ready. Errors: `NotFound`.
    pub fn report_ready(&self, name: &str) -> Result<AppState, RegistryError> {
        self.call_r(|r| Cmd::Ready(name.to_string(), r))
    }

    /// The app reports it stopped (idempotent). Errors: `NotFound`.
    pub fn report_stopped(&self, name: &str) -> Result<AppState, RegistryError> {
        self.call_r(|r| Cmd::Stopped(name.to_string(), r))
    }

    /// The app whose `chord` is `chord` (trimmed, exact): the first by name when
    /// several share it (a reload warning names them). `None`: no such chord.
    pub fn find_by_chord(&self, chord: &str) -> Option<String> {
        let chord = chord.trim();
        self.list()
            .into_iter()
            .find(|a| a.spec.chord.as_deref().map(str::trim) == Some(chord))
            .map(|a| a.spec.name)
    }

    /// Launch the app's command unless a tracked instance is alive.
    ///
    /// Errors: `NotFound`, `LaunchFailed` (with the OS error).
    pub fn launch(&self, name: &str) -> Result<LaunchOutcome, RegistryError> {
        self.call_r(|r| Cmd::Launch(name.to_string(), r))
    }

    /// Stop the app's process group: SIGTERM, SIGKILL after its `stop_timeout_ms`.
    /// Blocks the calling thread (never the registry) until the process is gone.
    ///
    /// Errors: `NotFound`, `NotRunning`.
    pub fn stop(&self, name: &str) -> Result<StopOutcome, RegistryError> {
        let view = self
            .get(name)
            .ok_or_else(|| RegistryError::NotFound(name.to_string()))?;
        let outcome = self.tracker.stop(name, view.spec.stop_timeout_ms)?;
        let _ = call(&self.tx, |r| {
            Cmd::StopDone(name.to_string(), outcome.clone(), r)
        });
        Ok(outcome)
    }

    /// Re-read the config dir. With `force: false` (the file watcher) an unchanged
    /// fingerprint is a no-op reported as `unchanged`.
    ///
    /// Errors: `Invalid` with every diagnostic; the previous registry is kept and a
    /// `config.invalid` event is published (with `force: false`, only the first
    /// time these exact bytes are seen).
    pub fn reload(&self, force: bool) -> Result<ReloadReport, RegistryError> {
        self.call_r(|reply| Cmd::Reload { force, reply })
    }

    /// Stop the registry and tracker threads. Running apps keep running.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Cmd::Shutdown);
        self.tracker.shutdown();
    }
}

struct Entry {
    spec: AppSpec,
    state: AppState,
}

struct Actor {
    apps: BTreeMap<String, Entry>,
    fingerprint: u64,
    /// Fingerprint of the last invalid config reported by `config.invalid`.
    invalid_fingerprint: Option<u64>,
    config_dir: PathBuf,
    bus: Bus,
    tracker: Tracker,
    settings: Arc<RwLock<Arc<Settings>>>,
    on_reload: ReloadHook,
    /// What readers see; republished after every command.
    published: Published,
    /// Events of the current command, published after the snapshot so that a
    /// subscriber who sees an event and then reads `GET /apps` sees its effect.
    pending: Vec<NewEvent>,
}

fn not_found(name: &str) -> RegistryError {
    RegistryError::NotFound(name.to_string())
}

/// One warning per chord that several apps share, naming them (API.md §9).
pub fn duplicate_chords<'a>(
    apps: impl IntoIterator<Item = (&'a String, &'a AppSpec)>,
) -> Vec<String> {
    let mut by_chord: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, spec) in apps {
        if let Some(c) = spec
            .chord
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            by_chord.entry(c).or_default().push(name);
        }
    }
    by_chord
        .into_iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|(c, names)| {
            format!(
                "chord '{c}' is used by several apps: {}; POST /trigger launches '{}'",
                names.join(", "),
                names[0]
            )
        })
        .collect()
}

/// Check that a reported PID is a live process of the daemon's own uid (the
/// owner of `/proc/<pid>`), issue 13 part 2.
///
/// Errors: `NoSuchPid` (no such process), `ForeignPid` (another uid's).
pub fn check_own_pid(pid: u32) -> Result<(), RegistryError> {
    use std::os::unix::fs::MetadataExt;
    let meta =
        std::fs::metadata(format!("/proc/{pid}")).map_err(|_| RegistryError::NoSuchPid(pid))?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(RegistryError::ForeignPid {
            pid,
            uid: meta.uid(),
        });
    }
    Ok(())
}

impl Actor {
    fn run(mut self, rx: Receiver<Cmd>) {
        // Every reply is sent after `publish`, so a client reads its own writes.
        // Stats samples only republish once the queue is drained (at most one
        // rebuild per sampling tick rather than one per app).
        while let Ok(cmd) = rx.recv() {
            let mut lazy = false;
            match cmd {
                Cmd::Launched(n, pid, r) => {
                    let v = self.launched(&n, pid);
                    self.publish();
                    let _ = r.send(v);
                }
                Cmd::Ready(n, r) => {
                    let v = self.ready(&n, "app");
                    self.publish();
                    let _ = r.send(v);
                }
                Cmd::Stopped(n, r) => {
                    let v = self.stopped(&n);
                    self.publish();
                    let _ = r.send(v);
                }
                Cmd::Launch(n, r) => {
                    let v = self.launch(&n);
                    self.publish();
                    let _ = r.send(v);
                }
                Cmd::StopDone(n, outcome, r) => {
                    self.emit(
                        "app.stopped",
                        &n,
                        json!({"pid": outcome.pid, "exit_code": outcome.exit_code,
                               "signal": outcome.signal, "killed": outcome.killed, "by": "daemon"}),
                    );
                    self.publish();
                    let _ = r.send(());
                }
                Cmd::Reload { force, reply } => {
                    let v = self.reload(force);
                    self.publish();
                    let _ = reply.send(v);
                }
                Cmd::Tracker(ev) => {
                    lazy = matches!(ev, TrackerEvent::Stats { .. });
                    self.tracker_event(ev);
                }
                Cmd::Shutdown => break,
            }
            if !lazy || rx.is_empty() {
                self.publish();
            }
        }
        self.publish();
    }

    fn views(&self) -> Vec<AppView> {
        self.apps
            .values()
            .map(|e| AppView {
                spec: e.spec.clone(),
                state: e.state.clone(),
            })
            .collect()
    }

    /// Publish the snapshot if anything changed, then the pending events.
    fn publish(&mut self) {
        self.published.publish(&self.apps);
        for ev in self.pending.drain(..) {
            self.bus.emit(ev);
        }
    }

    fn emit(&mut self, kind: &str, target: &str, data: Value) {
        self.pending
            .push(NewEvent::daemon(kind, Some(target), data));
    }

    fn mark_launched(&mut self, name: &str, pid: Option<u32>, tracked: bool, by: &str) {
        let Some(e) = self.apps.get_mut(name) else {
            return;
        };
        let st = &mut e.state;
        // Every launch (by the daemon or reported by the app) starts a new
        // lifecycle (API.md §9).
        st.launched_at = Some(crate::time::now_rfc3339());
        st.ready = false;
        st.ready_at = None;
        st.status = Status::Launched;
        st.exit_code = None;
        st.signal = None;
        st.memory_mb = None;
        st.cpu_percent = None;
        st.error = None;
        st.error_at = None;
        st.launched = true;
        st.pid = pid;
        st.alive = if pid.is_some() && tracked {
            Some(true)
        } else {
            None
        };
        let data = json!({"pid": pid, "by": by});
        let ready_cmd = e.spec.ready_cmd.clone();
        let cwd = e.spec.cwd.as_deref().map(crate::proc::expand_tilde);
        let timeout = e.spec.ready_timeout_ms;
        self.emit("app.launched", name, data);
        if let Some(cmd) = ready_cmd {
            self.tracker.start_probe(name, &cmd, cwd, timeout);
        }
    }

    fn launched(&mut self, name: &str, pid: Option<u32>) -> Result<AppState, RegistryError> {
        if !self.apps.contains_key(name) {
            return Err(not_found(name));
        }
        if let Some(p) = pid {
            check_own_pid(p)?;
            self.tracker.adopt(name, p)?;
        }
        self.mark_launched(name, pid, pid.is_some(), "app");
        Ok(self.state(name))
    }

    fn state(&self, name: &str) -> AppState {
        self.apps
            .get(name)
            .map(|e| e.state.clone())
            .unwrap_or_else(|| AppState::zero(name))
    }

    fn ready(&mut self, name: &str, by: &str) -> Result<AppState, RegistryError> {
        let e = self.apps.get_mut(name).ok_or_else(|| not_found(name))?;
        if e.state.status == Status::Stopped {
            e.state.launched = true;
            e.state.launched_at = Some(crate::time::now_rfc3339());
        }
        if e.state.status != Status::Ready {
            e.state.status = Status::Ready;
            e.state.ready = true;
            e.state.launched = true;
            e.state.ready_at = Some(crate::time::now_rfc3339());
            if by == "app" {
                self.tracker.cancel_probe(name);
            }
            self.emit("app.ready", name, json!({"by": by}));
        }
        Ok(self.state(name))
    }

    fn stopped(&mut self, name: &str) -> Result<AppState, RegistryError> {
        let e = self.apps.get_mut(name).ok_or_else(|| not_found(name))?;
        if e.state.status != Status::Stopped {
            e.state.status = Status::Stopped;
            e.state.launched = false;
            e.state.ready = false;
            e.state.alive = Some(false);
            self.tracker.cancel_probe(name);
            self.emit("app.stopped", name, json!({"by": "app"}));
        }
        Ok(self.state(name))
    }

    fn launch(&mut self, name: &str) -> Result<LaunchOutcome, RegistryError> {
        let spec = self
            .apps
            .get(name)
            .map(|e| e.spec.clone())
            .ok_or_else(|| not_found(name))?;
        if !spec.detached
            && let Some(pid) = self.tracker.alive_pid(name)
        {
            return Ok(LaunchOutcome::AlreadyRunning(pid));
        }
        match self.tracker.spawn(&spec) {
            Ok(pid) => {
                self.mark_launched(name, Some(pid), !spec.detached, "daemon");
                Ok(LaunchOutcome::Launched(pid))
            }
            Err(err) => {
                let msg = err.to_string();
                if let Some(e) = self.apps.get_mut(name) {
                    e.state.error = Some(msg.clone());
                    e.state.error_at = Some(crate::time::now_rfc3339());
                }
                self.emit("app.launch_failed", name, json!({"error": msg}));
                Err(err.into())
            }
        }
    }

    fn tracker_event(&mut self, ev: TrackerEvent) {
        match ev {
            TrackerEvent::Exited {
                name,
                pid,
                exit_code,
                signal,
            } => {
                let Some(e) = self.apps.get_mut(&name) else {
                    return;
                };
                if e.state.pid != Some(pid) {
                    return;
                }
                e.state.status = Status::Stopped;
                e.state.launched = false;
                e.state.ready = false;
                e.state.alive = Some(false);
                e.state.exit_code = exit_code;
                e.state.signal = signal;
                e.state.cpu_percent = None;
                e.state.memory_mb = None;
                self.emit(
                    "app.exited",
                    &name,
                    json!({"pid": pid, "exit_code": exit_code, "signal": signal}),
                );
            }
            TrackerEvent::Ready { name } => {
                let _ = self.ready(&name, "ready_cmd");
            }
            TrackerEvent::ReadyTimeout { name, timeout_ms } => {
                if let Some(e) = self.apps.get_mut(&name) {
                    let msg = format!("ready_cmd did not succeed within {timeout_ms} ms");
                    e.state.error = Some(msg.clone());
                    e.state.error_at = Some(crate::time::now_rfc3339());
                    self.emit(
                        "app.ready_timeout",
                        &name,
                        json!({"timeout_ms": timeout_ms, "error": msg}),
                    );
                }
            }
            TrackerEvent::Stats {
                name,
                pid,
                memory_mb,
                cpu_percent,
            } => {
                if let Some(e) = self.apps.get_mut(&name)
                    && e.state.pid == Some(pid)
                {
                    e.state.memory_mb = Some((memory_mb * 10.0).round() / 10.0);
                    if let Some(c) = cpu_percent {
                        e.state.cpu_percent = Some((c * 10.0).round() / 10.0);
                    }
                }
            }
        }
    }

    fn reload(&mut self, force: bool) -> Result<ReloadReport, RegistryError> {
        let (fp, loaded) = config::load_with_fingerprint(&self.config_dir);
        let cfg = match loaded {
            Ok(c) => c,
            // `config.invalid` once per distinct broken content (API.md §9).
            Err(err) if !force && self.invalid_fingerprint == Some(fp) => {
                return Err(RegistryError::Invalid(err));
            }
            Err(err) => {
                self.invalid_fingerprint = Some(fp);
                let errors: Vec<Value> = err.diagnostics().iter().map(|d| json!(d)).collect();
                log::warn!("config reload failed, keeping the previous registry: {err}");
                self.pending.push(NewEvent::daemon(
                    "config.invalid",
                    None,
                    json!({"errors": errors}),
                ));
                return Err(RegistryError::Invalid(err));
            }
        };
        self.invalid_fingerprint = None;
        if !force && cfg.fingerprint == self.fingerprint {
            return Ok(ReloadReport {
                added: vec![],
                removed: vec![],
                changed: vec![],
                warnings: cfg.warnings,
                apps: self.views(),
                unchanged: true,
            });
        }
        self.fingerprint = cfg.fingerprint;
        (self.on_reload)(&cfg);
        let mut added = Vec::new();
        let mut changed = Vec::new();
        let removed: Vec<String> = self
            .apps
            .keys()
            .filter(|k| !cfg.apps.contains_key(*k))
            .cloned()
            .collect();
        for name in &removed {
            self.apps.remove(name);
        }
        for (name, spec) in cfg.apps {
            match self.apps.get_mut(&name) {
                Some(e) => {
                    if e.spec != spec {
                        changed.push(name.clone());
                        e.spec = spec;
                    }
                }
                None => {
                    added.push(name.clone());
                    self.apps.insert(
                        name.clone(),
                        Entry {
                            spec,
                            state: AppState::zero(&name),
                        },
                    );
                }
            }
        }
        let mut warnings = cfg.warnings;
        warnings.extend(duplicate_chords(
            self.apps.iter().map(|(k, e)| (k, &e.spec)),
        ));
        {
            let old = match self.settings.read() {
                Ok(g) => g.clone(),
                Err(p) => p.into_inner().clone(),
            };
            if old.api_port != cfg.settings.api_port {
                warnings.push(format!(
                    "api_port changed to {}: it takes effect at the next start",
                    cfg.settings.api_port
                ));
            }
            log::set_max_level(cfg.settings.log_level);
            match self.settings.write() {
                Ok(mut g) => *g = Arc::new(cfg.settings),
                Err(p) => *p.into_inner() = Arc::new(cfg.settings),
            }
        }
        for w in &warnings {
            log::warn!("{w}");
        }
        log::info!(
            "registry reloaded: {} apps (added {:?}, removed {:?}, changed {:?})",
            self.apps.len(),
            added,
            removed,
            changed
        );
        self.pending.push(NewEvent::daemon(
            "registry.reloaded",
            None,
            json!({"added": added, "removed": removed, "changed": changed, "warnings": warnings}),
        ));
        Ok(ReloadReport {
            added,
            removed,
            changed,
            warnings,
            apps: self.views(),
            unchanged: false,
        })
    }
}
