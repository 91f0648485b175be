//! The config keys of API.md §12: `rate_limits:`, `ip_allowlist:`,
//! `trusted_proxies:` and `audit_max_bytes:`, parsed from `config.yml` with
//! positions in every error (the config layer calls [`parse`]).

use super::cidr;
use super::ratelimit::{Limit, RateLimits};
use crate::config::{Diagnostic, diag_at};
use ipnet::IpNet;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::path::Path;

/// Default rotation size of `<state>/audit.jsonl`, bytes (16 MiB).
pub const DEFAULT_AUDIT_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// Security settings of `config.yml` (hot-reloaded with the rest of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Token-bucket limits per class.
    pub rate_limits: RateLimits,
    /// Client addresses allowed on every route but `GET /health`; empty = any.
    pub ip_allowlist: Vec<IpNet>,
    /// Peers whose `X-Forwarded-For` is believed; empty = none.
    pub trusted_proxies: Vec<IpNet>,
    /// Rotate `audit.jsonl` past this size, bytes (≥ 4096, default 16 MiB).
    pub audit_max_bytes: u64,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            rate_limits: RateLimits::default(),
            ip_allowlist: Vec::new(),
            trusted_proxies: Vec::new(),
            audit_max_bytes: DEFAULT_AUDIT_MAX_BYTES,
        }
    }
}

/// `rate_limits:` as written: each class `"N/min"`, `"N/s"`, `"N/h"`,
/// `"N/<k>s"` (`"0/min"` turns a class off).
#[derive(Debug, Deserialize)]
pub struct RawRateLimits {
    spawn: Option<Spanned<String>>,
    delegate: Option<Spanned<String>>,
    execute: Option<Spanned<String>>,
    write: Option<Spanned<String>>,
    read: Option<Spanned<String>>,
    failed_auth: Option<Spanned<String>>,
    open_routes: Option<bool>,
    admin_token: Option<bool>,
}

/// Validate the raw keys. Errors: one diagnostic per bad value, with its position.
pub fn parse(
    rate: Option<RawRateLimits>,
    allow: Option<Vec<Spanned<String>>>,
    trusted: Option<Vec<Spanned<String>>>,
    audit_max_bytes: Option<Spanned<u64>>,
    file: &Path,
) -> Result<SecurityConfig, Vec<Diagnostic>> {
    let mut s = SecurityConfig::default();
    let mut errs = Vec::new();
    if let Some(r) = rate {
        let rl = &mut s.rate_limits;
        let slots: [(&str, Option<Spanned<String>>, &mut Limit); 6] = [
            ("spawn", r.spawn, &mut rl.spawn),
            ("delegate", r.delegate, &mut rl.delegate),
            ("execute", r.execute, &mut rl.execute),
            ("write", r.write, &mut rl.write),
            ("read", r.read, &mut rl.read),
            ("failed_auth", r.failed_auth, &mut rl.failed_auth),
        ];
        for (key, v, slot) in slots {
            if let Some(v) = v {
                match Limit::parse(&v.value) {
                    Ok(l) => *slot = l,
                    Err(m) => errs.push(diag_at(file, &v, format!("rate_limits.{key}: {m}"))),
                }
            }
        }
        if let Some(b) = r.open_routes {
            rl.open_routes = b;
        }
        if let Some(b) = r.admin_token {
            rl.admin_token = b;
        }
    }
    for (key, list, out) in [
        ("ip_allowlist", allow, &mut s.ip_allowlist),
        ("trusted_proxies", trusted, &mut s.trusted_proxies),
    ] {
        for v in list.unwrap_or_default() {
            match cidr::parse_cidr(&v.value) {
                Ok(n) => out.push(n),
                Err(m) => errs.push(diag_at(file, &v, format!("{key}: {m}"))),
            }
        }
    }
    if let Some(m) = audit_max_bytes {
        if m.value < 4096 {
            errs.push(diag_at(
                file,
                &m,
                "audit_max_bytes must be at least 4096".into(),
            ));
        } else {
            s.audit_max_bytes = m.value;
        }
    }
    if errs.is_empty() { Ok(s) } else { Err(errs) }
}

#[cfg(test)]
mod tests {
    use crate::auth::ratelimit::Limit;

    fn load(yml: &str) -> Result<crate::config::Config, crate::config::ConfigError> {
        let d = tempfile::tempdir().expect("tmp");
        std::fs::write(d.path().join("config.yml"), yml).expect("write");
        crate::config::load(d.path())
    }

    #[test]
    fn keys_parse_with_positions() {
        let c = load(
            "rate_limits:\n  read: 5/s\n  open_routes: true\nip_allowlist: [10.0.0.0/8]\ntrusted_proxies: [\"127.0.0.1\"]\naudit_max_bytes: 8192\n",
        )
        .expect("valid");
        let s = &c.settings.security;
        assert_eq!(
            s.rate_limits.read,
            Limit {
                limit: 5,
                window_s: 1
            }
        );
        assert_eq!(s.rate_limits.spawn, Limit::per_min(10));
        assert!(s.rate_limits.open_routes && !s.rate_limits.admin_token);
        assert_eq!((s.ip_allowlist.len(), s.trusted_proxies.len()), (1, 1));
        assert_eq!(s.audit_max_bytes, 8192);
        let e = load("rate_limits:\n  read: lots\nip_allowlist: [\"10.0.0.0/40\"]\n")
            .expect_err("invalid");
        let d = e.diagnostics();
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            d[0].message.contains("rate_limits.read") && d[0].line == 2,
            "{d:?}"
        );
        assert!(
            d[1].message.contains("ip_allowlist") && d[1].line == 3,
            "{d:?}"
        );
    }
}
