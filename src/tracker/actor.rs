//! The tracker actor's thread: spawns and adopts apps, reaps every child,
//! detects exits, runs the stop state machine (SIGTERM → SIGKILL) and samples
//! memory and CPU. Readiness probes are in probe.rs.

use super::probe::Probe;
use super::{
    Cmd, EventSink, KILL_GRACE_MS, STATS_INTERVAL_MS, StopOutcome, TrackerError, TrackerEvent,
};
use crate::config::AppSpec;
use crate::proc::{expand_tilde, group_alive, pid_alive, process_start_time, strip_env};
use crossbeam_channel::{Receiver, Sender, select_biased};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

enum Watch {
    /// A child of the daemon: exit decided by `try_wait`.
    Child(Child),
    /// A PID reported by the app: exit decided by `kill(pid, 0)`, zombie state and
    /// start time (guards against PID reuse).
    External { pid: u32, start_time: Option<u64> },
}

struct PendingStop {
    deadline: Instant,
    killed: bool,
    /// Set once the watched process ended; we then wait for the rest of the group.
    ended: Option<(Option<i32>, Option<i32>)>,
    kill_deadline: Option<Instant>,
    reply: Sender<Result<StopOutcome, TrackerError>>,
}

struct Tracked {
    watch: Watch,
    pid: u32,
    pgid: Option<i32>,
    stop: Option<PendingStop>,
    cpu_samples: u32,
}

/// The tracker actor's state, owned by its thread.
pub(super) struct State {
    log_dir: PathBuf,
    pub(super) events: EventSink,
    tracked: HashMap<String, Tracked>,
    pub(super) probes: HashMap<String, Probe>,
    /// Children reaped without being reported (detached apps, replaced watches, probes).
    pub(super) orphans: Vec<Child>,
    sys: Option<sysinfo::System>,
    next_stats: Instant,
}

fn status_parts(st: ExitStatus) -> (Option<i32>, Option<i32>) {
    (st.code(), st.signal())
}

impl State {
    pub(super) fn new(log_dir: PathBuf, events: EventSink) -> Self {
        State {
            log_dir,
            events,
            tracked: HashMap::new(),
            probes: HashMap::new(),
            orphans: Vec::new(),
            sys: sysinfo::System::new().ok(),
            next_stats: Instant::now() + Duration::from_millis(STATS_INTERVAL_MS),
        }
    }

    fn tick_interval(&self) -> Duration {
        let busy = !self.probes.is_empty() || self.tracked.values().any(|t| t.stop.is_some());
        if busy {
            Duration::from_millis(25)
        } else if !self.tracked.is_empty() || !self.orphans.is_empty() {
            Duration::from_millis(100)
        } else {
            Duration::from_millis(STATS_INTERVAL_MS)
        }
    }

    pub(super) fn run(mut self, rx: Receiver<Cmd>) {
        loop {
            let timeout = self.tick_interval();
            select_biased! {
                recv(rx) -> msg => match msg {
                    Ok(Cmd::Shutdown) | Err(_) => break,
                    Ok(cmd) => self.handle(cmd),
                },
                default(timeout) => {}
            }
            self.tick();
        }
        // Answer stops still pending so no caller hangs.
        for (_, t) in self.tracked.drain() {
            if let Some(s) = t.stop {
                let _ = s.reply.send(Err(TrackerError::Closed));
            }
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Spawn { spec, reply } => {
                let _ = reply.send(self.spawn(&spec));
            }
            Cmd::Adopt { name, pid, reply } => {
                let _ = reply.send(self.adopt(&name, pid));
            }
            Cmd::Stop {
                name,
                timeout_ms,
                reply,
            } => self.begin_stop(&name, timeout_ms, reply),
            Cmd::StartProbe {
                name,
                cmd,
                cwd,
                timeout_ms,
            } => {
                self.cancel_probe(&name);
                self.probes.insert(name, Probe::new(cmd, cwd, timeout_ms));
            }
            Cmd::CancelProbe { name } => self.cancel_probe(&name),
            Cmd::IsAlive { name, reply } => {
                self.poll_exits();
                let _ = reply.send(self.tracked.get(&name).map(|t| t.pid));
            }
            Cmd::Shutdown => {}
        }
    }

    fn open_log(&self, name: &str) -> Stdio {
        let _ = crate::fsutil::create_private_dir(&self.log_dir);
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_dir.join(format!("{name}.log")))
        {
            Ok(f) => Stdio::from(f),
            Err(_) => Stdio::null(),
        }
    }

    fn spawn(&mut self, spec: &AppSpec) -> Result<u32, TrackerError> {
        self.poll_exits();
        if let Some(t) = self.tracked.get(&spec.name) {
            return Ok(t.pid);
        }
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(&spec.command);
        cmd.process_group(0);
        cmd.stdin(Stdio::null());
        let out = self.open_log(&spec.name);
        let err = self.open_log(&spec.name);
        cmd.stdout(out).stderr(err);
        strip_env(&mut cmd).envs(&spec.env);
        cmd.env("ORCHESTRATR_APP", &spec.name);
        if let Some(cwd) = &spec.cwd {
            let dir = expand_tilde(cwd);
            if !dir.is_dir() {
                return Err(TrackerError::Spawn(format!(
                    "cannot launch '{}': cwd {} is not a directory",
                    spec.name,
                    dir.display()
                )));
            }
            cmd.current_dir(dir);
        }
        let child = cmd.spawn().map_err(|e| {
            TrackerError::Spawn(format!(
                "cannot launch '{}' ({}): {e}",
                spec.name, spec.command
            ))
        })?;
        let pid = child.id();
        if spec.detached {
            self.orphans.push(child);
        } else {
            self.tracked.insert(
                spec.name.clone(),
                Tracked {
                    watch: Watch::Child(child),
                    pid,
                    pgid: Some(pid as i32),
                    stop: None,
                    cpu_samples: 0,
                },
            );
        }
        Ok(pid)
    }

    fn start_time_of(&mut self, pid: u32) -> Option<u64> {
        process_start_time(self.sys.as_mut()?, pid)
    }

    fn adopt(&mut self, name: &str, pid: u32) -> Result<(), TrackerError> {
        // Never pid 1 (killpg(1) is kill(-1)), the daemon itself, or a kernel
        // thread (empty cmdline: signals cannot end it, so stop would wait forever).
        let kernel_thread =
            || std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.is_empty());
        if pid <= 1
            || pid == std::process::id()
            || pid > i32::MAX as u32
            || !pid_alive(pid)
            || kernel_thread()
        {
            return Err(TrackerError::NoSuchPid(pid));
        }
        if let Some(t) = self.tracked.get(name)
            && t.pid == pid
        {
            return Ok(());
        }
        if let Some(old) = self.tracked.remove(name)
            && let Watch::Child(c) = old.watch
        {
            self.orphans.push(c);
        }
        let start_time = self.start_time_of(pid);
        let pgid = nix::unistd::getpgid(Some(Pid::from_raw(pid as i32)))
            .ok()
            .map(|g| g.as_raw())
            .filter(|g| *g == pid as i32);
        self.tracked.insert(
            name.to_string(),
            Tracked {
                watch: Watch::External { pid, start_time },
                pid,
                pgid,
                stop: None,
                cpu_samples: 0,
            },
        );
        Ok(())
    }

    fn signal(t: &Tracked, sig: Signal) {
        match t.pgid {
            Some(g) => {
                if killpg(Pid::from_raw(g), sig).is_err() {
                    let _ = kill(Pid::from_raw(t.pid as i32), sig);
                }
            }
            None => {
                let _ = kill(Pid::from_raw(t.pid as i32), sig);
            }
        }
    }

    fn begin_stop(
        &mut self,
        name: &str,
        timeout_ms: u64,
        reply: Sender<Result<StopOutcome, TrackerError>>,
    ) {
        self.poll_exits();
        self.cancel_probe(name);
        let Some(t) = self.tracked.get_mut(name) else {
            let _ = reply.send(Err(TrackerError::NotRunning(name.to_string())));
            return;
        };
        if t.stop.is_some() {
            // A second stop while one is pending: answer it when the first completes
            // would need a list; answering "not running" would be wrong. Take it over.
            if let Some(prev) = t.stop.take() {
                let _ = prev
                    .reply
                    .send(Err(TrackerError::NotRunning(name.to_string())));
            }
        }
        Self::signal(t, Signal::SIGTERM);
        t.stop = Some(PendingStop {
            deadline: Instant::now() + Duration::from_millis(timeout_ms),
            killed: false,
            ended: None,
            kill_deadline: None,
            reply,
        });
    }

    /// Check every tracked process; report exits, advance pending stops.
    fn poll_exits(&mut self) {
        let now = Instant::now();
        let mut done: Vec<String> = Vec::new();
        let mut external_checks: Vec<(String, u32, Option<u64>)> = Vec::new();
        for (name, t) in self.tracked.iter_mut() {
            let ended = match &mut t.watch {
                Watch::Child(c) => match c.try_wait() {
                    Ok(Some(st)) => Some(status_parts(st)),
                    Ok(None) => None,
                    Err(_) => Some((None, None)),
                },
                Watch::External { pid, start_time } => {
                    external_checks.push((name.clone(), *pid, *start_time));
                    None
                }
            };
            if let Some(e) = ended {
                match &mut t.stop {
                    Some(s) => {
                        if s.ended.is_none() {
                            s.ended = Some(e);
                        }
                    }
                    None => {
                        (self.events)(TrackerEvent::Exited {
                            name: name.clone(),
                            pid: t.pid,
                            exit_code: e.0,
                            signal: e.1,
                        });
                        done.push(name.clone());
                    }
                }
            }
        }
        for (name, pid, start) in external_checks {
            let gone = !pid_alive(pid) || {
                let now_start = self.start_time_of(pid);
                let zombie = self.sys.as_ref().and_then(|s| {
                    s.process(sysinfo::Pid::from_u32(pid))
                        .map(|p| p.status() == sysinfo::ProcessStatus::Zombie)
                });
                zombie == Some(true)
                    || (start.is_some() && now_start.is_some() && now_start != start)
            };
            if gone && let Some(t) = self.tracked.get_mut(&name) {
                match &mut t.stop {
                    Some(s) => {
                        if s.ended.is_none() {
                            s.ended = Some((None, None));
                        }
                    }
                    None => {
                        (self.events)(TrackerEvent::Exited {
                            name: name.clone(),
                            pid,
                            exit_code: None,
                            signal: None,
                        });
                        done.push(name);
                    }
                }
            }
        }
        // Pending stops.
        for (name, t) in self.tracked.iter_mut() {
            let Some(s) = &mut t.stop else { continue };
            let group_gone = t.pgid.is_none_or(|g| !group_alive(g));
            if s.ended.is_some() && (group_gone || s.kill_deadline.is_some_and(|d| now >= d)) {
                let (exit_code, signal) = s.ended.unwrap_or((None, None));
                (self.events)(TrackerEvent::Exited {
                    name: name.clone(),
                    pid: t.pid,
                    exit_code,
                    signal,
                });
                done.push(name.clone());
                continue;
            }
            if !s.killed && now >= s.deadline {
                Self::signal(t, Signal::SIGKILL);
                if let Some(s) = &mut t.stop {
                    s.killed = true;
                    s.kill_deadline = Some(now + Duration::from_millis(KILL_GRACE_MS));
                }
            } else if s.killed && s.ended.is_none() {
                // Keep killing stragglers that were forked after the first SIGKILL.
                Self::signal(t, Signal::SIGKILL);
            }
        }
        for name in done {
            if let Some(t) = self.tracked.remove(&name) {
                if let Some(s) = t.stop {
                    let (exit_code, signal) = s.ended.unwrap_or((None, None));
                    let _ = s.reply.send(Ok(StopOutcome {
                        pid: t.pid,
                        exit_code,
                        signal,
                        killed: s.killed,
                    }));
                }
                if let Some(mut p) = self.probes.remove(&name)
                    && let Some(c) = p.take_attempt()
                {
                    self.orphans.push(c);
                }
            }
        }
        self.orphans
            .retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
    }

    fn sample_stats(&mut self) {
        let now = Instant::now();
        if now < self.next_stats {
            return;
        }
        self.next_stats = now + Duration::from_millis(STATS_INTERVAL_MS);
        let Some(sys) = self.sys.as_mut() else { return };
        if self.tracked.is_empty() {
            return;
        }
        let pids: Vec<sysinfo::Pid> = self
            .tracked
            .values()
            .map(|t| sysinfo::Pid::from_u32(t.pid))
            .collect();
        sys.refresh_processes_specifics(
            sysinfo::ProcessesToUpdate::Some(&pids),
            true,
            sysinfo::ProcessRefreshKind::nothing()
                .with_memory()
                .with_cpu()
                .without_tasks(),
        );
        for (name, t) in self.tracked.iter_mut() {
            if let Some(p) = sys.process(sysinfo::Pid::from_u32(t.pid)) {
                t.cpu_samples = t.cpu_samples.saturating_add(1);
                let cpu = (t.cpu_samples >= 2).then(|| f64::from(p.cpu_usage()));
                (self.events)(TrackerEvent::Stats {
                    name: name.clone(),
                    pid: t.pid,
                    memory_mb: p.memory() as f64 / (1024.0 * 1024.0),
                    cpu_percent: cpu,
                });
            }
        }
    }

    fn tick(&mut self) {
        self.poll_exits();
        self.poll_probes();
        self.sample_stats();
    }
}
