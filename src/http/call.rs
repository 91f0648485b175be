//! The request as handlers see it ([`Call`]) and what every handler can reach
//! ([`Ctx`]). Shared by the feature files; imports nothing else of `http/`
//! beyond [`HttpError`].

use super::HttpError;
use crate::events::Bus;
use crate::registry::Registry;
use crossbeam_channel::Sender;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU16;
use std::time::Instant;

/// What every handler can reach: actor handles and daemon facts.
pub struct Ctx {
    /// Registry actor (apps, settings).
    pub registry: Registry,
    /// Event bus actor.
    pub bus: Bus,
    /// The bearer token (64 hex chars).
    pub token: String,
    /// When the daemon started (for `uptime_seconds`).
    pub started: Instant,
    /// The bound port (set once listening).
    pub port: AtomicU16,
    /// The daemon's PID.
    pub pid: u32,
    /// `<cfg>`, reported by `/health`.
    pub config_dir: PathBuf,
    /// `<state>` (app logs under `logs/`).
    pub state_dir: PathBuf,
    /// Open SSE streams (capped by `sse_max_streams`, and per uid: API.md §9).
    pub streams: Arc<super::sse::StreamSlots>,
    /// Sends the graceful-shutdown request (`POST /shutdown`).
    pub shutdown: Sender<&'static str>,
    /// Approvals actor (API.md §8).
    pub approvals: crate::approvals::Approvals,
    /// Executor actor (API.md §7).
    pub executor: crate::executor::Executor,
    /// Agent sessions (API.md §10).
    pub agents: crate::agents::Agents,
    /// Tokens, rate limits and the audit log (API.md §12).
    pub security: Arc<super::tokens::Security>,
    /// The tasks the MCP tools are built from (API.md §13).
    pub mcp: crate::mcp::McpState,
    /// Notification counters and one-time action URLs (API.md §13).
    pub notify: crate::notify::NotifyState,
}

/// A JSON number as an unsigned integer: `5` and also `5.0` (JSON Schema and
/// RFC 8259 make no difference; Python's `json.dumps(5.0)` sends the latter).
/// `None` for a negative, fractional or non-number value, or one above
/// [`MAX_JSON_UINT`] (2^53, the largest integer every JSON parser keeps exact).
pub fn json_u64(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= MAX_JSON_UINT as f64)
                .map(|f| f as u64)
        })
        .filter(|n| *n <= MAX_JSON_UINT)
}

/// Largest integer accepted in a JSON body field (2^53).
pub const MAX_JSON_UINT: u64 = 1 << 53;

/// A parsed request, as handlers see it.
pub struct Call {
    /// `{}` path segments, in order.
    pub params: Vec<String>,
    /// Query parameters (last value wins), percent-decoded.
    pub query: HashMap<String, String>,
    /// The JSON body, if any (always an object when present).
    pub body: Option<Value>,
    /// The `Last-Event-ID` header, if any.
    pub last_event_id: Option<String>,
    /// The peer's socket address (for the SSE hangup probe).
    pub peer: Option<std::net::SocketAddr>,
    /// The peer's uid when the platform can tell (per-uid stream caps);
    /// `None` = unknown, counted as the daemon owner.
    pub peer_uid: Option<u32>,
    /// The browser origin to echo in `Access-Control-Allow-Origin` (API.md §9).
    pub cors_origin: Option<String>,
    /// The authenticated token's id (`admin` for the admin token file), if any.
    pub token_id: Option<String>,
    /// The authenticated token's scopes; `None` = every scope (the admin
    /// token, `auth: none`, or an open route without a token).
    pub scopes: Option<Vec<&'static str>>,
}

impl Call {
    /// The first `{}` path segment (app name, approval id, ...).
    pub fn name(&self) -> &str {
        self.params.first().map(String::as_str).unwrap_or("")
    }
    /// The body as an object, if any.
    pub fn body_obj(&self) -> Option<&Map<String, Value>> {
        self.body.as_ref().and_then(Value::as_object)
    }
    /// A body field that is present and not `null`.
    pub fn field(&self, k: &str) -> Option<&Value> {
        self.body_obj()
            .and_then(|o| o.get(k))
            .filter(|v| !v.is_null())
    }
    /// A required non-empty string field. Errors: `400` naming the field.
    pub fn req_str(&self, k: &str) -> Result<&str, HttpError> {
        match self.field(k) {
            None => Err(HttpError::bad_request(format!(
                "missing required field '{k}'"
            ))),
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            Some(_) => Err(HttpError::bad_request(format!(
                "field '{k}' must be a non-empty string"
            ))),
        }
    }
    /// An optional string field. Errors: `400` when present and not a string.
    pub fn opt_str(&self, k: &str) -> Result<Option<&str>, HttpError> {
        match self.field(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(HttpError::bad_request(format!(
                "field '{k}' must be a string"
            ))),
        }
    }
    /// A non-empty query parameter.
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query
            .get(k)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
    /// An optional unsigned integer query parameter. Errors: `400` naming it.
    pub fn q_u64(&self, k: &str) -> Result<Option<u64>, HttpError> {
        match self.q(k) {
            None => Ok(None),
            Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
                HttpError::bad_request(format!(
                    "query parameter '{k}' must be a non-negative integer, not '{v}'"
                ))
            }),
        }
    }
}
