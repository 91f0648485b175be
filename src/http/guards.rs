//! Request guards, in the order of API.md §3: loopback peer, Host allowlist,
//! Origin rejection, bearer token, body size / content type / JSON syntax.

use super::router::Auth;
use super::{HttpError, MAX_BODY_BYTES};
use crate::config::{AuthMode, Settings};
use serde_json::{Value, json};
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use tiny_http::Request;

/// Case-insensitive header lookup; the first value.
pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Guard 1: the peer must be a loopback address (IPv4-mapped IPv6 included).
/// A request without a TCP peer (not possible with our listener) passes.
pub fn check_peer(peer: Option<&SocketAddr>) -> Result<(), HttpError> {
    let ok = match peer.map(|a| a.ip()) {
        None => true,
        Some(IpAddr::V4(v4)) => v4.is_loopback(),
        Some(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    };
    if ok {
        Ok(())
    } else {
        Err(HttpError::new(
            403,
            "forbidden",
            "requests are only accepted from loopback addresses",
        ))
    }
}

/// The host part of a `Host` header value, lowercase: `[::1]:9876` → `[::1]`,
/// `Localhost:1` → `localhost`.
pub fn host_part(value: &str) -> String {
    let v = value.trim().to_ascii_lowercase();
    if v.starts_with('[') {
        match v.find(']') {
            Some(i) => v[..=i].to_string(),
            None => v,
        }
    } else {
        v.split(':').next().unwrap_or("").to_string()
    }
}

/// Guard 2: `Host` must be `localhost`, `127.0.0.1`, `[::1]` (any port) or in
/// `allowed_hosts` (DNS-rebinding defence). A missing `Host` passes (docs/api.md §3).
pub fn check_host(host: Option<&str>, settings: &Settings) -> Result<(), HttpError> {
    let Some(raw) = host else { return Ok(()) };
    let h = host_part(raw);
    let full = raw.trim().to_ascii_lowercase();
    let ok = matches!(h.as_str(), "localhost" | "127.0.0.1" | "[::1]")
        || settings.allowed_hosts.iter().any(|a| *a == h || *a == full);
    if ok {
        Ok(())
    } else {
        Err(HttpError::new(
            403,
            "forbidden_host",
            format!(
                "host '{raw}' is not allowed; add it to allowed_hosts in config.yml to accept it"
            ),
        ))
    }
}

/// Guard 3 without a `Host` (see [`check_origin_for`]).
pub fn check_origin(origin: Option<&str>, settings: &Settings) -> Result<(), HttpError> {
    check_origin_for(origin, None, settings)
}

/// Is `origin` the daemon's own origin: `http://` + the `Host` header (which
/// passed guard 2), compared without case (API.md §9)?
pub fn is_same_origin(origin: &str, host: Option<&str>) -> bool {
    let o = origin.trim().trim_end_matches('/');
    host.map(str::trim)
        .filter(|h| !h.is_empty())
        .and_then(|h| {
            o.get(..7)
                .filter(|p| p.eq_ignore_ascii_case("http://"))
                .map(|_| o[7..].eq_ignore_ascii_case(h))
        })
        .unwrap_or(false)
}

/// Guard 3 (API.md §3, §9): an `Origin` header must be the daemon's own origin
/// (`http://` + `host`, the `Host` that passed guard 2) or be listed in
/// `allowed_origins`. Errors: `403 forbidden_origin`.
pub fn check_origin_for(
    origin: Option<&str>,
    host: Option<&str>,
    settings: &Settings,
) -> Result<(), HttpError> {
    let Some(o) = origin else { return Ok(()) };
    let o = o.trim().trim_end_matches('/');
    if settings.allowed_origins.iter().any(|a| a == o) || is_same_origin(o, host) {
        Ok(())
    } else {
        Err(HttpError::new(
            403,
            "forbidden_origin",
            format!(
                "origin '{o}' is not allowed; add it to allowed_origins in config.yml to accept it"
            ),
        ))
    }
}

/// The `allowed_origins` entry equal to the request's `Origin`, to echo in
/// `Access-Control-Allow-Origin` (API.md §9); `None` for no or another origin.
pub fn cors_origin(origin: Option<&str>, settings: &Settings) -> Option<String> {
    let o = origin?.trim().trim_end_matches('/');
    settings.allowed_origins.iter().find(|a| *a == o).cloned()
}

/// `Access-Control-Max-Age` of preflight answers, seconds.
pub const PREFLIGHT_MAX_AGE_S: u32 = 600;

/// The answer to a CORS preflight (API.md §9): `OPTIONS` with an `Origin` that
/// passed guard 3 → `204` with `Access-Control-Allow-Methods`,
/// `-Allow-Headers: Authorization, Content-Type, Last-Event-ID` and `-Max-Age`
/// (`Access-Control-Allow-Origin` and `Vary` are added by [`with_cors`]).
/// `None` for anything else (an `OPTIONS` without `Origin` is routed, so `405`).
pub fn preflight(method: &str, origin: Option<&str>, _settings: &Settings) -> Option<super::Resp> {
    if method != "OPTIONS" || origin.is_none() {
        return None;
    }
    let mut r = super::Resp::text(204, Vec::new());
    r.headers.extend([
        (
            "Access-Control-Allow-Methods".to_string(),
            "GET, POST, OPTIONS".to_string(),
        ),
        (
            "Access-Control-Allow-Headers".to_string(),
            "Authorization, Content-Type, Last-Event-ID".to_string(),
        ),
        (
            "Access-Control-Max-Age".to_string(),
            PREFLIGHT_MAX_AGE_S.to_string(),
        ),
    ]);
    Some(r)
}

/// Add `Access-Control-Allow-Origin: <origin>` and `Vary: Origin` to a complete
/// answer or an error (API.md §9). Streams write their own headers
/// ([`super::sse::SseWriter::begin_for`]).
pub fn with_cors(r: super::HResult, origin: Option<&str>) -> super::HResult {
    let Some(o) = origin else { return r };
    let add = |h: &mut Vec<(String, String)>| {
        h.push(("Access-Control-Allow-Origin".to_string(), o.to_string()));
        h.push(("Vary".to_string(), "Origin".to_string()));
    };
    match r {
        Ok(super::Reply::Resp(mut resp)) => {
            add(&mut resp.headers);
            Ok(super::Reply::Resp(resp))
        }
        Err(mut e) => {
            add(&mut e.headers);
            Err(e)
        }
        other => other,
    }
}

/// Map a refused client event (API.md §9 "bounded state") to `403 forbidden`
/// (reserved type or source) or `413 payload_too_large` (data over 64 KiB).
pub fn user_event_error(e: crate::events::UserEventError) -> HttpError {
    match e {
        crate::events::UserEventError::Reserved(_) => {
            HttpError::new(403, "forbidden", e.to_string())
        }
        crate::events::UserEventError::TooLarge(_) => {
            HttpError::new(413, "payload_too_large", e.to_string())
        }
    }
}

/// Constant-time byte comparison (no early exit on the first difference).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Guard 4: bearer token for `Auth::Token` routes; `Auth::TokenOrQuery` also takes
/// `query_token`. Answers `401 unauthorized` + `WWW-Authenticate: Bearer`.
pub fn check_token(
    auth: Auth,
    authorization: Option<&str>,
    query_token: Option<&str>,
    token: &str,
    settings: &Settings,
) -> Result<(), HttpError> {
    if auth == Auth::Open || settings.auth == AuthMode::None {
        return Ok(());
    }
    let presented = authorization.and_then(|v| {
        let v = v.trim();
        let (scheme, rest) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    let presented = presented.or(if auth == Auth::TokenOrQuery {
        query_token
    } else {
        None
    });
    let ok = presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.as_bytes()));
    if ok {
        Ok(())
    } else {
        let msg = if presented.is_none() {
            "this route needs 'Authorization: Bearer <token>' (the token is in the token file beside config.yml)"
        } else {
            "wrong bearer token"
        };
        Err(HttpError::new(401, "unauthorized", msg)
            .with_header("WWW-Authenticate", "Bearer realm=\"orchestratr\""))
    }
}

/// Is this `Content-Type` JSON (`application/json`, parameters allowed)?
pub fn is_json_content_type(ct: Option<&str>) -> bool {
    ct.and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// Guard 5: read the body (at most [`MAX_BODY_BYTES`]), check its content type,
/// and parse it as JSON. Returns `None` for an empty body.
///
/// Errors: `413 payload_too_large`, `415 unsupported_media_type`,
/// `400 bad_request` with line and column for malformed JSON or an unreadable body.
pub fn read_json_body(req: &mut Request) -> Result<Option<Value>, HttpError> {
    let too_large = || {
        HttpError::new(
            413,
            "payload_too_large",
            format!("request body is larger than {MAX_BODY_BYTES} bytes"),
        )
        .with_header("Connection", "close")
    };
    if req.body_length().is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let mut buf = Vec::new();
    req.as_reader()
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| HttpError::bad_request(format!("cannot read request body: {e}")))?;
    if buf.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    if buf.is_empty() {
        return Ok(None);
    }
    if !is_json_content_type(header(req, "Content-Type")) {
        return Err(HttpError::new(
            415,
            "unsupported_media_type",
            format!(
                "request body must be 'application/json', not '{}'",
                header(req, "Content-Type").unwrap_or("(none)")
            ),
        ));
    }
    parse_json(&buf).map(Some)
}

/// Parse JSON bytes; errors name line and column (1-based) in message and details.
pub fn parse_json(buf: &[u8]) -> Result<Value, HttpError> {
    serde_json::from_slice(buf).map_err(|e| {
        let msg = e.to_string();
        let short = match msg.rfind(" at line ") {
            Some(i) => &msg[..i],
            None => msg.as_str(),
        };
        HttpError::bad_request(format!(
            "malformed json at line {}, column {}: {short}",
            e.line(),
            e.column()
        ))
        .with_details(json!({"line": e.line(), "column": e.column()}))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_parts() {
        assert_eq!(host_part("LOCALHOST:9876"), "localhost");
        assert_eq!(host_part("[::1]:80"), "[::1]");
        assert_eq!(host_part("127.0.0.1"), "127.0.0.1");
        let s = Settings::default();
        assert!(check_host(Some("localhost:1"), &s).is_ok());
        assert!(check_host(Some("evil.com"), &s).is_err());
        assert!(check_host(Some("localhost.evil.com"), &s).is_err());
        let s2 = Settings {
            allowed_hosts: vec!["tunnel.example".into()],
            ..Settings::default()
        };
        assert!(check_host(Some("tunnel.example:443"), &s2).is_ok());
    }

    #[test]
    fn origins() {
        let s = Settings {
            allowed_origins: vec!["http://app.example".into()],
            ..Settings::default()
        };
        assert!(check_origin_for(None, None, &s).is_ok());
        assert!(check_origin_for(Some("http://app.example/"), None, &s).is_ok());
        assert!(
            check_origin_for(Some("http://localhost:9876"), Some("localhost:9876"), &s).is_ok()
        );
        assert!(
            check_origin_for(Some("HTTP://LocalHost:9876"), Some("localhost:9876"), &s).is_ok()
        );
        assert!(
            check_origin_for(Some("https://localhost:9876"), Some("localhost:9876"), &s).is_err()
        );
        assert!(
            check_origin_for(Some("http://localhost:3000"), Some("localhost:9876"), &s).is_err()
        );
        assert!(check_origin_for(Some("http://evil.com"), None, &s).is_err());
        assert!(check_origin_for(Some("http://"), Some(""), &s).is_err());
        assert_eq!(
            cors_origin(Some("http://app.example"), &s).as_deref(),
            Some("http://app.example")
        );
        assert_eq!(cors_origin(Some("http://localhost:9876"), &s), None);
        assert!(
            preflight("OPTIONS", Some("http://app.example"), &s).is_some_and(|r| r.status == 204)
        );
        assert!(preflight("OPTIONS", None, &s).is_none());
        assert!(preflight("GET", Some("http://app.example"), &s).is_none());
    }

    #[test]
    fn peers() {
        let l: SocketAddr = "127.0.0.1:5".parse().expect("addr");
        let r: SocketAddr = "10.0.0.1:5".parse().expect("addr");
        let m: SocketAddr = "[::ffff:127.0.0.1]:5".parse().expect("addr");
        assert!(check_peer(Some(&l)).is_ok());
        assert!(check_peer(Some(&m)).is_ok());
        assert_eq!(check_peer(Some(&r)).map_err(|e| e.code), Err("forbidden"));
    }

    #[test]
    fn tokens() {
        let s = Settings::default();
        let t = "ab".repeat(32);
        assert!(check_token(Auth::Token, Some(&format!("Bearer {t}")), None, &t, &s).is_ok());
        assert!(check_token(Auth::Token, Some(&format!("bearer  {t}")), None, &t, &s).is_ok());
        assert!(check_token(Auth::Token, None, Some(&t), &t, &s).is_err());
        assert!(check_token(Auth::TokenOrQuery, None, Some(&t), &t, &s).is_ok());
        let e = check_token(Auth::Token, Some("Bearer nope"), None, &t, &s).expect_err("401");
        assert_eq!(e.status, 401);
        assert!(e.headers.iter().any(|(k, _)| k == "WWW-Authenticate"));
        assert!(check_token(Auth::Open, None, None, &t, &s).is_ok());
    }

    #[test]
    fn json_errors_have_position() {
        let e = parse_json(b"{\n  \"a\": }").expect_err("bad");
        assert!(e.message.contains("line 2, column"), "{}", e.message);
        assert_eq!(e.details.as_ref().and_then(|d| d["line"].as_u64()), Some(2));
    }

    #[test]
    fn content_types() {
        assert!(is_json_content_type(Some(
            "application/json; charset=utf-8"
        )));
        assert!(is_json_content_type(Some("Application/JSON")));
        assert!(!is_json_content_type(Some("text/plain")));
        assert!(!is_json_content_type(None));
    }
}
