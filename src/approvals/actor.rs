//! The approvals actor's thread: owns every approval, serves commands one at a
//! time (so of concurrent answers exactly one finds an approval pending),
//! expires pending ones at `expires_at`, and answers long polls on a responder
//! thread. Saves go through the record writer; every reply, event and
//! long-poll answer is released only after the saves before it are on disk.

use super::store::{self, ApprovalStore};
use super::validate::{new_id, parse_time, trunc_ms, validate};
use super::{
    Approval, ApprovalError, Cmd, Decision, Listing, MAX_PENDING, MAX_SLEEP, NewApproval, Status,
    WaitFn, WaitResult,
};
use crate::events::{Bus, NewEvent};
use crate::records::RecordWriter;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};
use serde_json::json;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Entry {
    approval: Approval,
    /// `expires_at` as a time, for the expiry clock.
    expires: SystemTime,
    /// `decided_at` as a time (retention order); `None` while pending.
    decided: Option<SystemTime>,
    /// Creation order (ties within one millisecond).
    seq: u64,
}

impl Entry {
    /// The in-memory entry of a loaded approval (its times parsed).
    ///
    /// Errors: an unparsable `expires_at` or `decided_at`, named.
    fn of(a: Approval) -> Result<Entry, String> {
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
}

struct Waiter {
    id: String,
    deadline: Instant,
    reply: WaitFn,
}

/// The approvals actor's state, owned by its thread.
pub(super) struct Actor {
    /// `<state>/approvals`; `None` when it cannot be created (memory only).
    dir: Option<PathBuf>,
    /// The record writer and commit point (`crate::records`).
    writer: RecordWriter<ApprovalStore>,
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
    pub(super) fn new(dir: PathBuf, bus: Bus, retention: usize) -> Actor {
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
                    call_guarded(f, r);
                }
            });
        let (responder, responder_thread) = match thread {
            Ok(t) => (Some(rtx), Some(t)),
            Err(e) => {
                log::warn!("cannot spawn the approvals reply thread ({e}); replying inline");
                (None, None)
            }
        };
        let writer = RecordWriter::start("approvals-persist", ApprovalStore::new(dir.clone()));
        Actor {
            dir,
            writer,
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

    /// Send `value` on `reply` once everything it may show is on disk.
    fn reply_after<T: Send + 'static>(&self, reply: Sender<T>, value: T) {
        self.writer.after(move || {
            let _ = reply.send(value);
        });
    }

    /// Read `<state>/approvals/*.json`, expire overdue pending ones, apply retention.
    pub(super) fn load(&mut self) {
        let Some(dir) = self.dir.clone() else { return };
        let mut loaded: Vec<Entry> = Vec::new();
        for (path, approval) in store::load_all(&dir) {
            match Entry::of(approval) {
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

    pub(super) fn run(mut self, rx: Receiver<Cmd>) {
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
                    let v = self.create(req);
                    self.reply_after(r, v);
                }
                Some(Cmd::List(st, r)) => {
                    let v = self.list(&st);
                    self.reply_after(r, v);
                }
                Some(Cmd::Get(id, r)) => {
                    let v = self.items.get(&id).map(|e| e.approval.clone());
                    self.reply_after(r, v);
                }
                Some(Cmd::Wait(id, wait, reply)) => self.add_waiter(id, wait, reply),
                Some(Cmd::Decide(d, r)) => {
                    let v = self.decide(d);
                    self.reply_after(r, v);
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
        // Every answer queued behind the saves is released before the responder
        // is told to finish.
        self.writer.flush();
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

    /// Answer a long poll once the saves before it are on disk, on the
    /// responder thread (inline when it is missing).
    fn respond(&self, f: WaitFn, r: WaitResult) {
        let responder = self.responder.clone();
        self.writer.after(move || match responder {
            Some(tx) => {
                if let Err(e) = tx.send((f, r)) {
                    let (f, r) = e.into_inner();
                    call_guarded(f, r);
                }
            }
            None => call_guarded(f, r),
        });
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
        let bus = self.bus.clone();
        let kind = kind.to_string();
        self.writer
            .after(move || bus.emit(NewEvent::daemon(&kind, None, data)));
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
        self.writer.save(&a);
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
        self.writer.save(&a);
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
            self.writer.save(&a);
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
            self.writer.remove(&id);
        }
    }
}

fn call_guarded(f: WaitFn, r: WaitResult) {
    if catch_unwind(AssertUnwindSafe(move || f(r))).is_err() {
        log::error!("an approval long-poll callback panicked");
    }
}
