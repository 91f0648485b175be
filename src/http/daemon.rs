//! HTTP handlers about the daemon itself: `GET /health`, `POST /reload`,
//! `POST /shutdown` (API.md §4).

use super::apps::registry_error;
use super::router::RouteId;
use super::{Call, Ctx, HResult, HttpError, ok};
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

fn health(ctx: &Ctx) -> HResult {
    ok(
        200,
        json!({
            "status": "ok",
            "version": crate::VERSION,
            "uptime_seconds": ctx.started.elapsed().as_secs(),
            "pid": ctx.pid,
            "port": ctx.port.load(Ordering::Relaxed),
            "apps": ctx.registry.count(),
            "config_dir": ctx.config_dir.display().to_string(),
            "notify_dropped": ctx.notify.dropped(),
            "notify_delivered": ctx.notify.delivered(),
            "notify_failed": ctx.notify.failed(),
        }),
    )
}
