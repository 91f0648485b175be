//! `GET /audit?since=<seq>&limit=` (admin scope, API.md §12) →
//! `{"entries":[…],"total":n}`: entries with `seq > since`, oldest first;
//! `total` counts every retained entry after `since` (so `total > len`
//! means there is more to page through).

use super::router::RouteId;
use super::{Call, Ctx};
use super::{HResult, HttpError, Reply, Resp};
use serde_json::json;

/// Serve `GET /audit` (the router sends only [`RouteId::Audit`] here).
///
/// Errors: `400` for a `limit` outside 1-1000 or a non-numeric `since`.
pub fn route(ctx: &Ctx, _id: RouteId, c: &Call) -> HResult {
    let since = c.q_u64("since")?.unwrap_or(0);
    let limit = c.q_u64("limit")?.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(HttpError::bad_request(format!(
            "limit must be between 1 and 1000, not {limit}"
        )));
    }
    let (entries, total) = ctx.security.audit.read_since(since, limit as usize);
    Ok(Reply::Resp(Resp::json(
        200,
        &json!({"entries": entries, "total": total}),
    )))
}
