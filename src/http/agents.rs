//! HTTP handlers of API.md §10: interactive agent sessions in tmux.

use super::output_range::{output_range, resume_offset, stream_slot};
use super::router::RouteId;
use super::routes::{Call, Ctx};
use super::sse::{self, StreamSlot};
use super::{HResult, HttpError, Reply, Resp};
use crate::agents::record::Status;
use crate::agents::{AgentError, SpawnRequest};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often an agent output stream looks for new bytes, milliseconds.
pub const STREAM_POLL_MS: u64 = 10;

/// Map an agents error to status and code (API.md §2, §10).
pub fn agent_error(e: AgentError) -> HttpError {
    let msg = e.to_string();
    match e {
        AgentError::UnknownType(_) | AgentError::Invalid(_) => HttpError::bad_request(msg),
        AgentError::Forbidden(_) => HttpError::new(403, "forbidden", msg),
        AgentError::Conflict(_) => HttpError::new(409, "conflict", msg),
        AgentError::LaunchFailed {
            tmux_version,
            argv0,
            ..
        } => HttpError::new(422, "launch_failed", msg)
            .with_details(json!({"tmux_version": tmux_version, "argv0": argv0})),
        AgentError::NotFound(_) => {
            HttpError::not_found(msg).with_details(json!({"orchestra_code": "SESSION_NOT_FOUND"}))
        }
        AgentError::NotRunning(_) => HttpError::new(409, "not_running", msg),
        AgentError::Internal(_) => HttpError::internal(msg),
    }
}

fn ok(status: u16, v: &Value) -> HResult {
    Ok(Reply::Resp(Resp::json(status, v)))
}

fn spawn_request(c: &Call) -> Result<SpawnRequest, HttpError> {
    if c.body.is_none() {
        return Err(HttpError::bad_request(
            "missing request body: expected {\"agent_type\": ...}",
        ));
    }
    let env = match c.field("env") {
        None => BTreeMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect::<Option<BTreeMap<_, _>>>()
            .ok_or_else(|| HttpError::bad_request("field 'env' must map names to strings"))?,
        Some(_) => return Err(HttpError::bad_request("field 'env' must be an object")),
    };
    if env.keys().any(|k| k.is_empty() || k.contains(['=', '\0'])) {
        return Err(HttpError::bad_request(
            "field 'env' has an invalid variable name",
        ));
    }
    let size = match c.field("size") {
        None => None,
        Some(v) => {
            let dim = |k: &str, max: u64| {
                v.get(k)
                    .and_then(Value::as_u64)
                    .filter(|n| (2..=max).contains(n))
                    .map(|n| n as u16)
            };
            match (dim("cols", 1000), dim("rows", 500)) {
                (Some(c), Some(r)) => Some((c, r)),
                _ => {
                    return Err(HttpError::bad_request(
                        "field 'size' must be {\"cols\": 2..1000, \"rows\": 2..500}",
                    ));
                }
            }
        }
    };
    Ok(SpawnRequest {
        agent_type: c.req_str("agent_type")?.to_string(),
        working_dir: c.opt_str("working_dir")?.map(str::to_string),
        env,
        name: c.opt_str("name")?.map(str::to_string),
        prompt: c.opt_str("prompt")?.map(str::to_string),
        size,
    })
}

/// Serve an agents route.
pub fn route(ctx: &Ctx, id: RouteId, c: &Call) -> HResult {
    let ag = &ctx.agents;
    match id {
        RouteId::SpawnAgent => {
            let a = ag.spawn(spawn_request(c)?).map_err(agent_error)?;
            Ok(Reply::Resp(Resp::json(201, &a).with_header(
                "Location",
                format!("/agents/{}", a.session_id),
            )))
        }
        RouteId::ListAgents => {
            let status = match c.q("status") {
                None => None,
                Some(s) => Some(Status::parse(s).ok_or_else(|| {
                    HttpError::bad_request(format!(
                        "unknown status '{s}': expected starting, running, idle, waiting, exited, error or lost"
                    ))
                })?),
            };
            let list = ag.list(status, c.q("agent_type"));
            ok(200, &json!({"total": list.len(), "agents": list}))
        }
        RouteId::GetAgent => match ag.get(c.name()) {
            Some(a) => ok(200, &json!(a)),
            None => Err(agent_error(AgentError::NotFound(c.name().into()))),
        },
        RouteId::KillAgent => {
            let a = ag.kill(c.name()).map_err(agent_error)?;
            ok(
                200,
                &json!({"session_id": a.session_id, "status": "terminated",
                        "terminated_at": a.exited_at, "exit_code": a.exit_code}),
            )
        }
        RouteId::AgentInput => {
            if c.body.is_none() {
                return Err(HttpError::bad_request(
                    "missing request body: expected {\"text\": ...} or {\"keys\": [...]}",
                ));
            }
            match (c.field("text"), c.field("keys")) {
                (Some(Value::String(t)), None) => {
                    let submit = match c.field("submit") {
                        None => true,
                        Some(Value::Bool(b)) => *b,
                        Some(_) => {
                            return Err(HttpError::bad_request("field 'submit' must be a boolean"));
                        }
                    };
                    ag.input_text(c.name(), t, submit).map_err(agent_error)?;
                }
                (None, Some(Value::Array(k))) if !k.is_empty() && k.len() <= 256 => {
                    let keys = k
                        .iter()
                        .map(|x| x.as_str().filter(|s| !s.is_empty()).map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| {
                            HttpError::bad_request("field 'keys' must be non-empty key names")
                        })?;
                    ag.input_keys(c.name(), &keys).map_err(agent_error)?;
                }
                _ => {
                    return Err(HttpError::bad_request(
                        "expected exactly one of 'text' (a string) or 'keys' (1-256 key names)",
                    ));
                }
            }
            ok(202, &json!({"status": "sent"}))
        }
        RouteId::AgentOutput => {
            let path = ag.output_path(c.name()).map_err(agent_error)?;
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            output_range(c, &path, len)
        }
        RouteId::AgentScreen => {
            let (text, cols, rows, x, y) = ag.screen(c.name()).map_err(agent_error)?;
            ok(
                200,
                &json!({"text": text, "cols": cols, "rows": rows, "cursor": {"x": x, "y": y}}),
            )
        }
        RouteId::AgentStream => stream(ctx, c),
        RouteId::AgentStatus => {
            let s = c.req_str("status")?;
            let status = match s {
                "running" => Status::Running,
                "idle" => Status::Idle,
                "waiting" => Status::Waiting,
                _ => {
                    return Err(HttpError::bad_request(format!(
                        "status must be running, idle or waiting, not '{s}'"
                    )));
                }
            };
            let a = ag
                .report_status(
                    c.name(),
                    status,
                    c.opt_str("reason")?.map(str::to_string),
                    c.opt_str("resume_id")?
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                )
                .map_err(agent_error)?;
            ok(200, &json!(a))
        }
        RouteId::AttachAgent => {
            let argv = ag.attach_argv(c.name()).map_err(agent_error)?;
            ok(200, &json!({"command": argv}))
        }
        _ => Err(HttpError::internal("route not handled by agents")),
    }
}

fn stream(ctx: &Ctx, c: &Call) -> HResult {
    let path = ctx.agents.output_path(c.name()).map_err(agent_error)?;
    let from = resume_offset(c)?;
    let slot = stream_slot(ctx, c)?;
    let settings = ctx.registry.settings();
    let hb = Duration::from_millis(settings.sse_heartbeat_ms);
    let agents = ctx.agents.clone();
    let id = c.name().to_string();
    Ok(Reply::Stream(Box::new(move |w| {
        serve(w, agents, id, path, from, hb, slot)
    })))
}

/// Write a chunked SSE frame; false when the client is gone.
fn send(w: &mut Box<dyn Write + Send>, frame: &str) -> bool {
    w.write_all(format!("{:x}\r\n{frame}\r\n", frame.len()).as_bytes())
        .and_then(|_| w.flush())
        .is_ok()
}

/// Follow an agent's output log like §7's stream: `id` = the byte offset after
/// the chunk, `event: output` `{offset, text}`, `event: status` with the Agent on
/// each status change, a final `status` and the end once the session is over.
fn serve(
    mut w: Box<dyn Write + Send>,
    agents: crate::agents::Agents,
    id: String,
    path: PathBuf,
    from: u64,
    heartbeat: Duration,
    slot: StreamSlot,
) {
    use crate::executor::output::{read_at, utf8_boundary};
    let _slot = slot;
    if w.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
              X-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    )
    .is_err()
        || !send(&mut w, &format!("retry: {}\n\n", sse::RETRY_MS))
    {
        return;
    }
    let status_frame = |a: &crate::agents::record::Agent| {
        sse::frame(
            None,
            "status",
            &serde_json::to_string(a).unwrap_or_default(),
        )
    };
    let mut offset = from;
    let mut last = agents.peek(&id);
    if let Some(a) = &last
        && !send(&mut w, &status_frame(a))
    {
        return;
    }
    let mut last_write = Instant::now();
    loop {
        let fin = agents.is_final(&id);
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        while offset < len {
            let want = ((len - offset) as usize).min(64 * 1024);
            let Ok(bytes) = read_at(&path, offset, want) else {
                break;
            };
            if bytes.is_empty() {
                break;
            }
            let n = if fin {
                bytes.len()
            } else {
                utf8_boundary(&bytes)
            };
            if n == 0 {
                break;
            }
            let next = offset + n as u64;
            let f = sse::frame(
                Some(&next.to_string()),
                "output",
                &json!({"offset": offset, "text": String::from_utf8_lossy(&bytes[..n])})
                    .to_string(),
            );
            if !send(&mut w, &f) {
                return;
            }
            offset = next;
            last_write = Instant::now();
        }
        let now = agents.peek(&id);
        if now.as_ref().map(|a| (a.status, a.status_source))
            != last.as_ref().map(|a| (a.status, a.status_source))
        {
            if let Some(a) = &now
                && !send(&mut w, &status_frame(a))
            {
                return;
            }
            last_write = Instant::now();
            last = now;
        }
        if fin && offset >= std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) {
            let _ = send(&mut w, &sse::frame(None, "end", "{}"));
            let _ = w.write_all(b"0\r\n\r\n").and_then(|_| w.flush());
            return;
        }
        if last_write.elapsed() >= heartbeat {
            if !send(&mut w, ": keepalive\n\n") {
                return;
            }
            last_write = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(STREAM_POLL_MS));
    }
}
