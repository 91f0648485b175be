//! Ending runs from the outside: cancel, timeout and the shutdown drain, each
//! SIGTERM to the run's process group, then SIGKILL after a grace. The exit is
//! still reported by the run thread (actor.rs `exited`).

use super::actor::{EndReason, State, now};
use super::record::{ExecStatus, Execution};
use super::{ExecError, KILL_GRACE_MS, Reply};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

impl State {
    /// Cancel (API.md §7): a pending run leaves its queue (or its `git status`
    /// snapshot) and is `cancelled` at once, as is a `starting` one (not yet
    /// spawned); a running one gets SIGTERM, then
    /// SIGKILL after [`KILL_GRACE_MS`], and `reply` waits for its exit.
    pub(super) fn cancel(&mut self, id: &str, reply: Reply<Execution>) {
        if self.cancel_live(id) {
            let v = self.view(id).ok_or(ExecError::NotFound(id.to_string()));
            self.reply_after(reply, v);
            return;
        }
        let Some(rec) = self.records.get_mut(id) else {
            self.reply_after(reply, Err(ExecError::NotFound(id.to_string())));
            return;
        };
        match rec.exec.status {
            ExecStatus::Pending => {
                self.sched.dequeue(&rec.exec.pool, id);
                let freed = self.preparing.remove(id);
                if freed {
                    self.sched.release(id);
                }
                rec.exec.status = ExecStatus::Cancelled;
                rec.exec.error = Some("cancelled while pending".into());
                rec.exec.finished_at = Some(now());
                self.changed(id, Some("execution.finished"));
                let v = self.view(id).ok_or(ExecError::NotFound(id.to_string()));
                self.reply_after(reply, v);
                if freed {
                    // It held a slot while its git snapshot was taken.
                    self.schedule();
                    self.check_drain();
                }
            }
            ExecStatus::Starting => {
                // Not spawned yet (its Cmd::Spawn finds it gone from `starting`).
                self.starting.remove(id);
                self.sched.release(id);
                rec.exec.status = ExecStatus::Cancelled;
                rec.exec.error = Some("cancelled while starting".into());
                rec.exec.finished_at = Some(now());
                self.changed(id, Some("execution.finished"));
                let v = self.view(id).ok_or(ExecError::NotFound(id.to_string()));
                self.reply_after(reply, v);
                self.schedule();
                self.check_drain();
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

    /// Enforce deadlines: timeouts, the SIGKILL after a grace, the end of a
    /// drain's grace, and a `starts_per_minute` wake-up.
    pub(super) fn tick(&mut self) {
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
}
