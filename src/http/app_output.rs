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

use super::output_range::{output_range, resume_offset, stream_slot};
use super::router::RouteId;
use super::sse::{SseWriter, StreamSlot};
use super::{Call, Ctx};
use super::{HResult, HttpError, Reply};
use crate::executor::output::{read_at, utf8_boundary};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
        RouteId::AppOutput => output_range(c, &path, file_len(&path)),
        _ => {
            let from = resume_offset(c)?;
            let slot = stream_slot(ctx, c)?;
            let settings = ctx.registry.settings();
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
