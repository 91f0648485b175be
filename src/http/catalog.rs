//! `GET /tasks` and `GET /agent-types` (API.md §13): what is registered, for
//! submit forms (the dashboard's, other clients'). Served from the live
//! execution config (the one the executor and the MCP tools use, replaced on
//! every valid reload), so a broken save never empties the form.

use super::router::RouteId;
use super::{Call, Ctx, HResult, HttpError, ok};
use crate::config::CommandSpec;
use serde_json::{Value, json};

fn command(c: &CommandSpec) -> Value {
    match c {
        CommandSpec::Shell(s) => json!(s),
        CommandSpec::Argv(v) => json!(v),
    }
}

/// Serve `GET /tasks` or `GET /agent-types`. Other route ids answer `404`.
///
/// `/tasks` → `{"tasks":[{"name","description","command","pool","allow_args","mcp"}],"total":n}`
/// sorted by name. `/agent-types` →
/// `{"agent_types":[{"name","interactive","delegate","max_sessions"}],"total":n}`;
/// `interactive`/`delegate` are argv lists or `null` when the type has none,
/// `max_sessions` is `null` without `interactive`.
pub fn route(ctx: &Ctx, id: RouteId, _c: &Call) -> HResult {
    let cfg = ctx.mcp.exec();
    match id {
        RouteId::ListTasks => {
            let tasks: Vec<Value> = cfg
                .tasks
                .values()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "description": t.description,
                        "command": command(&t.command),
                        "pool": t.pool,
                        "allow_args": t.allow_args,
                        "mcp": t.mcp,
                    })
                })
                .collect();
            ok(200, json!({"total": tasks.len(), "tasks": tasks}))
        }
        RouteId::ListAgentTypes => {
            let types: Vec<Value> = cfg
                .agents
                .values()
                .map(|a| {
                    json!({
                        "name": a.name,
                        "interactive": a.session.as_ref().map(|s| json!(s.interactive)),
                        "delegate": if a.delegate.is_empty() { Value::Null } else { json!(a.delegate) },
                        "max_sessions": a.session.as_ref().map(|s| s.max_sessions),
                    })
                })
                .collect();
            ok(200, json!({"total": types.len(), "agent_types": types}))
        }
        _ => Err(HttpError::not_found("not a catalog route")),
    }
}
