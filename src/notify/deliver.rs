//! One delivery: the request of a notification (ntfy headers, or a JSON body
//! signed with HMAC-SHA256) and its sending with retries.
//!
//! ntfy (<https://docs.ntfy.sh/publish/>): the body is the message text;
//! `Title`, `Priority` (1-5), `Tags`, `Click` and, for approvals with
//! `actions: true`, `Actions` (`http, Approve, <url>, method=POST, clear=true;
//! …`) headers. Header values are ASCII (other characters become `?`).
//!
//! json: `{"event": Event}` with `X-Orchestratr-Event`, and, when
//! `secret_env` names a set variable, `X-Orchestratr-Signature:
//! sha256=<hex HMAC-SHA256 of the raw body>` (the GitHub webhook convention).

use crate::approvals::Approval;
use crate::config::notify::{NotifyFormat, NotifySpec};
use crate::events::Event;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::Duration;

/// Everything needed to build one notification.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The matching `notify:` entry.
    pub spec: NotifySpec,
    /// The event.
    pub event: std::sync::Arc<Event>,
    /// The approval of an `approval.*` event, when it could be read.
    pub approval: Option<Approval>,
    /// `(decision, one-time token)` for ntfy action buttons.
    pub actions: Vec<(String, String)>,
    /// Base of click and action URLs, no trailing slash.
    pub base_url: String,
}

/// A built HTTP request.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// Where to POST.
    pub url: String,
    /// Headers (ASCII values).
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm is unreachable in practice.
        Err(_) => return String::new(),
    };
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .take(250)
        .collect()
}

fn data_of(e: &Event) -> Value {
    e.data()
}

/// Title, message, priority, tags and click path of an event (ntfy).
fn summary(d: &Delivery) -> (String, String, u8, &'static str, String) {
    let data = data_of(&d.event);
    let s = |k: &str| {
        data.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match d.event.kind.as_str() {
        k if k.starts_with("approval.") => {
            let (title, detail) = match &d.approval {
                Some(a) => (a.title.clone(), a.detail.clone().unwrap_or_default()),
                None => (s("id"), String::new()),
            };
            let status = s("status");
            let head = match k {
                "approval.requested" => "Approval needed".to_string(),
                _ => format!("Approval {status}"),
            };
            let prio = if k == "approval.requested" { 4 } else { 3 };
            (
                format!("{head}: {title}"),
                if detail.is_empty() {
                    title
                } else {
                    format!("{title}\n{detail}")
                },
                prio,
                "question",
                format!("/approvals/{}", s("id")),
            )
        }
        k if k.starts_with("execution.") => {
            let status = s("status");
            let exit = data.get("exit_code").and_then(Value::as_i64);
            let dur = data.get("duration_ms").and_then(Value::as_u64);
            let mut msg = format!("task {} {status}", s("task"));
            if let Some(c) = exit {
                msg.push_str(&format!(", exit code {c}"));
            }
            if let Some(ms) = dur {
                msg.push_str(&format!(", {:.1} s", ms as f64 / 1000.0));
            }
            let bad = matches!(status.as_str(), "failed" | "timeout" | "lost");
            (
                format!("{} {status}", s("task")),
                msg,
                if bad { 4 } else { 3 },
                if bad { "x" } else { "white_check_mark" },
                format!("/executions/{}/output", s("id")),
            )
        }
        k => (
            format!("orchestratr: {k}"),
            d.event.data().to_string().chars().take(2000).collect(),
            3,
            "bell",
            format!("/events?since={}", d.event.id.saturating_sub(1)),
        ),
    }
}

/// Build the request of a delivery. `secret` is the HMAC key read from
/// `secret_env` (json format only).
pub fn prepare(d: &Delivery, secret: Option<&[u8]>) -> Prepared {
    match d.spec.format {
        NotifyFormat::Ntfy => {
            let (title, message, prio, tags, click) = summary(d);
            let mut headers = vec![
                ("Title".to_string(), ascii(&title)),
                (
                    "Priority".to_string(),
                    d.spec.priority.unwrap_or(prio).to_string(),
                ),
                ("Tags".to_string(), tags.to_string()),
                ("Click".to_string(), format!("{}{click}", d.base_url)),
            ];
            if !d.actions.is_empty() {
                let acts: Vec<String> = d
                    .actions
                    .iter()
                    .map(|(decision, token)| {
                        let mut label = decision.clone();
                        if let Some(f) = label.get_mut(0..1) {
                            f.make_ascii_uppercase();
                        }
                        format!(
                            "http, {}, {}/notify/actions/{token}, method=POST, clear=true",
                            ascii(&label).replace([',', ';'], " "),
                            d.base_url
                        )
                    })
                    .collect();
                headers.push(("Actions".to_string(), acts.join("; ")));
            }
            Prepared {
                url: d.spec.url.clone(),
                headers,
                body: message.into_bytes(),
            }
        }
        NotifyFormat::Json => {
            let mut ev = serde_json::to_value(&d.event).unwrap_or(Value::Null);
            if let Some(a) = &d.approval {
                ev["approval"] = json!(a);
            }
            let body = serde_json::to_vec(&json!({"event": ev})).unwrap_or_default();
            let mut headers = vec![
                ("Content-Type".to_string(), "application/json".to_string()),
                ("X-Orchestratr-Event".to_string(), ascii(&d.event.kind)),
                ("X-Orchestratr-Delivery".to_string(), d.event.id.to_string()),
            ];
            if let Some(k) = secret {
                headers.push(("X-Orchestratr-Signature".to_string(), sign(k, &body)));
            }
            Prepared {
                url: d.spec.url.clone(),
                headers,
                body,
            }
        }
    }
}

/// The ureq agent of deliveries: 10 s per try, no redirects to follow blindly.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .max_redirects(0)
        .user_agent(format!("orchestratr/{}", crate::VERSION))
        .build()
        .into()
}

/// POST once. Errors: a lowercase message (transport error or non-2xx status).
pub fn send_once(agent: &ureq::Agent, p: &Prepared) -> Result<(), String> {
    let mut req = agent.post(&p.url);
    for (k, v) in &p.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    match req.send(&p.body[..]) {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("{} answered {}", p.url, r.status().as_u16())),
        Err(e) => Err(format!("cannot post to {}: {e}", p.url)),
    }
}

/// POST with up to `tries` tries, sleeping `backoff`, then twice that, …
/// between them. Returns whether a try succeeded; the last error is logged.
pub fn send(agent: &ureq::Agent, p: &Prepared, tries: u32, backoff: Duration) -> bool {
    let mut wait = backoff;
    for attempt in 1..=tries.max(1) {
        match send_once(agent, p) {
            Ok(()) => return true,
            Err(e) if attempt < tries => {
                log::debug!("notification try {attempt} failed: {e}; retrying in {wait:?}");
                std::thread::sleep(wait);
                wait *= 2;
            }
            Err(e) => log::warn!("notification dropped after {tries} tries: {e}"),
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
