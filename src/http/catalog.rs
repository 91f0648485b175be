//! `GET /tasks` and `GET /agent-types` (API.md §13): what is registered, for
//! submit forms (the dashboard's, other clients'). Read from the config files
//! the registry loaded (`<cfg>/config.yml`); when the file on disk is invalid
//! the last valid catalog is served, so a bad save never empties the form.

use super::router::RouteId;
use super::{Call, Ctx, HResult, HttpError, ok};
use crate::config::{CommandSpec, ExecConfig};
use serde_json::{Value, json};
use std::sync::Mutex;

/// The last catalog read from a valid config: (fingerprint, exec config).
static LAST_GOOD: Mutex<Option<(u64, ExecConfig)>> = Mutex::new(None);

fn exec_config(ctx: &Ctx) -> Result<ExecConfig, HttpError> {
    let (fp, loaded) = crate::config::load_with_fingerprint(&ctx.config_dir);
    let mut last = LAST_GOOD.lock().unwrap_or_else(|p| p.into_inner());
    match loaded {
        Ok(cfg) => {
            *last = Some((fp, cfg.exec.clone()));
            Ok(cfg.exec)
        }
        Err(e) => match last.as_ref() {
            Some((_, good)) => Ok(good.clone()),
            None => Err(HttpError::new(
                422,
                "invalid_config",
                format!("cannot read the task catalog: {e}"),
            )),
        },
    }
}

fn command(c: &CommandSpec) -> Value {
    match c {
        CommandSpec::Shell(s) => json!(s),
        CommandSpec::Argv(v) => json!(v),
    }
}

/// Serve `GET /tasks` or `GET /agent-types`. Other route ids answer `404`.
///
/// `/tasks` → `{"tasks":[{"name","description","command","pool","allow_args","mcp"}],"total":n}`
/// sorted by name; `description` is `null` and `mcp` is `false` until the
/// config carries them. `/agent-types` →
/// `{"agent_types":[{"name","interactive","delegate","max_sessions"}],"total":n}`;
/// `interactive`/`max_sessions` are `null` until the agents config lands.
pub fn route(ctx: &Ctx, id: RouteId, _c: &Call) -> HResult {
    let cfg = exec_config(ctx)?;
    match id {
        RouteId::ListTasks => {
            let tasks: Vec<Value> = cfg
                .tasks
                .values()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "description": Value::Null,
                        "command": command(&t.command),
                        "pool": t.pool,
                        "allow_args": t.allow_args,
                        "mcp": false,
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
                        "interactive": Value::Null,
                        "delegate": if a.delegate.is_empty() { Value::Null } else { json!(a.delegate) },
                        "max_sessions": Value::Null,
                    })
                })
                .collect();
            ok(200, json!({"total": types.len(), "agent_types": types}))
        }
        _ => Err(HttpError::not_found("not a catalog route")),
    }
}
