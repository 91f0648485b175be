//! `GET /ws/observe` (API.md §11): authenticate (dispatch ran guards 1-4 and
//! the token check before this handler: a failure is a plain `401`, no
//! upgrade), take one of [`MAX_CONNECTIONS`] slots (else `503`), check the
//! RFC 6455 §4.2.1 handshake headers (a version other than 13 → `426
//! upgrade_required` with `Sec-WebSocket-Version: 13`), answer `101` with
//! `Sec-WebSocket-Accept` and hand the split socket to [`crate::ws`].

use super::router::RouteId;
use super::routes::{Call, Ctx};
use super::{HResult, HttpError, Reply};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Open WebSocket connections at most (two threads each: reader and writer).
pub const MAX_CONNECTIONS: usize = 16;

static OPEN: AtomicUsize = AtomicUsize::new(0);

/// One of the [`MAX_CONNECTIONS`] slots; freed on drop.
pub struct WsSlot(());

impl WsSlot {
    /// Take a slot; `None` when all are in use.
    pub fn acquire() -> Option<WsSlot> {
        OPEN.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < MAX_CONNECTIONS).then_some(n + 1)
        })
        .ok()
        .map(|_| WsSlot(()))
    }
}

impl Drop for WsSlot {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Open WebSocket connections now.
pub fn open_connections() -> usize {
    OPEN.load(Ordering::SeqCst)
}

/// Serve `GET /ws/observe`.
pub fn route(ctx: &Ctx, _id: RouteId, c: &Call) -> HResult {
    let slot = WsSlot::acquire().ok_or_else(|| {
        HttpError::unavailable(format!(
            "too many websocket connections (at most {MAX_CONNECTIONS})"
        ))
        .with_header("Retry-After", "2")
    })?;
    let security = ctx.security.clone();
    let actor = crate::audit::Actor {
        token_id: c.token_id.clone(),
        via: "ws",
        peer: c.peer.map(|p| p.ip().to_string()),
    };
    let audit: crate::ws::session::AuditFn = Box::new(
        move |action: &str, target: Option<&str>, outcome: &str, status: u16, d: &Value| {
            if let Err(e) =
                security
                    .audit
                    .record_detail(&actor, action, target, outcome, status, Some(d))
            {
                log::warn!("cannot write the audit line for {action}: {e}");
            }
        },
    );
    let deps = crate::ws::Deps {
        agents: ctx.agents.clone(),
        bus: ctx.bus.clone(),
        approvals: ctx.approvals.clone(),
        scopes: c.scopes.clone(),
        audit,
    };
    Ok(Reply::Defer(Box::new(move |req| upgrade(req, deps, slot))))
}

fn header(req: &tiny_http::Request, name: &str) -> Option<String> {
    super::guards::header(req, name).map(|v| v.trim().to_string())
}

fn upgrade(req: tiny_http::Request, deps: crate::ws::Deps, slot: WsSlot) {
    let has_token = |h: Option<String>, t: &str| {
        h.is_some_and(|v| v.split(',').any(|x| x.trim().eq_ignore_ascii_case(t)))
    };
    if !has_token(header(&req, "Upgrade"), "websocket")
        || !has_token(header(&req, "Connection"), "upgrade")
    {
        return HttpError::bad_request(
            "expected a websocket handshake: Upgrade: websocket, Connection: Upgrade",
        )
        .into_resp()
        .send(req);
    }
    if header(&req, "Sec-WebSocket-Version").as_deref() != Some("13") {
        return HttpError::new(
            426,
            "upgrade_required",
            "unsupported Sec-WebSocket-Version: expected 13 (RFC 6455)",
        )
        .with_header("Sec-WebSocket-Version", "13")
        .into_resp()
        .send(req);
    }
    let Some(key) = header(&req, "Sec-WebSocket-Key").filter(|k| !k.is_empty()) else {
        return HttpError::bad_request("missing Sec-WebSocket-Key")
            .into_resp()
            .send(req);
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut resp = tiny_http::Response::new_empty(tiny_http::StatusCode(101));
    if let Ok(h) = tiny_http::Header::from_bytes("Sec-WebSocket-Accept", accept.as_bytes()) {
        resp.add_header(h);
    }
    match req.upgrade_split("websocket", resp) {
        Ok((r, w)) => {
            if let Err(e) = crate::ws::start(r, w, deps, slot) {
                log::error!("cannot start websocket threads: {e}");
            }
        }
        Err(e) => log::debug!("websocket client went away during the upgrade: {e}"),
    }
}
