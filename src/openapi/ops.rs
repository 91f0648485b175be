//! One OpenAPI operation per route id (API.md §13): the only place a new route
//! needs an entry. `operation` returns `None` for a route without one, which
//! `tests/openapi.rs` turns into a failing test naming the route.
//!
//! An entry names the path parameters (for the `{}` of the route pattern, in
//! order), the query parameters, the request body, the success response and
//! the error statuses the handler itself can answer. The statuses of the
//! guards (API.md §3: 400, 403, 413, 415 on every route; 401, 429 on token
//! routes) are added by the builder in `mod.rs` from the route's auth class.

use super::bodies;
use super::shapes::*;
use crate::approvals::Approval;
use crate::executor::record::{ExecStatus, Execution};
use crate::http::router::RouteId;
use crate::registry::AppView;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Value, json};

/// A schema produced on demand from a generator (a `$ref` into
/// `components/schemas` for named types).
pub type SchemaFn = fn(&mut SchemaGenerator) -> Value;

/// The schema of `T` as a JSON value.
pub fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    g.subschema_for::<T>().to_value()
}

/// What a success response carries.
#[derive(Clone, Copy)]
pub enum Body {
    /// `application/json` of this schema.
    Json(SchemaFn),
    /// `text/plain` bytes with `X-Output-Offset` / `X-Output-Length`.
    Text,
    /// `text/event-stream` (Server-Sent Events).
    Sse,
}

/// A query parameter: name, schema (JSON), description.
pub type Query = (&'static str, SchemaFn, &'static str);

/// One operation.
pub struct Op {
    /// `operationId` (unique; an alias adds a suffix in the builder).
    pub id: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Tag (the feature area).
    pub tag: &'static str,
    /// Names of the `{}` path segments, in order.
    pub path_params: &'static [&'static str],
    /// Query parameters.
    pub query: &'static [Query],
    /// Request body schema and whether the body is required.
    pub body: Option<(SchemaFn, bool)>,
    /// Success status and what it carries.
    pub ok: (u16, Body),
    /// Error statuses the handler can answer beyond the guards'.
    pub errors: &'static [u16],
    /// Response headers of the success answer (`Location`, `X-Output-*`).
    pub headers: &'static [&'static str],
    /// Accepts `Last-Event-ID` (SSE resume).
    pub last_event_id: bool,
    /// Error answers are not the `ErrorBody` of API.md §2 (`POST /mcp`
    /// answers JSON-RPC error objects): documented as any JSON.
    pub foreign_errors: bool,
}

// An empty query value is no value (`Call::q`), so the integer schemas also
// admit `""`.
fn int_min0(_: &mut SchemaGenerator) -> Value {
    json!({"anyOf": [{"type": "integer", "minimum": 0, "maximum": u64::MAX}, {"const": ""}]})
}
fn limit_1000(_: &mut SchemaGenerator) -> Value {
    json!({"anyOf": [{"type": "integer", "minimum": 1, "maximum": 1000}, {"const": ""}]})
}
fn agent_status(_: &mut SchemaGenerator) -> Value {
    json!({"enum": ["", "starting", "running", "idle", "waiting", "exited", "error", "lost"]})
}
fn any(_: &mut SchemaGenerator) -> Value {
    json!({})
}
fn object(_: &mut SchemaGenerator) -> Value {
    json!({"type": "object"})
}
fn string(_: &mut SchemaGenerator) -> Value {
    json!({"type": "string"})
}
fn wait_s(_: &mut SchemaGenerator) -> Value {
    json!({"anyOf": [{"type": "integer", "minimum": 0, "maximum": crate::approvals::MAX_WAIT_S}, {"const": ""}]})
}
fn exec_status(g: &mut SchemaGenerator) -> Value {
    // An empty value is no filter, like an absent one.
    json!({"anyOf": [schema::<ExecStatus>(g), {"const": ""}]})
}
/// Whitespace that both Rust's `str::trim` and Python's `\s` agree on.
const WS: &str = r"[\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*";
fn approval_statuses(_: &mut SchemaGenerator) -> Value {
    let one = "(pending|approved|denied|decided|expired|all)?";
    let item = format!("{WS}{one}{WS}");
    json!({"type": "string", "pattern": format!("^{item}(,{item})*$")})
}

const EVENT_FILTER: [Query; 3] = [
    (
        "type",
        string,
        "comma list of event types; a trailing `*` is a prefix match",
    ),
    ("source", string, "only events from this source"),
    ("target", string, "only events for this target"),
];
const OUTPUT_RANGE: [Query; 2] = [
    ("offset", int_min0, "first byte, default 0"),
    ("limit", int_min0, "at most this many bytes"),
];

/// The operation of route `id`, or `None` when it has none yet (a test fails).
pub fn operation(id: RouteId) -> Option<Op> {
    let op = |id, summary, tag| Op {
        id,
        summary,
        tag,
        path_params: &[],
        query: &[],
        body: None,
        ok: (200, Body::Json(schema::<Value>)),
        errors: &[],
        headers: &[],
        last_event_id: false,
        foreign_errors: false,
    };
    let name: &'static [&'static str] = &["name"];
    let ident: &'static [&'static str] = &["id"];
    Some(match id {
        RouteId::Health => Op {
            ok: (200, Body::Json(schema::<Health>)),
            ..op("health", "daemon liveness and facts", "daemon")
        },
        RouteId::OpenApi => Op {
            ok: (200, Body::Json(schema::<OpenApiDocument>)),
            ..op("openapi", "this OpenAPI 3.1 document", "daemon")
        },
        RouteId::Reload => Op {
            ok: (200, Body::Json(schema::<ReloadReply>)),
            errors: &[422, 503],
            ..op("reload", "re-read the config now", "daemon")
        },
        RouteId::Shutdown => Op {
            ok: (202, Body::Json(schema::<Stopping>)),
            ..op("shutdown", "graceful shutdown", "daemon")
        },
        RouteId::ListApps => Op {
            ok: (200, Body::Json(schema::<AppList>)),
            ..op("listApps", "registered apps, sorted by name", "apps")
        },
        RouteId::GetApp => Op {
            path_params: name,
            ok: (200, Body::Json(schema::<AppView>)),
            errors: &[404],
            ..op("getApp", "one app", "apps")
        },
        RouteId::AppState => Op {
            path_params: name,
            ok: (200, Body::Json(schema::<AppStateShape>)),
            errors: &[404],
            ..op("getAppState", "an app's runtime state", "apps")
        },
        RouteId::AppLaunched => Op {
            path_params: name,
            body: Some((schema::<LaunchedBody>, false)),
            ok: (200, Body::Json(schema::<LifecycleReply>)),
            errors: &[404, 422, 503],
            ..op("reportLaunched", "an app reports it launched", "apps")
        },
        RouteId::AppReady => Op {
            path_params: name,
            ok: (200, Body::Json(schema::<LifecycleReply>)),
            errors: &[404, 503],
            ..op("reportReady", "an app reports it is ready", "apps")
        },
        RouteId::AppStopped => Op {
            path_params: name,
            ok: (200, Body::Json(schema::<LifecycleReply>)),
            errors: &[404, 503],
            ..op("reportStopped", "an app reports it stopped", "apps")
        },
        RouteId::LaunchApp => Op {
            path_params: name,
            ok: (200, Body::Json(schema::<LaunchReply>)),
            errors: &[404, 422, 503],
            ..op("launchApp", "run the app's registered command", "apps")
        },
        RouteId::StopApp => Op {
            path_params: name,
            ok: (200, Body::Json(schema::<StopReply>)),
            errors: &[404, 409, 503],
            ..op("stopApp", "stop the app's process group", "apps")
        },
        RouteId::AppMessage => Op {
            path_params: name,
            body: Some((schema::<MessageBody>, true)),
            ok: (202, Body::Json(schema::<EventId>)),
            errors: &[404, 503],
            ..op("messageApp", "send an app.message event to an app", "apps")
        },
        RouteId::AppOutput => Op {
            path_params: name,
            query: &OUTPUT_RANGE,
            ok: (200, Body::Text),
            errors: &[404],
            headers: &["X-Output-Offset", "X-Output-Length"],
            ..op("appOutput", "bytes of the app's log", "apps")
        },
        RouteId::AppStream => Op {
            path_params: name,
            query: &[("offset", int_min0, "first byte, default 0")],
            ok: (200, Body::Sse),
            errors: &[404, 503],
            last_event_id: true,
            ..op("appStream", "the app's log, live (SSE)", "apps")
        },
        RouteId::PublishEvent => Op {
            body: Some((schema::<PublishEventBody>, true)),
            ok: (202, Body::Json(schema::<EventId>)),
            errors: &[503],
            ..op("publishEvent", "publish an event", "events")
        },
        RouteId::ListEvents => Op {
            query: &[
                EVENT_FILTER[0],
                EVENT_FILTER[1],
                EVENT_FILTER[2],
                ("since", int_min0, "only events with a larger id"),
                ("limit", limit_1000, "at most this many, default 100"),
            ],
            ok: (200, Body::Json(schema::<EventList>)),
            errors: &[503],
            ..op("listEvents", "retained events", "events")
        },
        RouteId::EventStream => Op {
            query: &[
                EVENT_FILTER[0],
                EVENT_FILTER[1],
                EVENT_FILTER[2],
                (
                    "last_event_id",
                    int_min0,
                    "resume after this id (or the Last-Event-ID header)",
                ),
            ],
            ok: (200, Body::Sse),
            errors: &[503],
            last_event_id: true,
            ..op("eventStream", "events, live (SSE)", "events")
        },
        RouteId::CreateApproval => Op {
            body: Some((schema::<CreateApprovalBody>, true)),
            ok: (201, Body::Json(schema::<Approval>)),
            errors: &[503],
            headers: &["Location"],
            ..op("createApproval", "ask a question", "approvals")
        },
        RouteId::ListApprovals => Op {
            query: &[(
                "status",
                approval_statuses,
                "comma list of pending, approved, denied, decided, expired, or all",
            )],
            ok: (200, Body::Json(schema::<ApprovalList>)),
            errors: &[503],
            ..op("listApprovals", "approvals", "approvals")
        },
        RouteId::GetApproval => Op {
            path_params: ident,
            query: &[("wait", wait_s, "hold the request until decided, seconds")],
            ok: (200, Body::Json(schema::<Approval>)),
            errors: &[404, 503],
            ..op(
                "getApproval",
                "one approval, optionally long-polled",
                "approvals",
            )
        },
        RouteId::DecideApproval => Op {
            path_params: ident,
            body: Some((schema::<DecideApprovalBody>, true)),
            ok: (200, Body::Json(schema::<Approval>)),
            errors: &[404, 409, 503],
            ..op("decideApproval", "answer an approval", "approvals")
        },
        RouteId::SubmitExecution => Op {
            body: Some((schema::<SubmitExecutionBody>, true)),
            ok: (202, Body::Json(schema::<Execution>)),
            errors: &[404, 422, 429, 503],
            headers: &["Location"],
            ..op("submitExecution", "run a registered task", "executions")
        },
        RouteId::ListExecutions => Op {
            query: &[
                ("status", exec_status, "only this status"),
                ("task", string, "only this task"),
                ("limit", limit_1000, "at most this many, default 100"),
            ],
            ok: (200, Body::Json(schema::<ExecutionList>)),
            ..op("listExecutions", "executions, newest first", "executions")
        },
        RouteId::GetExecution => Op {
            path_params: ident,
            ok: (200, Body::Json(schema::<Execution>)),
            errors: &[404],
            ..op("getExecution", "one execution", "executions")
        },
        RouteId::ExecutionOutput => Op {
            path_params: ident,
            query: &OUTPUT_RANGE,
            ok: (200, Body::Text),
            errors: &[404],
            headers: &["X-Output-Offset", "X-Output-Length"],
            ..op(
                "executionOutput",
                "bytes of the combined output",
                "executions",
            )
        },
        RouteId::ExecutionStream => Op {
            path_params: ident,
            query: &[
                ("last_event_id", int_min0, "resume at this byte offset"),
                ("offset", int_min0, "start at this byte offset"),
            ],
            ok: (200, Body::Sse),
            errors: &[404, 503],
            last_event_id: true,
            ..op(
                "executionStream",
                "output and status, live (SSE)",
                "executions",
            )
        },
        RouteId::CancelExecution => Op {
            path_params: ident,
            ok: (200, Body::Json(schema::<Execution>)),
            errors: &[404, 409, 503],
            ..op(
                "cancelExecution",
                "cancel a pending or running execution",
                "executions",
            )
        },
        RouteId::RetryExecution => Op {
            path_params: ident,
            ok: (202, Body::Json(schema::<Execution>)),
            errors: &[404, 409, 422, 429, 503],
            headers: &["Location"],
            ..op("retryExecution", "run the same spec again", "executions")
        },
        RouteId::Delegate => Op {
            body: Some((schema::<DelegateBody>, true)),
            ok: (202, Body::Json(schema::<DelegateReply>)),
            errors: &[404, 422, 429, 503],
            headers: &["Location"],
            ..op("delegate", "delegate a task to an agent type", "executions")
        },
        RouteId::GetTicket => Op {
            path_params: &["ticket_id"],
            ok: (200, Body::Json(schema::<Ticket>)),
            errors: &[404],
            ..op("getTicket", "a delegated task's ticket", "executions")
        },
        RouteId::ListTasks => Op {
            ok: (200, Body::Json(object)),
            errors: &[503],
            ..op(
                "listTasks",
                "the registered tasks (for submit forms)",
                "executions",
            )
        },
        RouteId::ListAgentTypes => Op {
            ok: (200, Body::Json(object)),
            errors: &[503],
            ..op("listAgentTypes", "the configured agent types", "agents")
        },
        // ---- routes merged from the other v3 helpers: request bodies in
        // `bodies.rs`; responses still `object` (docs/api.md "OpenAPI"). ----
        RouteId::Trigger => Op {
            body: Some((bodies::trigger, true)),
            ok: (200, Body::Json(schema::<TriggerReply>)),
            errors: &[404, 422, 503],
            ..op(
                "trigger",
                "launch an app by name or chord (Go orchestratr compatibility)",
                "apps",
            )
        },
        RouteId::SpawnAgent => Op {
            body: Some((bodies::spawn_agent, true)),
            ok: (201, Body::Json(object)),
            errors: &[409, 422, 503],
            headers: &["Location"],
            ..op("spawnAgent", "start an interactive agent in tmux", "agents")
        },
        RouteId::ListAgents => Op {
            query: &[("status", agent_status, "only agents with this status")],
            ok: (200, Body::Json(object)),
            errors: &[503],
            ..op("listAgents", "agents", "agents")
        },
        RouteId::GetAgent => Op {
            path_params: ident,
            ok: (200, Body::Json(object)),
            errors: &[404, 503],
            ..op("getAgent", "one agent", "agents")
        },
        RouteId::KillAgent => Op {
            path_params: ident,
            ok: (200, Body::Json(object)),
            errors: &[404, 409, 503],
            ..op("killAgent", "stop an agent", "agents")
        },
        RouteId::AgentInput => Op {
            path_params: ident,
            body: Some((bodies::agent_input, true)),
            ok: (202, Body::Json(schema::<InputSent>)),
            errors: &[404, 409, 503],
            ..op("agentInput", "send text or keys to an agent", "agents")
        },
        RouteId::AgentOutput => Op {
            path_params: ident,
            query: &OUTPUT_RANGE,
            ok: (200, Body::Text),
            errors: &[404, 503],
            headers: &["X-Output-Offset", "X-Output-Length"],
            ..op("agentOutput", "bytes of the agent's pane log", "agents")
        },
        RouteId::AgentScreen => Op {
            path_params: ident,
            ok: (200, Body::Json(object)),
            errors: &[404, 409, 503],
            ..op("agentScreen", "the agent's visible screen", "agents")
        },
        RouteId::AgentStream => Op {
            path_params: ident,
            query: &[("offset", int_min0, "start at this byte offset")],
            ok: (200, Body::Sse),
            errors: &[404, 503],
            last_event_id: true,
            ..op("agentStream", "the agent's output, live (SSE)", "agents")
        },
        RouteId::AgentStatus => Op {
            path_params: ident,
            body: Some((bodies::agent_status, true)),
            ok: (200, Body::Json(object)),
            errors: &[404, 409, 503],
            ..op("agentStatus", "report an agent's status (hooks)", "agents")
        },
        RouteId::AttachAgent => Op {
            path_params: ident,
            ok: (200, Body::Json(schema::<AttachCommand>)),
            errors: &[404, 409, 503],
            ..op(
                "attachAgent",
                "the command that attaches a terminal to the agent",
                "agents",
            )
        },
        RouteId::ListTokens => Op {
            ok: (200, Body::Json(schema::<TokenList>)),
            errors: &[503],
            ..op("listTokens", "tokens (never their secrets)", "tokens")
        },
        RouteId::CreateToken => Op {
            body: Some((bodies::create_token, true)),
            ok: (201, Body::Json(schema::<CreatedToken>)),
            errors: &[409, 422, 503],
            ..op(
                "createToken",
                "create a scoped token; the secret is shown once",
                "tokens",
            )
        },
        RouteId::RevokeToken => Op {
            path_params: ident,
            ok: (200, Body::Json(schema::<RevokedToken>)),
            errors: &[404, 422, 503],
            ..op("revokeToken", "revoke a token", "tokens")
        },
        RouteId::RotateToken => Op {
            body: Some((bodies::rotate_token, false)),
            ok: (200, Body::Json(schema::<RotatedToken>)),
            errors: &[422, 503],
            ..op(
                "rotateToken",
                "rotate the admin token, with a grace period",
                "tokens",
            )
        },
        RouteId::Audit => Op {
            query: &[
                ("since", int_min0, "only entries after this sequence number"),
                ("limit", limit_1000, "at most this many"),
            ],
            ok: (200, Body::Json(object)),
            errors: &[503],
            ..op("audit", "audit log entries", "tokens")
        },
        RouteId::Mcp => Op {
            body: Some((bodies::mcp, true)),
            ok: (200, Body::Json(any)),
            foreign_errors: true,
            errors: &[404, 406, 503],
            ..op("mcp", "MCP Streamable HTTP (JSON-RPC)", "mcp")
        },
        RouteId::ListTools => Op {
            ok: (200, Body::Json(object)),
            errors: &[503],
            ..op("listTools", "the MCP tools as plain HTTP", "mcp")
        },
        RouteId::CallTool => Op {
            path_params: name,
            body: Some((object, false)),
            ok: (200, Body::Json(object)),
            errors: &[404, 409, 422, 503],
            ..op(
                "callTool",
                "call a tool with its arguments as the body",
                "mcp",
            )
        },
        RouteId::NotifyAction => Op {
            path_params: &["token"],
            ok: (200, Body::Json(object)),
            errors: &[404, 409, 410, 503],
            ..op(
                "notifyAction",
                "a one-time approval action URL (ntfy buttons)",
                "notify",
            )
        },
        // The WebSocket bridge (API.md §11, docs/api.md "WebSocket bridge"):
        // `101 Switching Protocols`, then JSON text frames.
        RouteId::WsObserve => Op {
            ok: (101, Body::Text),
            errors: &[426, 503],
            ..op(
                "wsObserve",
                "the WebSocket bridge: terminal output, input, events (upgrade)",
                "agents",
            )
        },
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// Schema of the error body (API.md §2).
pub fn error_schema(g: &mut SchemaGenerator) -> Value {
    schema::<ErrorBody>(g)
}
