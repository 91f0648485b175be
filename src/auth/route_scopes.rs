//! The scope and rate-limit class of every token route (API.md §12), kept
//! beside the route table (src/http/router.rs) so the table itself need not
//! change. docs/api.md "Tokens, scopes, rate limits, audit" lists the result.

use super::ratelimit::Class;
use super::scopes::Scope;
use crate::http::router::RouteId;

/// The scope a token needs for `route` (API.md §12). The match is exhaustive
/// on purpose: a new route does not compile until it is classified here.
/// Open routes (API.md §4) need no token from the daemon's own user; a peer
/// whose uid is unknown must present one, and `read` is enough.
pub fn required_scope(route: RouteId, _method: &str) -> Scope {
    use RouteId::*;
    match route {
        Health | OpenApi | ListApps | GetApp | AppState | AppLaunched | AppReady | AppStopped
        | AppMessage | Reload | PublishEvent | ListEvents | EventStream => Scope::Read,
        ListApprovals | GetApproval | ListExecutions | GetExecution | ExecutionOutput
        | ExecutionStream | GetTicket | AppOutput | AppStream | ListAgents | GetAgent
        | AgentOutput | AgentScreen | AgentStream | AttachAgent => Scope::Read,
        // Per message: user_message needs `agents`, decide_approval `approve`.
        WsObserve => Scope::Read,
        // MCP and tools: reaching them needs `read`; each tool is listed and
        // callable only with its own scope (mcp::tools::tool_scope).
        Mcp | ListTools | CallTool => Scope::Read,
        ListTasks | ListAgentTypes => Scope::Read,
        // Open: the one-time secret in the URL is the credential.
        NotifyAction => Scope::Read,
        LaunchApp | StopApp | SubmitExecution | CancelExecution | RetryExecution | Delegate
        | Trigger => Scope::Execute,
        CreateApproval | DecideApproval => Scope::Approve,
        SpawnAgent | KillAgent | AgentInput | AgentStatus => Scope::Agents,
        Shutdown | ListTokens | CreateToken | RevokeToken | RotateToken | Audit => Scope::Admin,
    }
}

/// The rate-limit class of `route` with `method` (API.md §12): `spawn` for
/// starting an agent, `delegate`, `execute` for anything that starts a run,
/// `read` for every `GET`, `write` for the rest.
pub fn class(route: RouteId, method: &str) -> Class {
    use RouteId::*;
    if method == "GET" {
        return Class::Read;
    }
    match route {
        Delegate => Class::Delegate,
        SubmitExecution | RetryExecution | LaunchApp | Trigger => Class::Execute,
        SpawnAgent => Class::Spawn,
        _ => Class::Write,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_of_known_routes() {
        assert_eq!(required_scope(RouteId::ListExecutions, "GET"), Scope::Read);
        assert_eq!(
            required_scope(RouteId::DecideApproval, "POST"),
            Scope::Approve
        );
        assert_eq!(required_scope(RouteId::Shutdown, "POST"), Scope::Admin);
        assert_eq!(required_scope(RouteId::RotateToken, "POST"), Scope::Admin);
        assert_eq!(required_scope(RouteId::SpawnAgent, "POST"), Scope::Agents);
        assert_eq!(required_scope(RouteId::AgentInput, "POST"), Scope::Agents);
        assert_eq!(required_scope(RouteId::Trigger, "POST"), Scope::Execute);
        assert_eq!(class(RouteId::SpawnAgent, "POST"), Class::Spawn);
        assert_eq!(class(RouteId::Delegate, "POST"), Class::Delegate);
        assert_eq!(class(RouteId::SubmitExecution, "POST"), Class::Execute);
        assert_eq!(class(RouteId::CancelExecution, "POST"), Class::Write);
        assert_eq!(class(RouteId::GetExecution, "GET"), Class::Read);
    }
}
