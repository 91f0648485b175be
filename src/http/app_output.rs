//! An app's captured output (`<state>/logs/<name>.log`, written by the app's own
//! stdout/stderr, see `tracker.rs` `open_log`): `GET /apps/{name}/output` and
//! `GET /apps/{name}/stream`, the same shapes as an execution's output and stream
//! (API.md §7; `docs/api.md` "App output").
//!
//! - output: `?offset=&limit=` (bytes; limit at most 4 MiB), `text/plain`, headers
//!   `X-Output-Offset` (the offset served from) and `X-Output-Length` (log size).
//! - stream: SSE; `event: output`, `id: <byte offset after the chunk>`,
//!   `data: {"offset": <start>, "text": "..."}` (lossy UTF-8, never split inside a
//!   character); resumable with `Last-Event-ID` (or `?offset=`). The log has no
//!   end, so the stream stays open (keep-alive comments every `sse_heartbeat_ms`);
//!   when the log shrinks (truncated by hand) it sends `event: truncated` with
//!   `{"length": n}` and continues from 0.
//!
//! The app writes the file directly (no daemon-side buffer to wait on), so the
//! stream polls the file's length every 200 ms.

use super::router::RouteId;
use super::sse::{SseWriter, StreamSlot};
use super::{Call, Ctx};
use super::{HResult, HttpError, Reply, Resp};
use crate::executor::output::{read_at, utf8_boundary};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Largest range `GET /apps/{name}/output` returns at once, bytes.
pub const MAX_RANGE: u64 = 4 * 1024 * 1024;
/// Largest `output` event payload, bytes.
const CHUNK: usize = 16 * 1024;
/// How often a stream looks at the log's length.
const POLL: Duration = Duration::from_millis(200);

fn log_path(ctx: &Ctx, name: &str) -> Result<PathBuf, HttpError> {
    if ctx.registry.get(name).is_none() {
        return Err(HttpError::not_found(format!("no app named '{name}'")));
    }
    Ok(ctx.state_dir.join("logs").join(format!("{name}.log")))
}

fn file_len(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Serve `GET /apps/{name}/output` or `GET /apps/{name}/stream`.
///
/// Errors: 404 for an unknown app; 400 for a bad offset, limit or Last-Event-ID;
/// 503 when too many streams are open.
pub fn route(ctx: &Ctx, id: RouteId, c: &Call) -> HResult {
    let path = log_path(ctx, c.name())?;
    match id {
        RouteId::AppOutput => {
            let len = file_len(&path);
            let offset = c.q_u64("offset")?.unwrap_or(0);
            let limit = c.q_u64("limit")?.unwrap_or(MAX_RANGE).min(MAX_RANGE);
            let n = len.saturating_sub(offset).min(limit) as usize;
            let body = if n == 0 {
                Vec::new()
            } else {
                read_at(&path, offset, n)
                    .map_err(|e| HttpError::internal(format!("cannot read the app log: {e}")))?
            };
            Ok(Reply::Resp(
                Resp::text(200, body)
                    .with_header("X-Output-Offset", offset.to_string())
                    .with_header("X-Output-Length", len.to_string()),
            ))
        }
        _ => {
            let from = match c
                .last_event_id
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                Some(v) => v.parse::<u64>().map_err(|_| {
                    HttpError::bad_request(format!(
                        "Last-Event-ID must be a byte offset, not '{v}'"
                    ))
                })?,
                None => c.q_u64("offset")?.unwrap_or(0),
            };
            let settings = ctx.registry.settings();
            let slot =
                StreamSlot::acquire(&ctx.streams, settings.sse_max_streams).ok_or_else(|| {
                    HttpError::unavailable(format!(
                        "too many open streams (sse_max_streams = {})",
                        settings.sse_max_streams
                    ))
                    .with_header("Retry-After", "2")
                })?;
            let hb = Duration::from_millis(settings.sse_heartbeat_ms.max(200));
            Ok(Reply::Stream(Box::new(move |w| {
                stream(w, path, from, hb, slot)
            })))
        }
    }
}

/// Tail `path` from byte `from` as SSE until the client goes away.
fn stream(
    w: Box<dyn std::io::Write + Send>,
    path: PathBuf,
    from: u64,
    heartbeat: Duration,
    slot: StreamSlot,
) {
    let _slot = slot;
    let Ok(mut sw) = SseWriter::begin(w) else {
        return;
    };
    let mut offset = from;
    let mut quiet_since = Instant::now();
    loop {
        let len = file_len(&path);
        if len < offset {
            sw.push_event(None, "truncated", &json!({"length": len}).to_string());
            offset = 0;
        }
        while offset < len {
            let want = ((len - offset) as usize).min(CHUNK);
            let bytes = match read_at(&path, offset, want) {
                Ok(b) if !b.is_empty() => b,
                _ => break,
            };
            let n = utf8_boundary(&bytes);
            if n == 0 {
                break; // an incomplete character at the end: wait for the rest
            }
            let next = offset + n as u64;
            sw.push_event(
                Some(next),
                "output",
                &json!({"offset": offset, "text": String::from_utf8_lossy(&bytes[..n])})
                    .to_string(),
            );
            offset = next;
            quiet_since = Instant::now();
            if n < bytes.len() {
                break;
            }
        }
        if quiet_since.elapsed() >= heartbeat {
            sw.push_heartbeat();
            quiet_since = Instant::now();
        }
        if sw.flush().is_err() {
            return;
        }
        std::thread::sleep(POLL);
    }
}
