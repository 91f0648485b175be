//! Push notifications (API.md §13 "Notifications"): `notify:` webhooks fed
//! from the event bus.
//!
//! Shape: one thread ([`worker`]) subscribes to the bus, matches each event
//! against the configured entries (type, `:status` suffix, `min_duration_ms`)
//! and puts deliveries on a bounded queue with `try_send`, so it never waits
//! and the bus never waits on it; a full queue drops the delivery and counts
//! it ([`NotifyState::dropped`], shown by `/health` as `notify_dropped`). One
//! delivery thread posts them ([`deliver`]): 3 tries with backoff, ntfy or
//! signed JSON, HTTPS through ureq + rustls.
//!
//! Approve/Deny buttons on ntfy are one-time URLs
//! (`POST /notify/actions/{token}`, [`ActionTokens`]): 32 random bytes, valid
//! for one approval and one decision, while the approval is pending.

pub mod deliver;
pub mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Deliveries waiting for the delivery thread before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 256;
/// Tries per delivery.
pub const TRIES: u32 = 3;
/// Backoff before the second try; doubled before the third (milliseconds).
pub const BACKOFF_MS: u64 = 500;
/// Longest life of an action URL, even if its approval stays pending.
pub const ACTION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Action URLs remembered at once (the oldest are forgotten first).
pub const MAX_ACTIONS: usize = 10_000;

/// One one-time action: decide `approval_id` with `decision`.
#[derive(Debug, Clone)]
pub struct Action {
    /// The approval it decides.
    pub approval_id: String,
    /// The option it applies (`approve`, `deny`).
    pub decision: String,
    created: Instant,
}

/// Why an action token cannot be used (→ `410 gone`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gone;

/// The one-time action URLs in flight. Cheap to clone.
#[derive(Clone, Default)]
pub struct ActionTokens {
    inner: Arc<Mutex<HashMap<String, Action>>>,
}

fn random_token() -> Option<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).ok()?;
    Some(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl ActionTokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Action>> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Mint one token per decision for `approval_id`; `None` if the OS has no
    /// randomness to give.
    pub fn mint(&self, approval_id: &str, decisions: &[&str]) -> Option<Vec<(String, String)>> {
        let mut g = self.lock();
        g.retain(|_, a| a.created.elapsed() < ACTION_TTL);
        while g.len() + decisions.len() > MAX_ACTIONS {
            let oldest = g
                .iter()
                .min_by_key(|(_, a)| a.created)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => g.remove(&k),
                None => break,
            };
        }
        let mut out = Vec::new();
        for d in decisions {
            let t = random_token()?;
            g.insert(
                t.clone(),
                Action {
                    approval_id: approval_id.to_string(),
                    decision: (*d).to_string(),
                    created: Instant::now(),
                },
            );
            out.push((d.to_string(), t));
        }
        Some(out)
    }

    /// Take the action of `token`, invalidating every token of its approval
    /// (one decision per approval). Errors: [`Gone`] for an unknown, used or
    /// expired token.
    pub fn take(&self, token: &str) -> Result<Action, Gone> {
        let mut g = self.lock();
        let a = g.remove(token).ok_or(Gone)?;
        g.retain(|_, x| x.approval_id != a.approval_id);
        if a.created.elapsed() >= ACTION_TTL {
            return Err(Gone);
        }
        Ok(a)
    }

    /// Forget the tokens of an approval that was decided or expired.
    pub fn forget(&self, approval_id: &str) {
        self.lock().retain(|_, x| x.approval_id != approval_id);
    }
}

/// What the HTTP layer sees of notifications: counters and action tokens.
/// Cheap to clone.
#[derive(Clone, Default)]
pub struct NotifyState {
    dropped: Arc<AtomicU64>,
    delivered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    /// One-time action URLs.
    pub actions: ActionTokens,
}

impl NotifyState {
    /// Deliveries dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
    /// Deliveries a receiver accepted (2xx).
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
    /// Deliveries that failed all tries.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_decides_once_and_voids_its_sibling() {
        let t = ActionTokens::default();
        let toks = t.mint("appr-1", &["approve", "deny"]).unwrap();
        let a = t.take(&toks[0].1).unwrap();
        assert_eq!(
            (a.approval_id.as_str(), a.decision.as_str()),
            ("appr-1", "approve")
        );
        assert_eq!(t.take(&toks[0].1).unwrap_err(), Gone);
        assert_eq!(t.take(&toks[1].1).unwrap_err(), Gone);
        let again = t.mint("appr-2", &["deny"]).unwrap();
        t.forget("appr-2");
        assert!(t.take(&again[0].1).is_err());
    }
}
