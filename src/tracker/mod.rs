//! The process tracker actor: spawns apps in their own process groups, reaps every
//! child, detects exits, runs readiness probes, stops process groups (SIGTERM, then
//! SIGKILL after a grace period), and samples memory and CPU with `sysinfo`.
//!
//! Invariant: only this thread waits on app processes (`Child::try_wait`). It never
//! blocks on a child: stops and probes are state machines advanced by a tick.
//! Results flow to the registry as [`TrackerEvent`]s.

mod actor;
mod probe;

use crate::actor::call;
use crate::config::AppSpec;
use crossbeam_channel::{Sender, unbounded};
use std::path::PathBuf;
use std::thread::JoinHandle;

/// Readiness probe interval (API.md §6: "polled every 500 ms").
pub const READY_POLL_MS: u64 = 500;
/// How often memory and CPU are sampled. Two samples ≥ 200 ms apart are needed
/// for a CPU figure (DESIGN.md §4).
pub const STATS_INTERVAL_MS: u64 = 1000;
/// After SIGKILL, how long to wait for the group to disappear before answering anyway.
const KILL_GRACE_MS: u64 = 2000;

pub use crate::proc::{STRIPPED_ENV, dir_exists, expand_tilde, process_start_time};

/// What the tracker tells the registry.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackerEvent {
    /// A tracked process ended. `exit_code`/`signal` are `None` when unknown
    /// (a process the daemon did not start).
    Exited {
        /// App name.
        name: String,
        /// The PID that ended.
        pid: u32,
        /// Exit code if it exited normally and is known.
        exit_code: Option<i32>,
        /// Signal number if it was killed by a signal.
        signal: Option<i32>,
    },
    /// The readiness probe exited 0.
    Ready {
        /// App name.
        name: String,
    },
    /// The readiness probe kept failing for `timeout_ms`.
    ReadyTimeout {
        /// App name.
        name: String,
        /// The configured `ready_timeout_ms`.
        timeout_ms: u64,
    },
    /// A resource sample for a tracked PID.
    Stats {
        /// App name.
        name: String,
        /// The sampled PID.
        pid: u32,
        /// Resident memory, MiB.
        memory_mb: f64,
        /// CPU use since the previous sample, percent of one core; `None` on the first sample.
        cpu_percent: Option<f64>,
    },
}

/// How a stop ended.
#[derive(Debug, Clone, PartialEq)]
pub struct StopOutcome {
    /// The stopped PID.
    pub pid: u32,
    /// Exit code, if known.
    pub exit_code: Option<i32>,
    /// Terminating signal, if any.
    pub signal: Option<i32>,
    /// `true` when SIGKILL was needed after the grace period.
    pub killed: bool,
}

/// Errors of the tracker layer (the HTTP layer maps them to statuses).
#[derive(Debug, Clone, PartialEq)]
pub enum TrackerError {
    /// The command could not be started: the OS error, naming the command or cwd.
    Spawn(String),
    /// No tracked process for this app.
    NotRunning(String),
    /// A reported PID is not a live process.
    NoSuchPid(u32),
    /// The tracker thread is gone (daemon shutting down).
    Closed,
}

impl std::fmt::Display for TrackerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrackerError::Spawn(e) => write!(f, "{e}"),
            TrackerError::NotRunning(n) => write!(f, "app '{n}' is not running"),
            TrackerError::NoSuchPid(p) => write!(f, "pid {p} is not a running process"),
            TrackerError::Closed => f.write_str("process tracker is shut down"),
        }
    }
}
impl std::error::Error for TrackerError {}

enum Cmd {
    Spawn {
        spec: Box<AppSpec>,
        reply: Sender<Result<u32, TrackerError>>,
    },
    Adopt {
        name: String,
        pid: u32,
        reply: Sender<Result<(), TrackerError>>,
    },
    Stop {
        name: String,
        timeout_ms: u64,
        reply: Sender<Result<StopOutcome, TrackerError>>,
    },
    StartProbe {
        name: String,
        cmd: String,
        cwd: Option<PathBuf>,
        timeout_ms: u64,
    },
    CancelProbe {
        name: String,
    },
    IsAlive {
        name: String,
        reply: Sender<Option<u32>>,
    },
    Shutdown,
}

/// Where tracker events go: the registry wraps them into its own command
/// channel, so they are ordered with the commands it receives.
pub type EventSink = Box<dyn Fn(TrackerEvent) + Send>;

/// Handle to the tracker actor. Cheap to clone.
#[derive(Clone)]
pub struct Tracker {
    tx: Sender<Cmd>,
}

impl Tracker {
    /// Start the tracker thread. Events go to `events`; per-app output logs are
    /// appended under `<log_dir>/<name>.log`.
    pub fn start(log_dir: PathBuf, events: EventSink) -> (Tracker, JoinHandle<()>) {
        let (tx, rx) = unbounded();
        let handle = std::thread::Builder::new()
            .name("tracker".into())
            .spawn(move || actor::State::new(log_dir, events).run(rx))
            .unwrap_or_else(|e| panic!("cannot spawn tracker thread: {e}"));
        (Tracker { tx }, handle)
    }

    /// Spawn `spec.command` via `/bin/sh -c` in a new process group. Returns the PID.
    /// A detached app is reaped but not tracked.
    ///
    /// Errors: [`TrackerError::Spawn`] with the OS error (e.g. missing cwd).
    pub fn spawn(&self, spec: &AppSpec) -> Result<u32, TrackerError> {
        call(&self.tx, |reply| Cmd::Spawn {
            spec: Box::new(spec.clone()),
            reply,
        })
        .unwrap_or(Err(TrackerError::Closed))
    }

    /// Track a PID the app reported itself (`POST /apps/{name}/launched`).
    ///
    /// Errors: [`TrackerError::NoSuchPid`] when `pid` is not alive.
    pub fn adopt(&self, name: &str, pid: u32) -> Result<(), TrackerError> {
        call(&self.tx, |reply| Cmd::Adopt {
            name: name.to_string(),
            pid,
            reply,
        })
        .unwrap_or(Err(TrackerError::Closed))
    }

    /// Stop the app's process group: SIGTERM, then SIGKILL after `timeout_ms`.
    /// Blocks the caller (not the tracker) until the process is gone.
    ///
    /// Errors: [`TrackerError::NotRunning`] when nothing is tracked for `name`.
    pub fn stop(&self, name: &str, timeout_ms: u64) -> Result<StopOutcome, TrackerError> {
        call(&self.tx, |reply| Cmd::Stop {
            name: name.to_string(),
            timeout_ms,
            reply,
        })
        .unwrap_or(Err(TrackerError::Closed))
    }

    /// Start polling `cmd` every 500 ms until it exits 0 (→ [`TrackerEvent::Ready`])
    /// or `timeout_ms` pass (→ [`TrackerEvent::ReadyTimeout`]). Replaces a running probe.
    pub fn start_probe(&self, name: &str, cmd: &str, cwd: Option<PathBuf>, timeout_ms: u64) {
        let _ = self.tx.send(Cmd::StartProbe {
            name: name.to_string(),
            cmd: cmd.to_string(),
            cwd,
            timeout_ms,
        });
    }

    /// Cancel the readiness probe of `name`, if any.
    pub fn cancel_probe(&self, name: &str) {
        let _ = self.tx.send(Cmd::CancelProbe {
            name: name.to_string(),
        });
    }

    /// The live tracked PID of `name`, if any.
    pub fn alive_pid(&self, name: &str) -> Option<u32> {
        call(&self.tx, |reply| Cmd::IsAlive {
            name: name.to_string(),
            reply,
        })
        .flatten()
    }

    /// Stop the tracker thread. Tracked apps keep running (they are the user's apps).
    pub fn shutdown(&self) {
        let _ = self.tx.send(Cmd::Shutdown);
    }
}
