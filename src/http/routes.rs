//! The dispatch pipeline (API.md §3-§4): guards 1-6 in order, then the router,
//! then the handler of the matched route, which lives in the feature file
//! (`apps.rs`, `events.rs`, `executions.rs`, `approvals.rs`, `daemon.rs`,
//! `tokens.rs`, `audit.rs`).
//! Nothing here answers a route itself; feature files never import this file.

use super::guards::{self, header};
use super::router::{self, RouteId, RouteMatch};
use super::{
    HResult, HttpError, Reply, approvals, apps, catalog, daemon, events, executions, mcp, notify,
};
use std::collections::HashMap;

pub use super::{Call, Ctx};

/// The query parameters. A parameter given twice is `400 bad_request`: which
/// one counts would be a guess (found by schemathesis, docs/api.md "OpenAPI").
fn parse_query(url: &str) -> Result<HashMap<String, String>, HttpError> {
    let mut out = HashMap::new();
    if let Some((_, q)) = url.split_once('?') {
        for (k, v) in form_urlencoded::parse(q.split('#').next().unwrap_or("").as_bytes()) {
            if out.insert(k.to_string(), v.into_owned()).is_some() {
                return Err(HttpError::bad_request(format!(
                    "query parameter '{k}' is given more than once"
                )));
            }
        }
    }
    Ok(out)
}

/// Run guards 1-6 (API.md §3) and the matched handler. The gate audits and
/// adds rate-limit headers (API.md §12); answers carry the CORS headers of
/// API.md §9 for an origin in `allowed_origins`.
pub fn dispatch(ctx: &Ctx, req: &mut tiny_http::Request) -> HResult {
    let cors = guards::cors_origin(header(req, "Origin"), &ctx.registry.settings());
    let mut gate = super::tokens::Gate::new(req);
    let result = dispatch_gated(ctx, req, &mut gate);
    guards::with_cors(gate.finish(ctx, result), cors.as_deref())
}

fn dispatch_gated(
    ctx: &Ctx,
    req: &mut tiny_http::Request,
    gate: &mut super::tokens::Gate,
) -> HResult {
    let settings = ctx.registry.settings();
    guards::check_peer(req.remote_addr())?;
    guards::check_host(header(req, "Host"), &settings)?;
    guards::check_origin_for(header(req, "Origin"), header(req, "Host"), &settings)?;
    let url = req.url().to_string();
    let method = req.method().as_str().to_ascii_uppercase();
    if let Some(r) = guards::preflight(&method, header(req, "Origin"), &settings) {
        return Ok(Reply::Resp(r));
    }
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
    let query = parse_query(&url)?;
    // API.md §9: where the peer's uid is unknown, the open routes need the token too.
    let auth = super::server::token_needed(auth, matches!(id, RouteId::Health), req);
    gate.check(ctx, req, id, auth, &params, &query, &settings)?;
    let body = guards::read_json_body(req)?;
    if let Some(b) = &body
        && !b.is_object()
        && !(id == RouteId::Mcp && b.is_array())
    {
        return Err(HttpError::bad_request("request body must be a JSON object"));
    }
    let call = Call {
        params,
        query,
        body,
        last_event_id: header(req, "Last-Event-ID").map(str::to_string),
        peer: req.remote_addr().copied(),
        peer_uid: match super::server::peer_of(req) {
            super::server::PeerUid::Uid(u) => Some(u),
            super::server::PeerUid::Unknown => None,
        },
        cors_origin: guards::cors_origin(header(req, "Origin"), &settings),
        token_id: gate.token_id(),
        scopes: gate.scopes(),
    };
    route_call(ctx, id, &call)
}

/// The feature file that serves route `id`.
fn route_call(ctx: &Ctx, id: RouteId, c: &Call) -> HResult {
    let serve: fn(&Ctx, RouteId, &Call) -> HResult = match id {
        RouteId::Health | RouteId::Reload | RouteId::Shutdown => daemon::route,
        RouteId::ListApps
        | RouteId::GetApp
        | RouteId::AppState
        | RouteId::AppLaunched
        | RouteId::AppReady
        | RouteId::AppStopped
        | RouteId::LaunchApp
        | RouteId::StopApp
        | RouteId::AppMessage => apps::route,
        RouteId::PublishEvent | RouteId::ListEvents | RouteId::EventStream => events::route,
        RouteId::CreateApproval
        | RouteId::ListApprovals
        | RouteId::GetApproval
        | RouteId::DecideApproval => approvals::route,
        RouteId::SubmitExecution
        | RouteId::ListExecutions
        | RouteId::GetExecution
        | RouteId::ExecutionOutput
        | RouteId::ExecutionStream
        | RouteId::CancelExecution
        | RouteId::RetryExecution
        | RouteId::Delegate
        | RouteId::GetTicket => executions::route,
        RouteId::AppOutput | RouteId::AppStream => super::app_output::route,
        RouteId::Trigger => super::trigger::route,
        RouteId::SpawnAgent
        | RouteId::ListAgents
        | RouteId::GetAgent
        | RouteId::KillAgent
        | RouteId::AgentInput
        | RouteId::AgentOutput
        | RouteId::AgentScreen
        | RouteId::AgentStream
        | RouteId::AgentStatus
        | RouteId::AttachAgent => super::agents::route,
        RouteId::ListTokens
        | RouteId::CreateToken
        | RouteId::RevokeToken
        | RouteId::RotateToken => super::tokens::route,
        RouteId::Audit => super::audit::route,
        RouteId::Mcp | RouteId::ListTools | RouteId::CallTool => mcp::route,
        RouteId::NotifyAction => notify::route,
        RouteId::WsObserve => super::ws::route,
        RouteId::ListTasks | RouteId::ListAgentTypes => catalog::route,
        RouteId::OpenApi => super::openapi::route,
    };
    serve(ctx, id, c)
}
