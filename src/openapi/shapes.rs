//! Typed descriptions of the JSON bodies that handlers build ad hoc with
//! `json!` (API.md §4-§8), so the OpenAPI document (API.md §13) can describe
//! them through `schemars`. These types are never constructed: they exist only
//! for their schema. When a handler's `json!` shape changes, change its
//! struct here; schemathesis (`scripts/test-schemathesis`) catches a drift.

#![allow(dead_code)]

use crate::approvals::Approval;
use crate::events::Event;
use crate::executor::record::{ExecStatus, Execution};
use crate::registry::{AppState, AppView};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The error body of every non-2xx JSON answer (API.md §2).
#[derive(Serialize, JsonSchema)]
pub struct ErrorBody {
    /// Lowercase human message naming the offending value.
    pub error: String,
    /// Stable error code (API.md §2, docs/api.md).
    pub code: ErrorCode,
    /// Structured extras: config diagnostics, JSON error position, the
    /// standing Approval or Execution of a `409 conflict`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// The error codes of API.md §2.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400
    BadRequest,
    /// 401
    Unauthorized,
    /// 403: peer not loopback, cwd outside workspaces, or missing scope
    Forbidden,
    /// 403: `Host` not allowed
    ForbiddenHost,
    /// 403: `Origin` not allowed
    ForbiddenOrigin,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 409
    Conflict,
    /// 410
    Gone,
    /// 413
    PayloadTooLarge,
    /// 415
    UnsupportedMediaType,
    /// 422
    Unprocessable,
    /// 422: `POST /reload` with an invalid config.yml
    InvalidConfig,
    /// 422: the app's command could not be spawned
    LaunchFailed,
    /// 409: stopping an app that is not running
    NotRunning,
    /// 429: rate limit
    RateLimited,
    /// 429: pool queue full
    QueueFull,
    /// 426
    UpgradeRequired,
    /// 503
    Unavailable,
    /// 500
    Internal,
}

/// `GET /health`.
#[derive(Serialize, JsonSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// Daemon version.
    pub version: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Daemon PID.
    pub pid: u32,
    /// Bound TCP port.
    pub port: u16,
    /// Number of registered apps.
    pub apps: u64,
    /// The config directory.
    pub config_dir: String,
}

/// `GET /apps`.
#[derive(Serialize, JsonSchema)]
pub struct AppList {
    /// Apps sorted by name.
    pub apps: Vec<AppView>,
    /// Number of apps.
    pub total: u64,
}

/// `POST /reload`.
#[derive(Serialize, JsonSchema)]
pub struct ReloadReply {
    /// Always `ok`.
    pub status: String,
    /// Number of apps now registered.
    pub total: u64,
    /// The apps now registered.
    pub apps: Vec<AppView>,
    /// Config warnings (unknown keys, skipped drop-ins).
    pub warnings: Vec<String>,
    /// Names of added apps.
    pub added: Vec<String>,
    /// Names of removed apps.
    pub removed: Vec<String>,
    /// Names of changed apps.
    pub changed: Vec<String>,
}

/// `POST /shutdown`.
#[derive(Serialize, JsonSchema)]
pub struct Stopping {
    /// Always `stopping`.
    pub status: String,
}

/// `POST /apps/{name}/launched|ready|stopped`.
#[derive(Serialize, JsonSchema)]
pub struct LifecycleReply {
    /// Always `ok`.
    pub status: String,
    /// The app name.
    pub app: String,
    /// `launched`, `ready` or `stopped`.
    pub state: String,
}

/// `POST /apps/{name}/launch`.
#[derive(Serialize, JsonSchema)]
pub struct LaunchReply {
    /// `launched` or `already_running`.
    pub status: String,
    /// The app name.
    pub app: String,
    /// PID of the (already) running process; `null` for a detached app.
    pub pid: Option<u32>,
}

/// `POST /apps/{name}/stop`.
#[derive(Serialize, JsonSchema)]
pub struct StopReply {
    /// Always `stopped`.
    pub status: String,
    /// The app name.
    pub app: String,
    /// PID that was stopped.
    pub pid: Option<u32>,
    /// Exit code, when it exited.
    pub exit_code: Option<i32>,
    /// Signal that ended it, when signalled.
    pub signal: Option<i32>,
    /// Whether SIGKILL was needed after `stop_timeout_ms`.
    pub killed: bool,
}

/// `202` answer of `POST /events` and `POST /apps/{name}/message`.
#[derive(Serialize, JsonSchema)]
pub struct EventId {
    /// The new event's id.
    pub id: u64,
}

/// `GET /events`.
#[derive(Serialize, JsonSchema)]
pub struct EventList {
    /// Matching events, oldest first.
    pub events: Vec<Event>,
    /// The newest event id the daemon has issued.
    pub last_id: u64,
}

/// `GET /executions`.
#[derive(Serialize, JsonSchema)]
pub struct ExecutionList {
    /// Executions, newest first.
    pub executions: Vec<Execution>,
    /// Number matching the filter.
    pub total: u64,
}

/// `GET /approvals`.
#[derive(Serialize, JsonSchema)]
pub struct ApprovalList {
    /// Matching approvals.
    pub approvals: Vec<Approval>,
    /// Number listed.
    pub total: u64,
    /// Clients currently long-polling an approval.
    pub waiting: u64,
}

/// `202` answer of `POST /delegate`.
#[derive(Serialize, JsonSchema)]
pub struct DelegateReply {
    /// The ticket (= execution) id.
    pub ticket_id: String,
    /// Always `null` (no interactive session).
    pub session_id: Option<String>,
    /// Execution status.
    pub status: ExecStatus,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// `GET /tasks/{ticket_id}`.
#[derive(Serialize, JsonSchema)]
pub struct Ticket {
    /// The ticket (= execution) id.
    pub ticket_id: String,
    /// Execution status.
    pub status: ExecStatus,
    /// Agent type, `null` for a plain task.
    pub agent: Option<String>,
    /// Set once the run finished.
    pub result: Option<TicketResult>,
    /// RFC 3339 start time.
    pub started_at: Option<String>,
    /// RFC 3339 end time.
    pub completed_at: Option<String>,
    /// Run time, ms.
    pub duration_ms: Option<u64>,
}

/// `Ticket.result`.
#[derive(Serialize, JsonSchema)]
pub struct TicketResult {
    /// Exit code.
    pub exit_code: Option<i32>,
    /// The last lines of output.
    pub message: String,
    /// Paths changed in the working dir by the run.
    pub files_modified: Vec<String>,
    /// Spawn or run error.
    pub error: Option<String>,
}

/// `GET /openapi.json`: this document.
#[derive(Serialize, JsonSchema)]
pub struct OpenApiDocument {
    /// `3.1.x`.
    pub openapi: String,
    /// Title and version.
    pub info: Value,
    /// Operations by path.
    pub paths: Value,
}

// ---- request bodies (unknown fields are ignored, API.md §2) ----

/// Body of `POST /apps/{name}/launched` (optional).
#[derive(Deserialize, JsonSchema)]
pub struct LaunchedBody {
    /// PID of the launched process, tracked until it exits.
    #[schemars(range(min = 1, max = 2147483647))]
    pub pid: Option<u64>,
}

/// Body of `POST /apps/{name}/message`.
#[derive(Deserialize, JsonSchema)]
pub struct MessageBody {
    /// Who sends it.
    #[schemars(length(min = 1))]
    pub source: String,
    /// Message type (default `message`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Any JSON (default `{}`).
    pub data: Option<Value>,
}

/// Body of `POST /events`.
#[derive(Deserialize, JsonSchema)]
pub struct PublishEventBody {
    /// Who publishes it; `orchestratr` is reserved for the daemon.
    #[schemars(length(min = 1), extend("not" = {"const": "orchestratr"}))]
    pub source: String,
    /// Event type.
    #[serde(rename = "type")]
    #[schemars(pattern(r"^[a-z0-9][a-z0-9_.:-]{0,63}$"))]
    pub kind: String,
    /// Delivered to this target (e.g. an app name).
    pub target: Option<String>,
    /// Any JSON (default `{}`).
    pub data: Option<Value>,
}

/// Body of `POST /executions` / `POST /execute`.
#[derive(Deserialize, JsonSchema)]
pub struct SubmitExecutionBody {
    /// A task name from the config.
    #[schemars(length(min = 1))]
    pub task: String,
    /// Extra argv elements (only when the task has `allow_args: true`).
    pub args: Option<Vec<String>>,
    /// Working directory under one of `workspaces`.
    pub cwd: Option<String>,
    /// Timeout, ms.
    #[schemars(range(min = 1, max = 9007199254740992u64))]
    pub timeout_ms: Option<u64>,
}

/// Body of `POST /delegate`.
#[derive(Deserialize, JsonSchema)]
pub struct DelegateBody {
    /// An agent type from the config (`agents:`).
    #[schemars(length(min = 1))]
    pub agent_type: String,
    /// The task text.
    #[schemars(length(min = 1))]
    pub task: String,
    /// Rendered into the prompt as plain text.
    pub context: Option<serde_json::Map<String, Value>>,
    /// Working directory under one of `workspaces`.
    pub working_dir: Option<String>,
    /// Timeout, ms.
    #[schemars(range(min = 1, max = 9007199254740992u64))]
    pub timeout_ms: Option<u64>,
    /// Deliver the task into this live interactive agent session instead of
    /// starting a run (API.md §7, livedel).
    pub session_id: Option<String>,
}

/// Body of `POST /approvals`.
#[derive(Deserialize, JsonSchema)]
pub struct CreateApprovalBody {
    /// The question (not only whitespace).
    #[schemars(pattern(
        r"[^\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    ))]
    pub title: String,
    /// Longer text.
    pub detail: Option<String>,
    /// Who asks.
    pub source: Option<String>,
    /// Allowed answers (default `["approve","deny"]`), distinct, non-empty.
    #[schemars(length(min = 1), inner(length(min = 1)), extend("uniqueItems" = true))]
    pub options: Option<Vec<String>>,
    /// Applied on expiry; one of `options`.
    pub default: Option<String>,
    /// Time until expiry, ms (at most 7 days).
    #[schemars(range(min = 1, max = 604800000))]
    pub timeout_ms: Option<u64>,
    /// Any JSON.
    pub context: Option<Value>,
}

/// Body of `POST /approvals/{id}`.
#[derive(Deserialize, JsonSchema)]
pub struct DecideApprovalBody {
    /// One of the approval's `options`.
    #[schemars(length(min = 1))]
    pub decision: String,
    /// Free text.
    pub comment: Option<String>,
    /// Who decided.
    pub by: Option<String>,
}

/// Keeps `AppState` reachable for `GET /apps/{name}/state`.
pub type AppStateShape = AppState;

/// The shape of an [`Event`] (API.md §5), which serializes its stored
/// one-line JSON rather than deriving `Serialize`.
#[derive(JsonSchema)]
#[schemars(rename = "Event")]
pub struct EventShape {
    /// Strictly increasing for the daemon's lifetime.
    pub id: u64,
    /// Event type, e.g. `app.launched`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Who published it (`orchestratr` for the daemon).
    pub source: String,
    /// RFC 3339 UTC time, milliseconds.
    pub time: String,
    /// Delivered to this target, if any.
    pub target: Option<String>,
    /// Any JSON.
    pub data: Value,
}

impl JsonSchema for Event {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Event".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        EventShape::json_schema(g)
    }
}

/// A token as `GET /tokens` lists it (API.md §12, `TokenRecord::view`):
/// never the secret.
#[derive(Serialize, JsonSchema)]
pub struct TokenView {
    /// 12 lowercase hex digits.
    pub id: String,
    /// Who holds it.
    pub name: String,
    /// Granted scopes, sorted.
    pub scopes: Vec<ScopeName>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; `null` = never expires.
    pub expires_at: Option<String>,
    /// RFC 3339 of the last authenticated request; `null` = never used.
    pub last_used_at: Option<String>,
    /// CIDRs the client address must be in; empty = any.
    pub allowed_ips: Vec<String>,
}

/// `GET /tokens`.
#[derive(Serialize, JsonSchema)]
pub struct TokenList {
    /// Number of tokens.
    pub total: u64,
    /// The tokens.
    pub tokens: Vec<TokenView>,
}

/// `201` of `POST /tokens`: the token and, once, its secret.
#[derive(Serialize, JsonSchema)]
pub struct CreatedToken {
    /// The token.
    #[serde(flatten)]
    pub view: TokenView,
    /// The bearer token; shown only here.
    pub token: String,
}

/// `DELETE /tokens/{id}`.
#[derive(Serialize, JsonSchema)]
pub struct RevokedToken {
    /// Always `revoked`.
    pub status: String,
    /// The token id.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// `POST /tokens/rotate`.
#[derive(Serialize, JsonSchema)]
pub struct RotatedToken {
    /// Always `rotated`.
    pub status: String,
    /// How long the old admin token stays valid, seconds.
    pub grace_s: u64,
    /// RFC 3339 end of the grace period (now without one).
    pub previous_valid_until: String,
}

/// Outcome of `POST /trigger`.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerStatus {
    /// The app was started.
    Launched,
    /// The app was already running.
    AlreadyRunning,
}

/// `POST /trigger`.
#[derive(Serialize, JsonSchema)]
pub struct TriggerReply {
    /// What happened.
    pub status: TriggerStatus,
    /// The app whose chord matched.
    pub app: String,
    /// The app's pid.
    pub pid: u32,
    /// The chord, trimmed.
    pub chord: String,
}

/// `202` of `POST /agents/{id}/input`.
#[derive(Serialize, JsonSchema)]
pub struct InputSent {
    /// Always `sent`.
    pub status: String,
}

/// `GET /agents/{id}/attach`.
#[derive(Serialize, JsonSchema)]
pub struct AttachCommand {
    /// argv that attaches a terminal (`tmux -L … attach -t …`).
    pub command: Vec<String>,
}

/// A scope (API.md §12), as `auth::scopes::Scope` serializes it.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScopeName {
    /// Read-only routes.
    Read,
    /// Executions and delegation.
    Execute,
    /// Deciding approvals.
    Approve,
    /// Interactive agents.
    Agents,
    /// Everything, tokens included.
    Admin,
}
