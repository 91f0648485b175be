//! `GET /openapi.json` (API.md §13): the OpenAPI 3.1 document of this API,
//! built once from the route table (`crate::openapi`) and served as stored
//! bytes, never regenerated per request.

use super::router::RouteId;
use super::{Call, Ctx, HResult, HttpError, Reply, Resp};

/// Serve the document. Other route ids answer `404`.
pub fn route(_ctx: &Ctx, id: RouteId, _c: &Call) -> HResult {
    match id {
        RouteId::OpenApi => Ok(Reply::Resp(Resp {
            status: 200,
            content_type: "application/json",
            body: crate::openapi::document_bytes().to_vec(),
            headers: Vec::new(),
        })),
        _ => Err(HttpError::not_found("not an openapi route")),
    }
}
