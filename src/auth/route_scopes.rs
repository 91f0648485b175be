//! The scope and rate-limit class of every token route (API.md §12), kept
//! beside the route table (src/http/router.rs) so the table itself need not
//! change. docs/api.md "Tokens, scopes, rate limits, audit" lists the result.

use super::ratelimit::Class;
use super::scopes::Scope;
use crate::http::router::RouteId;

/// The scope a token needs for `route` (called only for token routes; the
/// open routes of API.md §4 need none).
///
/// Routes added after this table fall back by name and method: a route whose
/// name mentions `Agent` needs `agents` to change and `read` to read; any other
/// unlisted `GET` needs `read` and any other unlisted write `admin` (deny by
/// default until it is listed here).
pub fn required_scope(route: RouteId, method: &str) -> Scope {
    use RouteId::*;
    match route {
        ListApprovals | GetApproval | ListExecutions | GetExecution | ExecutionOutput
        | ExecutionStream | GetTicket => Scope::Read,
        LaunchApp | StopApp | SubmitExecution | CancelExecution | RetryExecution | Delegate => {
            Scope::Execute
        }
        CreateApproval | DecideApproval => Scope::Approve,
        Shutdown | ListTokens | CreateToken | RevokeToken | RotateToken | Audit => Scope::Admin,
        #[allow(unreachable_patterns)]
        other => fallback_scope(&format!("{other:?}"), method),
    }
}

fn fallback_scope(name: &str, method: &str) -> Scope {
    let lname = name.to_ascii_lowercase();
    if method == "GET" {
        Scope::Read
    } else if lname.contains("agent") {
        Scope::Agents
    } else if lname.contains("trigger") {
        Scope::Execute
    } else if lname.contains("approval") {
        Scope::Approve
    } else {
        Scope::Admin
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
        SubmitExecution | RetryExecution | LaunchApp => Class::Execute,
        #[allow(unreachable_patterns)]
        other => {
            let n = format!("{other:?}").to_ascii_lowercase();
            if n.contains("spawn") {
                Class::Spawn
            } else if n.contains("trigger") {
                Class::Execute
            } else {
                Class::Write
            }
        }
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
        assert_eq!(fallback_scope("SpawnAgent", "POST"), Scope::Agents);
        assert_eq!(fallback_scope("Whatever", "POST"), Scope::Admin);
        assert_eq!(class(RouteId::Delegate, "POST"), Class::Delegate);
        assert_eq!(class(RouteId::SubmitExecution, "POST"), Class::Execute);
        assert_eq!(class(RouteId::CancelExecution, "POST"), Class::Write);
        assert_eq!(class(RouteId::GetExecution, "GET"), Class::Read);
    }
}
