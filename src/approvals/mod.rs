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
//! `<state>/approvals/<id>.json` (the [`Approval`] JSON) through the shared
//! record writer (`crate::records`), the same commit point as executions: a
//! reply, event or long-poll answer is released only once the saves before it
//! are on disk. At start the directory is
//! loaded; pending approvals whose `expires_at` passed while the daemon was down
//! expire at once; at most `retention` decided or expired approvals are kept (the
//! oldest by `decided_at` are removed, files too). Pending ones are always kept.
//!
//! Events on the bus (source `orchestratr`, target `null`, data = the Approval):
//! `approval.requested`, `approval.decided`, `approval.expired`.

//!
//! Files: this one (types and the handle), `actor.rs` (the thread),
//! `validate.rs` (request checks, ids, times), `store.rs` (files on disk).

mod actor;
mod store;
mod validate;

pub use validate::{valid_id, validate};

use crate::actor::call;
use crate::events::Bus;
use crossbeam_channel::{Sender, unbounded};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "ApprovalStatus")]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
                let mut actor = actor::Actor::new(dir, bus, retention.max(1));
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
