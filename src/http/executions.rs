//! HTTP handlers of API.md §7: executions, their output (range and SSE), and
//! delegation tickets (Orchestra `POST /delegate`, `GET /tasks/{ticket_id}`).

use super::output_range::{output_range, resume_offset, stream_slot};
use super::router::RouteId;
use super::sse;
use super::{Call, Ctx, HResult, HttpError, Reply, Resp};
use crate::agents::AgentError;
use crate::executor::record::{ExecStatus, Execution};
use crate::executor::{ExecError, SubmitSpec, TICKET_MESSAGE_LINES, output};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// Map an executor error to status and code (API.md §2, §7).
pub fn exec_error(e: ExecError) -> HttpError {
    let msg = e.to_string();
    match e {
        ExecError::UnknownTask(_) | ExecError::NotFound(_) => HttpError::not_found(msg),
        ExecError::UnknownAgent(_) | ExecError::NoDelegate(_) => HttpError::bad_request(msg),
        ExecError::ArgsNotAllowed(_) => HttpError::new(422, "unprocessable", msg),
        ExecError::Forbidden(_) => HttpError::new(403, "forbidden", msg),
        ExecError::QueueFull { retry_after_s, .. } => HttpError::new(429, "queue_full", msg)
            .with_header("Retry-After", retry_after_s.to_string()),
        ExecError::ShuttingDown | ExecError::Closed => HttpError::unavailable(msg),
        ExecError::NotRetryable(_) => HttpError::new(409, "conflict", msg),
        ExecError::Finished(ex) => HttpError::new(409, "conflict", msg).with_details(json!(ex)),
    }
}

fn accepted(e: &Execution) -> HResult {
    Ok(Reply::Resp(
        Resp::json(202, e).with_header("Location", format!("/executions/{}", e.id)),
    ))
}

fn opt_timeout(c: &Call) -> Result<Option<u64>, HttpError> {
    match c.field("timeout_ms") {
        None => Ok(None),
        Some(v) => match super::json_u64(v) {
            Some(t) if t > 0 => Ok(Some(t)),
            _ => Err(HttpError::bad_request(
                "field 'timeout_ms' must be a positive integer",
            )),
        },
    }
}

fn get(ctx: &Ctx, id: &str) -> Result<crate::executor::ExecHandle, HttpError> {
    ctx.executor
        .get(id)
        .ok_or_else(|| HttpError::not_found(format!("no execution '{id}'")))
}

/// Serve an executions, delegation or ticket route.
pub fn route(ctx: &Ctx, id: RouteId, c: &Call) -> HResult {
    match id {
        RouteId::SubmitExecution => {
            if c.body.is_none() {
                return Err(HttpError::bad_request(
                    "missing request body: expected {\"task\": ...}",
                ));
            }
            let task = c.req_str("task")?.to_string();
            let args = match c.field("args") {
                None => Vec::new(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| x.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        HttpError::bad_request("field 'args' must be an array of strings")
                    })?,
                Some(_) => {
                    return Err(HttpError::bad_request(
                        "field 'args' must be an array of strings",
                    ));
                }
            };
            let spec = SubmitSpec::Task {
                task,
                args,
                cwd: c.opt_str("cwd")?.map(str::to_string),
                timeout_ms: opt_timeout(c)?,
            };
            let e = ctx.executor.submit(spec).map_err(exec_error)?;
            accepted(&e)
        }
        RouteId::ListExecutions => {
            let status = match c.q("status") {
                None => None,
                Some(s) => Some(ExecStatus::parse(s).ok_or_else(|| {
                    HttpError::bad_request(format!(
                        "unknown status '{s}': expected pending, starting, running, completed, failed, timeout, cancelled or lost"
                    ))
                })?),
            };
            let limit = c.q_u64("limit")?.unwrap_or(100);
            if !(1..=1000).contains(&limit) {
                return Err(HttpError::bad_request(format!(
                    "limit must be between 1 and 1000, not {limit}"
                )));
            }
            let (list, total) =
                ctx.executor
                    .list(status, c.q("task").map(str::to_string), limit as usize);
            Ok(Reply::Resp(Resp::json(
                200,
                &json!({"executions": list, "total": total}),
            )))
        }
        RouteId::GetExecution => Ok(Reply::Resp(Resp::json(200, &get(ctx, c.name())?.exec))),
        RouteId::ExecutionOutput => {
            let h = get(ctx, c.name())?;
            output_range(c, h.output.path(), h.output.len())
        }
        RouteId::ExecutionStream => {
            let h = get(ctx, c.name())?;
            let from = resume_offset(c)?;
            let slot = stream_slot(ctx, c)?;
            let settings = ctx.registry.settings();
            let hb = Duration::from_millis(settings.sse_heartbeat_ms);
            let out = h.output.clone();
            let probe =
                sse::HangupProbe::find(ctx.port.load(std::sync::atomic::Ordering::Relaxed), c.peer);
            Ok(Reply::Stream(Box::new(move |w| {
                sse::serve_output_probed(w, out, from, hb, slot, probe)
            })))
        }
        RouteId::CancelExecution => {
            let e = ctx.executor.cancel(c.name()).map_err(exec_error)?;
            Ok(Reply::Resp(Resp::json(200, &e)))
        }
        RouteId::RetryExecution => {
            let e = ctx.executor.retry(c.name()).map_err(exec_error)?;
            accepted(&e)
        }
        RouteId::Delegate => delegate(ctx, c),
        RouteId::GetTicket => {
            let h = get(ctx, c.name())?;
            let e = &h.exec;
            let result = if e.status.is_final() {
                json!({
                    "exit_code": e.exit_code,
                    "message": output::tail_lines(h.output.path(), TICKET_MESSAGE_LINES),
                    "files_modified": h.files_modified.clone().unwrap_or_default(),
                    "error": e.error,
                })
            } else {
                Value::Null
            };
            Ok(Reply::Resp(Resp::json(
                200,
                &json!({
                    "ticket_id": e.id,
                    "status": e.status,
                    "agent": e.agent,
                    "session_id": e.session_id,
                    "result": result,
                    "started_at": e.started_at,
                    "completed_at": e.finished_at,
                    "duration_ms": e.duration_ms,
                }),
            )))
        }
        _ => Err(HttpError::internal("route not handled by executions")),
    }
}

fn humanize(key: &str) -> String {
    let s = key.replace(['_', '-'], " ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => s,
    }
}

/// The prompt of a delegation: the task text, then the context as plain text
/// (API.md §7: "the task text followed by the context rendered as plain text").
pub fn render_prompt(task: &str, context: Option<&Map<String, Value>>) -> String {
    let mut p = task.trim_end().to_string();
    let Some(ctx) = context.filter(|m| !m.is_empty()) else {
        return p;
    };
    p.push_str("\n\nContext:");
    for (k, v) in ctx {
        let name = humanize(k);
        match v {
            Value::Array(items) => {
                p.push_str(&format!("\n{name}:"));
                for i in items {
                    match i {
                        Value::String(s) => p.push_str(&format!("\n- {s}")),
                        other => p.push_str(&format!("\n- {other}")),
                    }
                }
            }
            Value::Bool(b) => p.push_str(&format!("\n{name}: {}", if *b { "yes" } else { "no" })),
            Value::String(s) => p.push_str(&format!("\n{name}: {s}")),
            Value::Null => {}
            other => p.push_str(&format!("\n{name}: {other}")),
        }
    }
    p
}

fn delegate(ctx: &Ctx, c: &Call) -> HResult {
    if c.body.is_none() {
        return Err(HttpError::bad_request(
            "missing request body: expected {\"agent_type\", \"task\", ...}",
        ));
    }
    let agent = c.req_str("agent_type")?.to_string();
    let task = c.req_str("task")?;
    let context = match c.field("context") {
        None => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return Err(HttpError::bad_request("field 'context' must be an object")),
    };
    if let Some(sid) = c.opt_str("session_id")? {
        return delegate_live(ctx, c, agent, sid, render_prompt(task, context));
    }
    let spec = SubmitSpec::Delegate {
        agent,
        prompt: render_prompt(task, context),
        cwd: c.opt_str("working_dir")?.map(str::to_string),
        timeout_ms: opt_timeout(c)?,
    };
    let e = ctx.executor.submit(spec).map_err(exec_error)?;
    Ok(Reply::Resp(
        Resp::json(
            202,
            &json!({"ticket_id": e.id, "session_id": null, "status": e.status, "created_at": e.created_at}),
        )
        .with_header("Location", format!("/tasks/{}", e.id)),
    ))
}

/// `POST /delegate` naming a live session (API.md §10, docs/api.md
/// "Delegation into a live session"): a session-backed ticket whose follower
/// sends the task as input. Errors: unknown session 404 (`SESSION_NOT_FOUND`),
/// session of another `agent_type` 400, session not running 409 `not_running`.
fn delegate_live(ctx: &Ctx, c: &Call, agent: String, sid: &str, prompt: String) -> HResult {
    use crate::executor::live::{self, LiveSpec};
    let a = ctx
        .agents
        .peek(sid)
        .ok_or_else(|| super::agents::agent_error(AgentError::NotFound(sid.to_string())))?;
    if a.agent_type != agent {
        return Err(HttpError::bad_request(format!(
            "session '{sid}' is an agent of type '{}', not '{agent}'",
            a.agent_type
        )));
    }
    if a.status.is_final() {
        return Err(super::agents::agent_error(AgentError::NotRunning(format!(
            "agent '{sid}' is not running ({})",
            serde_json::to_value(a.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        ))));
    }
    let offset = ctx
        .agents
        .output_path(sid)
        .ok()
        .and_then(|p| std::fs::metadata(p).ok())
        .map_or(0, |m| m.len());
    let timeout_ms = opt_timeout(c)?;
    let e = ctx
        .executor
        .open_live(LiveSpec {
            agent_type: agent,
            session_id: sid.to_string(),
            pid: a.pid,
            cwd: a.working_dir.clone(),
            offset,
            timeout_ms,
        })
        .map_err(exec_error)?;
    live::follow(
        ctx.executor.clone(),
        ctx.agents.clone(),
        live::Followed {
            id: e.id.clone(),
            session_id: sid.to_string(),
            cwd: a.working_dir,
            offset,
            opened_ms: crate::time::unix_ms(std::time::SystemTime::now()),
            timeout_ms,
            git_before: None,
        },
        Some(prompt),
    );
    Ok(Reply::Resp(
        Resp::json(
            202,
            &json!({"ticket_id": e.id, "session_id": sid, "status": e.status, "created_at": e.created_at}),
        )
        .with_header("Location", format!("/tasks/{}", e.id)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_renders_context_as_text() {
        let ctx = json!({"files": ["src/auth.py"], "requirements": ["Use bcrypt"], "tests_required": true});
        let p = render_prompt("Implement JWT auth", ctx.as_object());
        assert_eq!(
            p,
            "Implement JWT auth\n\nContext:\nFiles:\n- src/auth.py\nRequirements:\n- Use bcrypt\nTests required: yes"
        );
        assert_eq!(render_prompt("x", None), "x");
    }
}
