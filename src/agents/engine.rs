//! The status engine (API.md §10): ranked sources — process death, the
//! agent's hook report, a pending approval naming the session, screen
//! patterns (captured only when the output log grew), silence.

use super::record::{Agent, Source, Status};
use super::status::{self, Screen};
use super::{AgentError, Agents, PANE_SCAN_MS, TICK_MS, file_len, lock, wrapper};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

impl Agents {
    /// An agent's own report (`POST /agents/{id}/status`): wins over approvals,
    /// screen and silence until the process ends or the next report.
    /// Errors: not found, not running.
    pub fn report_status(
        &self,
        id: &str,
        status: Status,
        reason: Option<String>,
        resume_id: Option<String>,
    ) -> Result<Agent, AgentError> {
        let mut st = lock(&self.0.state);
        let (a, l) = st
            .agents
            .get_mut(id)
            .ok_or_else(|| AgentError::NotFound(id.into()))?;
        let Some(l) = l else {
            return Err(AgentError::NotRunning(format!(
                "agent '{id}' is not running"
            )));
        };
        l.hook = Some((status, reason.clone()));
        if resume_id.is_some() {
            a.resume_id = resume_id;
        }
        let changed = self.set_status(a, status, Source::Hook, reason);
        if !changed {
            self.save(a);
        }
        Ok(a.clone())
    }

    /// Set a status; saves and emits `agent.status` when it changed.
    pub(super) fn set_status(
        &self,
        a: &mut Agent,
        status: Status,
        source: Source,
        reason: Option<String>,
    ) -> bool {
        let reason = if status == Status::Waiting {
            reason
        } else {
            None
        };
        if a.status == status && a.status_source == source && a.waiting_reason == reason {
            return false;
        }
        a.status = status;
        a.status_source = source;
        a.waiting_reason = reason;
        self.save(a);
        self.emit(
            "agent.status",
            json!({"session_id": a.session_id, "status": status, "status_source": source,
                   "waiting_reason": a.waiting_reason}),
        );
        true
    }

    pub(super) fn monitor(&self) {
        let mut last_scan = Instant::now();
        while !self.0.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(TICK_MS));
            let scan = last_scan.elapsed() >= Duration::from_millis(PANE_SCAN_MS);
            if scan {
                last_scan = Instant::now();
            }
            self.tick(scan);
        }
    }

    /// Pending approvals naming a session: id → title.
    fn pending_by_agent(&self) -> HashMap<String, String> {
        let Ok(l) = self.0.approvals.list(&[crate::approvals::Status::Pending]) else {
            return HashMap::new();
        };
        l.approvals
            .into_iter()
            .filter_map(|ap| {
                let id = ap
                    .context
                    .get("agent_id")
                    .and_then(|v| v.as_str())?
                    .to_string();
                Some((id, ap.title))
            })
            .collect()
    }

    fn tick(&self, scan: bool) {
        let any_live = lock(&self.0.state)
            .agents
            .values()
            .any(|(_, l)| l.is_some());
        if !any_live {
            return;
        }
        let pending = self.pending_by_agent();
        let listed_at = Instant::now();
        let panes = if scan { self.0.tmux.list_panes() } else { None };
        let mut st = lock(&self.0.state);
        for (id, (a, live)) in st.agents.iter_mut() {
            let Some(l) = live.as_mut() else { continue };
            if l.killing {
                continue;
            }
            let dir = self.0.root.join(id);
            let len = file_len(&dir.join("output.log"));
            a.output_bytes = len;
            let exit = wrapper::read_exit(&dir);
            let gone = l.since < listed_at
                && panes.as_ref().is_some_and(|p| {
                    !p.iter()
                        .any(|p| p.pane_id == a.tmux_pane && p.tag == *id && !p.dead)
                });
            if exit.is_some() || gone {
                // Let the pipe deliver the last bytes before the size is final.
                a.exit_code = exit.map(|e| e.code);
                a.exited_at = Some(crate::time::now_rfc3339());
                *live = None;
                self.set_status(a, Status::Exited, Source::Process, None);
                self.emit(
                    "agent.exited",
                    json!({"session_id": id, "exit_code": a.exit_code}),
                );
                continue;
            }
            let grew = len > l.last_len;
            if grew {
                l.last_len = len;
                l.last_growth = Instant::now();
                a.last_activity = Some(crate::time::now_rfc3339());
            }
            let (s, src, reason) = if let Some((s, r)) = &l.hook {
                (*s, Source::Hook, r.clone())
            } else if let Some(t) = pending.get(id) {
                (Status::Waiting, Source::Approval, Some(t.clone()))
            } else {
                if grew && let Ok(t) = self.0.tmux.capture_text(&a.tmux_pane) {
                    l.screen = status::judge(&l.spec, &t);
                }
                let silent = l.last_growth.elapsed() >= Duration::from_millis(l.spec.idle_after_ms);
                match &l.screen {
                    Screen::Waiting(line) => (Status::Waiting, Source::Screen, Some(line.clone())),
                    Screen::Busy => (Status::Running, Source::Screen, None),
                    // Nothing printed yet: not known to be up.
                    Screen::Plain if len == 0 => (Status::Starting, Source::Process, None),
                    Screen::Plain if silent => (Status::Idle, Source::Silence, None),
                    Screen::Plain => (Status::Running, Source::Screen, None),
                }
            };
            self.set_status(a, s, src, reason);
        }
    }
}
