//! HTTP handlers of API.md §8 (approvals). The rules live in
//! [`crate::approvals`]; this file type-checks bodies and query parameters, maps
//! [`ApprovalError`] to statuses, and turns long polls into [`Reply::Defer`] so a
//! held `GET /approvals/{id}?wait=S` never occupies a worker thread: the
//! `tiny_http::Request` is handed to the approvals actor, whose callback answers it.
//!
//! | route | success | errors |
//! |---|---|---|
//! | `POST /approvals` | `201` Approval + `Location: /approvals/{id}` | `400` naming the field |
//! | `GET /approvals?status=a,b` | `200 {"approvals":[..],"total":n,"waiting":k}` | `400` unknown status |
//! | `GET /approvals/{id}?wait=S` | `200` Approval (S in 0..=300 seconds) | `400` bad wait, `404` |
//! | `POST /approvals/{id}` | `200` Approval | `400`, `404`, `409 conflict` + standing Approval in `details` |

use super::router::RouteId;
use super::{Call, Ctx, HResult, HttpError, Reply, Resp, ok};
use crate::approvals::{ApprovalError, Decision, MAX_WAIT_S, NewApproval, Status, WaitResult};
use serde_json::{Value, json};
use std::time::Duration;

/// Serve an approvals route (API.md §8). Other route ids answer `404`.
pub fn route(ctx: &Ctx, id: RouteId, c: &Call) -> HResult {
    match id {
        RouteId::CreateApproval => create(ctx, c),
        RouteId::ListApprovals => list(ctx, c),
        RouteId::GetApproval => get(ctx, c),
        RouteId::DecideApproval => decide(ctx, c),
        _ => Err(HttpError::not_found("not an approvals route")),
    }
}

/// Map an approvals error to its status and code (API.md §2, §8).
pub fn approval_error(e: ApprovalError) -> HttpError {
    let msg = e.to_string();
    match e {
        ApprovalError::Invalid(_) => HttpError::bad_request(msg),
        ApprovalError::NotFound(_) => HttpError::not_found(msg),
        ApprovalError::NotAnOption { options, .. } => {
            HttpError::bad_request(msg).with_details(json!({ "options": options }))
        }
        ApprovalError::AlreadyDecided(a) => {
            HttpError::new(409, "conflict", msg).with_details(json!(*a))
        }
        ApprovalError::TooMany(_) => HttpError::unavailable(msg).with_header("Retry-After", "5"),
        ApprovalError::Internal(_) => HttpError::internal(msg),
        ApprovalError::Closed => HttpError::unavailable("the daemon is shutting down"),
    }
}

/// An optional array-of-strings body field. Errors: `400` naming the field.
fn opt_str_array(c: &Call, k: &str) -> Result<Option<Vec<String>>, HttpError> {
    let bad = || HttpError::bad_request(format!("field '{k}' must be an array of strings"));
    match c.field(k) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad()),
    }
}

fn create(ctx: &Ctx, c: &Call) -> HResult {
    let title = c.req_str("title")?.to_string();
    let timeout_ms = match c.field("timeout_ms") {
        None => None,
        Some(v) => Some(super::json_u64(v).ok_or_else(|| {
            HttpError::bad_request(format!(
                "field 'timeout_ms' must be a positive integer (milliseconds), not {v}"
            ))
        })?),
    };
    let req = NewApproval {
        title,
        detail: c.opt_str("detail")?.map(str::to_string),
        source: c.opt_str("source")?.map(str::to_string),
        options: opt_str_array(c, "options")?,
        default: c.opt_str("default")?.map(str::to_string),
        timeout_ms,
        context: c.field("context").cloned(),
    };
    let a = ctx.approvals.create(req).map_err(approval_error)?;
    Ok(Reply::Resp(
        Resp::json(201, &a).with_header("Location", format!("/approvals/{}", a.id)),
    ))
}

/// `?status=` as a comma list of statuses; empty = all. Errors: `400` naming it.
fn status_filter(c: &Call) -> Result<Vec<Status>, HttpError> {
    let Some(q) = c.q("status") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for s in q.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if s == "all" {
            return Ok(Vec::new());
        }
        let st = Status::parse(s).ok_or_else(|| {
            HttpError::bad_request(format!(
                "unknown status '{s}' in query parameter 'status'; use pending, approved, denied, decided, expired or all"
            ))
        })?;
        if !out.contains(&st) {
            out.push(st);
        }
    }
    Ok(out)
}

fn list(ctx: &Ctx, c: &Call) -> HResult {
    let statuses = status_filter(c)?;
    let l = ctx.approvals.list(&statuses).map_err(approval_error)?;
    Ok(Reply::Resp(Resp::json(
        200,
        &json!({"approvals": l.approvals, "total": l.approvals.len(), "waiting": l.waiting}),
    )))
}

/// `?wait=S`: an integer 0..=300; absent or empty = 0. Errors: `400` naming it.
fn wait_param(c: &Call) -> Result<u64, HttpError> {
    match c.q("wait") {
        None => Ok(0),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|w| *w <= MAX_WAIT_S)
            .ok_or_else(|| {
                HttpError::bad_request(format!(
                    "query parameter 'wait' must be an integer from 0 to {MAX_WAIT_S} (seconds), not '{v}'"
                ))
            }),
    }
}

fn not_found(id: &str) -> HttpError {
    HttpError::not_found(format!("no approval with id '{id}'"))
}

fn get(ctx: &Ctx, c: &Call) -> HResult {
    let id = c.name().to_string();
    let wait = wait_param(c)?;
    if wait == 0 {
        return match ctx.approvals.get(&id).map_err(approval_error)? {
            Some(a) => ok(200, &a),
            None => Err(not_found(&id)),
        };
    }
    let approvals = ctx.approvals.clone();
    Ok(Reply::Defer(Box::new(move |req: tiny_http::Request| {
        let id2 = id.clone();
        approvals.wait(
            &id,
            Duration::from_secs(wait),
            Box::new(move |res| {
                let resp = match res {
                    WaitResult::Ready(a) => Resp::json(200, &*a),
                    WaitResult::NotFound => not_found(&id2).into_resp(),
                    WaitResult::Closed => {
                        HttpError::unavailable("the daemon is shutting down").into_resp()
                    }
                };
                resp.send(req);
            }),
        );
    })))
}

fn decide(ctx: &Ctx, c: &Call) -> HResult {
    let d = Decision {
        id: c.name().to_string(),
        decision: c.req_str("decision")?.to_string(),
        comment: c.opt_str("comment")?.map(str::to_string),
        by: c.opt_str("by")?.map(str::to_string),
    };
    let a = ctx.approvals.decide(d).map_err(approval_error)?;
    ok(200, &a)
}
