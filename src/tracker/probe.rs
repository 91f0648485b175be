//! Readiness probes (API.md §6): an app's `ready_cmd` run via `/bin/sh -c`
//! every [`READY_POLL_MS`] in its own process group until it exits 0
//! ([`TrackerEvent::Ready`]) or `timeout_ms` passes
//! ([`TrackerEvent::ReadyTimeout`]). Advanced by the tracker's tick; never
//! waited on.

use super::actor::State;
use super::{READY_POLL_MS, TrackerEvent};
use crate::proc::strip_env;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One app's readiness probe.
pub(super) struct Probe {
    cmd: String,
    cwd: Option<PathBuf>,
    timeout_ms: u64,
    deadline: Instant,
    next_at: Instant,
    running: Option<Child>,
}

impl Probe {
    /// A probe that starts its first attempt at the next tick.
    pub(super) fn new(cmd: String, cwd: Option<PathBuf>, timeout_ms: u64) -> Probe {
        let now = Instant::now();
        Probe {
            cmd,
            cwd,
            timeout_ms,
            deadline: now + Duration::from_millis(timeout_ms),
            next_at: now,
            running: None,
        }
    }

    /// The attempt in flight, if any, taken out of the probe (to be reaped).
    pub(super) fn take_attempt(&mut self) -> Option<Child> {
        self.running.take()
    }
}

/// Kill a probe attempt's group; the child is reaped later as an orphan.
fn kill_attempt(mut c: Child, orphans: &mut Vec<Child>) {
    let _ = killpg(Pid::from_raw(c.id() as i32), Signal::SIGKILL);
    let _ = c.try_wait();
    orphans.push(c);
}

impl State {
    pub(super) fn cancel_probe(&mut self, name: &str) {
        if let Some(mut p) = self.probes.remove(name)
            && let Some(c) = p.running.take()
        {
            kill_attempt(c, &mut self.orphans);
        }
    }

    pub(super) fn poll_probes(&mut self) {
        let now = Instant::now();
        let mut finished: Vec<(String, bool)> = Vec::new();
        for (name, p) in self.probes.iter_mut() {
            if let Some(c) = &mut p.running {
                match c.try_wait() {
                    Ok(Some(st)) if st.success() => {
                        p.running = None;
                        finished.push((name.clone(), true));
                        continue;
                    }
                    Ok(Some(_)) | Err(_) => p.running = None,
                    Ok(None) => {}
                }
            }
            if now >= p.deadline {
                if let Some(c) = p.running.take() {
                    kill_attempt(c, &mut self.orphans);
                }
                finished.push((name.clone(), false));
                continue;
            }
            if p.running.is_none() && now >= p.next_at {
                p.next_at = now + Duration::from_millis(READY_POLL_MS);
                let mut cmd = Command::new("/bin/sh");
                cmd.arg("-c")
                    .arg(&p.cmd)
                    .process_group(0)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                strip_env(&mut cmd);
                if let Some(d) = &p.cwd {
                    cmd.current_dir(d);
                }
                match cmd.spawn() {
                    Ok(c) => p.running = Some(c),
                    Err(e) => log::warn!("ready_cmd of '{name}' failed to start: {e}"),
                }
            }
        }
        for (name, ok) in finished {
            if let Some(p) = self.probes.remove(&name) {
                let ev = if ok {
                    TrackerEvent::Ready { name }
                } else {
                    TrackerEvent::ReadyTimeout {
                        name,
                        timeout_ms: p.timeout_ms,
                    }
                };
                (self.events)(ev);
            }
        }
    }
}
