//! Transport settings (API.md §9, docs/api.md "Transport limits and same-user"):
//! `max_connections`, the connection deadlines, and `allow_users`.
//!
//! Kept in their own file so `config/mod.rs` only carries one field, five raw
//! keys and one call. Limits and timeouts apply when the listener starts (a
//! reload logs nothing new for them); `allow_users` applies to the next request.

use super::ranges::{self, Num};
use super::{Diagnostic, diag_at};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::path::Path;

/// Transport limits and the users besides the daemon's own that may connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    /// Connections open at once; the next gets `503 unavailable` (1..=65536, default 512).
    pub max_connections: usize,
    /// Request line + headers must arrive within this of the first byte,
    /// milliseconds (100..=600000, default 10000).
    pub header_timeout_ms: u64,
    /// A body sending no byte for this long is `408`, milliseconds
    /// (100..=600000, default 10000).
    pub body_timeout_ms: u64,
    /// An idle keep-alive connection is closed after this, milliseconds
    /// (100..=3600000, default 60000).
    pub idle_timeout_ms: u64,
    /// Uids (resolved from `allow_users` names or numbers) that may use every
    /// route besides the daemon's own uid. Default empty.
    pub allow_users: Vec<u32>,
}

impl Default for Transport {
    fn default() -> Self {
        Transport {
            max_connections: 512,
            header_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            allow_users: Vec::new(),
        }
    }
}

/// One `allow_users` entry: a uid or a user name.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum RawUser {
    Uid(u32),
    Name(String),
}

/// The raw transport keys of `config.yml`.
pub(crate) struct RawTransport {
    pub max_connections: Option<Spanned<Num>>,
    pub header_timeout_ms: Option<Spanned<Num>>,
    pub body_timeout_ms: Option<Spanned<Num>>,
    pub idle_timeout_ms: Option<Spanned<Num>>,
    pub allow_users: Option<Vec<Spanned<RawUser>>>,
}

/// Validate the raw keys into `t`, pushing one diagnostic per problem (a value
/// out of range, a user name that does not exist).
pub(crate) fn validate(
    raw: RawTransport,
    file: &Path,
    t: &mut Transport,
    errs: &mut Vec<Diagnostic>,
) {
    if let Some(v) = ranges::MAX_CONNECTIONS.check_opt(file, &raw.max_connections, errs) {
        t.max_connections = ranges::to_usize(v);
    }
    if let Some(v) = ranges::HEADER_TIMEOUT_MS.check_opt(file, &raw.header_timeout_ms, errs) {
        t.header_timeout_ms = v;
    }
    if let Some(v) = ranges::BODY_TIMEOUT_MS.check_opt(file, &raw.body_timeout_ms, errs) {
        t.body_timeout_ms = v;
    }
    if let Some(v) = ranges::IDLE_TIMEOUT_MS.check_opt(file, &raw.idle_timeout_ms, errs) {
        t.idle_timeout_ms = v;
    }
    for u in raw.allow_users.unwrap_or_default() {
        match &u.value {
            RawUser::Uid(uid) => t.allow_users.push(*uid),
            RawUser::Name(name) => match resolve_user(name) {
                Some(uid) => t.allow_users.push(uid),
                None => errs.push(diag_at(
                    file,
                    &u,
                    format!("allow_users: no user named '{name}' on this system"),
                )),
            },
        }
    }
}

/// A user name (or a decimal uid written as a string) → uid.
fn resolve_user(name: &str) -> Option<u32> {
    if let Ok(uid) = name.trim().parse::<u32>() {
        return Some(uid);
    }
    nix::unistd::User::from_name(name.trim())
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_root_and_numbers() {
        assert_eq!(resolve_user("root"), Some(0));
        assert_eq!(resolve_user("1234"), Some(1234));
        assert_eq!(resolve_user("no-such-user-orchestratr"), None);
    }
}
