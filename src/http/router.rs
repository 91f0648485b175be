//! The route table (API.md §4, §7, §8) and path matching. Every route is served at
//! `/X` and at `/api/X`.

/// Who may call a route (API.md §3 guard 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// The orchestratr v1 app protocol: guards 1-3 only.
    Open,
    /// Needs `Authorization: Bearer <token>`.
    Token,
    /// Needs the token, also accepted as `?token=` (SSE: EventSource cannot send headers).
    TokenOrQuery,
}

/// Every route the daemon serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteId {
    /// `GET /health`
    Health,
    /// `GET /apps`
    ListApps,
    /// `GET /apps/{name}`
    GetApp,
    /// `GET /apps/{name}/state`
    AppState,
    /// `POST /apps/{name}/launched`
    AppLaunched,
    /// `POST /apps/{name}/ready`
    AppReady,
    /// `POST /apps/{name}/stopped`
    AppStopped,
    /// `POST /apps/{name}/launch`
    LaunchApp,
    /// `POST /apps/{name}/stop`
    StopApp,
    /// `POST /apps/{name}/message`
    AppMessage,
    /// `POST /reload`
    Reload,
    /// `POST /events`
    PublishEvent,
    /// `GET /events`
    ListEvents,
    /// `GET /events/stream`
    EventStream,
    /// `POST /shutdown`
    Shutdown,
    /// `POST /approvals`
    CreateApproval,
    /// `GET /approvals`
    ListApprovals,
    /// `GET /approvals/{id}`
    GetApproval,
    /// `POST /approvals/{id}`
    DecideApproval,
    /// `POST /executions` and its alias `POST /execute`
    SubmitExecution,
    /// `GET /executions`
    ListExecutions,
    /// `GET /executions/{id}`
    GetExecution,
    /// `GET /executions/{id}/output`
    ExecutionOutput,
    /// `GET /executions/{id}/stream`
    ExecutionStream,
    /// `POST /executions/{id}/cancel`
    CancelExecution,
    /// `POST /executions/{id}/retry`
    RetryExecution,
    /// `POST /delegate`
    Delegate,
    /// `GET /tasks/{ticket_id}`
    GetTicket,
    /// `GET /apps/{name}/output`
    AppOutput,
    /// `GET /apps/{name}/stream`
    AppStream,
    /// `POST /trigger` (compatibility with the Go orchestratr, API.md §9)
    Trigger,
    /// `POST /agents/spawn` and its alias `POST /agents` (API.md §10)
    SpawnAgent,
    /// `GET /agents`
    ListAgents,
    /// `GET /agents/{id}`
    GetAgent,
    /// `DELETE /agents/{id}`
    KillAgent,
    /// `POST /agents/{id}/input`
    AgentInput,
    /// `GET /agents/{id}/output`
    AgentOutput,
    /// `GET /agents/{id}/screen`
    AgentScreen,
    /// `GET /agents/{id}/stream`
    AgentStream,
    /// `POST /agents/{id}/status`
    AgentStatus,
    /// `GET /agents/{id}/attach`
    AttachAgent,
    /// `GET /ws/observe`: the WebSocket bridge (API.md §11)
    WsObserve,
    /// `GET /tokens` (API.md §12)
    ListTokens,
    /// `POST /tokens`
    CreateToken,
    /// `DELETE /tokens/{id}`
    RevokeToken,
    /// `POST /tokens/rotate`
    RotateToken,
    /// `GET /audit`
    Audit,
    /// `POST /mcp` (MCP Streamable HTTP transport, API.md §13)
    Mcp,
    /// `GET /tools`
    ListTools,
    /// `POST /tools/{name}`
    CallTool,
    /// `POST /notify/actions/{token}` (one-time ntfy action URL)
    NotifyAction,
    /// `GET /tasks` (the registered tasks, API.md §13)
    ListTasks,
    /// `GET /agent-types` (API.md §13)
    ListAgentTypes,
    /// `GET /openapi.json` (API.md §13)
    OpenApi,
}

/// `(method, pattern, route, auth)`; `{}` matches one path segment.
#[rustfmt::skip]
const ROUTES: &[(&str, &str, RouteId, Auth)] = &[
    ("GET", "/health", RouteId::Health, Auth::Open),
    ("GET", "/apps", RouteId::ListApps, Auth::Open),
    ("GET", "/apps/{}", RouteId::GetApp, Auth::Open),
    ("GET", "/apps/{}/state", RouteId::AppState, Auth::Open),
    (
        "POST",
        "/apps/{}/launched",
        RouteId::AppLaunched,
        Auth::Open,
    ),
    ("POST", "/apps/{}/ready", RouteId::AppReady, Auth::Open),
    ("POST", "/apps/{}/stopped", RouteId::AppStopped, Auth::Open),
    ("POST", "/apps/{}/launch", RouteId::LaunchApp, Auth::Token),
    ("POST", "/apps/{}/stop", RouteId::StopApp, Auth::Token),
    ("POST", "/apps/{}/message", RouteId::AppMessage, Auth::Open),
    ("POST", "/reload", RouteId::Reload, Auth::Open),
    ("POST", "/events", RouteId::PublishEvent, Auth::Open),
    ("GET", "/events", RouteId::ListEvents, Auth::Open),
    ("GET", "/events/stream", RouteId::EventStream, Auth::Open),
    ("POST", "/shutdown", RouteId::Shutdown, Auth::Token),
    ("POST", "/approvals", RouteId::CreateApproval, Auth::Token),
    ("GET", "/approvals", RouteId::ListApprovals, Auth::Token),
    ("GET", "/approvals/{}", RouteId::GetApproval, Auth::Token),
    ("POST", "/approvals/{}", RouteId::DecideApproval, Auth::Token),
    ("POST", "/executions", RouteId::SubmitExecution, Auth::Token),
    ("POST", "/execute", RouteId::SubmitExecution, Auth::Token),
    ("GET", "/executions", RouteId::ListExecutions, Auth::Token),
    ("GET", "/executions/{}", RouteId::GetExecution, Auth::Token),
    ("GET", "/executions/{}/output", RouteId::ExecutionOutput, Auth::Token),
    ("GET", "/executions/{}/stream", RouteId::ExecutionStream, Auth::TokenOrQuery),
    ("POST", "/executions/{}/cancel", RouteId::CancelExecution, Auth::Token),
    ("POST", "/executions/{}/retry", RouteId::RetryExecution, Auth::Token),
    ("POST", "/delegate", RouteId::Delegate, Auth::Token),
    ("GET", "/tasks/{}", RouteId::GetTicket, Auth::Token),
    ("GET", "/apps/{}/output", RouteId::AppOutput, Auth::Token),
    ("GET", "/apps/{}/stream", RouteId::AppStream, Auth::TokenOrQuery),
    ("POST", "/trigger", RouteId::Trigger, Auth::Token),
    ("POST", "/agents/spawn", RouteId::SpawnAgent, Auth::Token),
    ("POST", "/agents", RouteId::SpawnAgent, Auth::Token),
    ("GET", "/agents", RouteId::ListAgents, Auth::Token),
    ("GET", "/agents/{}", RouteId::GetAgent, Auth::Token),
    ("DELETE", "/agents/{}", RouteId::KillAgent, Auth::Token),
    ("POST", "/agents/{}/input", RouteId::AgentInput, Auth::Token),
    ("GET", "/agents/{}/output", RouteId::AgentOutput, Auth::Token),
    ("GET", "/agents/{}/screen", RouteId::AgentScreen, Auth::Token),
    ("GET", "/agents/{}/stream", RouteId::AgentStream, Auth::TokenOrQuery),
    ("POST", "/agents/{}/status", RouteId::AgentStatus, Auth::Token),
    ("GET", "/agents/{}/attach", RouteId::AttachAgent, Auth::Token),
    ("GET", "/ws/observe", RouteId::WsObserve, Auth::TokenOrQuery),
    ("GET", "/tokens", RouteId::ListTokens, Auth::Token),
    ("POST", "/tokens", RouteId::CreateToken, Auth::Token),
    ("POST", "/tokens/rotate", RouteId::RotateToken, Auth::Token),
    ("DELETE", "/tokens/{}", RouteId::RevokeToken, Auth::Token),
    ("GET", "/audit", RouteId::Audit, Auth::Token),
    ("POST", "/mcp", RouteId::Mcp, Auth::Token),
    ("GET", "/tools", RouteId::ListTools, Auth::Token),
    ("POST", "/tools/{}", RouteId::CallTool, Auth::Token),
    ("POST", "/notify/actions/{}", RouteId::NotifyAction, Auth::Open),
    ("GET", "/tasks", RouteId::ListTasks, Auth::Token),
    ("GET", "/agent-types", RouteId::ListAgentTypes, Auth::Token),
    ("GET", "/openapi.json", RouteId::OpenApi, Auth::Open),
];

/// The route table, `(method, pattern, route, auth)` with `{}` for one path
/// segment: what the OpenAPI document (`http/openapi.rs`) is generated from.
pub fn table() -> &'static [(&'static str, &'static str, RouteId, Auth)] {
    ROUTES
}

/// Result of matching a request line.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteMatch {
    /// A route: its id, auth class and the `{}` segments in order.
    Found(RouteId, Auth, Vec<String>),
    /// The path exists but not for this method; the `Allow` header value.
    MethodNotAllowed(String),
    /// No such path.
    NotFound,
}

/// Strip the optional `/api` prefix and the query string.
pub fn normalize_path(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or("");
    match path.strip_prefix("/api") {
        Some(rest) if rest.starts_with('/') => rest,
        Some("") => "/",
        _ => path,
    }
}

fn match_pattern(pattern: &str, segs: &[&str]) -> Option<Vec<String>> {
    let pat: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    if pat.len() != segs.len() {
        return None;
    }
    let mut params = Vec::new();
    for (p, s) in pat.iter().zip(segs) {
        if *p == "{}" {
            if s.is_empty() {
                return None;
            }
            params.push((*s).to_string());
        } else if p != s {
            return None;
        }
    }
    Some(params)
}

/// Match `method` and the request target `url` (with or without `/api`, query ignored).
/// `HEAD` is not served. A trailing slash is ignored.
///
/// A literal segment beats `{}` at the same position (the leftmost difference
/// decides): `/agents/spawn` is only the spawn route, never `/agents/{}` with
/// the id `spawn`, so its `405` lists only `POST`.
pub fn route(method: &str, url: &str) -> RouteMatch {
    let path = normalize_path(url);
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let matches: Vec<_> = ROUTES
        .iter()
        .filter_map(|r| match_pattern(r.1, &segs).map(|p| (r, p, literal_mask(r.1))))
        .collect();
    let Some(best) = matches.iter().map(|m| m.2.clone()).max() else {
        return RouteMatch::NotFound;
    };
    let mut allowed: Vec<&str> = Vec::new();
    for ((m, _, id, auth), params, mask) in matches {
        if mask != best {
            continue;
        }
        if *m == method {
            return RouteMatch::Found(*id, *auth, params);
        }
        if !allowed.contains(m) {
            allowed.push(m);
        }
    }
    RouteMatch::MethodNotAllowed(allowed.join(", "))
}

/// Per segment of `pattern`, whether it is a literal (`true`) or `{}`; the
/// greater mask (lexicographically) is the more specific pattern.
fn literal_mask(pattern: &str) -> Vec<bool> {
    pattern
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| s != "{}")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_prefix_and_query_are_ignored() {
        assert_eq!(normalize_path("/api/health?x=1"), "/health");
        assert_eq!(normalize_path("/apiary"), "/apiary");
        assert!(
            matches!(route("GET", "/api/apps/x/state"), RouteMatch::Found(RouteId::AppState, Auth::Open, p) if p == vec!["x"])
        );
        assert!(matches!(
            route("GET", "/apps/"),
            RouteMatch::Found(RouteId::ListApps, ..)
        ));
    }

    #[test]
    fn task_list_and_ticket_are_different_routes() {
        assert!(
            matches!(route("GET", "/tasks"), RouteMatch::Found(RouteId::ListTasks, Auth::Token, p) if p.is_empty())
        );
        assert!(matches!(
            route("GET", "/api/tasks/"),
            RouteMatch::Found(RouteId::ListTasks, ..)
        ));
        assert!(
            matches!(route("GET", "/tasks/exec-1"), RouteMatch::Found(RouteId::GetTicket, _, p) if p == vec!["exec-1"])
        );
        assert!(matches!(
            route("GET", "/agent-types"),
            RouteMatch::Found(RouteId::ListAgentTypes, ..)
        ));
    }

    #[test]
    fn literal_segment_beats_parameter() {
        assert_eq!(
            route("OPTIONS", "/agents/spawn"),
            RouteMatch::MethodNotAllowed("POST".into())
        );
        assert!(matches!(
            route("POST", "/agents/spawn"),
            RouteMatch::Found(RouteId::SpawnAgent, _, _)
        ));
        assert!(matches!(
            route("GET", "/agents/abc"),
            RouteMatch::Found(RouteId::GetAgent, _, _)
        ));
    }

    #[test]
    fn wrong_method_lists_allowed() {
        assert_eq!(
            route("DELETE", "/events"),
            RouteMatch::MethodNotAllowed("POST, GET".into())
        );
        assert_eq!(route("GET", "/nope"), RouteMatch::NotFound);
        assert_eq!(
            route("GET", "/apps/x/launch"),
            RouteMatch::MethodNotAllowed("POST".into())
        );
    }
}
