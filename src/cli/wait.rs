//! The long-poll wait for an approval's decision (`GET /approvals/{id}?wait=60`
//! in a loop), used by `ask` and `hook claude-code`. The SSE streams have their
//! own resume loop in `follow.rs`; this is the one for long polls.
//!
//! Each poll re-discovers the daemon (port file, or `--url`), so a dropped
//! connection or a daemon restart on another port only costs a retry; while the
//! daemon is unreachable it retries every second until the approval's
//! `expires_at` has passed.

use super::approvals_cmds::expires_in;
use super::{Env, err};
use crate::client::{ClientError, path_segment};
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime};

/// Seconds each long poll asks the daemon to hold the request.
const LONG_POLL_S: u64 = 60;

/// Outcome of one long poll.
enum Poll {
    /// The approval as the daemon answered it (maybe still pending).
    Got(Value),
    /// Waiting cannot succeed (approval gone, token refused).
    Fatal(String),
    /// No answer now (daemon down or restarting); retry.
    Unreachable(String),
}

fn poll_once(env: &Env, id: &str, wait_s: u64) -> Poll {
    let client = match env.client() {
        Ok(c) => c,
        Err(ClientError::Unsafe(m)) => return Poll::Fatal(m),
        Err(e) => return Poll::Unreachable(e.to_string()),
    };
    // The shared client's 60 s overall timeout is too short for a 60 s hold.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(wait_s + 30)))
        .timeout_connect(Some(Duration::from_secs(3)))
        .build()
        .into();
    let mut req = agent.get(format!(
        "{}/approvals/{}?wait={wait_s}",
        client.base,
        path_segment(id)
    ));
    if let Some(t) = &client.token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(e) => return Poll::Unreachable(format!("no answer from {}: {e}", client.base)),
    };
    let status = resp.status().as_u16();
    let text = match resp.into_body().read_to_string() {
        Ok(t) => t,
        Err(e) => return Poll::Unreachable(format!("cannot read the answer: {e}")),
    };
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let msg = body["error"]
        .as_str()
        .unwrap_or("request failed")
        .to_string();
    match status {
        200 if body["status"].is_string() => Poll::Got(body),
        200 => Poll::Unreachable(format!("unexpected answer from {}", client.base)),
        404 => Poll::Fatal(format!("approval {id} does not exist on the daemon")),
        429 | 500..=599 => Poll::Unreachable(format!("{msg} ({status})")),
        _ => Poll::Fatal(format!("{msg} ({status})")),
    }
}

/// What to wait for and how.
pub(super) struct WaitPlan<'a> {
    pub env: &'a Env,
    pub id: &'a str,
    /// The approval's `expires_at`: give up once it passed while unreachable.
    pub expires: SystemTime,
    /// Give up at this instant even if the daemon keeps answering "pending".
    pub deadline: Option<Instant>,
    /// Report reconnects on stderr.
    pub progress: bool,
}

/// Long-poll until the approval is no longer pending; the final approval, or a
/// lowercase reason why waiting failed.
pub(super) fn wait_for_decision(p: &WaitPlan) -> Result<Value, String> {
    let mut down: Option<String> = None;
    loop {
        let mut wait_s = LONG_POLL_S;
        if let Some(d) = p.deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no decision on approval {} in time", p.id));
            }
            wait_s = wait_s.min(left.as_secs().max(1));
        }
        let started = Instant::now();
        match poll_once(p.env, p.id, wait_s) {
            Poll::Got(v) => {
                if v["status"] != "pending" {
                    return Ok(v);
                }
                if down.take().is_some() && p.progress {
                    err("reconnected; still waiting");
                } else if p.progress && started.elapsed() >= Duration::from_secs(wait_s) {
                    err(&format!(
                        "still waiting for an answer to {} (expires {})",
                        p.id,
                        expires_in(&v)
                    ));
                }
                // An early "pending" means the daemon is stopping: do not spin.
                if started.elapsed() < Duration::from_millis(500) {
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
            Poll::Fatal(m) => return Err(m),
            Poll::Unreachable(m) => {
                if SystemTime::now() > p.expires + Duration::from_secs(1) {
                    return Err(format!(
                        "{m}; approval {} expired at {} while the daemon was unreachable",
                        p.id,
                        crate::time::rfc3339(p.expires)
                    ));
                }
                if down.is_none() && p.progress {
                    err(&format!(
                        "{m}; retrying every second until approval {} expires",
                        p.id
                    ));
                }
                down = Some(m);
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

pub(super) fn expires_of(a: &Value, fallback: Duration) -> SystemTime {
    a["expires_at"]
        .as_str()
        .and_then(|s| humantime::parse_rfc3339(s).ok())
        .unwrap_or_else(|| SystemTime::now() + fallback)
}
