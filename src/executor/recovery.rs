//! Recovery at start (API.md §7, DESIGN.md §4, docs/api.md "Executions: state
//! machine and recovery"): what the previous daemon left on disk becomes the
//! executor's state again, and nothing it started is left running.
//!
//! Rules (invariants):
//! - `pending` on disk was never spawned (a run is `starting` on disk before
//!   its spawn): it is queued again, in creation order.
//! - `starting` or `running` on disk may have been spawned: it becomes `lost`
//!   and is never queued again (a run is executed at most once).
//! - Its process group is SIGKILLed if it survived: the leader PID's group when
//!   the leader is gone but the group lives (Linux never reuses a PID while a
//!   group of that id exists), or the leader is recognisably ours (same start
//!   time as saved, or it carries `ORCHESTRATR_EXECUTION_ID=<id>`).
//! - Then every process of the daemon's uid whose environment carries
//!   `ORCHESTRATR_EXECUTION_ID` naming one of this state dir's executions is
//!   SIGKILLed with its process group (a run spawned but whose PID never
//!   reached disk, or a member that left the group). Recovery runs before
//!   anything is scheduled, so no live run of this daemon can be hit; the
//!   daemon's own process and group are never signalled.
//! - A session-backed ticket (live.rs) stays `running` here; `live::resume`
//!   follows it again if its agent lives, else ends it `lost`. Its `pid` is
//!   the agent's pane, never signalled.

use super::actor::{State, now};
use super::output::Output;
use super::record::{self, ExecStatus};
use crate::proc::EXECUTION_ID_ENV;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Pid, getpgid, getpgrp};
use std::collections::HashSet;
use std::sync::Arc;

impl State {
    /// Load the records under the root; re-queue pending runs; mark starting
    /// and running ones `lost`, killing what survives of them (module docs);
    /// then prune and schedule.
    pub(super) fn recover(&mut self) {
        let records = record::load_all(&self.root);
        let (mut requeued, mut lost) = (0, 0);
        let known: HashSet<String> = records.iter().map(|r| r.exec.id.clone()).collect();
        for mut r in records {
            self.seq = self.seq.max(r.seq);
            let id = r.exec.id.clone();
            let was_spawned = r.exec.status.is_spawned() && r.exec.session_id.is_none();
            match r.exec.status {
                ExecStatus::Pending => {
                    self.sched.enqueue(&r.exec.pool, &id);
                    requeued += 1;
                }
                // A session-backed ticket has no process of its own: it is
                // followed again or ended by `live::resume` (live.rs).
                ExecStatus::Running if r.exec.session_id.is_some() => {}
                ExecStatus::Starting | ExecStatus::Running => {
                    if let Some(pid) = r.exec.pid {
                        self.kill_leader_group(&id, pid, r.pid_start_time);
                    }
                    r.exec.error = Some(format!(
                        "the daemon stopped while it was {}",
                        r.exec.status.as_str()
                    ));
                    r.exec.status = ExecStatus::Lost;
                    r.exec.finished_at = Some(now());
                    lost += 1;
                }
                _ => {}
            }
            let out = Output::new(
                &self.output_path(&id),
                r.exec.clone(),
                self.retention.output_bytes,
            );
            r.exec.output_bytes = out.len();
            self.outputs.insert(id.clone(), Arc::new(out));
            self.records.insert(id.clone(), r);
            if was_spawned {
                self.persist(&id);
            }
        }
        let orphans = kill_orphans(&known);
        if requeued + lost + orphans > 0 {
            log::info!(
                "executions recovered: {requeued} pending re-queued, {lost} starting/running marked lost, {orphans} orphan processes killed"
            );
        }
        self.prune();
        self.schedule();
    }

    /// SIGKILL the process group led by `pid` of run `id`, if it is ours.
    fn kill_leader_group(&mut self, id: &str, pid: u32, saved_start: Option<u64>) {
        let pgid = pid as i32;
        if pgid <= 1 || pgid == getpgrp().as_raw() {
            return;
        }
        let ours = match self.start_time_of(pid) {
            // Leader gone: a living group of that id can only be the run's.
            None => crate::proc::group_alive(pgid),
            Some(now) => {
                saved_start == Some(now)
                    || crate::proc::env_of(pid, EXECUTION_ID_ENV).as_deref() == Some(id)
            }
        };
        if ours && killpg(Pid::from_raw(pgid), Signal::SIGKILL).is_ok() {
            log::warn!("killed surviving process group {pid} of lost execution {id}");
        }
    }
}

/// SIGKILL every process of this uid carrying `ORCHESTRATR_EXECUTION_ID` with
/// an id in `known`, with its process group (never the daemon's own group).
/// Returns how many processes were found.
fn kill_orphans(known: &HashSet<String>) -> usize {
    if known.is_empty() {
        return 0;
    }
    let me = getpgrp();
    let mut n = 0;
    for (pid, id) in crate::proc::processes_with_env(EXECUTION_ID_ENV) {
        if !known.contains(&id) {
            continue;
        }
        n += 1;
        let p = Pid::from_raw(pid as i32);
        match getpgid(Some(p)) {
            Ok(g) if g != me && g.as_raw() > 1 => {
                let _ = killpg(g, Signal::SIGKILL);
            }
            _ => {}
        }
        let _ = kill(p, Signal::SIGKILL);
        log::warn!("killed orphan process {pid} of execution {id}");
    }
    n
}
