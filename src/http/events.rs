//! HTTP handlers of API.md §5 (events): publish, list, and the SSE stream.
//! The bus (`crate::events`) holds the rules; this file type-checks bodies and
//! query parameters.

use super::router::RouteId;
use super::sse::{self, StreamSlot};
use super::{Call, Ctx, HResult, HttpError, Reply, Resp, guards, ok};
use crate::events::{EventFilter, NewEvent, valid_event_type};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Serve an events route. Other route ids answer `404`.
pub fn route(ctx: &Ctx, id: RouteId, c: &Call) -> HResult {
    match id {
        RouteId::PublishEvent => publish_event(ctx, c),
        RouteId::ListEvents => list_events(ctx, c),
        RouteId::EventStream => event_stream(ctx, c),
        _ => Err(HttpError::not_found("not an events route")),
    }
}

fn publish_event(ctx: &Ctx, c: &Call) -> HResult {
    if c.body.is_none() {
        return Err(HttpError::bad_request(
            "missing request body: expected {\"source\",\"type\",\"data\"}",
        ));
    }
    let kind = c.req_str("type")?;
    if !valid_event_type(kind) {
        return Err(HttpError::bad_request(format!(
            "invalid event type '{kind}': must match ^[a-z0-9][a-z0-9_.:-]{{0,63}}$"
        )));
    }
    let source = c.req_str("source")?;
    let target = c.opt_str("target")?.map(str::to_string);
    let data = c.field("data").cloned().unwrap_or_else(|| json!({}));
    crate::events::validate_user_event(kind, source, &data).map_err(guards::user_event_error)?;
    let id = ctx
        .bus
        .publish(NewEvent {
            kind: kind.to_string(),
            source: source.to_string(),
            target,
            data,
        })
        .map_err(|_| HttpError::unavailable("the daemon is shutting down"))?;
    ok(202, json!({"id": id}))
}

fn filter_of(c: &Call) -> EventFilter {
    EventFilter::new(c.q("type"), c.q("source"), c.q("target"))
}

fn list_events(ctx: &Ctx, c: &Call) -> HResult {
    let since = c.q_u64("since")?.unwrap_or(0);
    let limit = c.q_u64("limit")?.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(HttpError::bad_request(format!(
            "limit must be between 1 and 1000, not {limit}"
        )));
    }
    let r = ctx
        .bus
        .query(since, filter_of(c), limit as usize)
        .map_err(|_| HttpError::unavailable("the daemon is shutting down"))?;
    // Each event is already serialized (Event::json): no JSON tree is built.
    Ok(Reply::Resp(Resp::json(200, &r)))
}

fn event_stream(ctx: &Ctx, c: &Call) -> HResult {
    let settings = ctx.registry.settings();
    let after = match c
        .last_event_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            HttpError::bad_request(format!(
                "Last-Event-ID must be a non-negative integer, not '{v}'"
            ))
        })?),
        None => c.q_u64("last_event_id")?,
    };
    let slot = StreamSlot::acquire_as(&ctx.streams, settings.sse_max_streams, c.peer_uid)
        .ok_or_else(|| {
            HttpError::unavailable(format!(
                "too many open event streams (sse_max_streams = {})",
                settings.sse_max_streams
            ))
            .with_header("Retry-After", "2")
        })?;

    let sub = ctx
        .bus
        .subscribe(filter_of(c), after, settings.sse_queue_capacity)
        .map_err(|_| HttpError::unavailable("the daemon is shutting down"))?;
    let heartbeat = Duration::from_millis(settings.sse_heartbeat_ms);
    let probe = sse::HangupProbe::find(ctx.port.load(Ordering::Relaxed), c.peer);
    let cors = c.cors_origin.clone();
    Ok(Reply::Stream(Box::new(move |w| {
        sse::serve_events(w, sub, heartbeat, slot, probe, cors.as_deref())
    })))
}
