// Why this file is past ~600 lines: only with its unit tests (~620 lines of code: numbering, the byte-bounded ring and atomic replay-then-subscribe must have one owner).
//! The event bus actor (API.md §5): numbers events, keeps a ring buffer, and fans
//! them out to bounded per-subscriber queues without ever blocking on a subscriber.
//!
//! One thread owns all state; everyone else talks to it through [`Bus`], a cloneable
//! handle over an unbounded crossbeam channel (publishing never blocks).

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, unbounded};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

/// Source name of events the daemon itself publishes.
pub const DAEMON_SOURCE: &str = "orchestratr";

/// One event (API.md §5 `Event`).
///
/// The whole event is serialized once, when the bus numbers it, into `json` (one
/// line): the ring buffer, `GET /events` and every SSE subscriber share that one
/// string, so fan-out to N subscribers costs N copies of bytes, not N
/// serializations (issue 7 part 4).
#[derive(Debug)]
pub struct Event {
    /// Strictly increasing for the daemon's lifetime, starting at 1.
    pub id: u64,
    /// Event type, `^[a-z0-9][a-z0-9_.:-]{0,63}$`.
    pub kind: String,
    /// Who published it (`orchestratr` for the daemon's own events).
    pub source: String,
    /// App the event is addressed to (`app.message`) or about, if any.
    pub target: Option<String>,
    /// The event as one-line JSON `{"id","type","source","time","target","data"}`.
    json: Box<RawValue>,
}

impl Event {
    /// The event as one-line JSON (API.md §5 `Event`), serialized once.
    pub fn json(&self) -> &str {
        self.json.get()
    }

    /// The event's `data` parsed back into a JSON value (`Null` if absent).
    /// Costs a parse of the serialized event: for consumers off the hot path
    /// (notifications), not for fan-out.
    pub fn data(&self) -> serde_json::Value {
        #[derive(serde::Deserialize)]
        struct DataOnly {
            #[serde(default)]
            data: serde_json::Value,
        }
        serde_json::from_str::<DataOnly>(self.json.get())
            .map(|d| d.data)
            .unwrap_or(serde_json::Value::Null)
    }

    /// Bytes this event holds in the ring (its JSON plus the fields kept for
    /// filtering), the unit of `event_buffer_bytes`.
    pub fn size_bytes(&self) -> usize {
        self.json.get().len()
            + self.kind.len()
            + self.source.len()
            + self.target.as_ref().map_or(0, String::len)
            + EVENT_OVERHEAD_BYTES
    }
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(s)
    }
}

/// Fixed bookkeeping counted per retained event (the `Arc`, the struct, the
/// allocator's headers), bytes.
const EVENT_OVERHEAD_BYTES: usize = 128;

/// Largest `data` of a published event, serialized, bytes (API.md §9 "bounded
/// state"): larger is `413 payload_too_large`.
pub const MAX_EVENT_DATA_BYTES: usize = 64 * 1024;

/// Type prefixes reserved for the daemon's own events (API.md §9): clients may
/// not publish them through `POST /events` or `/apps/{name}/message`.
pub const RESERVED_TYPE_PREFIXES: &[&str] = &[
    "daemon.",
    "app.",
    "registry.",
    "config.",
    "execution.",
    "approval.",
    "agent.",
    "stream.",
    "token.",
];

/// Why a client-published event is refused ([`validate_user_event`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserEventError {
    /// The type uses a built-in prefix or the source is `orchestratr` (any
    /// case): the message names the rule. HTTP `403 forbidden`.
    Reserved(String),
    /// `data` serializes to more than [`MAX_EVENT_DATA_BYTES`] (the size
    /// counted, which stops just past the limit). HTTP `413 payload_too_large`.
    TooLarge(usize),
}

impl std::fmt::Display for UserEventError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserEventError::Reserved(m) => f.write_str(m),
            UserEventError::TooLarge(_) => write!(
                f,
                "event data is larger than {MAX_EVENT_DATA_BYTES} bytes serialized"
            ),
        }
    }
}
impl std::error::Error for UserEventError {}

/// Counts bytes written, stopping (with an error) past `limit`.
struct CountingWriter {
    n: usize,
    limit: usize,
}

impl std::io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.n += buf.len();
        if self.n > self.limit {
            return Err(std::io::Error::other("over the limit"));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Size of `v` serialized as compact JSON, bytes, counted without allocating;
/// counting stops just past `limit` (the result is then `limit + 1` or more).
pub fn serialized_len(v: &Value, limit: usize) -> usize {
    let mut w = CountingWriter { n: 0, limit };
    let _ = serde_json::to_writer(&mut w, v);
    w.n
}

/// The rules for events published by clients (API.md §9, issue 13 parts 3-4):
/// `kind` may not start with a [`RESERVED_TYPE_PREFIXES`] entry and `source`
/// may not be `orchestratr` in any case; `data` is at most
/// [`MAX_EVENT_DATA_BYTES`] serialized.
///
/// Errors: [`UserEventError::Reserved`] naming the rule, or
/// [`UserEventError::TooLarge`].
pub fn validate_user_event(kind: &str, source: &str, data: &Value) -> Result<(), UserEventError> {
    let lower = kind.to_ascii_lowercase();
    if let Some(p) = RESERVED_TYPE_PREFIXES
        .iter()
        .find(|p| lower.starts_with(*p))
    {
        return Err(UserEventError::Reserved(format!(
            "event type '{kind}' is reserved: types starting with '{p}' are published only by the daemon"
        )));
    }
    if source.trim().eq_ignore_ascii_case(DAEMON_SOURCE) {
        return Err(UserEventError::Reserved(format!(
            "source '{source}' is reserved: only the daemon publishes as '{DAEMON_SOURCE}'"
        )));
    }
    let n = serialized_len(data, MAX_EVENT_DATA_BYTES);
    if n > MAX_EVENT_DATA_BYTES {
        return Err(UserEventError::TooLarge(n));
    }
    Ok(())
}

/// The serialized shape of [`Event`], used once per event.
#[derive(Serialize)]
struct EventOut<'a> {
    id: u64,
    #[serde(rename = "type")]
    kind: &'a str,
    source: &'a str,
    time: &'a str,
    target: Option<&'a str>,
    data: &'a Value,
}

/// An event not yet numbered.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// See [`Event::kind`].
    pub kind: String,
    /// See [`Event::source`].
    pub source: String,
    /// See [`Event::target`].
    pub target: Option<String>,
    /// See [`Event::data`].
    pub data: Value,
}

impl NewEvent {
    /// An event published by the daemon itself (`source: "orchestratr"`).
    pub fn daemon(kind: &str, target: Option<&str>, data: Value) -> Self {
        NewEvent {
            kind: kind.to_string(),
            source: DAEMON_SOURCE.to_string(),
            target: target.map(str::to_string),
            data,
        }
    }
}

/// `^[a-z0-9][a-z0-9_.:-]{0,63}$` (API.md §4 `POST /events`).
pub fn valid_event_type(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b':' | b'-')
        })
}

#[derive(Debug, Clone, PartialEq)]
enum TypePattern {
    Exact(String),
    Prefix(String),
}

/// Which events a query or stream wants (API.md §5 query parameters).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    types: Vec<TypePattern>,
    /// Exact `source` match, if set.
    pub source: Option<String>,
    /// Exact `target` match, if set.
    pub target: Option<String>,
}

impl EventFilter {
    /// Build a filter. `types` is a comma list; an item ending in `*` is a prefix
    /// match (`app.*`, `*`). Empty items are ignored; empty strings mean "any".
    pub fn new(types: Option<&str>, source: Option<&str>, target: Option<&str>) -> Self {
        let types = types
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s.strip_suffix('*') {
                Some(p) => TypePattern::Prefix(p.to_string()),
                None => TypePattern::Exact(s.to_string()),
            })
            .collect();
        let nonempty = |s: Option<&str>| s.filter(|v| !v.is_empty()).map(str::to_string);
        EventFilter {
            types,
            source: nonempty(source),
            target: nonempty(target),
        }
    }

    /// Does `e` pass the filter?
    pub fn matches(&self, e: &Event) -> bool {
        let type_ok = self.types.is_empty()
            || self.types.iter().any(|p| match p {
                TypePattern::Exact(t) => e.kind == *t,
                TypePattern::Prefix(p) => e.kind.starts_with(p.as_str()),
            });
        type_ok
            && self.source.as_ref().is_none_or(|s| e.source == *s)
            && self
                .target
                .as_ref()
                .is_none_or(|t| e.target.as_deref() == Some(t))
    }
}

/// What a new subscriber gets: retained events to replay, then a live queue.
/// Replay and registration happen in one step of the bus thread, so replay
/// followed by the queue has no gap and no duplicate.
pub struct Subscription {
    /// Retained events after the requested id, oldest first, already filtered.
    pub replay: Vec<Arc<Event>>,
    /// `(from, to)` ids that were requested but are no longer retained.
    pub gap: Option<(u64, u64)>,
    /// Live events; disconnected when the bus stops or drops a lagging subscriber.
    pub rx: Receiver<Arc<Event>>,
    /// Set by the bus when this subscriber's queue overflowed and it was dropped.
    pub lagged: Arc<AtomicBool>,
    /// Id of the last event put into this subscriber's queue (or replay).
    pub last_queued: Arc<AtomicU64>,
}

/// Result of [`Bus::query`].
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    /// Matching events with `id > since`, oldest first, at most `limit`.
    pub events: Vec<Arc<Event>>,
    /// Resume point for the next query (`since`): the last returned id when the
    /// limit cut the list, else the newest id the bus has numbered.
    pub last_id: u64,
}

enum BusCmd {
    Publish(NewEvent, Option<Sender<u64>>),
    Query {
        since: u64,
        filter: EventFilter,
        limit: usize,
        reply: Sender<QueryResult>,
    },
    Subscribe {
        filter: EventFilter,
        after: Option<u64>,
        capacity: usize,
        reply: Sender<Subscription>,
    },
    Stop,
}

struct Subscriber {
    filter: EventFilter,
    tx: Sender<Arc<Event>>,
    lagged: Arc<AtomicBool>,
    last_queued: Arc<AtomicU64>,
}

/// Error: the bus thread is gone (daemon shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusClosed;

impl std::fmt::Display for BusClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("event bus is shut down")
    }
}
impl std::error::Error for BusClosed {}

/// Handle to the event bus actor. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    tx: Sender<BusCmd>,
}

impl Bus {
    /// Start the bus thread with a ring buffer of at most `capacity` events and
    /// at most `max_bytes` of events ([`Event::size_bytes`]); the oldest go first
    /// (the newest event is always kept).
    pub fn start(capacity: usize, max_bytes: usize) -> (Bus, JoinHandle<()>) {
        let (tx, rx) = unbounded();
        let handle = std::thread::Builder::new()
            .name("event-bus".into())
            .spawn(move || BusState::new(capacity, max_bytes).run(rx))
            .unwrap_or_else(|e| panic!("cannot spawn event bus thread: {e}"));
        (Bus { tx }, handle)
    }

    /// Publish without waiting for the id (fire and forget; never blocks).
    pub fn emit(&self, ev: NewEvent) {
        let _ = self.tx.send(BusCmd::Publish(ev, None));
    }

    /// Publish and return the id the bus gave the event.
    ///
    /// Errors: [`BusClosed`] when the bus thread has stopped.
    pub fn publish(&self, ev: NewEvent) -> Result<u64, BusClosed> {
        let (rtx, rrx) = bounded(1);
        self.tx
            .send(BusCmd::Publish(ev, Some(rtx)))
            .map_err(|_| BusClosed)?;
        rrx.recv().map_err(|_| BusClosed)
    }

    /// Retained events with `id > since` matching `filter`, at most `limit`.
    ///
    /// Errors: [`BusClosed`] when the bus thread has stopped.
    pub fn query(
        &self,
        since: u64,
        filter: EventFilter,
        limit: usize,
    ) -> Result<QueryResult, BusClosed> {
        let (rtx, rrx) = bounded(1);
        self.tx
            .send(BusCmd::Query {
                since,
                filter,
                limit,
                reply: rtx,
            })
            .map_err(|_| BusClosed)?;
        rrx.recv().map_err(|_| BusClosed)
    }

    /// Subscribe to live events matching `filter`, replaying retained events with
    /// `id > after` first (no replay when `after` is `None`). `capacity` bounds the
    /// live queue; overflowing it drops the subscriber and sets `lagged`.
    ///
    /// An `after` at or beyond the next id (a client resuming across a daemon
    /// restart, whose ids start again at 1) replays everything retained.
    ///
    /// Errors: [`BusClosed`] when the bus thread has stopped.
    pub fn subscribe(
        &self,
        filter: EventFilter,
        after: Option<u64>,
        capacity: usize,
    ) -> Result<Subscription, BusClosed> {
        let (rtx, rrx) = bounded(1);
        self.tx
            .send(BusCmd::Subscribe {
                filter,
                after,
                capacity,
                reply: rtx,
            })
            .map_err(|_| BusClosed)?;
        rrx.recv().map_err(|_| BusClosed)
    }

    /// Stop the bus thread; every subscriber's queue disconnects.
    pub fn stop(&self) {
        let _ = self.tx.send(BusCmd::Stop);
    }
}

struct BusState {
    ring: VecDeque<Arc<Event>>,
    capacity: usize,
    /// Sum of [`Event::size_bytes`] over `ring`.
    bytes: usize,
    max_bytes: usize,
    next_id: u64,
    subs: Vec<Subscriber>,
}

impl BusState {
    fn new(capacity: usize, max_bytes: usize) -> Self {
        BusState {
            ring: VecDeque::with_capacity(capacity.min(1 << 14)),
            capacity: capacity.max(1),
            bytes: 0,
            max_bytes,
            next_id: 1,
            subs: Vec::new(),
        }
    }

    fn run(mut self, rx: Receiver<BusCmd>) {
        while let Ok(cmd) = rx.recv() {
            match cmd {
                BusCmd::Publish(ev, reply) => {
                    let id = self.publish(ev);
                    if let Some(r) = reply {
                        let _ = r.send(id);
                    }
                }
                BusCmd::Query {
                    since,
                    filter,
                    limit,
                    reply,
                } => {
                    let _ = reply.send(self.query(since, &filter, limit));
                }
                BusCmd::Subscribe {
                    filter,
                    after,
                    capacity,
                    reply,
                } => {
                    let sub = self.subscribe(filter, after, capacity);
                    let _ = reply.send(sub);
                }
                BusCmd::Stop => break,
            }
        }
        // Dropping `self.subs` disconnects every stream.
    }

    fn publish(&mut self, ev: NewEvent) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let event = Arc::new(numbered(id, ev));
        self.bytes += event.size_bytes();
        self.ring.push_back(event.clone());
        while self.ring.len() > self.capacity
            || (self.bytes > self.max_bytes && self.ring.len() > 1)
        {
            if let Some(old) = self.ring.pop_front() {
                self.bytes -= old.size_bytes();
            }
        }
        self.subs.retain(|s| {
            if !s.filter.matches(&event) {
                // A gone subscriber that filters this event out is dropped at its next match.
                return true;
            }
            match s.tx.try_send(event.clone()) {
                Ok(()) => {
                    s.last_queued.store(id, Ordering::Relaxed);
                    true
                }
                Err(TrySendError::Full(_)) => {
                    s.lagged.store(true, Ordering::Release);
                    log::debug!("sse subscriber lagged at event {id}; dropping it");
                    false
                }
                Err(TrySendError::Disconnected(_)) => false,
            }
        });
        id
    }

    /// Index in the ring of the first event with `id > after`.
    fn start_index(&self, after: u64) -> usize {
        match self.ring.front() {
            None => 0,
            Some(first) if after < first.id => 0,
            Some(first) => ((after - first.id + 1) as usize).min(self.ring.len()),
        }
    }

    fn query(&self, since: u64, filter: &EventFilter, limit: usize) -> QueryResult {
        let mut events = Vec::new();
        let mut truncated = false;
        for e in self.ring.iter().skip(self.start_index(since)) {
            if filter.matches(e) {
                if events.len() == limit {
                    truncated = true;
                    break;
                }
                events.push(e.clone());
            }
        }
        let last_id = if truncated {
            events.last().map(|e| e.id).unwrap_or(since)
        } else {
            self.next_id - 1
        };
        QueryResult { events, last_id }
    }

    fn subscribe(
        &mut self,
        filter: EventFilter,
        after: Option<u64>,
        capacity: usize,
    ) -> Subscription {
        let (tx, rx) = bounded(capacity.max(1));
        let lagged = Arc::new(AtomicBool::new(false));
        let last_queued = Arc::new(AtomicU64::new(self.next_id - 1));
        let mut replay = Vec::new();
        let mut gap = None;
        if let Some(mut after) = after {
            if after >= self.next_id {
                after = 0; // ids from an earlier daemon lifetime: replay all we have
            }
            let oldest = self.ring.front().map(|e| e.id).unwrap_or(self.next_id);
            if after + 1 < oldest {
                gap = Some((after + 1, oldest - 1));
            }
            replay = self
                .ring
                .iter()
                .skip(self.start_index(after))
                .filter(|e| filter.matches(e))
                .cloned()
                .collect();
        }
        self.subs.push(Subscriber {
            filter,
            tx,
            lagged: lagged.clone(),
            last_queued: last_queued.clone(),
        });
        Subscription {
            replay,
            gap,
            rx,
            lagged,
            last_queued,
        }
    }
}

/// Number and serialize an event (the only serialization it ever gets).
fn numbered(id: u64, ev: NewEvent) -> Event {
    let time = crate::time::now_rfc3339();
    let out = EventOut {
        id,
        kind: &ev.kind,
        source: &ev.source,
        time: &time,
        target: ev.target.as_deref(),
        data: &ev.data,
    };
    // Serializing a `Value` cannot fail; `null` data would stand in if it ever did.
    let json = serde_json::value::to_raw_value(&out).unwrap_or_else(|_| {
        let fallback = EventOut {
            data: &Value::Null,
            ..out
        };
        serde_json::value::to_raw_value(&fallback).unwrap_or_else(|_| RawValue::NULL.to_owned())
    });
    Event {
        id,
        kind: ev.kind,
        source: ev.source,
        target: ev.target,
        json,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(kind: &str) -> NewEvent {
        NewEvent {
            kind: kind.into(),
            source: "t".into(),
            target: None,
            data: json!({}),
        }
    }

    #[test]
    fn ids_increase_and_ring_is_bounded() {
        let (bus, h) = Bus::start(3, usize::MAX);
        for _ in 0..5 {
            bus.publish(ev("a")).expect("publish");
        }
        let q = bus.query(0, EventFilter::default(), 100).expect("query");
        let ids: Vec<u64> = q.events.iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![3, 4, 5]);
        assert_eq!(q.last_id, 5);
        bus.stop();
        h.join().expect("join");
    }

    #[test]
    fn filters_match_prefixes_sources_and_targets() {
        let f = EventFilter::new(Some("app.*, registry.reloaded"), None, None);
        let mk = |k: &str| {
            numbered(
                1,
                NewEvent {
                    kind: k.into(),
                    source: "s".into(),
                    target: Some("x".into()),
                    data: json!({}),
                },
            )
        };
        assert!(f.matches(&mk("app.ready")));
        assert!(f.matches(&mk("registry.reloaded")));
        assert!(!f.matches(&mk("registry.other")));
        assert!(EventFilter::new(Some("*"), None, None).matches(&mk("z")));
        assert!(!EventFilter::new(None, Some("other"), None).matches(&mk("z")));
        assert!(EventFilter::new(None, None, Some("x")).matches(&mk("z")));
    }

    #[test]
    fn query_limit_gives_a_resume_point() {
        let (bus, _h) = Bus::start(100, usize::MAX);
        for _ in 0..10 {
            bus.publish(ev("a")).expect("publish");
        }
        let q = bus.query(2, EventFilter::default(), 3).expect("query");
        assert_eq!(
            q.events.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(q.last_id, 5);
        bus.stop();
    }

    #[test]
    fn subscribe_replays_then_goes_live_without_gap() {
        let (bus, _h) = Bus::start(100, usize::MAX);
        for _ in 0..5 {
            bus.publish(ev("a")).expect("publish");
        }
        let sub = bus
            .subscribe(EventFilter::default(), Some(2), 10)
            .expect("sub");
        assert_eq!(
            sub.replay.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert!(sub.gap.is_none());
        bus.publish(ev("a")).expect("publish");
        assert_eq!(sub.rx.recv().expect("live").id, 6);
        bus.stop();
    }

    #[test]
    fn gap_is_reported_when_resume_point_is_gone() {
        let (bus, _h) = Bus::start(3, usize::MAX);
        for _ in 0..10 {
            bus.publish(ev("a")).expect("publish");
        }
        let sub = bus
            .subscribe(EventFilter::default(), Some(1), 10)
            .expect("sub");
        assert_eq!(sub.gap, Some((2, 7)));
        assert_eq!(sub.replay.first().map(|e| e.id), Some(8));
        bus.stop();
    }

    #[test]
    fn slow_subscriber_is_dropped_as_lagged_and_others_continue() {
        let (bus, _h) = Bus::start(100, usize::MAX);
        let slow = bus.subscribe(EventFilter::default(), None, 2).expect("sub");
        let fast = bus
            .subscribe(EventFilter::default(), None, 100)
            .expect("sub");
        for _ in 0..5 {
            bus.publish(ev("a")).expect("publish");
        }
        assert!(slow.lagged.load(Ordering::Acquire));
        assert_eq!(slow.rx.iter().count(), 2);
        assert_eq!(fast.rx.try_iter().count(), 5);
        bus.stop();
    }

    #[test]
    fn ring_is_bounded_by_bytes_oldest_first() {
        let big = || NewEvent {
            kind: "big".into(),
            source: "t".into(),
            target: None,
            data: json!("x".repeat(10_000)),
        };
        let (bus, _h) = Bus::start(1000, 35_000);
        for _ in 0..10 {
            bus.publish(big()).expect("publish");
        }
        let q = bus.query(0, EventFilter::default(), 100).expect("query");
        let ids: Vec<u64> = q.events.iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![8, 9, 10]);
        let sub = bus
            .subscribe(EventFilter::default(), Some(2), 10)
            .expect("sub");
        assert_eq!(sub.gap, Some((3, 7)));
        bus.stop();
    }

    #[test]
    fn event_json_is_the_api_shape() {
        let e = numbered(
            7,
            NewEvent {
                kind: "a.b".into(),
                source: "s".into(),
                target: None,
                data: json!({"k": [1, 2]}),
            },
        );
        let v: Value = serde_json::from_str(e.json()).expect("json");
        assert_eq!(v["id"], 7);
        assert_eq!(v["type"], "a.b");
        assert_eq!(v["source"], "s");
        assert!(v["target"].is_null());
        assert_eq!(v["data"], json!({"k": [1, 2]}));
        assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(!e.json().contains('\n'));
        assert_eq!(serde_json::to_string(&e).expect("ser"), e.json());
    }

    #[test]
    fn user_event_rules() {
        let d = json!({});
        for t in [
            "app.x",
            "daemon.started",
            "Token.issued",
            "stream.gap",
            "agent.y",
        ] {
            let e = validate_user_event(t, "me", &d).expect_err(t);
            assert!(
                matches!(e, UserEventError::Reserved(ref m) if m.contains("reserved")),
                "{e}"
            );
        }
        for s in ["orchestratr", "Orchestratr", "ORCHESTRATR"] {
            assert!(matches!(
                validate_user_event("x.y", s, &d),
                Err(UserEventError::Reserved(_))
            ));
        }
        assert!(validate_user_event("apps.x", "me", &d).is_ok());
        assert!(validate_user_event("sync_complete", "espansr", &d).is_ok());
        let big = json!("x".repeat(MAX_EVENT_DATA_BYTES));
        assert!(matches!(
            validate_user_event("x", "me", &big),
            Err(UserEventError::TooLarge(_))
        ));
        let fits = json!("x".repeat(MAX_EVENT_DATA_BYTES - 2));
        assert!(validate_user_event("x", "me", &fits).is_ok());
    }

    #[test]
    fn event_type_pattern() {
        assert!(valid_event_type("sync_complete"));
        assert!(valid_event_type("app.ready:x-1"));
        assert!(!valid_event_type("Sync"));
        assert!(!valid_event_type(".x"));
        assert!(!valid_event_type(""));
        assert!(!valid_event_type(&"a".repeat(65)));
    }
}
