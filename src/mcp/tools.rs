// Why this file is past ~600 lines: only with its unit tests (~650 lines of code: each built-in tool's schema sits next to its call).
//! The MCP tool catalog (API.md §13): one tool per task with `mcp: true`, plus
//! the built-ins `run_task`, `get_execution`, `execution_output`,
//! `cancel_execution`, `delegate` and `ask_human`. Served the same way over
//! MCP `tools/call` and over plain `POST /tools/{name}`.
//!
//! A call may block (waiting for a run up to `wait_ms`, or for a person's
//! approval); callers run it off the HTTP worker threads.
//!
//! Scope filtering (API.md §12) is [`visible`]: a tool is listed and callable
//! only when the caller's scopes include [`tool_scope`] (or `admin`); `None`
//! means the admin token (everything visible). The tool list and JSON
//! Schemas are in `catalog.rs`; this file (~600 lines) keeps the call logic
//! of every tool kind together.

pub use super::catalog::catalog;

use crate::approvals::{Approval, Approvals, NewApproval, Status, WaitResult};
use crate::config::mcp_inputs::{McpApproval, positional_args};
use crate::config::{ExecConfig, TaskSpec};
use crate::executor::output;
use crate::executor::{ExecError, ExecHandle, Executor, SubmitSpec};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default of a call's `wait_ms`: how long a call waits for its run to finish
/// before it returns the execution id (milliseconds).
pub const DEFAULT_WAIT_MS: u64 = 30_000;
/// Largest accepted `wait_ms`.
pub const MAX_WAIT_MS: u64 = 600_000;
/// Lines of output in a result's `output_tail`.
pub const TAIL_LINES: usize = 40;
/// Largest `output_tail`, bytes.
pub const TAIL_BYTES: usize = 8 * 1024;
/// Largest `execution_output` page, bytes.
pub const MAX_PAGE_BYTES: u64 = 256 * 1024;

/// What a tool does when called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolKind {
    /// A task with `mcp: true` (the task's name).
    Task(String),
    /// `run_task`.
    RunTask,
    /// `get_execution`.
    GetExecution,
    /// `execution_output`.
    ExecutionOutput,
    /// `cancel_execution`.
    CancelExecution,
    /// `delegate`.
    Delegate,
    /// `ask_human`.
    AskHuman,
    /// `list_agents` (needs [`Backend::agents`]).
    ListAgents,
    /// `agent_screen` (needs [`Backend::agents`]).
    AgentScreen,
    /// `send_to_agent` (needs [`Backend::agents`]).
    SendToAgent,
}

/// What the agent built-ins need from the agents part (API.md §10). The
/// HTTP layer passes an implementation once agents exist; without one the
/// three agent tools are not listed. Errors: `(code, message)` with the
/// API's error code (`not_found`, `not_running`, …).
pub trait AgentsApi: Send + Sync {
    /// `GET /agents` → `{"agents":[Agent],"total":n}`.
    fn list(&self) -> Result<Value, (String, String)>;
    /// `GET /agents/{id}/screen` → `{"text","cols","rows","cursor"}`.
    fn screen(&self, session_id: &str) -> Result<Value, (String, String)>;
    /// `POST /agents/{id}/input` with `{"text","submit"}` → `{"status":"sent"}`.
    fn send(&self, session_id: &str, text: &str, submit: bool) -> Result<Value, (String, String)>;
}

/// One tool as MCP `tools/list` describes it.
#[derive(Debug, Clone)]
pub struct Tool {
    /// `[A-Za-z0-9_-]{1,64}` (a task's `.` becomes `_`).
    pub name: String,
    /// Human text for the model.
    pub description: String,
    /// JSON Schema of the arguments.
    pub input_schema: Value,
    /// JSON Schema of `structuredContent`.
    pub output_schema: Value,
    /// What it does.
    pub kind: ToolKind,
}

impl Tool {
    /// The MCP `Tool` object.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "title": self.name.replace('_', " "),
            "description": self.description,
            "inputSchema": self.input_schema,
            "outputSchema": self.output_schema,
            "annotations": {
                "readOnlyHint": tool_scope(self) == "read",
                "openWorldHint": false,
            },
        })
    }
}

/// The scope a caller needs to see and call `t` (API.md §12 scope names).
pub fn tool_scope(t: &Tool) -> &'static str {
    match t.kind {
        ToolKind::GetExecution
        | ToolKind::ExecutionOutput
        | ToolKind::ListAgents
        | ToolKind::AgentScreen => "read",
        ToolKind::SendToAgent => "agents",
        ToolKind::AskHuman => "approve",
        ToolKind::Task(_) | ToolKind::RunTask | ToolKind::CancelExecution | ToolKind::Delegate => {
            "execute"
        }
    }
}

/// Is `t` visible to a caller holding `scopes`? `None` = the admin token.
pub fn visible(t: &Tool, scopes: Option<&[&str]>) -> bool {
    scopes.is_none_or(|s| s.contains(&"admin") || s.contains(&tool_scope(t)))
}

/// What tools reach: actor handles, the task table, and the public base URL
/// for links (`http://127.0.0.1:<port>`).
#[derive(Clone)]
pub struct Backend {
    /// Executor actor.
    pub executor: Executor,
    /// Approvals actor.
    pub approvals: Approvals,
    /// Tasks and agents as currently configured.
    pub exec: Arc<ExecConfig>,
    /// Base URL of links in results.
    pub base_url: String,
    /// The agents part, when wired (see [`AgentsApi`]).
    pub agents: Option<Arc<dyn AgentsApi>>,
    /// The caller's scopes (`None` = every scope: the admin token or `auth: none`).
    pub scopes: Option<Vec<&'static str>>,
    /// Where tool calls are audited (API.md §12), if anywhere.
    pub audit: Option<AuditSink>,
}

/// Receives one audit record per tool call: `(tool name, outcome, detail)`,
/// where detail is `{"via","args_len","args_sha256"}` (never the arguments).
pub type AuditSink = Arc<dyn Fn(&str, &str, &Value) + Send + Sync>;

/// A progress report while a call waits: `(progress, message)`; progress is
/// monotonic (output bytes, or seconds waited for an approval).
pub type ProgressFn<'a> = &'a mut dyn FnMut(f64, &str);

/// The result of one call (MCP `CallToolResult`).
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `structuredContent`.
    pub structured: Value,
    /// The text content block.
    pub text: String,
    /// `isError`.
    pub is_error: bool,
}

impl Outcome {
    fn error(msg: impl Into<String>, code: &str) -> Outcome {
        let msg = msg.into();
        Outcome {
            structured: json!({"error": msg, "code": code}),
            text: msg,
            is_error: true,
        }
    }
    /// The MCP `CallToolResult` object.
    pub fn to_json(&self) -> Value {
        json!({
            "content": [{"type": "text", "text": self.text}],
            "structuredContent": self.structured,
            "isError": self.is_error,
        })
    }
}

/// Map `.` (allowed in task names) to `_` (MCP tool names: `[A-Za-z0-9_-]`).
pub fn tool_name_of_task(task: &str) -> String {
    task.replace('.', "_")
}

fn exec_code(e: &ExecError) -> &'static str {
    match e {
        ExecError::UnknownTask(_) | ExecError::NotFound(_) => "not_found",
        ExecError::UnknownAgent(_) | ExecError::NoDelegate(_) => "bad_request",
        ExecError::ArgsNotAllowed(_) => "unprocessable",
        ExecError::Forbidden(_) => "forbidden",
        ExecError::QueueFull { .. } => "queue_full",
        ExecError::ShuttingDown | ExecError::Closed => "unavailable",
        ExecError::Finished(_) | ExecError::NotRetryable(_) => "conflict",
    }
}

fn args_obj(args: &Value) -> Result<&Map<String, Value>, Outcome> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    match args {
        Value::Null => Ok(EMPTY.get_or_init(Map::new)),
        Value::Object(m) => Ok(m),
        _ => Err(Outcome::error(
            "arguments must be a JSON object",
            "bad_request",
        )),
    }
}

fn opt_u64(o: &Map<String, Value>, k: &str) -> Result<Option<u64>, Outcome> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            Outcome::error(
                format!("argument '{k}' must be a non-negative integer"),
                "bad_request",
            )
        }),
    }
}

fn opt_str<'a>(o: &'a Map<String, Value>, k: &str) -> Result<Option<&'a str>, Outcome> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Outcome::error(
            format!("argument '{k}' must be a string"),
            "bad_request",
        )),
    }
}

fn req_str<'a>(o: &'a Map<String, Value>, k: &str) -> Result<&'a str, Outcome> {
    opt_str(o, k)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Outcome::error(format!("missing required argument '{k}'"), "bad_request"))
}

fn wait_of(o: &Map<String, Value>, default: u64) -> Result<Duration, Outcome> {
    let w = opt_u64(o, "wait_ms")?.unwrap_or(default).min(MAX_WAIT_MS);
    Ok(Duration::from_millis(w))
}

/// Call `tool` with `args` (a JSON object or `null`). Blocks while the run
/// or an approval is awaited; reports progress through `progress`.
pub fn call(b: &Backend, tool: &Tool, args: &Value, progress: ProgressFn) -> Outcome {
    match run(b, tool, args, progress) {
        Ok(o) | Err(o) => o,
    }
}

fn run(b: &Backend, tool: &Tool, args: &Value, progress: ProgressFn) -> Result<Outcome, Outcome> {
    let o = args_obj(args)?;
    match &tool.kind {
        ToolKind::Task(name) => {
            let t = task(b, name)?;
            let positional = positional_args(&t.inputs, Some(args))
                .map_err(|e| Outcome::error(e, "bad_request"))?;
            submit_task(
                b,
                &t,
                positional,
                None,
                None,
                wait_of(o, DEFAULT_WAIT_MS)?,
                args,
                progress,
            )
        }
        ToolKind::RunTask => {
            let name = req_str(o, "task")?;
            let t = task(b, name)?;
            let mut positional = positional_args(&t.inputs, o.get("inputs"))
                .map_err(|e| Outcome::error(e, "bad_request"))?;
            match o.get("args") {
                None | Some(Value::Null) => {}
                Some(Value::Array(a)) => {
                    for x in a {
                        let s = x.as_str().ok_or_else(|| {
                            Outcome::error(
                                "argument 'args' must be an array of strings",
                                "bad_request",
                            )
                        })?;
                        positional.push(s.to_string());
                    }
                }
                Some(_) => {
                    return Err(Outcome::error(
                        "argument 'args' must be an array of strings",
                        "bad_request",
                    ));
                }
            }
            let cwd = opt_str(o, "cwd")?.map(str::to_string);
            let timeout = opt_u64(o, "timeout_ms")?.filter(|t| *t > 0);
            submit_task(
                b,
                &t,
                positional,
                cwd,
                timeout,
                wait_of(o, DEFAULT_WAIT_MS)?,
                args,
                progress,
            )
        }
        ToolKind::GetExecution => {
            let id = req_str(o, "execution_id")?;
            let h = wait_execution(b, id, wait_of(o, 0)?, progress)?;
            Ok(exec_outcome(b, &h))
        }
        ToolKind::ExecutionOutput => {
            let id = req_str(o, "execution_id")?;
            let h = handle(b, id)?;
            let len = h.output.len();
            let limit = opt_u64(o, "limit")?
                .unwrap_or(64 * 1024)
                .clamp(1, MAX_PAGE_BYTES);
            let offset = opt_u64(o, "offset")?
                .unwrap_or(len.saturating_sub(limit))
                .min(len);
            let n = (len - offset).min(limit) as usize;
            let bytes = if n == 0 {
                Vec::new()
            } else {
                output::read_at(h.output.path(), offset, n)
                    .map_err(|e| Outcome::error(format!("cannot read output: {e}"), "internal"))?
            };
            let text = String::from_utf8_lossy(&bytes).into_owned();
            Ok(Outcome {
                structured: json!({"execution_id": id, "offset": offset, "next_offset": offset + n as u64,
                    "output_bytes": len, "text": text, "output_url": output_url(b, id)}),
                text,
                is_error: false,
            })
        }
        ToolKind::CancelExecution => {
            let id = req_str(o, "execution_id")?;
            b.executor
                .cancel(id)
                .map_err(|e| Outcome::error(e.to_string(), exec_code(&e)))?;
            let h = handle(b, id)?;
            Ok(exec_outcome(b, &h))
        }
        ToolKind::Delegate => {
            let agent = req_str(o, "agent_type")?.to_string();
            let text = req_str(o, "task")?;
            let context = match o.get("context") {
                None | Some(Value::Null) => None,
                Some(Value::Object(m)) => Some(m),
                Some(_) => {
                    return Err(Outcome::error(
                        "argument 'context' must be an object",
                        "bad_request",
                    ));
                }
            };
            let spec = SubmitSpec::Delegate {
                agent,
                prompt: crate::http::executions::render_prompt(text, context),
                cwd: opt_str(o, "working_dir")?.map(str::to_string),
                timeout_ms: opt_u64(o, "timeout_ms")?.filter(|t| *t > 0),
            };
            let e = b
                .executor
                .submit(spec)
                .map_err(|e| Outcome::error(e.to_string(), exec_code(&e)))?;
            let h = wait_execution(b, &e.id, wait_of(o, DEFAULT_WAIT_MS)?, progress)?;
            Ok(exec_outcome(b, &h))
        }
        ToolKind::ListAgents | ToolKind::AgentScreen | ToolKind::SendToAgent => {
            let api = b
                .agents
                .as_ref()
                .ok_or_else(|| Outcome::error("agents are not available", "unavailable"))?;
            let res = match &tool.kind {
                ToolKind::ListAgents => api.list(),
                ToolKind::AgentScreen => api.screen(req_str(o, "session_id")?),
                _ => {
                    let submit = o.get("submit").and_then(Value::as_bool).unwrap_or(true);
                    api.send(req_str(o, "session_id")?, req_str(o, "text")?, submit)
                }
            };
            let v = res.map_err(|(code, msg)| Outcome::error(msg, &code))?;
            let text = match (&tool.kind, v.get("text").and_then(Value::as_str)) {
                (ToolKind::AgentScreen, Some(t)) => t.to_string(),
                _ => v.to_string(),
            };
            Ok(Outcome {
                structured: v,
                text,
                is_error: false,
            })
        }
        ToolKind::AskHuman => {
            let options = match o.get("options") {
                None | Some(Value::Null) => None,
                Some(Value::Array(a)) => Some(
                    a.iter()
                        .map(|x| x.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| {
                            Outcome::error(
                                "argument 'options' must be an array of strings",
                                "bad_request",
                            )
                        })?,
                ),
                Some(_) => {
                    return Err(Outcome::error(
                        "argument 'options' must be an array of strings",
                        "bad_request",
                    ));
                }
            };
            let req = NewApproval {
                title: req_str(o, "question")?.to_string(),
                detail: opt_str(o, "detail")?.map(str::to_string),
                source: Some("mcp".into()),
                options,
                default: None,
                timeout_ms: opt_u64(o, "timeout_ms")?.filter(|t| *t > 0),
                context: Some(json!({"via": "mcp", "tool": "ask_human"})),
            };
            let a = b
                .approvals
                .create(req)
                .map_err(|e| Outcome::error(e.to_string(), "bad_request"))?;
            let a = wait_approval(b, a, progress)?;
            Ok(Outcome {
                structured: json!({"approval_id": a.id, "status": a.status, "decision": a.decision,
                    "comment": a.comment, "decided_by": a.decided_by}),
                text: format!(
                    "{}: {}{}",
                    a.status.as_str(),
                    a.decision.as_deref().unwrap_or("-"),
                    a.comment
                        .as_deref()
                        .map(|c| format!(" ({c})"))
                        .unwrap_or_default()
                ),
                is_error: false,
            })
        }
    }
}

fn task(b: &Backend, name: &str) -> Result<TaskSpec, Outcome> {
    b.exec
        .tasks
        .get(name)
        .cloned()
        .ok_or_else(|| Outcome::error(format!("no task named '{name}'"), "not_found"))
}

fn handle(b: &Backend, id: &str) -> Result<ExecHandle, Outcome> {
    b.executor
        .get(id)
        .ok_or_else(|| Outcome::error(format!("no execution '{id}'"), "not_found"))
}

#[allow(clippy::too_many_arguments)]
fn submit_task(
    b: &Backend,
    t: &TaskSpec,
    args: Vec<String>,
    cwd: Option<String>,
    timeout_ms: Option<u64>,
    wait: Duration,
    raw_args: &Value,
    progress: ProgressFn,
) -> Result<Outcome, Outcome> {
    if t.mcp_approval == McpApproval::Always {
        let detail = serde_json::to_string_pretty(raw_args).unwrap_or_default();
        let detail: String = detail.chars().take(2000).collect();
        let req = NewApproval {
            title: format!("Run task '{}' for an MCP client?", t.name),
            detail: Some(detail),
            source: Some("mcp".into()),
            options: None,
            default: None,
            timeout_ms: None,
            context: Some(json!({"via": "mcp", "task": t.name, "arguments": raw_args})),
        };
        let a = b
            .approvals
            .create(req)
            .map_err(|e| Outcome::error(e.to_string(), "unavailable"))?;
        let a = wait_approval(b, a, progress)?;
        if a.status != Status::Approved {
            let who = a.decided_by.as_deref().unwrap_or("nobody");
            return Err(Outcome {
                structured: json!({"status": "cancelled", "error": format!("not approved ({}, by {who})", a.status.as_str()),
                                   "code": "forbidden", "approval_id": a.id}),
                text: format!(
                    "the call was not approved ({} by {who}); nothing ran",
                    a.status.as_str()
                ),
                is_error: true,
            });
        }
    }
    let spec = SubmitSpec::Task {
        task: t.name.clone(),
        args,
        cwd,
        timeout_ms,
    };
    let e = b
        .executor
        .submit(spec)
        .map_err(|e| Outcome::error(e.to_string(), exec_code(&e)))?;
    let h = wait_execution(b, &e.id, wait, progress)?;
    Ok(exec_outcome(b, &h))
}

/// Wait until an approval is no longer pending (in chunks of the approvals
/// actor's longest wait), reporting seconds waited as progress.
fn wait_approval(b: &Backend, a: Approval, progress: ProgressFn) -> Result<Approval, Outcome> {
    let started = Instant::now();
    let mut current = a;
    progress(0.0, &format!("waiting for approval {}", current.id));
    while current.status == Status::Pending {
        let (tx, rx) = crossbeam_channel::bounded(1);
        b.approvals.wait(
            &current.id,
            Duration::from_secs(crate::approvals::MAX_WAIT_S),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        match rx.recv() {
            Ok(WaitResult::Ready(a)) => current = *a,
            Ok(WaitResult::NotFound) => {
                return Err(Outcome::error(
                    format!("approval '{}' vanished", current.id),
                    "not_found",
                ));
            }
            Ok(WaitResult::Closed) | Err(_) => {
                return Err(Outcome::error("the daemon is shutting down", "unavailable"));
            }
        }
        progress(
            started.elapsed().as_secs_f64(),
            &format!("waiting for approval {}", current.id),
        );
    }
    Ok(current)
}

/// Wait up to `wait` for execution `id` to finish; progress = output bytes.
fn wait_execution(
    b: &Backend,
    id: &str,
    wait: Duration,
    progress: ProgressFn,
) -> Result<ExecHandle, Outcome> {
    let h = handle(b, id)?;
    let deadline = Instant::now() + wait;
    let out = h.output.clone();
    let mut v = out.view();
    let mut last_report = Instant::now();
    while !v.finished && !v.snapshot.status.is_final() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let nv = out.wait(
            v.len,
            v.version,
            (deadline - now).min(Duration::from_secs(1)),
        );
        if (nv.len != v.len || nv.version != v.version)
            && last_report.elapsed() >= Duration::from_millis(200)
        {
            progress(
                nv.len as f64,
                &format!("{} {}", id, nv.snapshot.status.as_str()),
            );
            last_report = Instant::now();
        }
        v = nv;
    }
    handle(b, id)
}

fn output_url(b: &Backend, id: &str) -> String {
    format!("{}/executions/{id}/output", b.base_url)
}

/// The last [`TAIL_LINES`] lines, at most [`TAIL_BYTES`] bytes, of a log.
fn tail(path: &std::path::Path) -> String {
    let t = output::tail_lines(path, TAIL_LINES);
    if t.len() <= TAIL_BYTES {
        return t;
    }
    let mut start = t.len() - TAIL_BYTES;
    while !t.is_char_boundary(start) {
        start += 1;
    }
    t[start..].to_string()
}

/// The result of an execution as a tool result (`isError` on a final status
/// other than `completed`).
pub fn exec_outcome(b: &Backend, h: &ExecHandle) -> Outcome {
    let e = &h.exec;
    let finished = e.status.is_final();
    let tail = tail(h.output.path());
    let url = output_url(b, &e.id);
    let structured = json!({
        "execution_id": e.id, "task": e.task, "status": e.status, "finished": finished,
        "exit_code": e.exit_code, "duration_ms": e.duration_ms, "output_bytes": e.output_bytes,
        "output_tail": tail, "output_url": url, "error": e.error,
    });
    let text = if finished {
        let exit = match (e.exit_code, e.signal) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("signal {s}"),
            _ => e.error.clone().unwrap_or_else(|| "no exit code".into()),
        };
        format!(
            "{} {} ({exit}) in {} ms; execution_id {}\n--- output (tail) ---\n{tail}\n--- full output: {url}",
            e.task,
            e.status.as_str(),
            e.duration_ms.unwrap_or(0),
            e.id
        )
    } else {
        format!(
            "{} is still {} (execution_id {}); call get_execution with wait_ms to wait for it, execution_output for its log ({url})",
            e.task,
            e.status.as_str(),
            e.id
        )
    };
    Outcome {
        structured,
        text,
        is_error: finished && e.status != crate::executor::record::ExecStatus::Completed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names_are_valid_mcp_tool_names() {
        for t in catalog(&ExecConfig::default(), false) {
            assert!(t.name.len() <= 64);
            assert!(
                t.name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
            );
        }
        assert_eq!(tool_name_of_task("a.b-c"), "a_b-c");
    }

    #[test]
    fn scopes_filter_tools() {
        let c = catalog(&ExecConfig::default(), false);
        let read: Vec<_> = c
            .iter()
            .filter(|t| visible(t, Some(&["read"])))
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(read, vec!["get_execution", "execution_output"]);
        assert!(c.iter().all(|t| visible(t, None)));
        let with_agents = catalog(&ExecConfig::default(), true);
        let agents: Vec<_> = with_agents
            .iter()
            .filter(|t| visible(t, Some(&["agents"])))
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(agents, vec!["send_to_agent"]);
        assert!(
            with_agents
                .iter()
                .any(|t| t.name == "list_agents" && tool_scope(t) == "read")
        );
        assert!(c.iter().all(|t| visible(t, Some(&["admin"]))));
    }
}
