//! The HTTP layer (API.md §2-§5): tiny_http server, request guards, router, SSE,
//! and the route handlers. Only this module knows about HTTP; it alone maps the
//! other layers' errors to a status and the JSON error body of API.md §2.
//!
//! Module order, no cycles: `server` → `routes` (dispatch) → feature files
//! (`apps`, `events`, `executions`, `approvals`, `daemon`) → this file and
//! `call` (shared request types). Feature files never import `routes` or `server`.

pub mod agents;
pub mod app_output;
pub mod approvals;
pub mod apps;
pub mod audit;
mod call;
pub mod catalog;
pub mod daemon;
pub mod events;
pub mod executions;
pub mod guards;
pub mod mcp;
mod mcp_agents;
pub mod notify;
pub mod openapi;
pub mod output_range;
pub mod router;
pub mod routes;
pub mod server;
pub mod sse;
pub mod tokens;
pub mod trigger;
pub mod ws;

pub use call::{Call, Ctx, MAX_JSON_UINT, json_u64};

use serde::Serialize;
use serde_json::{Value, json};

/// Largest accepted request body, bytes (API.md §3 guard 5).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// An HTTP error: status, stable `code`, human message, optional details and
/// extra headers (`Allow`, `WWW-Authenticate`, `Retry-After`).
#[derive(Debug, Clone)]
pub struct HttpError {
    /// HTTP status code.
    pub status: u16,
    /// One of the codes of API.md §2 / docs/api.md.
    pub code: &'static str,
    /// Lowercase human message naming the offending value.
    pub message: String,
    /// Structured extras (config diagnostics, JSON error position).
    pub details: Option<Value>,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
}

impl HttpError {
    /// A new error without details or headers.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        HttpError {
            status,
            code,
            message: message.into(),
            details: None,
            headers: Vec::new(),
        }
    }
    /// `400 bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }
    /// `404 not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }
    /// `500 internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal", message)
    }
    /// `503 unavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "unavailable", message)
    }
    /// Attach structured details.
    pub fn with_details(mut self, d: Value) -> Self {
        self.details = Some(d);
        self
    }
    /// Attach a response header.
    pub fn with_header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_string(), v.into()));
        self
    }
    /// The response for this error: `{"error","code"[,"details"]}`.
    pub fn into_resp(self) -> Resp {
        let mut body = json!({"error": self.message, "code": self.code});
        if let Some(d) = self.details {
            body["details"] = d;
        }
        let mut r = Resp::json(self.status, &body);
        r.headers.extend(self.headers);
        r
    }
}

/// A complete (non-streaming) response.
#[derive(Debug, Clone)]
pub struct Resp {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` value.
    pub content_type: &'static str,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

impl Resp {
    /// A JSON response. Serialization of our own types cannot fail; if it ever
    /// did, the answer is a 500 rather than a panic.
    pub fn json<T: Serialize>(status: u16, v: &T) -> Resp {
        match serde_json::to_vec(v) {
            Ok(body) => Resp {
                status,
                content_type: "application/json",
                body,
                headers: Vec::new(),
            },
            Err(e) => Resp {
                status: 500,
                content_type: "application/json",
                body: format!(r#"{{"error":"cannot serialize response: {e}","code":"internal"}}"#)
                    .into_bytes(),
                headers: Vec::new(),
            },
        }
    }
    /// A `text/plain` response.
    pub fn text(status: u16, body: Vec<u8>) -> Resp {
        Resp {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
            headers: Vec::new(),
        }
    }
    /// Add a header.
    pub fn with_header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_string(), v.into()));
        self
    }
    /// Answer `req` with this response (deferred replies, e.g. long polls); a
    /// client that went away is logged at debug level.
    pub fn send(self, req: tiny_http::Request) {
        let mut resp = tiny_http::Response::from_data(self.body).with_status_code(self.status);
        if let Ok(h) = tiny_http::Header::from_bytes("Content-Type", self.content_type) {
            resp.add_header(h);
        }
        for (k, v) in self.headers {
            if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                resp.add_header(h);
            }
        }
        if let Err(e) = req.respond(resp) {
            log::debug!("client went away before the response was written: {e}");
        }
    }
}

/// What a handler produces.
pub enum Reply {
    /// A complete response.
    Resp(Resp),
    /// Take over the connection and stream Server-Sent Events on a dedicated thread.
    Stream(Box<dyn FnOnce(Box<dyn std::io::Write + Send>) + Send>),
    /// Hand the request to someone who answers it later (long polls), so it does
    /// not hold a worker thread. The closure must make sure the request is
    /// eventually answered (a dropped `tiny_http::Request` answers 500).
    Defer(Box<dyn FnOnce(tiny_http::Request) + Send>),
}

impl From<Resp> for Reply {
    fn from(r: Resp) -> Self {
        Reply::Resp(r)
    }
}

/// Handler result.
pub type HResult = Result<Reply, HttpError>;

/// A `200`/`201`/`202` JSON reply of `v`.
pub fn ok<T: Serialize>(status: u16, v: T) -> HResult {
    Ok(Reply::Resp(Resp::json(status, &v)))
}
