//! The approvals actor (API.md §8): a process asks a question, any client answers,
//! the first answer wins.
//!
//! One thread owns every approval and serves typed commands from a crossbeam
//! channel ([`Approvals`] is the cloneable handle). It creates, lists, decides
//! (atomically: commands are served one at a time, so of many concurrent answers
//! exactly one finds the approval pending), expires pending approvals at their
//! `expires_at` (applying `default`), and answers long polls: a waiter is a
//! callback ([`WaitFn`]) the actor calls once, when the approval is no longer
//! pending or the wait ends. Callbacks run on a small responder thread, so a slow
//! client never stalls the actor. This module knows nothing about HTTP.
//!
//! Persistence: every change is written atomically to
//! `<state>/approvals/<id>.json` (the [`Approval`] JSON). At start the directory is
//! loaded; pending approvals whose `expires_at` passed while the daemon was down
//! expire at once; at most `retention` decided or expired approvals are kept (the
//! oldest by `decided_at` are removed, files too). Pending ones are always kept.
//!
//! Events on the bus (source `orchestratr`, target `null`, data = the Approval):
//! `approval.requested`, `approval.decided`, `approval.expired`.

use crate::actor::call;
use crate::events::{Bus, NewEvent};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `timeout_ms` when a request gives none: 10 minutes.
pub const DEFAULT_TIMEOUT_MS: u64 = 600_000;
/// Largest accepted `timeout_ms`: 7 days.
pub const MAX_TIMEOUT_MS: u64 = 7 * 24 * 3600 * 1000;
/// Largest accepted long-poll wait (`GET /approvals/{id}?wait=S`), seconds.
pub const MAX_WAIT_S: u64 = 300;
/// Pending approvals held at once; creating one more is refused (`503`).
pub const MAX_PENDING: usize = 10_000;
/// The options used when a request gives none.
pub const STANDARD_OPTIONS: [&str; 2] = ["approve", "deny"];
/// Longest sleep of the actor between checks, so a wall-clock jump is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Where an approval stands (API.md §8 `Approval.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for an answer.
    Pending,
    /// Answered with the standard option `approve`.
    Approved,
    /// Answered with the standard option `deny`.
    Denied,
    /// Answered with another (custom) option; see `decision`.
    Decided,
    /// Nobody answered before `expires_at`; `decision` is the `default`.
    Expired,
}

impl Status {
    /// Every status, in the order the docs list them.
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Approved,
        Status::Denied,
        Status::Decided,
        Status::Expired,
    ];

    /// The wire name (`pending`, `approved`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Decided => "decided",
            Status::Expired => "expired",
        }
    }

    /// Parse a wire name (exact, lowercase); `None` for anything else.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The status a decision leaves: `approve` → approved, `deny` → denied,
    /// any other option → decided.
    pub fn of_decision(decision: &str) -> Status {
        match decision {
            "approve" => Status::Approved,
            "deny" => Status::Denied,
            _ => Status::Decided,
        }
    }
}

/// One approval (API.md §8 `Approval`); also the content of
/// `<state>/approvals/<id>.json`. Unknown values are `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// `appr-` + 12 lowercase hex chars (48 random bits).
    pub id: String,
    /// Where it stands.
    pub status: Status,
    /// The question, one line (required at creation).
    pub title: String,
    /// Longer text shown under the title.
    #[serde(default)]
    pub detail: Option<String>,
    /// Who asks (`claude-code`, `cli`, a script's name).
    #[serde(default)]
    pub source: Option<String>,
    /// The possible answers: non-empty, unique strings.
    pub options: Vec<String>,
    /// The option applied on expiry.
    pub default: String,
    /// The chosen option (the `default` once expired); `null` while pending.
    #[serde(default)]
    pub decision: Option<String>,
    /// Free text the decider attached.
    #[serde(default)]
    pub comment: Option<String>,
    /// Who decided (the request's `by`); `null` when expired or not given.
    #[serde(default)]
    pub decided_by: Option<String>,
    /// RFC 3339 UTC, milliseconds.
    pub created_at: String,
    /// When it was decided or expired (RFC 3339 ms); `null` while pending.
    #[serde(default)]
    pub decided_at: Option<String>,
    /// When a pending approval expires (RFC 3339 ms).
    pub expires_at: String,
    /// Free JSON the asker attached (`{}` by default).
    #[serde(default)]
    pub context: Value,
}

/// A request to create an approval (`POST /approvals` body, already type-checked).
#[derive(Debug, Clone, Default)]
pub struct NewApproval {
    /// Required, non-empty.
    pub title: String,
    /// Optional longer text.
    pub detail: Option<String>,
    /// Optional asker name.
    pub source: Option<String>,
    /// Default `["approve","deny"]`; must be non-empty, unique, non-empty strings.
    pub options: Option<Vec<String>>,
    /// Must be one of `options`; default `deny` if present, else the first option.
    pub default: Option<String>,
    /// 1..=[`MAX_TIMEOUT_MS`]; default [`DEFAULT_TIMEOUT_MS`].
    pub timeout_ms: Option<u64>,
    /// Free JSON; default `{}`.
    pub context: Option<Value>,
}

/// An answer (`POST /approvals/{id}` body).
#[derive(Debug, Clone)]
pub struct Decision {
    /// The approval's id.
    pub id: String,
    /// One of the approval's `options`.
    pub decision: String,
    /// Optional free text.
    pub comment: Option<String>,
    /// Optional name of who decided.
    pub by: Option<String>,
}

/// What `list` returns.
#[derive(Debug, Clone)]
pub struct Listing {
    /// Matching approvals: pending first, then newest first.
    pub approvals: Vec<Approval>,
    /// Long polls currently held by the actor (all approvals).
    pub waiting: usize,
}

/// Errors of the approvals layer; the HTTP layer maps each to a status.
#[derive(Debug, Clone)]
pub enum ApprovalError {
    /// The request breaks a rule (message names the field and value) → 400.
    Invalid(String),
    /// No approval with this id → 404.
    NotFound(String),
    /// The decision is not one of the options → 400.
    NotAnOption {
        /// What was sent.
        decision: String,
        /// What is allowed.
        options: Vec<String>,
    },
    /// Already decided or expired; carries the standing approval → 409.
    AlreadyDecided(Box<Approval>),
    /// [`MAX_PENDING`] approvals are pending → 503.
    TooMany(usize),
    /// Something failed inside (e.g. no randomness for an id) → 500.
    Internal(String),
    /// The actor is gone (daemon shutting down) → 503.
    Closed,
}

impl std::fmt::Display for ApprovalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApprovalError::Invalid(m) | ApprovalError::Internal(m) => f.write_str(m),
            ApprovalError::NotFound(id) => write!(f, "no approval with id '{id}'"),
            ApprovalError::NotAnOption { decision, options } => write!(
                f,
                "decision '{decision}' is not one of the options: {}",
                options.join(", ")
            ),
            ApprovalError::AlreadyDecided(a) => write!(
                f,
                "approval '{}' is already {} (decision '{}')",
                a.id,
                a.status.as_str(),
                a.decision.as_deref().unwrap_or("")
            ),
            ApprovalError::TooMany(n) => write!(
                f,
                "too many pending approvals ({n}); answer or let some expire first"
            ),
            ApprovalError::Closed => f.write_str("the approvals service is shut down"),
        }
    }
}
impl std::error::Error for ApprovalError {}

/// What a long poll is answered with.
#[derive(Debug, Clone)]
pub enum WaitResult {
    /// The approval as it stands (decided, expired, or still pending when the
    /// wait ended or the daemon is stopping).
    Ready(Box<Approval>),
    /// No approval with this id.
    NotFound,
    /// The actor is gone.
    Closed,
}

/// A long poll's answer callback; called exactly once (unless the actor panics).
pub type WaitFn = Box<dyn FnOnce(WaitResult) + Send>;

type Reply<T> = Sender<Result<T, ApprovalError>>;

enum Cmd {
    Create(NewApproval, Reply<Approval>),
    List(Vec<Status>, Sender<Listing>),
    Get(String, Sender<Option<Approval>>),
    Wait(String, Duration, WaitFn),
    Decide(Decision, Reply<Approval>),
    SetRetention(usize),
    Shutdown,
}

/// Handle to the approvals actor. Cheap to clone.
#[derive(Clone)]
pub struct Approvals {
    tx: Sender<Cmd>,
}

impl Approvals {
    /// Start the actor; approvals persist under `<state_dir>/approvals/`; at most
    /// `retention` decided or expired approvals are kept (pending ones always are).
    /// Loading happens on the actor thread before the first command is served.
    pub fn start(state_dir: &Path, bus: Bus, retention: usize) -> (Approvals, JoinHandle<()>) {
        let (tx, rx) = unbounded();
        let dir = state_dir.join("approvals");
        let handle = std::thread::Builder::new()
            .name("approvals".into())
            .spawn(move || {
                let mut actor = Actor::new(dir, bus, retention.max(1));
                actor.load();
                actor.run(rx);
            })
            .unwrap_or_else(|e| panic!("cannot spawn approvals thread: {e}"));
        (Approvals { tx }, handle)
    }

    /// Create a pending approval and publish `approval.requested`.
    ///
    /// Errors: `Invalid` (empty title, bad options/default/timeout), `TooMany`,
    /// `Internal`, `Closed`.
    pub fn create(&self, req: NewApproval) -> Result<Approval, ApprovalError> {
        call(&self.tx, |r| Cmd::Create(req, r)).unwrap_or(Err(ApprovalError::Closed))
    }

    /// Approvals whose status is in `statuses` (all when empty), pending first,
    /// then newest first.
    ///
    /// Errors: `Closed`.
    pub fn list(&self, statuses: &[Status]) -> Result<Listing, ApprovalError> {
        call(&self.tx, |r| Cmd::List(statuses.to_vec(), r)).ok_or(ApprovalError::Closed)
    }

    /// One approval, `None` when unknown.
    ///
    /// Errors: `Closed`.
    pub fn get(&self, id: &str) -> Result<Option<Approval>, ApprovalError> {
        call(&self.tx, |r| Cmd::Get(id.to_string(), r)).ok_or(ApprovalError::Closed)
    }

    /// Long poll: `reply` is called once, as soon as the approval is no longer
    /// pending, or when `wait` has passed (with the pending approval), or at once
    /// when the id is unknown (`NotFound`) or the actor is gone (`Closed`).
    /// Never blocks the caller.
    pub fn wait(&self, id: &str, wait: Duration, reply: WaitFn) {
        if let Err(e) = self.tx.send(Cmd::Wait(id.to_string(), wait, reply))
            && let Cmd::Wait(_, _, reply) = e.into_inner()
        {
            reply(WaitResult::Closed);
        }
    }

    /// Answer a pending approval; publishes `approval.decided` and wakes its long
    /// polls. Of concurrent answers exactly one succeeds.
    ///
    /// Errors: `NotFound`, `NotAnOption`, `AlreadyDecided` (with the standing
    /// approval), `Closed`.
    pub fn decide(&self, d: Decision) -> Result<Approval, ApprovalError> {
        call(&self.tx, |r| Cmd::Decide(d, r)).unwrap_or(Err(ApprovalError::Closed))
    }

    /// Apply a reloaded `retention.approvals` (≥ 1); prunes at once if lower.
    pub fn set_retention(&self, retention: usize) {
        let _ = self.tx.send(Cmd::SetRetention(retention.max(1)));
    }

    /// Stop the actor (pending long polls are answered with the current state).
    pub fn shutdown(&self) {
        let _ = self.tx.send(Cmd::Shutdown);
    }
}

/// Truncate `t` to whole milliseconds (what the RFC 3339 strings carry).
fn trunc_ms(t: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(crate::time::unix_ms(t))
}

fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(s).ok()
}

/// A new random id, `appr-` + 12 hex chars.
fn new_id() -> Result<String, ApprovalError> {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b)
        .map_err(|e| ApprovalError::Internal(format!("cannot get random bytes for an id: {e}")))?;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!("appr-{hex}"))
}

/// Is `id` shaped like one of ours (`appr-` + 12 lowercase hex)? Anything else
/// is never a file name we read or write.
pub fn valid_id(id: &str) -> bool {
    id.strip_prefix("appr-").is_some_and(|h| {
        h.len() == 12
            && h.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    })
}

/// Check a creation request against API.md §8 and fill in defaults:
/// `(options, default, timeout_ms)`.
///
/// Errors: `Invalid` naming the offending field and value.
pub fn validate(req: &NewApproval) -> Result<(Vec<String>, String, u64), ApprovalError> {
    let bad = |m: String| Err(ApprovalError::Invalid(m));
    if req.title.trim().is_empty() {
        return bad("field 'title' must be a non-empty string".into());
    }
    let options: Vec<String> = match &req.options {
        None => STANDARD_OPTIONS.iter().map(|s| s.to_string()).collect(),
        Some(o) => o.clone(),
    };
    if options.is_empty() {
        return bad("field 'options' must not be empty".into());
    }
    for (i, o) in options.iter().enumerate() {
        if o.is_empty() {
            return bad(format!("field 'options' has an empty string at index {i}"));
        }
        if options[..i].contains(o) {
            return bad(format!("field 'options' lists '{o}' more than once"));
        }
    }
    let default = match &req.default {
        Some(d) if options.contains(d) => d.clone(),
        Some(d) => {
            return bad(format!(
                "field 'default' is '{d}', which is not one of the options: {}",
                options.join(", ")
            ));
        }
        None if options.iter().any(|o| o == "deny") => "deny".to_string(),
        None => options[0].clone(),
    };
    let timeout_ms = req.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if timeout_ms == 0 || timeout_ms > MAX_TIMEOUT_MS {
        return bad(format!(
            "field 'timeout_ms' must be from 1 to {MAX_TIMEOUT_MS} (7 days), not {timeout_ms}"
        ));
    }
    Ok((options, default, timeout_ms))
}

struct Entry {
    approval: Approval,
    /// `expires_at` as a time, for the expiry clock.
    expires: SystemTime,
    /// `decided_at` as a time (retention order); `None` while pending.
    decided: Option<SystemTime>,
    /// Creation order (ties within one millisecond).
    seq: u64,
}

struct Waiter {
    id: String,
    deadline: Instant,
    reply: WaitFn,
}

struct Actor {
    /// `<state>/approvals`; `None` when it cannot be created (memory only).
    dir: Option<PathBuf>,
    bus: Bus,
    retention: usize,
    items: HashMap<String, Entry>,
    waiters: Vec<Waiter>,
    seq: u64,
    /// Runs waiter callbacks off the actor thread.
    responder: Option<Sender<(WaitFn, WaitResult)>>,
    responder_thread: Option<JoinHandle<()>>,
}

impl Actor {
    fn new(dir: PathBuf, bus: Bus, retention: usize) -> Actor {
        let dir = match crate::fsutil::create_private_dir(&dir) {
            Ok(()) => Some(dir),
            Err(e) => {
                log::error!(
                    "cannot create {}: {e}; approvals will not survive a restart",
                    dir.display()
                );
                None
            }
        };
        let (rtx, rrx) = unbounded::<(WaitFn, WaitResult)>();
        let thread = std::thread::Builder::new()
            .name("approvals-reply".into())
            .spawn(move || {
                for (f, r) in rrx {
                    if catch_unwind(AssertUnwindSafe(move || f(r))).is_err() {
                        log::error!("an approval long-poll callback panicked");
                    }
                }
            });
        let (responder, responder_thread) = match thread {
            Ok(t) => (Some(rtx), Some(t)),
            Err(e) => {
                log::warn!("cannot spawn the approvals reply thread ({e}); replying inline");
                (None, None)
            }
        };
        Actor {
            dir,
            bus,
            retention,
            items: HashMap::new(),
            waiters: Vec::new(),
            seq: 0,
            responder,
            responder_thread,
        }
    }

    // ---- persistence -------------------------------------------------------

    fn file_of(&self, id: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{id}.json")))
    }

    fn persist(&self, a: &Approval) {
        let Some(path) = self.file_of(&a.id) else {
            return;
        };
        let mut data = match serde_json::to_vec_pretty(a) {
            Ok(d) => d,
            Err(e) => {
                log::error!("cannot serialize approval {}: {e}", a.id);
                return;
            }
        };
        data.push(b'\n');
        if let Err(e) = crate::fsutil::write_atomic(&path, &data, 0o600) {
            log::error!("cannot write {}: {e}", path.display());
        }
    }

    fn remove_file(&self, id: &str) {
        if let Some(path) = self.file_of(id)
            && let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            log::warn!("cannot remove {}: {e}", path.display());
        }
    }

    /// Read `<state>/approvals/*.json`, expire overdue pending ones, apply retention.
    fn load(&mut self) {
        let Some(dir) = self.dir.clone() else { return };
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                log::warn!("cannot read {}: {e}", dir.display());
                return;
            }
        };
        let mut loaded: Vec<Entry> = Vec::new();
        for ent in rd.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            if !valid_id(stem) {
                continue;
            }
            let path = ent.path();
            match load_one(&path, stem) {
                Ok(e) => loaded.push(e),
                Err(m) => log::warn!("skipping {}: {m}", path.display()),
            }
        }
        loaded.sort_by(|a, b| {
            (a.approval.created_at.as_str(), a.approval.id.as_str())
                .cmp(&(b.approval.created_at.as_str(), b.approval.id.as_str()))
        });
        let n = loaded.len();
        for mut e in loaded {
            self.seq += 1;
            e.seq = self.seq;
            self.items.insert(e.approval.id.clone(), e);
        }
        let pending = self
            .items
            .values()
            .filter(|e| e.approval.status == Status::Pending)
            .count();
        if n > 0 {
            log::info!(
                "loaded {n} approvals ({pending} pending) from {}",
                dir.display()
            );
        }
        self.expire_due(SystemTime::now());
        self.prune();
    }

    // ---- the loop ----------------------------------------------------------

    fn run(mut self, rx: Receiver<Cmd>) {
        loop {
            let cmd = match self.next_wakeup() {
                Some(d) => match rx.recv_timeout(d) {
                    Ok(c) => Some(c),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match rx.recv() {
                    Ok(c) => Some(c),
                    Err(_) => break,
                },
            };
            // Expiries first, so an answer arriving after `expires_at` loses.
            self.tick();
            match cmd {
                None => {}
                Some(Cmd::Shutdown) => break,
                Some(Cmd::Create(req, r)) => {
                    let _ = r.send(self.create(req));
                }
                Some(Cmd::List(st, r)) => {
                    let _ = r.send(self.list(&st));
                }
                Some(Cmd::Get(id, r)) => {
                    let _ = r.send(self.items.get(&id).map(|e| e.approval.clone()));
                }
                Some(Cmd::Wait(id, wait, reply)) => self.add_waiter(id, wait, reply),
                Some(Cmd::Decide(d, r)) => {
                    let _ = r.send(self.decide(d));
                }
                Some(Cmd::SetRetention(n)) => {
                    self.retention = n;
                    self.prune();
                }
            }
        }
        // Answer every held long poll with the current state (also polls still
        // queued behind the shutdown), then let the responder finish its queue.
        for w in std::mem::take(&mut self.waiters) {
            let res = self.result_of(&w.id);
            self.respond(w.reply, res);
        }
        while let Ok(cmd) = rx.try_recv() {
            if let Cmd::Wait(id, _, reply) = cmd {
                let res = self.result_of(&id);
                self.respond(reply, res);
            }
        }
        self.responder = None;
        if let Some(t) = self.responder_thread.take() {
            let _ = t.join();
        }
    }

    /// How long to sleep until the next expiry or waiter deadline.
    fn next_wakeup(&self) -> Option<Duration> {
        let now = SystemTime::now();
        let inow = Instant::now();
        let exp = self
            .items
            .values()
            .filter(|e| e.approval.status == Status::Pending)
            .map(|e| e.expires.duration_since(now).unwrap_or(Duration::ZERO))
            .min();
        let wait = self
            .waiters
            .iter()
            .map(|w| w.deadline.saturating_duration_since(inow))
            .min();
        let d = match (exp, wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        Some(d.min(MAX_SLEEP))
    }

    fn tick(&mut self) {
        self.expire_due(SystemTime::now());
        let inow = Instant::now();
        if self.waiters.iter().any(|w| w.deadline <= inow) {
            let (due, keep): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut self.waiters)
                .into_iter()
                .partition(|w| w.deadline <= inow);
            self.waiters = keep;
            for w in due {
                let res = self.result_of(&w.id);
                self.respond(w.reply, res);
            }
        }
    }

    fn result_of(&self, id: &str) -> WaitResult {
        match self.items.get(id) {
            Some(e) => WaitResult::Ready(Box::new(e.approval.clone())),
            None => WaitResult::NotFound,
        }
    }

    fn respond(&self, f: WaitFn, r: WaitResult) {
        match &self.responder {
            Some(tx) => {
                if let Err(e) = tx.send((f, r)) {
                    let (f, r) = e.into_inner();
                    call_guarded(f, r);
                }
            }
            None => call_guarded(f, r),
        }
    }

    /// Answer every long poll on `id`.
    fn wake(&mut self, id: &str) {
        if !self.waiters.iter().any(|w| w.id == id) {
            return;
        }
        let (hit, keep): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| w.id == id);
        self.waiters = keep;
        for w in hit {
            let res = self.result_of(id);
            self.respond(w.reply, res);
        }
    }

    /// Publish an approval event. `GET /events` and the event stream are open
    /// routes (any local process can read them), so events carry only what
    /// identifies the approval and its outcome; title, detail and context (which
    /// may hold whole commands or diffs) stay behind the token on `/approvals`.
    fn emit(&self, kind: &str, a: &Approval) {
        let data = json!({
            "id": a.id, "status": a.status, "source": a.source, "options": a.options,
            "default": a.default, "decision": a.decision, "decided_by": a.decided_by,
            "created_at": a.created_at, "decided_at": a.decided_at, "expires_at": a.expires_at,
        });
        self.bus.emit(NewEvent::daemon(kind, None, data));
    }

    // ---- commands ----------------------------------------------------------

    fn create(&mut self, req: NewApproval) -> Result<Approval, ApprovalError> {
        let (options, default, timeout_ms) = validate(&req)?;
        let pending = self
            .items
            .values()
            .filter(|e| e.approval.status == Status::Pending)
            .count();
        if pending >= MAX_PENDING {
            return Err(ApprovalError::TooMany(pending));
        }
        let mut id = new_id()?;
        while self.items.contains_key(&id) {
            id = new_id()?;
        }
        let created = trunc_ms(SystemTime::now());
        let expires = created + Duration::from_millis(timeout_ms);
        let a = Approval {
            id: id.clone(),
            status: Status::Pending,
            title: req.title,
            detail: req.detail,
            source: req.source,
            options,
            default,
            decision: None,
            comment: None,
            decided_by: None,
            created_at: crate::time::rfc3339(created),
            decided_at: None,
            expires_at: crate::time::rfc3339(expires),
            context: req.context.unwrap_or_else(|| json!({})),
        };
        self.persist(&a);
        self.emit("approval.requested", &a);
        self.seq += 1;
        self.items.insert(
            id,
            Entry {
                approval: a.clone(),
                expires,
                decided: None,
                seq: self.seq,
            },
        );
        Ok(a)
    }

    fn list(&self, statuses: &[Status]) -> Listing {
        let mut v: Vec<&Entry> = self
            .items
            .values()
            .filter(|e| statuses.is_empty() || statuses.contains(&e.approval.status))
            .collect();
        v.sort_by(|a, b| {
            let pa = a.approval.status != Status::Pending;
            let pb = b.approval.status != Status::Pending;
            pa.cmp(&pb).then(b.seq.cmp(&a.seq))
        });
        Listing {
            approvals: v.into_iter().map(|e| e.approval.clone()).collect(),
            waiting: self.waiters.len(),
        }
    }

    fn add_waiter(&mut self, id: String, wait: Duration, reply: WaitFn) {
        match self.items.get(&id) {
            None => self.respond(reply, WaitResult::NotFound),
            Some(e) if e.approval.status != Status::Pending || wait.is_zero() => {
                let a = e.approval.clone();
                self.respond(reply, WaitResult::Ready(Box::new(a)));
            }
            Some(_) => self.waiters.push(Waiter {
                id,
                deadline: Instant::now() + wait,
                reply,
            }),
        }
    }

    fn decide(&mut self, d: Decision) -> Result<Approval, ApprovalError> {
        let e = self
            .items
            .get_mut(&d.id)
            .ok_or_else(|| ApprovalError::NotFound(d.id.clone()))?;
        if !e.approval.options.contains(&d.decision) {
            return Err(ApprovalError::NotAnOption {
                decision: d.decision,
                options: e.approval.options.clone(),
            });
        }
        if e.approval.status != Status::Pending {
            return Err(ApprovalError::AlreadyDecided(Box::new(e.approval.clone())));
        }
        let now = trunc_ms(SystemTime::now());
        e.decided = Some(now);
        let a = &mut e.approval;
        a.status = Status::of_decision(&d.decision);
        a.decision = Some(d.decision);
        a.comment = d.comment;
        a.decided_by = d.by;
        a.decided_at = Some(crate::time::rfc3339(now));
        let a = a.clone();
        self.persist(&a);
        self.emit("approval.decided", &a);
        self.wake(&a.id);
        self.prune();
        Ok(a)
    }

    /// Expire every pending approval whose `expires_at` is at or before `now`.
    fn expire_due(&mut self, now: SystemTime) {
        let mut due: Vec<(u64, String)> = self
            .items
            .values()
            .filter(|e| e.approval.status == Status::Pending && e.expires <= now)
            .map(|e| (e.seq, e.approval.id.clone()))
            .collect();
        if due.is_empty() {
            return;
        }
        due.sort();
        let at = trunc_ms(now);
        for (_, id) in due {
            let Some(e) = self.items.get_mut(&id) else {
                continue;
            };
            e.decided = Some(at);
            let a = &mut e.approval;
            a.status = Status::Expired;
            a.decision = Some(a.default.clone());
            a.decided_at = Some(crate::time::rfc3339(at));
            let a = a.clone();
            log::info!("approval {} expired; default '{}' applied", a.id, a.default);
            self.persist(&a);
            self.emit("approval.expired", &a);
            self.wake(&id);
        }
        self.prune();
    }

    /// Keep at most `retention` decided or expired approvals: drop the oldest
    /// (by `decided_at`), files too.
    fn prune(&mut self) {
        let mut done: Vec<(SystemTime, u64, String)> = self
            .items
            .values()
            .filter(|e| e.approval.status != Status::Pending)
            .map(|e| {
                (
                    e.decided.unwrap_or(UNIX_EPOCH),
                    e.seq,
                    e.approval.id.clone(),
                )
            })
            .collect();
        if done.len() <= self.retention {
            return;
        }
        done.sort();
        let excess = done.len() - self.retention;
        for (_, _, id) in done.into_iter().take(excess) {
            self.items.remove(&id);
            self.remove_file(&id);
        }
    }
}

fn call_guarded(f: WaitFn, r: WaitResult) {
    if catch_unwind(AssertUnwindSafe(move || f(r))).is_err() {
        log::error!("an approval long-poll callback panicked");
    }
}

/// Read one persisted approval and check it is consistent with its file name.
fn load_one(path: &Path, stem: &str) -> Result<Entry, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let a: Approval = serde_json::from_str(&text).map_err(|e| format!("invalid json: {e}"))?;
    if a.id != stem {
        return Err(format!("its id '{}' does not match the file name", a.id));
    }
    let expires = parse_time(&a.expires_at)
        .ok_or_else(|| format!("invalid expires_at '{}'", a.expires_at))?;
    let decided = match (&a.decided_at, a.status) {
        (_, Status::Pending) => None,
        (Some(d), _) => Some(parse_time(d).ok_or_else(|| format!("invalid decided_at '{d}'"))?),
        (None, _) => parse_time(&a.created_at),
    };
    Ok(Entry {
        approval: a,
        expires,
        decided,
        seq: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(title: &str) -> NewApproval {
        NewApproval {
            title: title.into(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_and_validation() {
        let (o, d, t) = validate(&req("x")).expect("valid");
        assert_eq!(o, vec!["approve", "deny"]);
        assert_eq!(d, "deny");
        assert_eq!(t, DEFAULT_TIMEOUT_MS);
        let mut r = req("x");
        r.options = Some(vec!["a".into(), "b".into()]);
        assert_eq!(validate(&r).expect("valid").1, "a");
        r.default = Some("c".into());
        assert!(validate(&r).is_err());
        r.default = None;
        r.options = Some(vec!["a".into(), "a".into()]);
        assert!(validate(&r).is_err());
        r.options = Some(vec![]);
        assert!(validate(&r).is_err());
        let mut r = req("x");
        r.timeout_ms = Some(0);
        assert!(validate(&r).is_err());
        r.timeout_ms = Some(MAX_TIMEOUT_MS + 1);
        assert!(validate(&r).is_err());
        assert!(validate(&req("  ")).is_err());
    }

    #[test]
    fn ids_are_random_and_well_formed() {
        let a = new_id().expect("id");
        let b = new_id().expect("id");
        assert!(valid_id(&a) && valid_id(&b), "{a} {b}");
        assert_ne!(a, b);
        assert!(!valid_id("appr-../../etc"));
    }

    #[test]
    fn timestamps_round_trip() {
        let t = trunc_ms(SystemTime::now());
        assert_eq!(parse_time(&crate::time::rfc3339(t)), Some(t));
    }

    #[test]
    fn status_of_decision() {
        assert_eq!(Status::of_decision("approve"), Status::Approved);
        assert_eq!(Status::of_decision("deny"), Status::Denied);
        assert_eq!(Status::of_decision("later"), Status::Decided);
        assert_eq!(Status::parse("expired"), Some(Status::Expired));
        assert_eq!(Status::parse("Expired"), None);
    }
}
