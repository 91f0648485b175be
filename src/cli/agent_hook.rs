//! `orchestratr hook claude-code --agent-status`: Claude Code's
//! `UserPromptSubmit`, `Stop`, `Notification` and `SessionStart` hooks report
//! the session's status to `POST /agents/{id}/status` (API.md §10), finding
//! the session through `ORCHESTRATR_AGENT_ID`.
//!
//! It never gets in the agent's way: it prints nothing on stdout (Claude Code
//! adds a `UserPromptSubmit` hook's stdout to the prompt) and always exits 0;
//! problems go to stderr.

use super::Env;
use serde_json::{Value, json};
use std::io::Read;

/// The report for one hook input: `(status, reason)`; `None` for events that
/// say nothing about the status.
pub fn status_of(input: &Value) -> Option<(&'static str, Option<String>)> {
    let msg = input["message"].as_str().map(str::to_string);
    match input["hook_event_name"].as_str()? {
        "UserPromptSubmit" => Some(("running", None)),
        "Stop" | "SessionStart" => Some(("idle", None)),
        "Notification" => {
            // "Claude is waiting for your input" is its idle reminder, not a question.
            let idle = input["notification_type"] == "idle_prompt"
                || msg
                    .as_deref()
                    .is_some_and(|m| m.contains("waiting for your input"));
            if idle {
                Some(("idle", None))
            } else {
                Some(("waiting", msg))
            }
        }
        _ => None,
    }
}

/// Run the hook; the exit code (always 0).
pub(super) fn run(env: &Env) -> u8 {
    let Ok(id) = std::env::var("ORCHESTRATR_AGENT_ID") else {
        return 0; // not an orchestratr session: nothing to report
    };
    let mut raw = String::new();
    let _ = std::io::stdin().take(1024 * 1024).read_to_string(&mut raw);
    let input: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    let Some((status, reason)) = status_of(&input) else {
        return 0;
    };
    let mut body = json!({"status": status, "reason": reason});
    if let Some(s) = input["session_id"].as_str().filter(|s| !s.is_empty()) {
        body["resume_id"] = json!(s);
    }
    let id_enc: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
    if let Err(e) = env
        .client()
        .and_then(|c| c.post(&format!("/agents/{id_enc}/status"), Some(&body), &env.paths))
    {
        super::err(&format!("cannot report agent status: {e}"));
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_events_map_to_statuses() {
        let s = |v: Value| status_of(&v);
        assert_eq!(
            s(json!({"hook_event_name": "UserPromptSubmit"})),
            Some(("running", None))
        );
        assert_eq!(s(json!({"hook_event_name": "Stop"})), Some(("idle", None)));
        assert_eq!(
            s(
                json!({"hook_event_name": "Notification", "message": "Claude needs your permission to use Bash"})
            ),
            Some((
                "waiting",
                Some("Claude needs your permission to use Bash".into())
            ))
        );
        assert_eq!(
            s(
                json!({"hook_event_name": "Notification", "message": "Claude is waiting for your input"})
            ),
            Some(("idle", None))
        );
        assert_eq!(s(json!({"hook_event_name": "PreToolUse"})), None);
        assert_eq!(s(Value::Null), None);
    }
}
