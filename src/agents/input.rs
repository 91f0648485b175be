//! Input of agent sessions (API.md §10 `POST /agents/{id}/input`): one queue
//! and one thread per session, so inputs apply in order and a paste never
//! interleaves with another input's Enter.

use super::{AgentError, Agents, lock};
use serde_json::json;
use std::time::{Duration, Instant};

/// One queued input.
pub(super) enum Input {
    /// Text to paste, and whether Enter follows.
    Text(String, bool),
    /// tmux key names.
    Keys(Vec<String>),
}

impl Agents {
    /// Queue `text` to be pasted literally; with `submit`, Enter follows after
    /// `submit_delay_ms` and once more if the screen did not change. Inputs of a
    /// session are applied in order by its own input thread.
    /// Errors: [`AgentError::NotFound`], [`AgentError::NotRunning`].
    pub fn input_text(&self, id: &str, text: &str, submit: bool) -> Result<(), AgentError> {
        self.queue(id, Input::Text(text.to_string(), submit))?;
        self.emit(
            "agent.input",
            json!({"session_id": id, "length": text.chars().count(), "submit": submit}),
        );
        Ok(())
    }

    /// Queue tmux key names (`Enter`, `C-c`, `Up`). Errors: not found, not running.
    pub fn input_keys(&self, id: &str, keys: &[String]) -> Result<(), AgentError> {
        self.queue(id, Input::Keys(keys.to_vec()))?;
        self.emit(
            "agent.input",
            json!({"session_id": id, "length": 0, "keys": keys.len()}),
        );
        Ok(())
    }

    pub(super) fn queue(&self, id: &str, input: Input) -> Result<(), AgentError> {
        let mut st = lock(&self.0.state);
        let (a, l) = self.live_pane(&mut st, id)?;
        a.last_activity = Some(crate::time::now_rfc3339());
        let tx = match &l.inputs {
            Some(tx) => tx.clone(),
            None => {
                let (tx, rx) = crossbeam_channel::unbounded();
                let me = self.clone();
                let (id2, pane) = (id.to_string(), a.tmux_pane.clone());
                std::thread::Builder::new()
                    .name(format!("input-{id}"))
                    .spawn(move || {
                        for i in rx {
                            me.apply(&id2, &pane, i);
                        }
                    })
                    .map_err(|e| AgentError::Internal(format!("cannot start input thread: {e}")))?;
                l.inputs = Some(tx.clone());
                tx
            }
        };
        tx.send(input)
            .map_err(|_| AgentError::NotRunning(format!("agent '{id}' is not running")))
    }

    /// Apply one input. The pane is checked alive right before each paste or
    /// key, under the state lock (a paste into a dead pane has crashed tmux).
    fn apply(&self, id: &str, pane: &str, input: Input) {
        let (text, submit) = match input {
            Input::Keys(k) => {
                let st = lock(&self.0.state);
                if self.0.tmux.pane_alive(pane) {
                    let _ = self.0.tmux.send_keys(pane, &k);
                }
                drop(st);
                return;
            }
            Input::Text(t, s) => (t, s),
        };
        let delay = {
            let st = lock(&self.0.state);
            let Some(d) = st
                .agents
                .get(id)
                .and_then(|(_, l)| l.as_ref())
                .map(|l| l.spec.submit_delay_ms)
            else {
                return;
            };
            if !text.is_empty() && self.0.tmux.pane_alive(pane) {
                let _ = self.0.tmux.paste(pane, &text);
            }
            d
        };
        if !submit {
            return;
        }
        std::thread::sleep(Duration::from_millis(delay));
        let before = {
            let st = lock(&self.0.state);
            let live = st
                .agents
                .get(id)
                .is_some_and(|(_, l)| l.as_ref().is_some_and(|l| !l.killing));
            if !live || !self.0.tmux.pane_alive(pane) {
                return;
            }
            let before = self.0.tmux.capture_text(pane).ok();
            let _ = self.0.tmux.send_keys(pane, &["Enter".to_string()]);
            drop(st);
            before
        };
        let end = Instant::now() + Duration::from_millis(delay.clamp(300, 2000));
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
            if self.0.tmux.capture_text(pane).ok() != before {
                return;
            }
        }
        let st = lock(&self.0.state);
        if self.0.tmux.pane_alive(pane) {
            let _ = self.0.tmux.send_keys(pane, &["Enter".to_string()]);
        }
        drop(st);
    }
}
