//! HTTP handlers about the daemon itself: `GET /health`, `POST /reload`,
//! `POST /shutdown` (API.md §4).

use super::apps::registry_error;
use super::router::RouteId;
use super::{Call, Ctx, HResult, HttpError, ok};
use serde::Serialize;
use serde_json::json;
use std::sync::atomic::Ordering;

/// Serve a daemon route. Other route ids answer `404`.
pub fn route(ctx: &Ctx, id: RouteId, _c: &Call) -> HResult {
    match id {
        RouteId::Health => health(ctx),
        RouteId::Reload => {
            let r = ctx.registry.reload(true).map_err(registry_error)?;
            ok(
                200,
                json!({"status": "ok", "total": r.apps.len(), "apps": r.apps, "warnings": r.warnings,
                       "added": r.added, "removed": r.removed, "changed": r.changed}),
            )
        }
        RouteId::Shutdown => {
            let _ = ctx.shutdown.send("POST /shutdown");
            ok(202, json!({"status": "stopping"}))
        }
        _ => Err(HttpError::not_found("not a daemon route")),
    }
}

/// The body of `GET /health` (API.md §4), serialized straight from this struct
/// (issue 7 part 7: no `Value` tree per request). Fields are declared in the
/// order `json!` used to print them (sorted), so the bytes are unchanged.
#[derive(Serialize)]
struct Health<'a> {
    apps: usize,
    #[serde(serialize_with = "as_str")]
    config_dir: std::path::Display<'a>,
    notify_delivered: u64,
    notify_dropped: u64,
    notify_failed: u64,
    pid: u32,
    port: u16,
    status: &'static str,
    uptime_seconds: u64,
    version: &'static str,
}

fn as_str<S: serde::Serializer>(v: &std::path::Display<'_>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn health(ctx: &Ctx) -> HResult {
    ok(
        200,
        Health {
            apps: ctx.registry.count(),
            config_dir: ctx.config_dir.display(),
            notify_delivered: ctx.notify.delivered(),
            notify_dropped: ctx.notify.dropped(),
            notify_failed: ctx.notify.failed(),
            pid: ctx.pid,
            port: ctx.port.load(Ordering::Relaxed),
            status: "ok",
            uptime_seconds: ctx.started.elapsed().as_secs(),
            version: crate::VERSION,
        },
    )
}
