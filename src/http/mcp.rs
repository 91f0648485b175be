//! HTTP handlers of the MCP server and the plain tools API (API.md §13):
//!
//! | route | result |
//! |---|---|
//! | `POST /mcp` | Streamable HTTP transport: one JSON-RPC message or a batch → `200` JSON answer; an SSE answer (`notifications/progress`, then the response) when a `tools/call` carries `_meta.progressToken` and `Accept` allows `text/event-stream`; only notifications/responses → `202` without body |
//! | `GET /mcp` | `405` (no server-initiated stream) |
//! | `GET /tools` | `{"tools":[Tool],"total":n}` (MCP tool objects) |
//! | `POST /tools/{name}` | body = the arguments → `200 {"tool","is_error","result","text"}`; argument errors map to their status (`400`, `404`, `409`, `422`, `429`, `503`) |
//!
//! Tool calls can wait minutes (a run's `wait_ms`, a person's approval): they
//! run on their own thread ([`Reply::Defer`]), never on an HTTP worker, at most
//! [`MAX_INFLIGHT_CALLS`] at once. No `Mcp-Session-Id` is issued: the server
//! is stateless, which the transport allows.

use super::router::RouteId;
use super::sse::SseWriter;
use super::{Call, Ctx, HResult, HttpError, Reply, Resp, ok};
use crate::mcp::jsonrpc::{self, Message};
use crate::mcp::protocol::{self, Env};
use crate::mcp::tools::{self, Backend};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Tool calls running at once (each holds one thread).
pub const MAX_INFLIGHT_CALLS: usize = 64;

static INFLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Serve an MCP or tools route. Other route ids answer `404`.
pub fn route(ctx: &Ctx, id: RouteId, c: &Call) -> HResult {
    match id {
        RouteId::Mcp => post_mcp(ctx, c),
        RouteId::ListTools => {
            let b = backend(ctx, c);
            let env = env_of(&b, "http");
            let list: Vec<Value> = protocol::visible_tools(&env)
                .iter()
                .map(tools::Tool::to_json)
                .collect();
            ok(200, json!({"total": list.len(), "tools": list}))
        }
        RouteId::CallTool => call_tool(ctx, c),
        _ => Err(HttpError::not_found("not an mcp route")),
    }
}

/// The tools backend of this request: the caller's scopes hide tools
/// (API.md §13), and every call is audited under the caller's token (§12).
fn backend(ctx: &Ctx, c: &Call) -> Backend {
    let security = ctx.security.clone();
    let actor = crate::audit::Actor {
        token_id: c.token_id.clone(),
        via: "mcp",
        peer: c.peer.map(|p| p.ip().to_string()),
    };
    let audit: tools::AuditSink = Arc::new(move |tool: &str, outcome: &str, detail: &Value| {
        if let Err(e) = security.audit.record_detail(
            &actor,
            "tool_call",
            Some(tool),
            outcome,
            200,
            Some(detail),
        ) {
            log::error!("audit log: cannot record a tool call: {e}");
        }
    });
    Backend {
        executor: ctx.executor.clone(),
        approvals: ctx.approvals.clone(),
        exec: ctx.mcp.exec(),
        base_url: format!("http://127.0.0.1:{}", ctx.port.load(Ordering::Relaxed)),
        agents: Some(Arc::new(super::mcp_agents::AgentsBackend(
            ctx.agents.clone(),
        ))),
        scopes: c.scopes.clone(),
        audit: Some(audit),
    }
}

/// The caller's environment. Scopes: `None` (the admin token) until the
/// tokens work passes the caller's scopes here.
fn env_of<'a>(b: &'a Backend, via: &'static str) -> Env<'a> {
    Env {
        backend: b,
        scopes: b.scopes.as_deref(),
        via,
    }
}

/// A slot for one tool-call thread; freed on drop.
struct Slot;
impl Slot {
    fn acquire() -> Option<Slot> {
        let n = INFLIGHT.fetch_add(1, Ordering::AcqRel);
        if n >= MAX_INFLIGHT_CALLS {
            INFLIGHT.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot)
    }
}
impl Drop for Slot {
    fn drop(&mut self) {
        INFLIGHT.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accepts_sse(req: &tiny_http::Request) -> bool {
    req.headers()
        .iter()
        .filter(|h| h.field.equiv("Accept"))
        .any(|h| h.value.as_str().contains("text/event-stream"))
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> bool {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        })
        .is_ok()
}

fn post_mcp(ctx: &Ctx, c: &Call) -> HResult {
    let Some(body) = c.body.clone() else {
        return ok(
            400,
            jsonrpc::error(&Value::Null, jsonrpc::PARSE_ERROR, "empty request body"),
        );
    };
    let (msgs, batch) = match body {
        Value::Array(items) if items.is_empty() => {
            return ok(
                200,
                jsonrpc::error(&Value::Null, jsonrpc::INVALID_REQUEST, "empty batch"),
            );
        }
        Value::Array(items) => (
            items.iter().map(jsonrpc::classify).collect::<Vec<_>>(),
            true,
        ),
        other => (vec![jsonrpc::classify(&other)], false),
    };
    let b = backend(ctx, c);
    if !msgs.iter().any(protocol::is_slow) {
        let env = env_of(&b, "mcp");
        let answers: Vec<Value> = msgs
            .into_iter()
            .filter_map(|m| protocol::handle(&env, m, &mut |_| {}))
            .collect();
        return Ok(answer(answers, batch).into());
    }
    Ok(Reply::Defer(Box::new(move |req: tiny_http::Request| {
        let Some(slot) = Slot::acquire() else {
            let busy: Vec<Value> = msgs
                .iter()
                .filter_map(|m| match m {
                    Message::Request { id, .. } => Some(jsonrpc::error(
                        id,
                        jsonrpc::INTERNAL_ERROR,
                        &format!(
                            "too many tool calls in flight (max {MAX_INFLIGHT_CALLS}); retry later"
                        ),
                    )),
                    _ => None,
                })
                .collect();
            answer(busy, batch).send(req);
            return;
        };
        let sse = !batch
            && accepts_sse(&req)
            && msgs.first().and_then(protocol::progress_token).is_some();
        let req = Arc::new(std::sync::Mutex::new(Some(req)));
        let req2 = req.clone();
        let started = spawn("mcp-call", move || {
            let _slot = slot;
            let Some(req) = req2.lock().ok().and_then(|mut g| g.take()) else {
                return;
            };
            let env = env_of(&b, "mcp");
            if sse {
                serve_sse(req, &env, msgs);
            } else {
                let answers: Vec<Value> = msgs
                    .into_iter()
                    .filter_map(|m| protocol::handle(&env, m, &mut |_| {}))
                    .collect();
                answer(answers, batch).send(req);
            }
        });
        if !started && let Some(req) = req.lock().ok().and_then(|mut g| g.take()) {
            HttpError::unavailable("cannot start a thread for the tool call")
                .into_resp()
                .send(req);
        }
    })))
}

/// The JSON answer: the single response, the batch array, or `202` when
/// nothing needs an answer.
fn answer(mut answers: Vec<Value>, batch: bool) -> Resp {
    if answers.is_empty() {
        return Resp {
            status: 202,
            content_type: "application/json",
            body: Vec::new(),
            headers: Vec::new(),
        };
    }
    if batch {
        Resp::json(200, &Value::Array(answers))
    } else {
        Resp::json(200, &answers.remove(0))
    }
}

/// Answer one tool call as an SSE stream: progress notifications as they
/// come, then the response, then the stream ends.
fn serve_sse(req: tiny_http::Request, env: &Env, msgs: Vec<Message>) {
    let Ok(mut w) = SseWriter::begin(req.into_writer()) else {
        return;
    };
    let _ = w.flush();
    for m in msgs {
        let resp = protocol::handle(env, m, &mut |n| {
            w.push_event(None, "message", &n.to_string());
            let _ = w.flush();
        });
        if let Some(r) = resp {
            w.push_event(None, "message", &r.to_string());
        }
    }
    w.finish();
}

fn status_of(code: &str) -> u16 {
    match code {
        "bad_request" => 400,
        "forbidden" => 403,
        "not_found" => 404,
        "conflict" => 409,
        "unprocessable" => 422,
        "queue_full" => 429,
        "unavailable" => 503,
        _ => 500,
    }
}

fn call_tool(ctx: &Ctx, c: &Call) -> HResult {
    let b = backend(ctx, c);
    let name = c.name().to_string();
    let tool = protocol::visible_tools(&env_of(&b, "http"))
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| HttpError::not_found(format!("no tool named '{name}'")))?;
    let args = c.body.clone().unwrap_or(Value::Null);
    Ok(Reply::Defer(Box::new(move |req: tiny_http::Request| {
        let Some(slot) = Slot::acquire() else {
            HttpError::unavailable(format!(
                "too many tool calls in flight (max {MAX_INFLIGHT_CALLS})"
            ))
            .with_header("Retry-After", "2")
            .into_resp()
            .send(req);
            return;
        };
        let req = Arc::new(std::sync::Mutex::new(Some(req)));
        let req2 = req.clone();
        let started = spawn("tool-call", move || {
            let _slot = slot;
            let Some(req) = req2.lock().ok().and_then(|mut g| g.take()) else {
                return;
            };
            let o = tools::call(&b, &tool, &args, &mut |_, _| {});
            crate::mcp::audit_tool_call("http", b.audit.as_ref(), &tool.name, &args, &o);
            let code = o.structured.get("code").and_then(Value::as_str);
            let resp = match code {
                Some(code) if o.is_error && o.structured.get("execution_id").is_none() => {
                    let st = status_of(code);
                    let code: &'static str = match st {
                        400 => "bad_request",
                        403 => "forbidden",
                        404 => "not_found",
                        409 => "conflict",
                        422 => "unprocessable",
                        429 => "queue_full",
                        503 => "unavailable",
                        _ => "internal",
                    };
                    HttpError::new(st, code, o.text.clone())
                        .with_details(o.structured.clone())
                        .into_resp()
                }
                _ => Resp::json(
                    200,
                    &json!({"tool": tool.name, "is_error": o.is_error, "result": o.structured, "text": o.text}),
                ),
            };
            resp.send(req);
        });
        if !started && let Some(req) = req.lock().ok().and_then(|mut g| g.take()) {
            HttpError::unavailable("cannot start a thread for the tool call")
                .into_resp()
                .send(req);
        }
    })))
}
