//! HTTP handlers of API.md §8 (approvals).
//!
//! SCAFFOLD: to be implemented (issue 4).

use super::router::RouteId;
use super::routes::{Call, Ctx};
use super::{HResult, HttpError};

/// Serve an approvals route.
pub fn route(_ctx: &Ctx, _id: RouteId, _c: &Call) -> HResult {
    Err(HttpError::new(
        501,
        "internal",
        "approvals are not implemented yet",
    ))
}
