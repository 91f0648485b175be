//! Config of executions (API.md §7): `tasks`, `pools`, `agents`, `workspaces`,
//! `shutdown_timeout_ms`. Validated with positions like the rest of `config.yml`.

use super::ranges::{self, Num, to_usize};
use super::{Diagnostic, diag_at, valid_app_name};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::path::Path;

/// How a task's command runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CommandSpec {
    /// A string: run by `/bin/sh -c`; request `args` become `"$@"` (never
    /// interpolated into the text).
    Shell(String),
    /// An argv: executed directly, no shell.
    Argv(Vec<String>),
}

impl CommandSpec {
    /// The argv to execute, with `args` appended (argv form) or passed as
    /// positional parameters (`sh -c cmd sh args…`, shell form).
    pub fn argv(&self, args: &[String]) -> Vec<String> {
        match self {
            CommandSpec::Argv(v) => v.iter().cloned().chain(args.iter().cloned()).collect(),
            CommandSpec::Shell(s) => {
                let mut v = vec!["/bin/sh".to_string(), "-c".to_string(), s.clone()];
                if !args.is_empty() {
                    v.push("sh".to_string());
                    v.extend(args.iter().cloned());
                }
                v
            }
        }
    }
}

/// A registered task (API.md §7 `tasks:`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskSpec {
    /// `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`.
    pub name: String,
    /// The command.
    pub command: CommandSpec,
    /// Working directory (`~` expanded); default: the user's home.
    pub cwd: Option<String>,
    /// Extra environment. Not exposed by the API.
    #[serde(skip)]
    pub env: BTreeMap<String, String>,
    /// Run time limit, milliseconds; `None` = no limit.
    pub timeout_ms: Option<u64>,
    /// Pool name (default `default`).
    pub pool: String,
    /// Whether a request may append argv elements (always `true` for a task
    /// with `inputs`: they travel as positional args, see `mcp_inputs`).
    pub allow_args: bool,
    /// Free text (`description:`), shown as the MCP tool's description.
    pub description: Option<String>,
    /// `mcp: true` exposes the task as an MCP tool (API.md §13).
    pub mcp: bool,
    /// Typed inputs, sorted by name; each `{name}` fills one argv element.
    pub inputs: Vec<super::mcp_inputs::InputSpec>,
    /// `mcp_approval: always` holds each MCP call for a person's approval.
    pub mcp_approval: super::mcp_inputs::McpApproval,
}

/// Concurrency limits of a pool (API.md §7 `pools:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolSpec {
    /// Runs at the same time (≥ 1; default 2).
    pub max_concurrent: usize,
    /// Pending runs before `429 queue_full` (default 100).
    pub max_queued: usize,
    /// Starts per rolling minute; excess waits in the queue. `None` = unlimited.
    pub starts_per_minute: Option<u32>,
}

impl Default for PoolSpec {
    fn default() -> Self {
        PoolSpec {
            max_concurrent: 2,
            max_queued: 100,
            starts_per_minute: None,
        }
    }
}

/// A coding agent that tasks can be delegated to (API.md §7 `agents:`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentSpec {
    /// Agent type, as named in `POST /delegate` `agent_type`.
    pub name: String,
    /// argv template; `{prompt}` inside an element is replaced by the prompt, so
    /// the prompt is always part of exactly one argv element.
    pub delegate: Vec<String>,
    /// Pool (default `default`).
    pub pool: String,
    /// Extra environment. Not exposed by the API.
    #[serde(skip)]
    pub env: BTreeMap<String, String>,
    /// Default time limit, milliseconds.
    pub timeout_ms: Option<u64>,
    /// Interactive sessions of this type (API.md §10); `None` without `interactive`.
    pub session: Option<super::agents::SessionSpec>,
}

/// Everything executions need from the config.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecConfig {
    /// Tasks by name.
    pub tasks: BTreeMap<String, TaskSpec>,
    /// Pools by name; always contains `default`.
    pub pools: BTreeMap<String, PoolSpec>,
    /// Agents by type name.
    pub agents: BTreeMap<String, AgentSpec>,
    /// Roots a request may choose a working dir under (as written; `~` allowed).
    pub workspaces: Vec<String>,
    /// Grace for running executions at daemon shutdown, milliseconds (default 30000).
    pub shutdown_timeout_ms: u64,
}

impl Default for ExecConfig {
    fn default() -> Self {
        let mut pools = BTreeMap::new();
        pools.insert("default".to_string(), PoolSpec::default());
        ExecConfig {
            tasks: BTreeMap::new(),
            pools,
            agents: BTreeMap::new(),
            workspaces: Vec::new(),
            shutdown_timeout_ms: 30_000,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct RawTask {
    name: Spanned<String>,
    command: Spanned<CommandSpec>,
    cwd: Option<String>,
    env: Option<BTreeMap<String, String>>,
    timeout_ms: Option<Spanned<Num>>,
    pool: Option<Spanned<String>>,
    allow_args: Option<bool>,
    description: Option<String>,
    mcp: Option<bool>,
    inputs: Option<BTreeMap<String, Spanned<super::mcp_inputs::RawInput>>>,
    mcp_approval: Option<Spanned<String>>,
}

#[derive(Deserialize)]
pub(super) struct RawPool {
    max_concurrent: Option<Spanned<Num>>,
    max_queued: Option<Spanned<Num>>,
    starts_per_minute: Option<Spanned<Num>>,
}

#[derive(Deserialize)]
pub(super) struct RawAgent {
    delegate: Option<Spanned<Vec<String>>>,
    pool: Option<Spanned<String>>,
    env: Option<BTreeMap<String, String>>,
    timeout_ms: Option<Spanned<Num>>,
    // Interactive sessions (API.md §10), validated in config/agents.rs.
    interactive: Option<Spanned<Vec<String>>>,
    resume: Option<Spanned<Vec<String>>>,
    detect: Option<Spanned<String>>,
    prompt_patterns: Option<Spanned<Vec<String>>>,
    busy_patterns: Option<Spanned<Vec<String>>>,
    idle_after_ms: Option<Spanned<u64>>,
    submit_delay_ms: Option<Spanned<u64>>,
    max_sessions: Option<Spanned<u64>>,
}

impl RawAgent {
    fn session_keys(&self) -> super::agents::RawSession<'_> {
        super::agents::RawSession {
            interactive: &self.interactive,
            resume: &self.resume,
            detect: &self.detect,
            prompt_patterns: &self.prompt_patterns,
            busy_patterns: &self.busy_patterns,
            idle_after_ms: &self.idle_after_ms,
            submit_delay_ms: &self.submit_delay_ms,
            max_sessions: &self.max_sessions,
        }
    }
}

/// The raw `config.yml` keys of executions.
#[derive(Deserialize, Default)]
pub(super) struct RawExec {
    pub tasks: Option<Vec<Spanned<RawTask>>>,
    pub pools: Option<BTreeMap<String, Spanned<RawPool>>>,
    pub agents: Option<BTreeMap<String, Spanned<RawAgent>>>,
    pub workspaces: Option<Vec<String>>,
    pub shutdown_timeout_ms: Option<Spanned<Num>>,
}

/// Validate the execution keys; appends problems to `errs`.
pub(super) fn validate(raw: RawExec, file: &Path, errs: &mut Vec<Diagnostic>) -> ExecConfig {
    let mut out = ExecConfig::default();
    for (name, p) in raw.pools.unwrap_or_default() {
        if !valid_app_name(&name) {
            errs.push(diag_at(file, &p, format!("invalid pool name '{name}'")));
            continue;
        }
        let mut spec = PoolSpec::default();
        let owner = format!("pool '{name}':");
        if let Some(m) = &p.value.max_concurrent {
            let label = format!("{owner} max_concurrent");
            if let Some(v) = ranges::POOL_MAX_CONCURRENT.check(file, m, &label, errs) {
                spec.max_concurrent = to_usize(v);
            }
        }
        if let Some(m) = &p.value.max_queued {
            let label = format!("{owner} max_queued");
            if let Some(v) = ranges::POOL_MAX_QUEUED.check(file, m, &label, errs) {
                spec.max_queued = to_usize(v);
            }
        }
        if let Some(m) = &p.value.starts_per_minute {
            let label = format!("{owner} starts_per_minute");
            if let Some(v) = ranges::POOL_STARTS_PER_MINUTE.check(file, m, &label, errs) {
                spec.starts_per_minute = u32::try_from(v).ok();
            }
        }
        out.pools.insert(name, spec);
    }
    let pool_ok = |p: &Option<Spanned<String>>,
                   owner: &str,
                   errs: &mut Vec<Diagnostic>,
                   pools: &BTreeMap<String, PoolSpec>|
     -> String {
        match p {
            None => "default".to_string(),
            Some(s) => {
                if !pools.contains_key(&s.value) {
                    errs.push(diag_at(
                        file,
                        s,
                        format!("{owner}: unknown pool '{}'", s.value),
                    ));
                }
                s.value.clone()
            }
        }
    };
    for t in raw.tasks.unwrap_or_default() {
        let t = t.value;
        let name = t.name.value.clone();
        if !valid_app_name(&name) {
            errs.push(diag_at(
                file,
                &t.name,
                format!(
                    "invalid task name '{name}': must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,63}}$"
                ),
            ));
            continue;
        }
        if out.tasks.contains_key(&name) {
            errs.push(diag_at(
                file,
                &t.name,
                format!("duplicate task name '{name}'"),
            ));
            continue;
        }
        let empty = match &t.command.value {
            CommandSpec::Shell(s) => s.trim().is_empty(),
            CommandSpec::Argv(v) => v.is_empty() || v[0].is_empty(),
        };
        if empty {
            errs.push(diag_at(
                file,
                &t.command,
                format!("task '{name}': command must not be empty"),
            ));
        }
        let pool = pool_ok(&t.pool, &format!("task '{name}'"), errs, &out.pools);
        let timeout_ms = t.timeout_ms.as_ref().and_then(|v| {
            let label = format!("task '{name}': timeout_ms");
            ranges::TASK_TIMEOUT_MS.check(file, v, &label, errs)
        });
        let mcp_approval =
            super::mcp_inputs::parse_approval(t.mcp_approval.as_ref(), &name, file, errs);
        let inputs =
            super::mcp_inputs::validate_inputs(t.inputs.unwrap_or_default(), &name, file, errs);
        let mut command = t.command.value.clone();
        let mcp = t.mcp.unwrap_or(false);
        // A task with inputs runs its rewritten form; an MCP task without
        // inputs is only checked (a `{name}` there is surely a mistake); other
        // tasks keep literal braces as before.
        if !inputs.is_empty() || mcp {
            match super::mcp_inputs::rewrite_command(&command, &inputs) {
                Ok(script) if !inputs.is_empty() => command = CommandSpec::Shell(script),
                Ok(_) => {}
                Err(e) => errs.push(diag_at(file, &t.command, format!("task '{name}': {e}"))),
            }
        }
        out.tasks.insert(
            name.clone(),
            TaskSpec {
                name,
                command,
                cwd: t.cwd,
                env: t.env.unwrap_or_default(),
                timeout_ms,
                pool,
                allow_args: t.allow_args.unwrap_or(false) || !inputs.is_empty(),
                description: t.description,
                mcp,
                inputs,
                mcp_approval,
            },
        );
    }
    for (name, a) in raw.agents.unwrap_or_default() {
        if !valid_app_name(&name) {
            errs.push(diag_at(file, &a, format!("invalid agent name '{name}'")));
            continue;
        }
        let at = (a.referenced.line(), a.referenced.column());
        let a = a.value;
        let session = super::agents::validate(&name, a.session_keys(), file, errs);
        match &a.delegate {
            None if a.interactive.is_none() => errs.push(Diagnostic {
                file: file.display().to_string(),
                line: at.0,
                column: at.1,
                message: format!("agent '{name}': needs delegate, interactive or both"),
            }),
            None => {}
            Some(d) if d.value.is_empty() || d.value[0].is_empty() => errs.push(diag_at(
                file,
                d,
                format!("agent '{name}': delegate must be a non-empty argv"),
            )),
            Some(d) if !d.value.iter().any(|x| x.contains("{prompt}")) => errs.push(diag_at(
                file,
                d,
                format!("agent '{name}': delegate must contain {{prompt}}"),
            )),
            Some(_) => {}
        }
        let pool = pool_ok(&a.pool, &format!("agent '{name}'"), errs, &out.pools);
        let timeout_ms = a.timeout_ms.as_ref().and_then(|v| {
            let label = format!("agent '{name}': timeout_ms");
            ranges::AGENT_TIMEOUT_MS.check(file, v, &label, errs)
        });
        out.agents.insert(
            name.clone(),
            AgentSpec {
                name,
                delegate: a.delegate.map(|d| d.value).unwrap_or_default(),
                pool,
                env: a.env.unwrap_or_default(),
                timeout_ms,
                session,
            },
        );
    }
    out.workspaces = raw
        .workspaces
        .unwrap_or_default()
        .into_iter()
        .filter(|w| !w.trim().is_empty())
        .collect();
    if let Some(v) = ranges::SHUTDOWN_TIMEOUT_MS.check_opt(file, &raw.shutdown_timeout_ms, errs) {
        out.shutdown_timeout_ms = v;
    }
    out
}
