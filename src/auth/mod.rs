//! Authentication and authorization (API.md §3 guard 4 and §12): the token
//! store, scopes, the IP allowlist and rate limits, decided in one call,
//! [`authorize`], for every request (HTTP, SSE `?token=`, and later the
//! WebSocket and MCP paths). Only `http/` turns an [`AuthError`] into a status.

pub mod cidr;
pub mod config;
pub mod ratelimit;
pub mod route_scopes;
pub mod scopes;
pub mod tokens;

use crate::config::{AuthMode, Settings};
use crate::http::router::{Auth, RouteId};
use ratelimit::{Class, Decision, Limiter};
use scopes::Scope;
use std::net::{IpAddr, Ipv4Addr};
pub use tokens::{Principal, TokenStore};

/// The shared state of [`authorize`]: the token store and the rate limiter.
pub struct AuthState {
    /// Admin and scoped tokens.
    pub store: TokenStore,
    /// Token buckets.
    pub limiter: Limiter,
}

/// What [`authorize`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// The matched route.
    pub route: RouteId,
    /// Its auth class from the route table.
    pub auth: Auth,
    /// Upper-case method.
    pub method: &'a str,
    /// The `Authorization` header value.
    pub authorization: Option<&'a str>,
    /// The `?token=` query parameter (honoured on `Auth::TokenOrQuery` routes).
    pub query_token: Option<&'a str>,
    /// The TCP peer address.
    pub peer: Option<IpAddr>,
    /// The `X-Forwarded-For` header (read only from `trusted_proxies`).
    pub forwarded_for: Option<&'a str>,
}

/// A request that may proceed.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Who made it; `None` on open routes and with `auth: none`.
    pub principal: Option<Principal>,
    /// The bucket charged, for the `X-RateLimit-*` headers.
    pub limit: Option<Decision>,
    /// The client address (the peer, or `X-Forwarded-For` from a trusted proxy).
    pub client: IpAddr,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No token presented (401).
    Missing,
    /// Unknown or wrong token (401).
    Invalid,
    /// A known token past its expiry (401): id and RFC 3339 time.
    Expired(String, String),
    /// The token lacks a scope (403 `insufficient_scope`).
    InsufficientScope(Scope),
    /// The client address is outside `ip_allowlist` or the token's `allowed_ips` (403).
    IpNotAllowed(IpAddr),
    /// Over a rate limit (429).
    RateLimited(Decision),
}

/// The refusal with the context the audit log and headers need.
#[derive(Debug, Clone)]
pub struct Denied {
    /// The reason.
    pub error: AuthError,
    /// Token id, when the token was valid (scope / IP / rate refusals).
    pub token_id: Option<String>,
    /// The bucket charged (the `failed_auth` one for 401s).
    pub limit: Option<Decision>,
    /// The client address.
    pub client: IpAddr,
}

/// Decide a request (API.md §3 guard 4, §12). `GET /health` is always let
/// through (the liveness probe); everything else, in order:
/// 1. the client address must be in `ip_allowlist` (when set);
/// 2. open routes pass, charged per client address only with
///    `rate_limits.open_routes: true`; with `auth: none` every route passes;
/// 3. the token (header, or `?token=` on SSE routes) must be valid and not
///    expired — a wrong well-formed token (64 hex digits or `ort_…`) charges
///    the `failed_auth` bucket of the client address and becomes `429` once
///    it is empty (a missing or malformed credential cannot be guessed and
///    is a plain 401);
/// 4. the client address must be in the token's `allowed_ips` (when set);
/// 5. the token must hold the route's scope ([`route_scopes::required_scope`]);
/// 6. the token's bucket of the route's class must not be empty (the admin
///    token only with `rate_limits.admin_token: true`).
///
/// Errors: [`Denied`] (boxed: it is large) naming the reason.
pub fn authorize(
    state: &AuthState,
    settings: &Settings,
    r: &AuthRequest,
) -> Result<Grant, Box<Denied>> {
    let sec = &settings.security;
    let peer = r.peer.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let client = cidr::client_ip(peer, r.forwarded_for, &sec.trusted_proxies);
    let deny = |error, token_id: Option<String>, limit| {
        Box::new(Denied {
            error,
            token_id,
            limit,
            client,
        })
    };
    if r.route == RouteId::Health {
        return Ok(Grant {
            principal: None,
            limit: None,
            client,
        });
    }
    if !sec.ip_allowlist.is_empty() && !cidr::contains(&sec.ip_allowlist, client) {
        return Err(deny(AuthError::IpNotAllowed(client), None, None));
    }
    let class = route_scopes::class(r.route, r.method);
    if r.auth == Auth::Open || settings.auth == AuthMode::None {
        let limit = if r.auth == Auth::Open && sec.rate_limits.open_routes {
            state
                .limiter
                .take(&format!("p:{client}"), class, sec.rate_limits.of(class))
        } else {
            None
        };
        if let Some(d) = limit
            && !d.allowed
        {
            return Err(deny(AuthError::RateLimited(d), None, Some(d)));
        }
        return Ok(Grant {
            principal: None,
            limit,
            client,
        });
    }
    let bearer = r.authorization.and_then(|v| {
        let (scheme, rest) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    let presented = bearer.or(if r.auth == Auth::TokenOrQuery {
        r.query_token
    } else {
        None
    });
    let authenticated = match presented {
        None => Err(AuthError::Missing),
        Some(p) => state.store.authenticate(p).map_err(|e| match e {
            tokens::Rejected::Invalid => AuthError::Invalid,
            tokens::Rejected::Expired { id, at } => AuthError::Expired(id, at),
        }),
    };
    let principal = match authenticated {
        Ok(p) => p,
        Err(e) => {
            // Only a well-formed credential can be guessed; a missing or
            // malformed one is answered 401 without charging the bucket.
            let guess = presented.is_some_and(|p| {
                let p = p.trim();
                tokens::parse_token(p).is_some()
                    || (p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit()))
            });
            let d = if guess {
                state.limiter.take(
                    &format!("p:{client}"),
                    Class::FailedAuth,
                    sec.rate_limits.failed_auth,
                )
            } else {
                None
            };
            if let Some(d) = d
                && !d.allowed
            {
                return Err(deny(AuthError::RateLimited(d), None, Some(d)));
            }
            return Err(deny(e, None, d));
        }
    };
    let id = Some(principal.token_id.clone());
    if !principal.allowed_ips.is_empty() && !cidr::contains(&principal.allowed_ips, client) {
        return Err(deny(AuthError::IpNotAllowed(client), id, None));
    }
    let need = route_scopes::required_scope(r.route, r.method);
    if !principal.has(need) {
        return Err(deny(AuthError::InsufficientScope(need), id, None));
    }
    let limit = if principal.is_admin_file && !sec.rate_limits.admin_token {
        None
    } else {
        state.limiter.take(
            &format!("t:{}", principal.token_id),
            class,
            sec.rate_limits.of(class),
        )
    };
    if let Some(d) = limit
        && !d.allowed
    {
        return Err(deny(AuthError::RateLimited(d), id, Some(d)));
    }
    Ok(Grant {
        principal: Some(principal),
        limit,
        client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    /// Not a test of speed (never asserted): prints the cost of one
    /// [`authorize`] call with a scoped token, alone and with 32 threads at
    /// once, to show the sharded limiter is not a lock every worker queues on.
    /// Run: `cargo test --release --lib auth::tests::authorize_cost -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn authorize_cost() {
        let d = tempfile::tempdir().expect("tmp");
        let store = TokenStore::open(d.path(), &"ab".repeat(32), Box::new(|_, _, _, _| {}));
        let (tok, _) = store
            .create("bench", vec![Scope::Read], None, vec![])
            .expect("create");
        let state = Arc::new(AuthState {
            store,
            limiter: Limiter::new(),
        });
        let mut settings = Settings::default();
        settings.security.rate_limits.read = ratelimit::Limit {
            limit: u32::MAX,
            window_s: 1,
        };
        let settings = Arc::new(settings);
        let header = Arc::new(format!("Bearer {tok}"));
        let run = |threads: usize, n: usize| {
            let t0 = Instant::now();
            let hs: Vec<_> = (0..threads)
                .map(|_| {
                    let (state, settings, header) =
                        (state.clone(), settings.clone(), header.clone());
                    std::thread::spawn(move || {
                        for _ in 0..n {
                            let r = AuthRequest {
                                route: RouteId::ListExecutions,
                                auth: Auth::Token,
                                method: "GET",
                                authorization: Some(header.as_str()),
                                query_token: None,
                                peer: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                                forwarded_for: None,
                            };
                            assert!(authorize(&state, &settings, &r).is_ok());
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().expect("join");
            }
            t0.elapsed().as_nanos() as f64 / (threads * n) as f64
        };
        run(1, 10_000);
        println!("authorize: 1 thread {:.0} ns/call", run(1, 200_000));
        println!(
            "authorize: 32 threads, one token (one bucket) {:.0} ns/call (wall / calls)",
            run(32, 20_000)
        );
    }
}
