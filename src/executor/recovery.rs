//! Recovery at start (API.md §7, DESIGN.md §4): what the previous daemon left
//! on disk becomes the executor's state again.

use super::actor::{State, now};
use super::output::Output;
use super::record::{self, ExecStatus};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::sync::Arc;

impl State {
    /// Load the records under the root; re-queue pending runs; mark running
    /// ones `lost`, killing their process group if it survived (the leader's
    /// start time guards against PID reuse); then prune and schedule.
    pub(super) fn recover(&mut self) {
        let records = record::load_all(&self.root);
        let (mut requeued, mut lost) = (0, 0);
        for mut r in records {
            self.seq = self.seq.max(r.seq);
            let id = r.exec.id.clone();
            let was_running = r.exec.status == ExecStatus::Running;
            match r.exec.status {
                ExecStatus::Pending => {
                    self.sched.enqueue(&r.exec.pool, &id);
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
}
