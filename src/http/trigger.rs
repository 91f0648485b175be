//! `POST /trigger` (API.md §9, compatibility with the Go orchestratr): launch the
//! app whose `chord` matches, for compositor keybindings on Wayland.

use super::apps::registry_error;
use super::router::RouteId;
use super::{Call, Ctx};
use super::{HResult, HttpError, Reply, Resp};
use crate::registry::LaunchOutcome;
use serde_json::json;

/// Serve the route (only [`RouteId::Trigger`] reaches here).
pub fn route(ctx: &Ctx, _id: RouteId, c: &Call) -> HResult {
    trigger(ctx, c)
}

/// `POST /trigger {"chord":"e"}` (token route) → `200 {"status":
/// "launched"|"already_running","app","pid"}`.
///
/// Errors: `400` without a non-empty `chord`; `404 not_found` when no app has
/// that chord; the errors of `POST /apps/{name}/launch` (`422 launch_failed`).
pub fn trigger(ctx: &Ctx, c: &Call) -> HResult {
    let chord = c.req_str("chord")?;
    let name = ctx
        .registry
        .find_by_chord(chord)
        .ok_or_else(|| HttpError::not_found(format!("no app has the chord '{chord}'")))?;
    let (status, pid) = match ctx.registry.launch(&name).map_err(registry_error)? {
        LaunchOutcome::Launched(pid) => ("launched", pid),
        LaunchOutcome::AlreadyRunning(pid) => ("already_running", pid),
    };
    Ok(Reply::Resp(Resp::json(
        200,
        &json!({"status": status, "app": name, "pid": pid, "chord": chord.trim()}),
    )))
}
