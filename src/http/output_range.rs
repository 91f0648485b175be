//! What the three byte-offset output routes share (executions, apps, agents:
//! API.md §7 and §10): the `?offset=&limit=` range read with its
//! `X-Output-Offset`/`X-Output-Length` headers, the resume offset of an output
//! stream (`Last-Event-ID`, else `last_event_id`/`offset`), and a stream slot
//! counted per uid (API.md §9).

use super::sse::StreamSlot;
use super::{Call, Ctx, HResult, HttpError, Reply, Resp};
use std::path::Path;

/// Largest range one `GET …/output` returns, bytes (16 MiB).
pub const MAX_OUTPUT_RANGE: u64 = 16 * 1024 * 1024;

/// `GET …/output?offset=&limit=` over the log at `path` whose current length
/// is `len` bytes: `200 text/plain` with `X-Output-Offset` (the offset asked
/// for) and `X-Output-Length` (bytes so far). `limit` defaults to and is
/// capped at [`MAX_OUTPUT_RANGE`]; an offset past the end gives an empty body.
///
/// Errors: `400` for a query value that is not a non-negative integer; `500`
/// when the log cannot be read.
pub fn output_range(c: &Call, path: &Path, len: u64) -> HResult {
    let offset = c.q_u64("offset")?.unwrap_or(0);
    let limit = c
        .q_u64("limit")?
        .unwrap_or(MAX_OUTPUT_RANGE)
        .min(MAX_OUTPUT_RANGE);
    let n = len.saturating_sub(offset).min(limit) as usize;
    let body = if n == 0 {
        Vec::new()
    } else {
        crate::executor::output::read_at(path, offset, n)
            .map_err(|e| HttpError::internal(format!("cannot read {}: {e}", path.display())))?
    };
    Ok(Reply::Resp(
        Resp::text(200, body)
            .with_header("X-Output-Offset", offset.to_string())
            .with_header("X-Output-Length", len.to_string()),
    ))
}

/// The byte offset an output stream starts from: the `Last-Event-ID` header,
/// else the `last_event_id` or `offset` query parameter, else 0.
///
/// Errors: `400` when the value is not a non-negative integer.
pub fn resume_offset(c: &Call) -> Result<u64, HttpError> {
    match c
        .last_event_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(v) => v.parse::<u64>().map_err(|_| {
            HttpError::bad_request(format!("Last-Event-ID must be a byte offset, not '{v}'"))
        }),
        None => Ok(c
            .q_u64("last_event_id")?
            .or(c.q_u64("offset")?)
            .unwrap_or(0)),
    }
}

/// A stream slot for the caller's uid (`sse_max_streams`, per-uid caps).
///
/// Errors: `503 unavailable` with `Retry-After: 2` when none is free.
pub fn stream_slot(ctx: &Ctx, c: &Call) -> Result<StreamSlot, HttpError> {
    let max = ctx.registry.settings().sse_max_streams;
    StreamSlot::acquire_as(&ctx.streams, max, c.peer_uid).ok_or_else(|| {
        HttpError::unavailable(format!("too many open streams (sse_max_streams = {max})"))
            .with_header("Retry-After", "2")
    })
}
