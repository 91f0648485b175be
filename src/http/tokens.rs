//! Token routes (API.md §12): `GET|POST /tokens`, `DELETE /tokens/{id}`,
//! `POST /tokens/rotate`; and the per-request [`Gate`] that runs guard 4
//! through [`crate::auth::authorize`], maps its refusals to 401/403/429, adds
//! the `X-RateLimit-*` headers and writes the audit line before the reply.

use super::guards::header;
use super::router::{Auth, RouteId};
use super::{Call, Ctx};
use super::{HResult, HttpError, Reply, Resp};
use crate::audit::{Actor, AuditLog};
use crate::auth::ratelimit::Decision;
use crate::auth::scopes::{self, Scope};
use crate::auth::tokens::StoreError;
use crate::auth::{AuthError, AuthRequest, AuthState, authorize};
use crate::config::Settings;
use crate::events::NewEvent;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::IpAddr;

/// What the HTTP layer needs for guard 4 and the audit log.
pub struct Security {
    /// Tokens and rate limits.
    pub auth: AuthState,
    /// `<state>/audit.jsonl`.
    pub audit: AuditLog,
}

/// What one request's gate learned, for the audit line and the headers.
pub struct Gate {
    peer: Option<IpAddr>,
    method: String,
    path: String,
    route: Option<(RouteId, Auth)>,
    target: Option<String>,
    token_id: Option<String>,
    scopes: Option<Vec<&'static str>>,
    client: Option<IpAddr>,
    limit: Option<Decision>,
}

fn snake(route: RouteId) -> String {
    let mut out = String::new();
    for (i, ch) in format!("{route:?}").chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

fn bearer_challenge(extra: &str) -> String {
    if extra.is_empty() {
        "Bearer realm=\"orchestratr\"".into()
    } else {
        format!("Bearer realm=\"orchestratr\", {extra}")
    }
}

/// Map a refusal to its status, code and headers (API.md §2, §12).
pub fn auth_error(e: &AuthError) -> HttpError {
    match e {
        AuthError::Missing => HttpError::new(
            401,
            "unauthorized",
            "this route needs 'Authorization: Bearer <token>' (the token is in the token file beside config.yml)",
        )
        .with_header("WWW-Authenticate", bearer_challenge("")),
        AuthError::Invalid => HttpError::new(401, "unauthorized", "wrong bearer token")
            .with_header("WWW-Authenticate", bearer_challenge("error=\"invalid_token\"")),
        AuthError::Expired(id, at) => HttpError::new(
            401,
            "unauthorized",
            format!("token '{id}' expired at {at}; create a new one with `orchestratr token create`"),
        )
        .with_header(
            "WWW-Authenticate",
            bearer_challenge("error=\"invalid_token\", error_description=\"the token expired\""),
        ),
        AuthError::InsufficientScope(s) => HttpError::new(
            403,
            "forbidden",
            format!("this token lacks the '{s}' scope this route needs"),
        )
        .with_details(json!({"required_scope": s}))
        .with_header(
            "WWW-Authenticate",
            bearer_challenge(&format!("error=\"insufficient_scope\", scope=\"{s}\"")),
        ),
        AuthError::IpNotAllowed(ip) => HttpError::new(
            403,
            "forbidden",
            format!("client address {ip} is not in ip_allowlist or the token's allowed_ips"),
        ),
        AuthError::RateLimited(d) => HttpError::new(
            429,
            "rate_limited",
            format!(
                "rate limit of the '{}' class reached ({} per {} s); retry in {} s",
                d.class.as_str(),
                d.limit,
                d.window_s,
                d.retry_after_s
            ),
        )
        .with_details(json!({"class": d.class.as_str(), "limit": d.limit, "window_s": d.window_s}))
        .with_header("Retry-After", d.retry_after_s.to_string()),
    }
}

impl Gate {
    /// Start a gate for `req` (before guards 1-3, so their refusals are audited too).
    pub fn new(req: &tiny_http::Request) -> Gate {
        Gate {
            peer: req.remote_addr().map(|a| a.ip()),
            method: req.method().as_str().to_ascii_uppercase(),
            path: super::router::normalize_path(req.url()).to_string(),
            route: None,
            target: None,
            token_id: None,
            scopes: None,
            client: None,
            limit: None,
        }
    }

    /// Guard 4 (API.md §3, §12): token, scope, IP allowlist, rate limit.
    ///
    /// Errors: 401 / 403 / 429 as [`auth_error`] maps them.
    #[allow(clippy::too_many_arguments)]
    pub fn check(
        &mut self,
        ctx: &Ctx,
        req: &tiny_http::Request,
        route: RouteId,
        auth: Auth,
        params: &[String],
        query: &HashMap<String, String>,
        settings: &Settings,
    ) -> Result<(), HttpError> {
        self.route = Some((route, auth));
        self.target = params.first().cloned();
        let r = AuthRequest {
            route,
            auth,
            method: &self.method,
            authorization: header(req, "Authorization"),
            query_token: query.get("token").map(String::as_str),
            peer: self.peer,
            forwarded_for: header(req, "X-Forwarded-For"),
        };
        match authorize(&ctx.security.auth, settings, &r) {
            Ok(g) => {
                self.client = Some(g.client);
                self.limit = g.limit;
                if let Some(p) = g.principal {
                    if !p.is_admin_file {
                        self.scopes = Some(p.scopes.iter().map(|s| s.as_str()).collect());
                    }
                    self.token_id = Some(p.token_id);
                }
                Ok(())
            }
            Err(d) => {
                self.client = Some(d.client);
                self.limit = d.limit;
                self.token_id = d.token_id;
                Err(auth_error(&d.error))
            }
        }
    }

    /// The authenticated token's id, once [`Gate::check`] passed.
    pub fn token_id(&self) -> Option<String> {
        self.token_id.clone()
    }

    /// The authenticated token's scopes; `None` = every scope (admin token,
    /// `auth: none`, open route without a token).
    pub fn scopes(&self) -> Option<Vec<&'static str>> {
        self.scopes.clone()
    }

    /// Add the `X-RateLimit-*` headers and write the audit line (every
    /// 401/403/429, and every state-changing token route), before the reply.
    pub fn finish(self, ctx: &Ctx, mut result: HResult) -> HResult {
        if let Some(d) = &self.limit {
            match &mut result {
                Ok(Reply::Resp(r)) => r
                    .headers
                    .extend(d.headers().map(|(k, v)| (k.to_string(), v))),
                Err(e) => e
                    .headers
                    .extend(d.headers().map(|(k, v)| (k.to_string(), v))),
                _ => {}
            }
        }
        let status = match &result {
            Ok(Reply::Resp(r)) => r.status,
            Ok(_) => 200,
            Err(e) => e.status,
        };
        let denied = matches!(status, 401 | 403 | 429);
        let control = matches!(self.route, Some((_, a)) if a != Auth::Open) && self.method != "GET";
        if !(denied || control) {
            return result;
        }
        let action = match self.route {
            Some((r, _)) => snake(r),
            None => format!("{} {}", self.method, self.path),
        };
        let mut target = self.target.clone();
        if matches!(self.route, Some((RouteId::CreateToken, _)))
            && let Ok(Reply::Resp(r)) = &result
            && let Ok(v) = serde_json::from_slice::<Value>(&r.body)
        {
            target = v["id"].as_str().map(str::to_string);
        }
        let outcome = if denied {
            "denied"
        } else if status < 400 {
            "ok"
        } else {
            "error"
        };
        let actor = Actor {
            token_id: self.token_id.clone(),
            via: "http",
            peer: self
                .client
                .or(self.peer)
                .map(|a| crate::auth::cidr::canonical(a).to_string()),
        };
        let audit = &ctx.security.audit;
        audit.set_max_bytes(ctx.registry.settings().security.audit_max_bytes);
        if let Err(e) = audit.record(&actor, &action, target.as_deref(), outcome, status) {
            log::error!("cannot write the audit log: {e}");
        }
        result
    }
}

fn store_error(e: StoreError) -> HttpError {
    match e {
        StoreError::NotFound(id) => HttpError::not_found(format!("no token with id '{id}'")),
        StoreError::Invalid(m) => HttpError::bad_request(m),
        StoreError::Io(..) => HttpError::internal(e.to_string()),
    }
}

fn ok(status: u16, v: Value) -> HResult {
    Ok(Reply::Resp(Resp::json(status, &v)))
}

/// Serve the token routes.
pub fn route(ctx: &Ctx, id: RouteId, c: &Call) -> HResult {
    let store = &ctx.security.auth.store;
    match id {
        RouteId::ListTokens => {
            let t: Vec<Value> = store.list().iter().map(|r| r.view()).collect();
            ok(200, json!({"total": t.len(), "tokens": t}))
        }
        RouteId::CreateToken => create(ctx, c),
        RouteId::RevokeToken => {
            let rec = store.revoke(c.name()).map_err(store_error)?;
            ctx.bus.emit(NewEvent::daemon(
                "token.revoked",
                None,
                json!({"id": rec.id, "name": rec.name}),
            ));
            ok(
                200,
                json!({"status": "revoked", "id": rec.id, "name": rec.name}),
            )
        }
        RouteId::RotateToken => {
            let grace = match c.field("grace_s") {
                None => 0,
                Some(v) => v.as_u64().ok_or_else(|| {
                    HttpError::bad_request("field 'grace_s' must be a non-negative integer")
                })?,
            };
            let until = store.rotate_admin(grace).map_err(store_error)?;
            ctx.bus.emit(NewEvent::daemon(
                "token.rotated",
                None,
                json!({"grace_s": grace}),
            ));
            ok(
                200,
                json!({"status": "rotated", "grace_s": grace, "previous_valid_until": until}),
            )
        }
        _ => Err(HttpError::not_found("no such token route")),
    }
}

fn create(ctx: &Ctx, c: &Call) -> HResult {
    let name = c.req_str("name")?;
    let scopes = match (c.field("scopes"), c.opt_str("preset")?) {
        (Some(_), Some(_)) => {
            return Err(HttpError::bad_request(
                "give either 'scopes' or 'preset', not both",
            ));
        }
        (None, None) => {
            return Err(HttpError::bad_request(
                "missing required field 'scopes' (or 'preset': read-only, approver, ci, mcp)",
            ));
        }
        (None, Some(p)) => scopes::preset(p).map_err(HttpError::bad_request)?,
        (Some(v), None) => {
            let arr = v.as_array().ok_or_else(|| {
                HttpError::bad_request("field 'scopes' must be an array of strings")
            })?;
            arr.iter()
                .map(|s| {
                    s.as_str()
                        .ok_or_else(|| "field 'scopes' must be an array of strings".to_string())
                        .and_then(Scope::parse)
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(HttpError::bad_request)?
        }
    };
    let expires = match c.field("expires_in_s") {
        None => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            HttpError::bad_request("field 'expires_in_s' must be a positive integer")
        })?),
    };
    let ips = match c.field("allowed_ips") {
        None => Vec::new(),
        Some(v) => v
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|x| x.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| {
                HttpError::bad_request("field 'allowed_ips' must be an array of CIDR strings")
            })?,
    };
    let (token, rec) = ctx
        .security
        .auth
        .store
        .create(name, scopes, expires, ips)
        .map_err(store_error)?;
    ctx.bus.emit(NewEvent::daemon(
        "token.created",
        None,
        json!({"id": rec.id, "name": rec.name, "scopes": rec.scopes}),
    ));
    let mut v = rec.view();
    v["token"] = json!(token);
    ok(201, v)
}

impl Security {
    /// Wire the token store (reporting a broken `tokens.json` or token file
    /// as `config.invalid` on `bus`), a fresh limiter and the open audit log,
    /// and start the hot-reload thread: it re-checks the token files every
    /// [`crate::auth::tokens::RECHECK_MS`] (requests do too) and ends once the
    /// daemon drops the last handle.
    pub fn start(
        config_dir: &std::path::Path,
        admin_token: &str,
        audit: AuditLog,
        bus: crate::events::Bus,
    ) -> std::sync::Arc<Security> {
        let s = std::sync::Arc::new(Self::new(config_dir, admin_token, audit, bus));
        let weak = std::sync::Arc::downgrade(&s);
        let spawned = std::thread::Builder::new()
            .name("token-reload".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_millis(
                        crate::auth::tokens::RECHECK_MS * 2,
                    ));
                    match weak.upgrade() {
                        Some(s) => s.auth.store.maybe_reload(),
                        None => break,
                    }
                }
            });
        if let Err(e) = spawned {
            log::warn!("cannot start the token reload thread ({e}); requests still reload");
        }
        s
    }

    fn new(
        config_dir: &std::path::Path,
        admin_token: &str,
        audit: AuditLog,
        bus: crate::events::Bus,
    ) -> Security {
        let on_invalid: crate::auth::tokens::OnInvalid =
            Box::new(move |path, msg, line, column| {
                bus.emit(NewEvent::daemon(
                    "config.invalid",
                    None,
                    json!({"errors": [{"file": path.display().to_string(), "line": line,
                                   "column": column, "message": msg}]}),
                ));
            });
        Security {
            auth: AuthState {
                store: crate::auth::TokenStore::open(config_dir, admin_token, on_invalid),
                limiter: crate::auth::ratelimit::Limiter::new(),
            },
            audit,
        }
    }
}
