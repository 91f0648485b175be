//! `POST /notify/actions/{token}` (API.md §13 "Notifications"): the one-time
//! Approve/Deny URLs of ntfy action buttons. An open route: the 256-bit
//! token in the URL is the credential, valid for one approval and one
//! decision while it is pending. Used, unknown or expired → `410 gone`;
//! success → `200` Approval (decided `by: "ntfy"`).

use super::approvals::approval_error;
use super::router::RouteId;
use super::{Call, Ctx, HResult, HttpError, ok};
use crate::approvals::{ApprovalError, Decision};

fn gone() -> HttpError {
    HttpError::new(
        410,
        "gone",
        "this action link was already used, or its approval was decided or expired",
    )
}

/// Serve the notify action route. Other route ids answer `404`.
pub fn route(ctx: &Ctx, id: RouteId, c: &Call) -> HResult {
    if id != RouteId::NotifyAction {
        return Err(HttpError::not_found("not a notify route"));
    }
    let action = ctx.notify.actions.take(c.name()).map_err(|_| gone())?;
    let d = Decision {
        id: action.approval_id,
        decision: action.decision,
        comment: None,
        by: Some("ntfy".into()),
    };
    match ctx.approvals.decide(d) {
        Ok(a) => ok(200, &a),
        Err(ApprovalError::AlreadyDecided(_) | ApprovalError::NotFound(_)) => Err(gone()),
        Err(e) => Err(approval_error(e)),
    }
}
