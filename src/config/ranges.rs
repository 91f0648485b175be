//! Numeric config keys and their documented ranges (API.md §9 "bounded state";
//! the table is in docs/api.md "Config ranges").
//!
//! Every numeric key is parsed as a [`Num`] — any YAML integer or float, however
//! large — and only then checked against its [`Range`], so a value outside is a
//! config error at the value's file:line:column naming the allowed range, never
//! an allocation sized by the value, an overflow or a panic.

use super::{Diagnostic, diag_at};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde_saphyr::Spanned;
use std::fmt;
use std::path::Path;

/// A numeric config value exactly as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Num {
    /// An integer (YAML allows any size; anything beyond `i128` is a float).
    Int(i128),
    /// A float (`1.5`, `1e308`, `.inf`, `.nan`): never a valid value here.
    Float(f64),
    /// Anything else (a string, boolean, sequence or mapping), described for
    /// the error message (a string is cut to its first 40 characters).
    Other(String),
}

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Num::Int(i) => write!(f, "{i}"),
            Num::Float(x) => write!(f, "{x:e}"),
            Num::Other(s) => f.write_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Num, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num::Int(i128::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num::Int(i128::from(v)))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Num, E> {
                Ok(Num::Int(v))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Num, E> {
                Ok(i128::try_from(v).map_or(Num::Float(v as f64), Num::Int))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                Ok(Num::Float(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Num, E> {
                Ok(Num::Other(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                let mut short: String = v.chars().take(40).collect();
                if short.len() < v.len() {
                    short.push('…');
                }
                Ok(Num::Other(format!("'{short}'")))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Num, E> {
                Ok(Num::Other("null".into()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Num, A::Error> {
                while a.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Num::Other("a sequence".into()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<Num, A::Error> {
                while a.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok(Num::Other("a mapping".into()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The allowed values of one numeric key (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// The key as documented (`retention.executions`, `apps[].stop_timeout_ms`).
    pub key: &'static str,
    /// Smallest allowed value.
    pub min: u64,
    /// Largest allowed value.
    pub max: u64,
    /// Unit or meaning of the number (`ms`, `bytes`, `events`, …).
    pub unit: &'static str,
}

const fn r(key: &'static str, min: u64, max: u64, unit: &'static str) -> Range {
    Range {
        key,
        min,
        max,
        unit,
    }
}

const MIB: u64 = 1024 * 1024;
const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// `api_port`: 0 = any free port.
pub const API_PORT: Range = r("api_port", 0, 65_535, "port");
/// `event_buffer`: events kept for `GET /events` and resume.
pub const EVENT_BUFFER: Range = r("event_buffer", 10_000, 1_000_000, "events");
/// `event_buffer_bytes`: serialized bytes of the event ring.
pub const EVENT_BUFFER_BYTES: Range = r("event_buffer_bytes", MIB, 1024 * MIB, "bytes");
/// `sse_heartbeat_ms`.
pub const SSE_HEARTBEAT_MS: Range = r("sse_heartbeat_ms", 100, 300_000, "ms");
/// `sse_max_streams`.
pub const SSE_MAX_STREAMS: Range = r("sse_max_streams", 1, 1024, "streams");
/// `sse_queue_capacity`: events queued per SSE client.
pub const SSE_QUEUE_CAPACITY: Range = r("sse_queue_capacity", 1, 16_384, "events");
/// `retention.executions`.
pub const RETENTION_EXECUTIONS: Range = r("retention.executions", 1, 1_000_000, "records");
/// `retention.output_bytes`: output kept per execution.
pub const RETENTION_OUTPUT_BYTES: Range =
    r("retention.output_bytes", 1024, 1024 * 1024 * MIB, "bytes");
/// `retention.approvals`.
pub const RETENTION_APPROVALS: Range = r("retention.approvals", 1, 1_000_000, "records");
/// `shutdown_timeout_ms`.
pub const SHUTDOWN_TIMEOUT_MS: Range = r("shutdown_timeout_ms", 1, HOUR_MS, "ms");
/// `apps[].ready_timeout_ms`.
pub const READY_TIMEOUT_MS: Range = r("apps[].ready_timeout_ms", 1, DAY_MS, "ms");
/// `apps[].stop_timeout_ms`: 0 = SIGKILL right after SIGTERM.
pub const STOP_TIMEOUT_MS: Range = r("apps[].stop_timeout_ms", 0, HOUR_MS, "ms");
/// `tasks[].timeout_ms`.
pub const TASK_TIMEOUT_MS: Range = r("tasks[].timeout_ms", 1, 30 * DAY_MS, "ms");
/// `agents.<type>.timeout_ms`.
pub const AGENT_TIMEOUT_MS: Range = r("agents.<type>.timeout_ms", 1, 30 * DAY_MS, "ms");
/// `pools.<name>.max_concurrent`.
pub const POOL_MAX_CONCURRENT: Range = r("pools.<name>.max_concurrent", 1, 1024, "runs");
/// `pools.<name>.max_queued`: 0 = no queue (a busy pool answers `429`).
pub const POOL_MAX_QUEUED: Range = r("pools.<name>.max_queued", 0, 100_000, "runs");
/// `pools.<name>.starts_per_minute`.
pub const POOL_STARTS_PER_MINUTE: Range = r("pools.<name>.starts_per_minute", 1, 60_000, "starts");
/// `max_connections`: connections open at once (API.md §9).
pub const MAX_CONNECTIONS: Range = r("max_connections", 1, 65_536, "connections");
/// `header_timeout_ms`: request line + headers after the first byte.
pub const HEADER_TIMEOUT_MS: Range = r("header_timeout_ms", 100, 600_000, "ms");
/// `body_timeout_ms`: a body may stall this long.
pub const BODY_TIMEOUT_MS: Range = r("body_timeout_ms", 100, 600_000, "ms");
/// `idle_timeout_ms`: an idle keep-alive connection is closed after this.
pub const IDLE_TIMEOUT_MS: Range = r("idle_timeout_ms", 100, HOUR_MS, "ms");

/// Every range above, in the order of the docs/api.md table.
pub const RANGES: &[Range] = &[
    API_PORT,
    EVENT_BUFFER,
    EVENT_BUFFER_BYTES,
    SSE_HEARTBEAT_MS,
    SSE_MAX_STREAMS,
    SSE_QUEUE_CAPACITY,
    RETENTION_EXECUTIONS,
    RETENTION_OUTPUT_BYTES,
    RETENTION_APPROVALS,
    SHUTDOWN_TIMEOUT_MS,
    READY_TIMEOUT_MS,
    STOP_TIMEOUT_MS,
    TASK_TIMEOUT_MS,
    AGENT_TIMEOUT_MS,
    POOL_MAX_CONCURRENT,
    POOL_MAX_QUEUED,
    POOL_STARTS_PER_MINUTE,
    MAX_CONNECTIONS,
    HEADER_TIMEOUT_MS,
    BODY_TIMEOUT_MS,
    IDLE_TIMEOUT_MS,
];

impl Range {
    /// `n` if it is an integer within the range.
    pub fn accept(&self, n: &Num) -> Option<u64> {
        match n {
            Num::Int(i) => u64::try_from(*i)
                .ok()
                .filter(|v| (self.min..=self.max).contains(v)),
            Num::Float(_) | Num::Other(_) => None,
        }
    }

    /// Check a parsed value: `Some(v)` when allowed, else `None` and an error
    /// at the value's position: `"<label> <value> is out of range: allowed
    /// <min>..=<max> (<unit>)"`. `label` names the key with its owner, e.g.
    /// `pool 'gpu': max_concurrent`.
    pub fn check(
        &self,
        file: &Path,
        v: &Spanned<Num>,
        label: &str,
        errs: &mut Vec<Diagnostic>,
    ) -> Option<u64> {
        let got = self.accept(&v.value);
        if got.is_none() {
            let what = match v.value {
                Num::Int(_) => "is out of range",
                Num::Float(_) | Num::Other(_) => "is not an integer",
            };
            errs.push(diag_at(
                file,
                v,
                format!(
                    "{label} {} {what}: allowed {}..={} ({})",
                    v.value, self.min, self.max, self.unit
                ),
            ));
        }
        got
    }

    /// [`Range::check`] of an optional key, labelled with the bare key name.
    pub fn check_opt(
        &self,
        file: &Path,
        v: &Option<Spanned<Num>>,
        errs: &mut Vec<Diagnostic>,
    ) -> Option<u64> {
        let label = self.key.rsplit('.').next().unwrap_or(self.key);
        let label = if self.key.starts_with("retention.") {
            self.key
        } else {
            label
        };
        v.as_ref().and_then(|v| self.check(file, v, label, errs))
    }
}

/// Convert an accepted value to `usize` (every range's max fits in 32 bits).
pub fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}
