//! HTTP handlers of API.md §6 (apps): list and show, launch and stop, the
//! lifecycle reports an app sends (`launched`, `ready`, `stopped`) and messages
//! to an app. The registry holds the rules; this file maps its errors.

use super::router::RouteId;
use super::{Call, Ctx, HResult, HttpError, Reply, Resp, ok};
use crate::events::NewEvent;
use crate::registry::{LaunchOutcome, RegistryError};
use serde_json::json;

/// Serve an apps route. Other route ids answer `404`.
pub fn route(ctx: &Ctx, id: RouteId, c: &Call) -> HResult {
    match id {
        // Hot reads (issue 7 part 7): bodies pre-serialized by the registry
        // when its state changed; a request only copies bytes.
        RouteId::ListApps => Ok(raw_json(&ctx.registry.snapshot().list)),
        RouteId::GetApp => match ctx.registry.snapshot().apps.get(c.name()) {
            Some(b) => Ok(raw_json(&b.app)),
            None => Err(HttpError::not_found(format!("no app named '{}'", c.name()))),
        },
        RouteId::AppState => match ctx.registry.snapshot().apps.get(c.name()) {
            Some(b) => Ok(raw_json(&b.state)),
            None => Err(HttpError::not_found(format!("no app named '{}'", c.name()))),
        },
        RouteId::AppLaunched => {
            let pid = match c.field("pid") {
                None => None,
                Some(v) => match super::json_u64(v) {
                    Some(p) if p > 0 && p <= i32::MAX as u64 => Some(p as u32),
                    _ => {
                        return Err(HttpError::bad_request(
                            "field 'pid' must be a positive integer",
                        ));
                    }
                },
            };
            reported(c, "launched", ctx.registry.report_launched(c.name(), pid))
        }
        RouteId::AppReady => reported(c, "ready", ctx.registry.report_ready(c.name())),
        RouteId::AppStopped => reported(c, "stopped", ctx.registry.report_stopped(c.name())),
        RouteId::LaunchApp => match ctx.registry.launch(c.name()).map_err(registry_error)? {
            LaunchOutcome::Launched(pid) => ok(
                200,
                json!({"status": "launched", "app": c.name(), "pid": pid}),
            ),
            LaunchOutcome::AlreadyRunning(pid) => ok(
                200,
                json!({"status": "already_running", "app": c.name(), "pid": pid}),
            ),
        },
        RouteId::StopApp => {
            let o = ctx.registry.stop(c.name()).map_err(registry_error)?;
            ok(
                200,
                json!({"status": "stopped", "app": c.name(), "pid": o.pid, "exit_code": o.exit_code,
                       "signal": o.signal, "killed": o.killed}),
            )
        }
        RouteId::AppMessage => {
            let name = c.name();
            if !ctx.registry.exists(name) {
                return Err(HttpError::not_found(format!("no app named '{name}'")));
            }
            let source = c.req_str("source")?;
            let mtype = c.opt_str("type")?.unwrap_or("message");
            let data = c.field("data").cloned().unwrap_or_else(|| json!({}));
            crate::events::validate_user_event(mtype, source, &data)
                .map_err(super::guards::user_event_error)?;
            let id = ctx
                .bus
                .publish(NewEvent {
                    kind: "app.message".into(),
                    source: source.to_string(),
                    target: Some(name.to_string()),
                    data: json!({"type": mtype, "data": data}),
                })
                .map_err(|_| HttpError::unavailable("the daemon is shutting down"))?;
            ok(202, json!({"id": id}))
        }
        _ => Err(HttpError::not_found("not an apps route")),
    }
}

/// A `200` reply whose body is already serialized JSON.
fn raw_json(body: &str) -> Reply {
    Reply::Resp(Resp {
        status: 200,
        content_type: "application/json",
        body: body.as_bytes().to_vec(),
        headers: Vec::new(),
    })
}

/// The answer to a lifecycle report (`POST /apps/{name}/launched|ready|stopped`).
fn reported<T>(c: &Call, state: &str, r: Result<T, RegistryError>) -> HResult {
    r.map_err(registry_error)?;
    ok(
        200,
        json!({"status": "ok", "app": c.name(), "state": state}),
    )
}

/// Map a registry error to its HTTP status and code (API.md §2).
pub fn registry_error(e: RegistryError) -> HttpError {
    match e {
        RegistryError::NotFound(n) => HttpError::not_found(format!("no app named '{n}'")),
        RegistryError::LaunchFailed(m) => HttpError::new(422, "launch_failed", m),
        RegistryError::NotRunning(n) => {
            HttpError::new(409, "not_running", format!("app '{n}' is not running"))
        }
        RegistryError::NoSuchPid(p) => HttpError::new(
            422,
            "unprocessable",
            format!("pid {p} is not a running process"),
        ),
        RegistryError::Invalid(err) => {
            let diags = err.diagnostics();
            let first = diags.first().map(|d| d.to_string()).unwrap_or_default();
            HttpError::new(
                422,
                "invalid_config",
                format!("invalid config, previous registry kept: {first}"),
            )
            .with_details(json!(diags))
        }
        RegistryError::ForeignPid { pid, uid } => HttpError::new(
            403,
            "forbidden",
            format!(
                "pid {pid} belongs to uid {uid}, not to the daemon's user: only your own processes can be reported"
            ),
        ),
        RegistryError::Closed => HttpError::unavailable("the daemon is shutting down"),
    }
}
