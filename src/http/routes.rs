//! Route handlers (API.md §4) and the dispatch pipeline: guards 1-6 in order, then
//! the handler. Handlers are plain functions from a parsed request to a [`Reply`].

use super::guards::{self, header};
use super::router::{self, RouteId, RouteMatch};
use super::sse::{self, StreamSlot};
use super::{HResult, HttpError, Reply, Resp};
use crate::events::{Bus, EventFilter, NewEvent, valid_event_type};
use crate::registry::{LaunchOutcome, Registry, RegistryError};
use crossbeam_channel::Sender;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What every handler can reach: actor handles and daemon facts.
pub struct Ctx {
    /// Registry actor (apps, settings).
    pub registry: Registry,
    /// Event bus actor.
    pub bus: Bus,
    /// The bearer token (64 hex chars).
    pub token: String,
    /// When the daemon started (for `uptime_seconds`).
    pub started: Instant,
    /// The bound port (set once listening).
    pub port: AtomicU16,
    /// The daemon's PID.
    pub pid: u32,
    /// `<cfg>`, reported by `/health`.
    pub config_dir: PathBuf,
    /// Open SSE streams (capped by `sse_max_streams`).
    pub streams: Arc<AtomicUsize>,
    /// Sends the graceful-shutdown request (`POST /shutdown`).
    pub shutdown: Sender<&'static str>,
    /// Approvals actor (API.md §8).
    pub approvals: crate::approvals::Approvals,
    /// Executor actor (API.md §7).
    pub executor: crate::executor::Executor,
    /// Tokens, rate limits and the audit log (API.md §12).
    pub security: Arc<super::tokens::Security>,
}

/// A parsed request, as handlers see it.
pub struct Call {
    /// `{}` path segments, in order.
    pub params: Vec<String>,
    /// Query parameters (last value wins), percent-decoded.
    pub query: HashMap<String, String>,
    /// The JSON body, if any (always an object when present).
    pub body: Option<Value>,
    /// The `Last-Event-ID` header, if any.
    pub last_event_id: Option<String>,
}

impl Call {
    /// The first `{}` path segment (app name, approval id, ...).
    pub fn name(&self) -> &str {
        self.params.first().map(String::as_str).unwrap_or("")
    }
    /// The body as an object, if any.
    pub fn body_obj(&self) -> Option<&Map<String, Value>> {
        self.body.as_ref().and_then(Value::as_object)
    }
    /// A body field that is present and not `null`.
    pub fn field(&self, k: &str) -> Option<&Value> {
        self.body_obj()
            .and_then(|o| o.get(k))
            .filter(|v| !v.is_null())
    }
    /// A required non-empty string field. Errors: `400` naming the field.
    pub fn req_str(&self, k: &str) -> Result<&str, HttpError> {
        match self.field(k) {
            None => Err(HttpError::bad_request(format!(
                "missing required field '{k}'"
            ))),
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            Some(_) => Err(HttpError::bad_request(format!(
                "field '{k}' must be a non-empty string"
            ))),
        }
    }
    /// An optional string field. Errors: `400` when present and not a string.
    pub fn opt_str(&self, k: &str) -> Result<Option<&str>, HttpError> {
        match self.field(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(HttpError::bad_request(format!(
                "field '{k}' must be a string"
            ))),
        }
    }
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query
            .get(k)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
    /// An optional unsigned integer query parameter. Errors: `400` naming it.
    pub fn q_u64(&self, k: &str) -> Result<Option<u64>, HttpError> {
        match self.q(k) {
            None => Ok(None),
            Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
                HttpError::bad_request(format!(
                    "query parameter '{k}' must be a non-negative integer, not '{v}'"
                ))
            }),
        }
    }
}

/// Map a registry error to its HTTP status and code (API.md §2).
pub fn registry_error(e: RegistryError) -> HttpError {
    match e {
        RegistryError::NotFound(n) => HttpError::not_found(format!("no app named '{n}'")),
        RegistryError::LaunchFailed(m) => HttpError::new(422, "launch_failed", m),
        RegistryError::NotRunning(n) => {
            HttpError::new(409, "not_running", format!("app '{n}' is not running"))
        }
        RegistryError::NoSuchPid(p) => HttpError::new(
            422,
            "unprocessable",
            format!("pid {p} is not a running process"),
        ),
        RegistryError::Invalid(err) => {
            let diags = err.diagnostics();
            let first = diags.first().map(|d| d.to_string()).unwrap_or_default();
            HttpError::new(
                422,
                "invalid_config",
                format!("invalid config, previous registry kept: {first}"),
            )
            .with_details(json!(diags))
        }
        RegistryError::Closed => HttpError::unavailable("the daemon is shutting down"),
    }
}

fn parse_query(url: &str) -> HashMap<String, String> {
    match url.split_once('?') {
        Some((_, q)) => form_urlencoded::parse(q.split('#').next().unwrap_or("").as_bytes())
            .into_owned()
            .collect(),
        None => HashMap::new(),
    }
}

/// Run guards 1-6 (API.md §3) and the matched handler; the gate audits and
/// adds rate-limit headers (API.md §12).
pub fn dispatch(ctx: &Ctx, req: &mut tiny_http::Request) -> HResult {
    let mut gate = super::tokens::Gate::new(req);
    let result = dispatch_gated(ctx, req, &mut gate);
    gate.finish(ctx, result)
}

fn dispatch_gated(
    ctx: &Ctx,
    req: &mut tiny_http::Request,
    gate: &mut super::tokens::Gate,
) -> HResult {
    let settings = ctx.registry.settings();
    guards::check_peer(req.remote_addr())?;
    guards::check_host(header(req, "Host"), &settings)?;
    guards::check_origin(header(req, "Origin"), &settings)?;
    let url = req.url().to_string();
    let method = req.method().as_str().to_ascii_uppercase();
    // Test hook (debug builds only, and only with ORCHESTRATR_TEST_PANIC_ROUTE=1
    // set for the daemon): a route that panics, to prove a panicking handler
    // answers 500 and its worker lives on.
    #[cfg(debug_assertions)]
    if router::normalize_path(&url) == "/__test/panic"
        && std::env::var_os("ORCHESTRATR_TEST_PANIC_ROUTE").is_some()
    {
        panic!("test panic route");
    }
    let (id, auth, params) = match router::route(&method, &url) {
        RouteMatch::Found(id, auth, params) => (id, auth, params),
        RouteMatch::MethodNotAllowed(allow) => {
            return Err(HttpError::new(
                405,
                "method_not_allowed",
                format!(
                    "method {method} is not allowed on {}; allowed: {allow}",
                    router::normalize_path(&url)
                ),
            )
            .with_header("Allow", allow));
        }
        RouteMatch::NotFound => {
            return Err(HttpError::not_found(format!(
                "no route {method} {}",
                router::normalize_path(&url)
            )));
        }
    };
    let query = parse_query(&url);
    gate.check(ctx, req, id, auth, &params, &query, &settings)?;
    let body = guards::read_json_body(req)?;
    if let Some(b) = &body
        && !b.is_object()
    {
        return Err(HttpError::bad_request("request body must be a JSON object"));
    }
    let call = Call {
        params,
        query,
        body,
        last_event_id: header(req, "Last-Event-ID").map(str::to_string),
    };
    route_call(ctx, id, &call)
}

fn ok(status: u16, v: Value) -> HResult {
    Ok(Reply::Resp(Resp::json(status, &v)))
}

fn route_call(ctx: &Ctx, id: RouteId, c: &Call) -> HResult {
    match id {
        RouteId::Health => health(ctx),
        RouteId::ListApps => {
            let apps = ctx.registry.list();
            ok(200, json!({"total": apps.len(), "apps": apps}))
        }
        RouteId::GetApp => match ctx.registry.get(c.name()) {
            Some(v) => ok(200, json!(v)),
            None => Err(HttpError::not_found(format!("no app named '{}'", c.name()))),
        },
        RouteId::AppState => match ctx.registry.get(c.name()) {
            Some(v) => ok(200, json!(v.state)),
            None => Err(HttpError::not_found(format!("no app named '{}'", c.name()))),
        },
        RouteId::AppLaunched => {
            let pid = match c.field("pid") {
                None => None,
                Some(v) => match v.as_u64() {
                    Some(p) if p > 0 && p <= i32::MAX as u64 => Some(p as u32),
                    _ => {
                        return Err(HttpError::bad_request(
                            "field 'pid' must be a positive integer",
                        ));
                    }
                },
            };
            ctx.registry
                .report_launched(c.name(), pid)
                .map_err(registry_error)?;
            ok(
                200,
                json!({"status": "ok", "app": c.name(), "state": "launched"}),
            )
        }
        RouteId::AppReady => {
            ctx.registry
                .report_ready(c.name())
                .map_err(registry_error)?;
            ok(
                200,
                json!({"status": "ok", "app": c.name(), "state": "ready"}),
            )
        }
        RouteId::AppStopped => {
            ctx.registry
                .report_stopped(c.name())
                .map_err(registry_error)?;
            ok(
                200,
                json!({"status": "ok", "app": c.name(), "state": "stopped"}),
            )
        }
        RouteId::LaunchApp => match ctx.registry.launch(c.name()).map_err(registry_error)? {
            LaunchOutcome::Launched(pid) => ok(
                200,
                json!({"status": "launched", "app": c.name(), "pid": pid}),
            ),
            LaunchOutcome::AlreadyRunning(pid) => ok(
                200,
                json!({"status": "already_running", "app": c.name(), "pid": pid}),
            ),
        },
        RouteId::StopApp => {
            let o = ctx.registry.stop(c.name()).map_err(registry_error)?;
            ok(
                200,
                json!({"status": "stopped", "app": c.name(), "pid": o.pid, "exit_code": o.exit_code,
                       "signal": o.signal, "killed": o.killed}),
            )
        }
        RouteId::AppMessage => {
            let name = c.name();
            if ctx.registry.get(name).is_none() {
                return Err(HttpError::not_found(format!("no app named '{name}'")));
            }
            let source = c.req_str("source")?;
            let mtype = c.opt_str("type")?.unwrap_or("message");
            let data = c.field("data").cloned().unwrap_or_else(|| json!({}));
            let id = ctx
                .bus
                .publish(NewEvent {
                    kind: "app.message".into(),
                    source: source.to_string(),
                    target: Some(name.to_string()),
                    data: json!({"type": mtype, "data": data}),
                })
                .map_err(|_| HttpError::unavailable("the daemon is shutting down"))?;
            ok(202, json!({"id": id}))
        }
        RouteId::Reload => {
            let r = ctx.registry.reload(true).map_err(registry_error)?;
            ok(
                200,
                json!({"status": "ok", "total": r.apps.len(), "apps": r.apps, "warnings": r.warnings,
                       "added": r.added, "removed": r.removed, "changed": r.changed}),
            )
        }
        RouteId::PublishEvent => publish_event(ctx, c),
        RouteId::ListEvents => list_events(ctx, c),
        RouteId::EventStream => event_stream(ctx, c),
        RouteId::Shutdown => {
            let _ = ctx.shutdown.send("POST /shutdown");
            ok(202, json!({"status": "stopping"}))
        }
        RouteId::CreateApproval
        | RouteId::ListApprovals
        | RouteId::GetApproval
        | RouteId::DecideApproval => super::approvals::route(ctx, id, c),
        RouteId::SubmitExecution
        | RouteId::ListExecutions
        | RouteId::GetExecution
        | RouteId::ExecutionOutput
        | RouteId::ExecutionStream
        | RouteId::CancelExecution
        | RouteId::RetryExecution
        | RouteId::Delegate
        | RouteId::GetTicket => super::executions::route(ctx, id, c),
        RouteId::ListTokens
        | RouteId::CreateToken
        | RouteId::RevokeToken
        | RouteId::RotateToken => super::tokens::route(ctx, id, c),
        RouteId::Audit => super::audit::list(ctx, c),
    }
}

fn health(ctx: &Ctx) -> HResult {
    ok(
        200,
        json!({
            "status": "ok",
            "version": crate::VERSION,
            "uptime_seconds": ctx.started.elapsed().as_secs(),
            "pid": ctx.pid,
            "port": ctx.port.load(Ordering::Relaxed),
            "apps": ctx.registry.count(),
            "config_dir": ctx.config_dir.display().to_string(),
        }),
    )
}

fn publish_event(ctx: &Ctx, c: &Call) -> HResult {
    if c.body.is_none() {
        return Err(HttpError::bad_request(
            "missing request body: expected {\"source\",\"type\",\"data\"}",
        ));
    }
    let kind = c.req_str("type")?;
    if !valid_event_type(kind) {
        return Err(HttpError::bad_request(format!(
            "invalid event type '{kind}': must match ^[a-z0-9][a-z0-9_.:-]{{0,63}}$"
        )));
    }
    let source = c.req_str("source")?;
    if source == crate::events::DAEMON_SOURCE {
        return Err(HttpError::bad_request(
            "source 'orchestratr' is reserved for the daemon's own events",
        ));
    }
    let target = c.opt_str("target")?.map(str::to_string);
    let data = c.field("data").cloned().unwrap_or_else(|| json!({}));
    let id = ctx
        .bus
        .publish(NewEvent {
            kind: kind.to_string(),
            source: source.to_string(),
            target,
            data,
        })
        .map_err(|_| HttpError::unavailable("the daemon is shutting down"))?;
    ok(202, json!({"id": id}))
}

fn filter_of(c: &Call) -> EventFilter {
    EventFilter::new(c.q("type"), c.q("source"), c.q("target"))
}

fn list_events(ctx: &Ctx, c: &Call) -> HResult {
    let since = c.q_u64("since")?.unwrap_or(0);
    let limit = c.q_u64("limit")?.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(HttpError::bad_request(format!(
            "limit must be between 1 and 1000, not {limit}"
        )));
    }
    let r = ctx
        .bus
        .query(since, filter_of(c), limit as usize)
        .map_err(|_| HttpError::unavailable("the daemon is shutting down"))?;
    ok(200, json!({"events": r.events, "last_id": r.last_id}))
}

fn event_stream(ctx: &Ctx, c: &Call) -> HResult {
    let settings = ctx.registry.settings();
    let after = match c
        .last_event_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            HttpError::bad_request(format!(
                "Last-Event-ID must be a non-negative integer, not '{v}'"
            ))
        })?),
        None => c.q_u64("last_event_id")?,
    };
    let slot = StreamSlot::acquire(&ctx.streams, settings.sse_max_streams).ok_or_else(|| {
        HttpError::unavailable(format!(
            "too many open event streams (sse_max_streams = {})",
            settings.sse_max_streams
        ))
        .with_header("Retry-After", "2")
    })?;
    let sub = ctx
        .bus
        .subscribe(filter_of(c), after, settings.sse_queue_capacity)
        .map_err(|_| HttpError::unavailable("the daemon is shutting down"))?;
    let heartbeat = Duration::from_millis(settings.sse_heartbeat_ms);
    Ok(Reply::Stream(Box::new(move |w| {
        sse::serve_events(w, sub, heartbeat, slot)
    })))
}
