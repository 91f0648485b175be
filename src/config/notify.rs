//! The `notify:` config (API.md §13 "Notifications"): webhooks fed from the
//! event bus. Parsed here; delivered by `crate::notify`.
//!
//! ```yaml
//! notify:
//!   - url: https://ntfy.sh/my-topic
//!     format: ntfy                  # or json (HMAC-signed with secret_env)
//!     events: ["approval.requested", "execution.finished:failed"]
//!     min_duration_ms: 60000        # execution events only: skip short runs
//!     actions: true                 # ntfy Approve/Deny buttons
//!     public_url: https://box.example.net   # base of click/action URLs
//! ```

use super::ranges::{Num, Range};
use super::{Diagnostic, diag_at};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use std::path::Path;

/// `notify[].min_duration_ms`: 0 ms .. 30 days.
pub const NOTIFY_MIN_DURATION_MS: Range = Range {
    key: "notify[].min_duration_ms",
    min: 0,
    max: 30 * 24 * 3_600_000,
    unit: "ms",
};

/// Body format of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    /// ntfy.sh: plain-text body, `Title`/`Priority`/`Tags`/`Click`/`Actions` headers.
    Ntfy,
    /// `{"event": Event}` JSON, signed with `X-Orchestratr-Signature` when
    /// `secret_env` is set.
    Json,
}

/// One event filter: a type (exact, or a prefix ending in `*`) and an
/// optional `:status` suffix matched against the event data's `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventPattern {
    /// `execution.finished`, `approval.*`, `*`.
    pub kind: String,
    /// `failed` in `execution.finished:failed`; `None` = any status.
    pub status: Option<String>,
}

impl EventPattern {
    /// Parse `type[:status]`. Errors: an empty type.
    pub fn parse(s: &str) -> Result<EventPattern, String> {
        let (kind, status) = match s.split_once(':') {
            Some((k, st)) => (
                k.trim(),
                Some(st.trim().to_string()).filter(|x| !x.is_empty()),
            ),
            None => (s.trim(), None),
        };
        if kind.is_empty() {
            return Err(format!("event filter '{s}' has no event type"));
        }
        Ok(EventPattern {
            kind: kind.to_string(),
            status,
        })
    }

    /// Does an event of type `kind` whose data has `status` match?
    pub fn matches(&self, kind: &str, status: Option<&str>) -> bool {
        let kind_ok = match self.kind.strip_suffix('*') {
            Some(prefix) => kind.starts_with(prefix),
            None => self.kind == kind,
        };
        kind_ok && self.status.as_deref().is_none_or(|s| Some(s) == status)
    }
}

/// One `notify:` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotifySpec {
    /// Where to `POST` (`http://` or `https://`).
    pub url: String,
    /// Body format (default `ntfy`).
    pub format: NotifyFormat,
    /// Which events; empty = none.
    pub events: Vec<EventPattern>,
    /// Execution events of runs shorter than this are skipped, milliseconds.
    pub min_duration_ms: u64,
    /// Environment variable holding the HMAC-SHA256 key (json format).
    pub secret_env: Option<String>,
    /// ntfy Approve/Deny buttons on `approval.requested` (one-time URLs).
    pub actions: bool,
    /// Base URL for click and action links (default `http://127.0.0.1:<port>`).
    pub public_url: Option<String>,
    /// ntfy priority 1..=5 (default: 4 for approvals and failures, else 3).
    pub priority: Option<u8>,
}

/// One raw `notify:` entry.
#[derive(Deserialize)]
pub(crate) struct RawNotify {
    url: Spanned<String>,
    format: Option<Spanned<String>>,
    events: Option<Spanned<Vec<String>>>,
    min_duration_ms: Option<Spanned<Num>>,
    secret_env: Option<String>,
    actions: Option<bool>,
    public_url: Option<String>,
    priority: Option<Spanned<Num>>,
}

/// Validate the `notify:` list; appends problems to `errs`.
pub(crate) fn validate(
    raw: Vec<Spanned<RawNotify>>,
    file: &Path,
    errs: &mut Vec<Diagnostic>,
) -> Vec<NotifySpec> {
    let mut out = Vec::new();
    for (i, entry) in raw.into_iter().enumerate() {
        let r = entry.value;
        let owner = format!("notify[{i}]");
        let url = r.url.value.trim().to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            errs.push(diag_at(
                file,
                &r.url,
                format!("{owner}: url '{url}' must start with http:// or https://"),
            ));
        }
        let format = match &r.format {
            None => NotifyFormat::Ntfy,
            Some(f) => match f.value.as_str() {
                "ntfy" => NotifyFormat::Ntfy,
                "json" => NotifyFormat::Json,
                other => {
                    errs.push(diag_at(
                        file,
                        f,
                        format!("{owner}: format must be 'ntfy' or 'json', not '{other}'"),
                    ));
                    NotifyFormat::Ntfy
                }
            },
        };
        let mut events = Vec::new();
        if let Some(list) = &r.events {
            for e in &list.value {
                match EventPattern::parse(e) {
                    Ok(p) => events.push(p),
                    Err(m) => errs.push(diag_at(file, list, format!("{owner}: {m}"))),
                }
            }
        }
        let min_duration_ms = r
            .min_duration_ms
            .as_ref()
            .and_then(|v| {
                NOTIFY_MIN_DURATION_MS.check(file, v, &format!("{owner}: min_duration_ms"), errs)
            })
            .unwrap_or(0);
        let prio = Range {
            key: "notify[].priority",
            min: 1,
            max: 5,
            unit: "ntfy priority",
        };
        let priority = r
            .priority
            .as_ref()
            .and_then(|v| prio.check(file, v, &format!("{owner}: priority"), errs))
            .and_then(|v| u8::try_from(v).ok());
        out.push(NotifySpec {
            url,
            format,
            events,
            min_duration_ms,
            secret_env: r.secret_env.filter(|s| !s.trim().is_empty()),
            actions: r.actions.unwrap_or(false),
            public_url: r
                .public_url
                .map(|u| u.trim().trim_end_matches('/').to_string())
                .filter(|u| !u.is_empty()),
            priority,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn status_suffix_filters() {
        let p = EventPattern::parse("execution.finished:failed").unwrap();
        assert!(p.matches("execution.finished", Some("failed")));
        assert!(!p.matches("execution.finished", Some("completed")));
        assert!(!p.matches("execution.started", Some("failed")));
        let any = EventPattern::parse("approval.*").unwrap();
        assert!(any.matches("approval.requested", None));
        assert!(EventPattern::parse(":x").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,80}") {
            let _ = EventPattern::parse(&s).map(|p| p.matches("a.b", Some("c")));
        }
    }
}
