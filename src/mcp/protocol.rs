//! The MCP server side of the protocol (<https://modelcontextprotocol.io/specification>):
//! version negotiation, `initialize`, `ping`, `tools/list`, `tools/call`, and
//! empty answers for the optional list methods. Transport-free: the HTTP
//! handler (`http/mcp.rs`) and the tests drive [`handle`].
//!
//! Versions: an `initialize` asking for a supported revision gets it back;
//! any other string (newer, older, garbage) gets [`LATEST`], never an error
//! (DESIGN.md §5). `server/discover` (the stateless 2026 revision) answers
//! "method not found", which clients treat as "use `initialize`".

use super::jsonrpc::{self, INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, Message};
use super::tools::{self, Backend, Tool};
use serde_json::{Value, json};

/// Revisions served, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// The answer to an unknown requested revision.
pub const LATEST: &str = "2025-11-25";

/// The revision answered to a client asking for `requested`.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| SUPPORTED_VERSIONS.iter().find(|v| **v == r))
        .copied()
        .unwrap_or(LATEST)
}

/// Who is calling: the tools backend, the caller's scopes (`None` = admin
/// token, everything visible) and the transport (`http`, `mcp`) for audit.
pub struct Env<'a> {
    /// Tools backend.
    pub backend: &'a Backend,
    /// Scopes of the caller's token; `None` = all.
    pub scopes: Option<&'a [&'a str]>,
    /// `mcp` for `POST /mcp`, `http` for `POST /tools/{name}`.
    pub via: &'static str,
}

/// Does this message need a long-running handler (a tool call)?
pub fn is_slow(m: &Message) -> bool {
    matches!(m, Message::Request { method, .. } if method == "tools/call")
}

/// The progress token of a request (`params._meta.progressToken`), if any.
pub fn progress_token(m: &Message) -> Option<Value> {
    match m {
        Message::Request { params, .. } => params
            .get("_meta")
            .and_then(|x| x.get("progressToken"))
            .filter(|t| t.is_string() || t.is_number())
            .cloned(),
        _ => None,
    }
}

/// Every tool the caller may see.
pub fn visible_tools(env: &Env) -> Vec<Tool> {
    tools::catalog(&env.backend.exec, env.backend.agents.is_some())
        .into_iter()
        .filter(|t| tools::visible(t, env.scopes))
        .collect()
}

/// Answer one message. `None` for notifications and client responses.
/// `notify` receives server notifications (progress) to send before the
/// response when the transport can (SSE, stdio).
pub fn handle(env: &Env, msg: Message, notify: &mut dyn FnMut(Value)) -> Option<Value> {
    let token = progress_token(&msg);
    let (id, method, params) = match msg {
        Message::Request { id, method, params } => (id, method, params),
        Message::Notification { .. } | Message::Response => return None,
        Message::Invalid { id, message } => {
            return Some(jsonrpc::error(&id, jsonrpc::INVALID_REQUEST, &message));
        }
    };
    let out = match method.as_str() {
        "initialize" => Ok(initialize(&params)),
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({
            "tools": visible_tools(env).iter().map(Tool::to_json).collect::<Vec<_>>()
        })),
        "tools/call" => call(env, &params, token, notify),
        "resources/list" => Ok(json!({"resources": []})),
        "resources/templates/list" => Ok(json!({"resourceTemplates": []})),
        "prompts/list" => Ok(json!({"prompts": []})),
        "logging/setLevel" => Ok(json!({})),
        other => Err((METHOD_NOT_FOUND, format!("method not found: {other}"))),
    };
    Some(match out {
        Ok(r) => jsonrpc::result(&id, r),
        Err((code, m)) => jsonrpc::error(&id, code, &m),
    })
}

fn initialize(params: &Value) -> Value {
    let version = negotiate(params.get("protocolVersion").and_then(Value::as_str));
    json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}, "logging": {}},
        "serverInfo": {"name": "orchestratr", "title": "orchestratr", "version": crate::VERSION},
        "instructions": "orchestratr runs the registered tasks of this machine, delegates to coding agents, and asks its user for approval. Long runs return an execution_id: poll it with get_execution (wait_ms) and read logs with execution_output."
    })
}

fn call(
    env: &Env,
    params: &Value,
    token: Option<Value>,
    notify: &mut dyn FnMut(Value),
) -> Result<Value, (i64, String)> {
    let name = params.get("name").and_then(Value::as_str).ok_or((
        INVALID_PARAMS,
        "missing tool name (params.name)".to_string(),
    ))?;
    let args = params.get("arguments").cloned().unwrap_or(Value::Null);
    let tool = visible_tools(env)
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| (INVALID_PARAMS, format!("unknown tool: {name}")))?;
    let outcome = {
        let mut report = |progress: f64, message: &str| {
            if let Some(t) = &token {
                notify(jsonrpc::notification(
                    "notifications/progress",
                    json!({"progressToken": t, "progress": progress, "message": message}),
                ));
            }
        };
        tools::call(env.backend, &tool, &args, &mut report)
    };
    super::audit_tool_call(
        env.via,
        env.backend.audit.as_ref(),
        &tool.name,
        &args,
        &outcome,
    );
    if outcome.structured.is_null() {
        return Err((INTERNAL_ERROR, "tool produced no result".into()));
    }
    Ok(outcome.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_versions_get_the_latest() {
        assert_eq!(negotiate(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("2025-11-25")), "2025-11-25");
        assert_eq!(negotiate(Some("2027-01-01")), LATEST);
        assert_eq!(negotiate(Some("")), LATEST);
        assert_eq!(negotiate(None), LATEST);
        let r = initialize(&json!({"protocolVersion": "2099-12-31"}));
        assert_eq!(r["protocolVersion"], LATEST);
    }
}
