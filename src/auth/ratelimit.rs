//! Token-bucket rate limits per key (a token id, or a peer address for open
//! routes and failed authentication) and route class (API.md §12 "Rate limits").
//!
//! Not a lock every worker queues on: the buckets live in [`SHARDS`] maps, each
//! behind its own mutex, chosen by a hash of (key, class); a worker holds one
//! shard's lock for a few arithmetic operations. `scripts/bench_auth.py`
//! measures the cost against `auth: none`.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Number of independently locked bucket maps.
pub const SHARDS: usize = 32;
/// A shard holding more buckets than this drops its full (idle) ones.
const PRUNE_AT: usize = 4096;

/// A route class with its own bucket per key (API.md §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Starting an agent session (default 10/min).
    Spawn,
    /// `POST /delegate` (default 100/min).
    Delegate,
    /// Starting runs: executions, retry, launch, trigger (default 60/min).
    Execute,
    /// Every other state-changing request (default 300/min).
    Write,
    /// Every `GET` (default 1200/min).
    Read,
    /// Requests that failed authentication, per peer (default 20/min).
    FailedAuth,
}

impl Class {
    /// The name used in config, `details.class` and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Spawn => "spawn",
            Class::Delegate => "delegate",
            Class::Execute => "execute",
            Class::Write => "write",
            Class::Read => "read",
            Class::FailedAuth => "failed_auth",
        }
    }
}

/// `limit` requests per `window_s` seconds; a bucket holds at most `limit`
/// tokens and refills continuously at `limit / window_s` per second.
/// `limit == 0` turns the class off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Requests per window (bucket capacity); 0 = unlimited.
    pub limit: u32,
    /// Window length, seconds (≥ 1).
    pub window_s: u32,
}

impl Limit {
    /// `n` per minute.
    pub const fn per_min(n: u32) -> Limit {
        Limit {
            limit: n,
            window_s: 60,
        }
    }

    /// Parse `"10/min"`, `"5/s"`, `"100/h"`, `"30/10s"` or a bare `"60"` (per minute).
    ///
    /// Errors: a lowercase message naming the value.
    pub fn parse(s: &str) -> Result<Limit, String> {
        let bad = || {
            format!(
                "invalid rate limit '{s}': expected N/s, N/min, N/h or N/<seconds>s, e.g. 60/min"
            )
        };
        let t = s.trim();
        let (n, w) = t.split_once('/').unwrap_or((t, "min"));
        let limit: u32 = n.trim().parse().map_err(|_| bad())?;
        let w = w.trim();
        let window_s = match w {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            _ => {
                let digits = w.strip_suffix('s').ok_or_else(bad)?;
                let v: u32 = digits.parse().map_err(|_| bad())?;
                if v == 0 {
                    return Err(bad());
                }
                v
            }
        };
        Ok(Limit { limit, window_s })
    }
}

/// The configured limits (`rate_limits:` in config.yml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// [`Class::Spawn`].
    pub spawn: Limit,
    /// [`Class::Delegate`].
    pub delegate: Limit,
    /// [`Class::Execute`].
    pub execute: Limit,
    /// [`Class::Write`].
    pub write: Limit,
    /// [`Class::Read`].
    pub read: Limit,
    /// [`Class::FailedAuth`].
    pub failed_auth: Limit,
    /// Also limit the open routes (app protocol), per peer. Default off
    /// (docs/api.md: every local process shares the peer 127.0.0.1).
    pub open_routes: bool,
    /// Also limit the admin token (`<cfg>/token`). Default off.
    pub admin_token: bool,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            spawn: Limit::per_min(10),
            delegate: Limit::per_min(100),
            execute: Limit::per_min(60),
            write: Limit::per_min(300),
            read: Limit::per_min(1200),
            failed_auth: Limit::per_min(20),
            open_routes: false,
            admin_token: false,
        }
    }
}

impl RateLimits {
    /// The limit of one class.
    pub fn of(&self, c: Class) -> Limit {
        match c {
            Class::Spawn => self.spawn,
            Class::Delegate => self.delegate,
            Class::Execute => self.execute,
            Class::Write => self.write,
            Class::Read => self.read,
            Class::FailedAuth => self.failed_auth,
        }
    }
}

/// The answer of [`Limiter::take`]: what the `X-RateLimit-*` headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The class that was charged.
    pub class: Class,
    /// `X-RateLimit-Limit`.
    pub limit: u32,
    /// The class window, seconds (`details.window_s`).
    pub window_s: u32,
    /// `X-RateLimit-Remaining`.
    pub remaining: u32,
    /// `X-RateLimit-Reset`: epoch seconds when the bucket is full again.
    pub reset_epoch_s: u64,
    /// `Retry-After` seconds (0 when allowed).
    pub retry_after_s: u64,
}

impl Decision {
    /// The three `X-RateLimit-*` headers.
    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            ("X-RateLimit-Limit", self.limit.to_string()),
            ("X-RateLimit-Remaining", self.remaining.to_string()),
            ("X-RateLimit-Reset", self.reset_epoch_s.to_string()),
        ]
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The sharded bucket store.
pub struct Limiter {
    shards: Vec<Mutex<HashMap<u64, Bucket>>>,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Limiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Limiter {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Charge one request of `class` to `key` under `limit`. `None` when the
    /// class is off (`limit == 0`).
    pub fn take(&self, key: &str, class: Class, limit: Limit) -> Option<Decision> {
        self.take_at(key, class, limit, Instant::now())
    }

    fn take_at(&self, key: &str, class: Class, limit: Limit, now: Instant) -> Option<Decision> {
        if limit.limit == 0 {
            return None;
        }
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        class.hash(&mut h);
        let k = h.finish();
        let cap = f64::from(limit.limit);
        let rate = cap / f64::from(limit.window_s.max(1)); // tokens per second
        let shard = &self.shards[(k as usize) % SHARDS];
        let mut map = match shard.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if map.len() > PRUNE_AT {
            map.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < cap
            });
        }
        let b = map.entry(k).or_insert(Bucket {
            tokens: cap,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(cap);
        b.last = now;
        let allowed = b.tokens >= 1.0;
        if allowed {
            b.tokens -= 1.0;
        }
        let tokens = b.tokens;
        drop(map);
        let to_full = ((cap - tokens) / rate).max(0.0);
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Some(Decision {
            allowed,
            class,
            limit: limit.limit,
            window_s: limit.window_s,
            remaining: tokens.floor().max(0.0) as u32,
            reset_epoch_s: (epoch + to_full).ceil() as u64,
            retry_after_s: if allowed {
                0
            } else {
                ((1.0 - tokens) / rate).ceil().max(1.0) as u64
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn bucket_empties_and_refills() {
        let l = Limiter::new();
        let lim = Limit {
            limit: 3,
            window_s: 3,
        };
        let t0 = Instant::now();
        for i in 0..3 {
            let d = l.take_at("t:a", Class::Read, lim, t0).expect("on");
            assert!(d.allowed);
            assert_eq!(d.remaining, 2 - i);
        }
        let d = l.take_at("t:a", Class::Read, lim, t0).expect("on");
        assert!(!d.allowed);
        assert_eq!(d.retry_after_s, 1);
        // another key and another class are independent
        assert!(l.take_at("t:b", Class::Read, lim, t0).expect("on").allowed);
        assert!(l.take_at("t:a", Class::Write, lim, t0).expect("on").allowed);
        // one second later one token is back
        let d = l
            .take_at("t:a", Class::Read, lim, t0 + Duration::from_millis(1001))
            .expect("on");
        assert!(d.allowed);
        assert!(l.take("x", Class::Read, Limit::per_min(0)).is_none());
    }

    #[test]
    fn limit_strings() {
        assert_eq!(Limit::parse("10/min"), Ok(Limit::per_min(10)));
        assert_eq!(Limit::parse("60"), Ok(Limit::per_min(60)));
        assert_eq!(
            Limit::parse("5/s"),
            Ok(Limit {
                limit: 5,
                window_s: 1
            })
        );
        assert_eq!(
            Limit::parse("3/2s"),
            Ok(Limit {
                limit: 3,
                window_s: 2
            })
        );
        assert_eq!(Limit::parse("1/h").map(|l| l.window_s), Ok(3600));
        assert!(Limit::parse("x/min").is_err());
        assert!(Limit::parse("3/0s").is_err());
        assert!(Limit::parse("3/fortnight").is_err());
    }

    proptest! {
        #[test]
        fn limit_parser_never_panics(s in ".{0,20}") {
            let _ = Limit::parse(&s);
        }

        #[test]
        fn never_more_than_limit_in_one_instant(limit in 1u32..50, n in 1usize..120) {
            let l = Limiter::new();
            let lim = Limit { limit, window_s: 60 };
            let t0 = Instant::now();
            let ok = (0..n).filter(|_| l.take_at("k", Class::Write, lim, t0).is_some_and(|d| d.allowed)).count();
            prop_assert_eq!(ok, n.min(limit as usize));
        }
    }
}
