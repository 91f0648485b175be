//! orchestratr patch: per-connection limits, deadlines and hooks (see
//! ORCHESTRATR-PATCH.md). Upstream tiny_http has no read timeouts, no size
//! limits and no connection cap.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::Request;

/// A value computed once per connection by [`ServerOptions::on_connect`] and
/// carried by every request of that connection ([`Request::connection_data`]).
pub type ConnData = Arc<dyn Any + Send + Sync>;

/// Called once per connection, on the connection's own thread, when its first
/// request head has been read: `(local address, peer address)` (both `None`
/// for Unix sockets).
pub type OnConnect =
    Arc<dyn Fn(Option<SocketAddr>, Option<SocketAddr>) -> Option<ConnData> + Send + Sync>;

/// An answer given by a [`Gate`] instead of queueing the request.
#[derive(Debug, Clone)]
pub struct GateReply {
    /// HTTP status code.
    pub status: u16,
    /// A complete JSON body (`application/json`).
    pub body: String,
}

/// Called on the connection thread for every request head (the body not yet
/// read, [`Request::connection_data`] set). `Some` answers the request there
/// (the body, if any, is never read and the connection is closed); `None`
/// lets it through to the body read and the queue.
pub type Gate = Arc<dyn Fn(&Request) -> Option<GateReply> + Send + Sync>;

/// Limits and hooks of a [`crate::Server`]. Every size is in bytes.
#[derive(Clone)]
pub struct ServerOptions {
    /// Connections open at once; the next one is answered `503` and closed.
    pub max_connections: usize,
    /// The request line and all headers must arrive within this time of the
    /// request's first byte, else `408` and close.
    pub header_timeout: Duration,
    /// A body that sends no byte for this long is `408` and closed; after
    /// this grace it must also average at least `body_min_rate` bytes/s.
    pub body_timeout: Duration,
    /// Minimal average body rate after `body_timeout`, bytes per second.
    pub body_min_rate: u64,
    /// A keep-alive connection idle this long (no byte of a next request) is closed.
    pub idle_timeout: Duration,
    /// Largest request line, CRLF included (`414` beyond).
    pub max_request_line: usize,
    /// Largest header block (`431` beyond).
    pub max_header_bytes: usize,
    /// Most header fields (`431` beyond).
    pub max_header_fields: usize,
    /// Largest body, by `Content-Length` or counted when chunked (`413` beyond).
    pub max_body: usize,
    /// Bytes of request bodies held at once over all connections (read and
    /// not yet answered). A body that does not fit waits up to
    /// `body_timeout`, then gets `503`. Bounds memory whatever many
    /// connections send.
    pub max_body_bytes_in_flight: usize,
    /// Stack size of connection threads.
    pub connection_stack_size: usize,
    /// Per-connection value (see [`OnConnect`]).
    pub on_connect: Option<OnConnect>,
    /// Per-request admission check (see [`Gate`]).
    pub gate: Option<Gate>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            body_min_rate: 1024,
            idle_timeout: Duration::from_secs(60),
            max_request_line: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_header_fields: 100,
            max_body: 1024 * 1024,
            max_body_bytes_in_flight: 16 * 1024 * 1024,
            connection_stack_size: 256 * 1024,
            on_connect: None,
            gate: None,
        }
    }
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("max_connections", &self.max_connections)
            .field("header_timeout", &self.header_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

/// JSON-escape `s` (quotes, backslashes, control characters).
pub(crate) fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// A complete HTTP/1.1 response with a JSON body, written by tiny_http itself
/// (connection-level errors, gate replies).
pub(crate) fn json_response(status: u16, body: &str, close: bool) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n{body}",
        reason(status),
        body.len(),
        if close { "Connection: close\r\n" } else { "" },
    )
    .into_bytes()
}

/// `{"error": message, "code": code}` (API.md §2 error body).
pub(crate) fn error_body(code: &str, message: &str) -> String {
    format!(
        "{{\"error\":\"{}\",\"code\":\"{}\"}}",
        json_escape(message),
        json_escape(code)
    )
}
