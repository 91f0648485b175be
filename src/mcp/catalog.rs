//! The tool list of [`super::tools`]: one tool per `mcp: true` task (its
//! `inputSchema` generated from the task's `inputs`), then the built-ins,
//! with their input and output JSON Schemas.

use super::tools::{
    DEFAULT_WAIT_MS, MAX_PAGE_BYTES, MAX_WAIT_MS, Tool, ToolKind, tool_name_of_task,
};
use crate::config::ExecConfig;
use crate::config::mcp_inputs::{InputSpec, McpApproval};
use serde_json::{Map, Value, json};

pub(super) fn execution_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "execution_id": {"type": "string"},
            "task": {"type": "string"},
            "status": {"type": "string", "enum": ["pending","starting","running","completed","failed","timeout","cancelled","lost"]},
            "finished": {"type": "boolean"},
            "exit_code": {"type": ["integer", "null"]},
            "duration_ms": {"type": ["integer", "null"]},
            "output_bytes": {"type": "integer"},
            "output_tail": {"type": "string"},
            "output_url": {"type": "string"},
            "error": {"type": ["string", "null"]},
            "code": {"type": "string"}
        },
        "required": ["status"]
    })
}

fn wait_ms_schema() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": MAX_WAIT_MS,
           "description": format!("how long to wait for the run to finish before returning its execution_id, milliseconds (default {DEFAULT_WAIT_MS})")})
}

fn input_schema_of(inputs: &[InputSpec]) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for i in inputs {
        let mut p = Map::new();
        p.insert("type".into(), json!(i.kind.as_str()));
        if let Some(d) = &i.description {
            p.insert("description".into(), json!(d));
        }
        if let Some(e) = &i.allowed {
            p.insert("enum".into(), json!(e));
        }
        props.insert(i.name.clone(), Value::Object(p));
        if i.required {
            required.push(i.name.clone());
        }
    }
    if !props.contains_key("wait_ms") {
        props.insert("wait_ms".into(), wait_ms_schema());
    }
    json!({"type": "object", "properties": props, "required": required})
}

/// Every tool (before scope filtering; the agent tools only with `agents`): task tools sorted by name, then the
/// built-ins. A task whose tool name collides with a built-in or an earlier
/// task is left out (and logged at debug level).
pub fn catalog(exec: &ExecConfig, agents: bool) -> Vec<Tool> {
    let mut out = builtins(exec);
    if agents {
        out.extend(agent_tools());
    }
    for t in exec.tasks.values().filter(|t| t.mcp) {
        let name = tool_name_of_task(&t.name);
        if out.iter().any(|x| x.name == name) {
            log::debug!(
                "task '{}' is not an MCP tool: its name '{name}' is taken",
                t.name
            );
            continue;
        }
        let mut desc = t
            .description
            .clone()
            .unwrap_or_else(|| format!("Run the task '{}'.", t.name));
        if t.mcp_approval == McpApproval::Always {
            desc.push_str(" Each call waits for a person's approval first.");
        }
        out.push(Tool {
            name,
            description: desc,
            input_schema: input_schema_of(&t.inputs),
            output_schema: execution_schema(),
            kind: ToolKind::Task(t.name.clone()),
        });
    }
    out
}

fn builtins(exec: &ExecConfig) -> Vec<Tool> {
    let agent_types: Vec<&String> = exec.agents.keys().collect();
    let mut agent_type =
        json!({"type": "string", "description": "agent type from the daemon's config"});
    if !agent_types.is_empty() {
        agent_type["enum"] = json!(agent_types);
    }
    vec![
        Tool {
            name: "run_task".into(),
            description: "Run any registered task of the orchestratr config; returns its result, or its execution_id when it runs longer than wait_ms.".into(),
            input_schema: json!({"type": "object", "properties": {
                "task": {"type": "string", "description": "task name"},
                "inputs": {"type": "object", "description": "values of the task's declared inputs"},
                "args": {"type": "array", "items": {"type": "string"}, "description": "extra argv elements (tasks with allow_args only)"},
                "cwd": {"type": "string", "description": "working directory inside a configured workspace"},
                "timeout_ms": {"type": "integer", "minimum": 1},
                "wait_ms": wait_ms_schema()
            }, "required": ["task"]}),
            output_schema: execution_schema(),
            kind: ToolKind::RunTask,
        },
        Tool {
            name: "get_execution".into(),
            description: "The status of an execution; with wait_ms, waits for it to finish.".into(),
            input_schema: json!({"type": "object", "properties": {
                "execution_id": {"type": "string"},
                "wait_ms": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_MS, "description": "wait this long for the run to finish (default 0)"}
            }, "required": ["execution_id"]}),
            output_schema: execution_schema(),
            kind: ToolKind::GetExecution,
        },
        Tool {
            name: "execution_output".into(),
            description: "A page of an execution's combined stdout+stderr log.".into(),
            input_schema: json!({"type": "object", "properties": {
                "execution_id": {"type": "string"},
                "offset": {"type": "integer", "minimum": 0, "description": "byte offset (default: the last `limit` bytes)"},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_BYTES}
            }, "required": ["execution_id"]}),
            output_schema: json!({"type": "object", "properties": {
                "execution_id": {"type": "string"}, "offset": {"type": "integer"},
                "next_offset": {"type": "integer"}, "output_bytes": {"type": "integer"},
                "text": {"type": "string"}, "output_url": {"type": "string"},
                "error": {"type": "string"}, "code": {"type": "string"}
            }}),
            kind: ToolKind::ExecutionOutput,
        },
        Tool {
            name: "cancel_execution".into(),
            description: "Cancel a pending or running execution.".into(),
            input_schema: json!({"type": "object", "properties": {"execution_id": {"type": "string"}}, "required": ["execution_id"]}),
            output_schema: execution_schema(),
            kind: ToolKind::CancelExecution,
        },
        Tool {
            name: "delegate".into(),
            description: "Delegate a coding task to a configured agent (runs it non-interactively); returns its result or its execution_id.".into(),
            input_schema: json!({"type": "object", "properties": {
                "agent_type": agent_type,
                "task": {"type": "string", "description": "what to do"},
                "context": {"type": "object", "description": "files, requirements, … rendered as text after the task"},
                "working_dir": {"type": "string"},
                "timeout_ms": {"type": "integer", "minimum": 1},
                "wait_ms": wait_ms_schema()
            }, "required": ["agent_type", "task"]}),
            output_schema: execution_schema(),
            kind: ToolKind::Delegate,
        },
        Tool {
            name: "ask_human".into(),
            description: "Ask the person at this machine a question (an approval any of their clients can answer) and wait for the answer.".into(),
            input_schema: json!({"type": "object", "properties": {
                "question": {"type": "string"},
                "detail": {"type": "string"},
                "options": {"type": "array", "items": {"type": "string"}, "description": "default [\"approve\", \"deny\"]"},
                "timeout_ms": {"type": "integer", "minimum": 1, "description": "when the question expires (then its default applies)"}
            }, "required": ["question"]}),
            output_schema: json!({"type": "object", "properties": {
                "approval_id": {"type": "string"}, "status": {"type": "string"},
                "decision": {"type": ["string", "null"]}, "comment": {"type": ["string", "null"]},
                "decided_by": {"type": ["string", "null"]},
                "error": {"type": "string"}, "code": {"type": "string"}
            }}),
            kind: ToolKind::AskHuman,
        },
    ]
}

fn agent_tools() -> Vec<Tool> {
    let id = json!({"type": "string", "description": "the agent's session_id"});
    vec![
        Tool {
            name: "list_agents".into(),
            description: "List the interactive agent sessions (tmux) and their status.".into(),
            input_schema: json!({"type": "object", "properties": {}}),
            output_schema: json!({"type": "object", "properties": {"agents": {"type": "array"}, "total": {"type": "integer"}}}),
            kind: ToolKind::ListAgents,
        },
        Tool {
            name: "agent_screen".into(),
            description: "The visible screen of an agent session, as text.".into(),
            input_schema: json!({"type": "object", "properties": {"session_id": id}, "required": ["session_id"]}),
            output_schema: json!({"type": "object", "properties": {"text": {"type": "string"}, "cols": {"type": "integer"}, "rows": {"type": "integer"}}}),
            kind: ToolKind::AgentScreen,
        },
        Tool {
            name: "send_to_agent".into(),
            description: "Type text into an agent session (pasted literally, then Enter unless submit is false).".into(),
            input_schema: json!({"type": "object", "properties": {
                "session_id": id, "text": {"type": "string"}, "submit": {"type": "boolean", "default": true}
            }, "required": ["session_id", "text"]}),
            output_schema: json!({"type": "object", "properties": {"status": {"type": "string"}}}),
            kind: ToolKind::SendToAgent,
        },
    ]
}
