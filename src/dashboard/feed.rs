//! The dashboard's background threads. The UI thread never waits on the
//! network: the event stream (API.md §5), list reads and actions, output
//! streams (§7 `GET /executions/{id}/stream`, §10 `GET /agents/{id}/stream`)
//! and the keyboard each run on their own thread and send [`Msg`]s.

use super::state::Conn;
use crate::client::{Client, ClientError, next_frame};
use crate::paths::Paths;
use crossbeam_channel::{Receiver, Sender};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// What the UI thread receives.
pub enum Msg {
    /// A key, resize or mouse event.
    Input(crossterm::event::Event),
    /// The event stream connected, or dropped.
    Conn(Conn),
    /// One event of the stream (the `Event` JSON of API.md §5).
    Event(Value),
    /// Every list, re-read.
    Lists(Box<Lists>),
    /// One list re-read (`apps`, `agents`, `approvals`; `None`: route missing).
    List(&'static str, Option<Vec<Value>>),
    /// A chunk of output for the pane fed by stream `generation`; `offset` is
    /// the byte offset after it.
    Output {
        /// Stream generation.
        generation: u64,
        /// Lossy UTF-8 text.
        text: String,
        /// Offset after this chunk, bytes.
        offset: u64,
    },
    /// The output stream of `generation` ended (the run finished, or it failed: the reason).
    OutputEnd(u64, Option<String>),
    /// An action's result: the message, and whether the daemon answered 403.
    Done(String, bool),
    /// A `409` on an approval: the standing approval.
    Standing(Value),
    /// The log of app `name` (`None`: the daemon has no such route).
    AppLog(String, Option<String>),
    /// One agent read with `GET /agents/{id}`.
    Agent(Value),
    /// A re-read of every list failed (the reason).
    RefreshFailed(String),
    /// SIGTERM, SIGHUP or SIGINT arrived: leave cleanly (terminal restored).
    Quit,
}

/// Every list of the dashboard, read together.
#[derive(Default)]
pub struct Lists {
    /// `GET /apps`.
    pub apps: Vec<Value>,
    /// `GET /executions?limit=1000`.
    pub executions: Vec<Value>,
    /// `GET /approvals`.
    pub approvals: Vec<Value>,
    /// `GET /agents`, `None` when absent (404).
    pub agents: Option<Vec<Value>>,
    /// `GET /tasks`.
    pub tasks: Vec<Value>,
    /// The daemon's start.
    pub started: Option<SystemTime>,
}

/// Work for the request thread.
pub enum Job {
    /// Re-read every list.
    Refresh,
    /// Re-read one list (`apps`, `agents`, `approvals`), at most twice a second.
    Reread(&'static str),
    /// An action: method, path, body, and how to describe success.
    Act(&'static str, String, Option<Value>, String),
    /// Read the log of an app.
    AppLog(String),
    /// Read one agent (`GET /agents/{id}`: the list leaves out memory and CPU).
    Agent(String),
}

fn items(v: &Value, k: &str) -> Vec<Value> {
    v[k].as_array().cloned().unwrap_or_default()
}

fn optional(r: Result<Value, ClientError>, k: &str) -> Result<Option<Vec<Value>>, ClientError> {
    match r {
        Ok(v) => Ok(Some(items(&v, k))),
        Err(ClientError::Api {
            status: 404 | 405, ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_lists(c: &Client, p: &Paths) -> Result<Lists, ClientError> {
    let health = c.get("/health", p)?;
    let started = health["uptime_seconds"]
        .as_u64()
        .and_then(|u| SystemTime::now().checked_sub(Duration::from_secs(u)));
    Ok(Lists {
        apps: items(&c.get("/apps", p)?, "apps"),
        executions: items(&c.get("/executions?limit=1000", p)?, "executions"),
        approvals: optional(c.get("/approvals", p), "approvals")?.unwrap_or_default(),
        agents: optional(c.get("/agents", p), "agents")?,
        tasks: optional(c.get("/tasks", p), "tasks")?.unwrap_or_default(),
        started,
    })
}

fn describe_error(e: &ClientError) -> (String, bool) {
    match e {
        ClientError::Api {
            status: 403,
            message,
            ..
        } => (
            format!("forbidden (403): {message}; this token may only read, actions are hidden"),
            true,
        ),
        other => (other.to_string(), false),
    }
}

/// The request thread: runs [`Job`]s in order until `rx` closes. Re-reads of
/// one list are coalesced to at most one per 500 ms, so a burst of `app.*`
/// events costs the daemon one `GET /apps`, not hundreds.
pub fn worker(c: Client, p: Paths, rx: Receiver<Job>, tx: Sender<Msg>) {
    let mut last_reread: HashMap<&'static str, Instant> = HashMap::new();
    while let Ok(job) = rx.recv() {
        let mut batch = vec![job];
        if let Job::Reread(what) = batch[0] {
            if let Some(t) = last_reread.get(what) {
                let since = t.elapsed();
                if since < Duration::from_millis(500) {
                    std::thread::sleep(Duration::from_millis(500) - since);
                }
            }
            last_reread.insert(what, Instant::now());
            batch.extend(
                rx.try_iter()
                    .filter(|j| !matches!(j, Job::Reread(w) if *w == what)),
            );
        }
        for j in batch {
            if !run_one(&c, &p, j, &tx) {
                return;
            }
        }
    }
}

/// `DELETE path` (the CLI's client has no DELETE yet), JSON answer.
fn delete(c: &Client, path: &str) -> Result<Value, ClientError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut req = agent.delete(format!("{}{path}", c.base));
    if let Some(t) = &c.token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let resp = req
        .call()
        .map_err(|e| ClientError::Transport(format!("request to {} failed: {e}", c.base)))?;
    let status = resp.status().as_u16();
    let text = resp.into_body().read_to_string().unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    crate::client::api_result(status, body)
}

fn run_one(c: &Client, p: &Paths, job: Job, tx: &Sender<Msg>) -> bool {
    let msg = match job {
        Job::Refresh => match read_lists(c, p) {
            Ok(l) => Msg::Lists(Box::new(l)),
            Err(e) => Msg::RefreshFailed(format!("cannot read lists: {e}")),
        },
        Job::Reread(what) => {
            let (path, key) = match what {
                "agents" => ("/agents", "agents"),
                "approvals" => ("/approvals", "approvals"),
                _ => ("/apps", "apps"),
            };
            match optional(c.get(path, p), key) {
                Ok(l) => Msg::List(what, l),
                Err(e) => Msg::Done(format!("cannot read {what}: {e}"), false),
            }
        }
        Job::Agent(id) => match c.get(&format!("/agents/{id}"), p) {
            Ok(v) => Msg::Agent(v),
            Err(_) => return true,
        },
        Job::AppLog(name) => {
            let path = format!("/apps/{name}/output?limit=65536");
            match c.get_bytes(&path, p) {
                Ok(b) => Msg::AppLog(name, Some(String::from_utf8_lossy(&b).into_owned())),
                Err(_) => Msg::AppLog(name, None),
            }
        }
        Job::Act(method, path, body, what) => {
            let r = if method == "DELETE" {
                delete(c, &path)
            } else if method == "GET" {
                c.get(&path, p)
            } else {
                c.post(&path, body.as_ref(), p).map(|x| x.1)
            };
            match r {
                Ok(v) => {
                    let id = v["id"].as_str().unwrap_or("");
                    Msg::Done(
                        format!(
                            "{what}{}",
                            if id.is_empty() {
                                String::new()
                            } else {
                                format!(": {id}")
                            }
                        ),
                        false,
                    )
                }
                Err(ClientError::Api {
                    status: 409, body, ..
                }) if body["details"]["id"].is_string() => {
                    let d = &body["details"];
                    let _ = tx.send(Msg::Standing(d.clone()));
                    Msg::Done(
                        format!(
                            "too late: {} was already {} by {} ({})",
                            d["id"].as_str().unwrap_or(""),
                            d["status"].as_str().unwrap_or("decided"),
                            d["decided_by"].as_str().unwrap_or("someone else"),
                            d["decision"].as_str().unwrap_or("")
                        ),
                        false,
                    )
                }
                Err(e) => {
                    let (m, forbidden) = describe_error(&e);
                    Msg::Done(format!("{what} failed: {m}"), forbidden)
                }
            }
        }
    };
    tx.send(msg).is_ok()
}

/// The event stream thread: `GET /events/stream`, resumed with `Last-Event-ID`
/// after a dropped connection; a restarted daemon (another PID in `/health`)
/// numbers events afresh, so the id is forgotten then. Sends
/// [`Msg::Conn`] on every (re)connect and drop; the UI re-reads its lists.
pub fn events(c: Client, p: Paths, tx: Sender<Msg>) {
    let mut last: Option<u64> = None;
    let mut pid: Option<u64> = None;
    let mut backoff = Duration::from_millis(200);
    loop {
        let reason = match c.get("/health", &p) {
            Err(e) => e.to_string(),
            Ok(h) => {
                let now_pid = h["pid"].as_u64();
                if pid.is_some() && now_pid != pid {
                    last = None;
                }
                pid = now_pid;
                match c.stream("/events/stream", last, &p) {
                    Err(e) => e.to_string(),
                    Ok(mut r) => {
                        if tx.send(Msg::Conn(Conn::Live)).is_err() {
                            return;
                        }
                        backoff = Duration::from_millis(200);
                        loop {
                            match next_frame(&mut *r) {
                                Ok(Some(f)) => {
                                    if let Some(id) = f.id.as_deref().and_then(|i| i.parse().ok()) {
                                        last = Some(id);
                                    }
                                    if f.event == "stream.lagged" {
                                        break "the stream lagged".to_string();
                                    }
                                    let Ok(v) = serde_json::from_str::<Value>(&f.data) else {
                                        continue;
                                    };
                                    if tx.send(Msg::Event(v)).is_err() {
                                        return;
                                    }
                                }
                                Ok(None) => break "the daemon closed the stream".to_string(),
                                Err(e) => break format!("stream dropped: {e}"),
                            }
                        }
                    }
                }
            }
        };
        if tx.send(Msg::Conn(Conn::Reconnecting(reason))).is_err() {
            return;
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// An output stream thread for the pane: `path` is an SSE route of API.md §7
/// shape, read from byte `offset`, resumed from the last offset after a drop;
/// stops when `current` moves past `generation` or the stream sends `end`.
pub fn output(
    c: Client,
    p: Paths,
    path: String,
    mut offset: u64,
    generation: u64,
    current: Arc<AtomicU64>,
    tx: Sender<Msg>,
) {
    let live = || current.load(Ordering::Relaxed) == generation;
    let mut tries = 0u32;
    while live() {
        match c.stream(&path, Some(offset), &p) {
            Err(ClientError::Api {
                status, message, ..
            }) => {
                let _ = tx.send(Msg::OutputEnd(
                    generation,
                    Some(format!("{message} ({status})")),
                ));
                return;
            }
            Err(_) => {}
            Ok(mut r) => loop {
                if !live() {
                    return;
                }
                match next_frame(&mut *r) {
                    Ok(Some(f)) => {
                        tries = 0;
                        match f.event.as_str() {
                            "output" => {
                                let v: Value = serde_json::from_str(&f.data).unwrap_or(json!({}));
                                let text = v["text"].as_str().unwrap_or("").to_string();
                                let at = v["offset"].as_u64().unwrap_or(offset);
                                offset =
                                    f.id.as_deref()
                                        .and_then(|i| i.parse().ok())
                                        .unwrap_or(at + text.len() as u64);
                                if tx
                                    .send(Msg::Output {
                                        generation,
                                        text,
                                        offset,
                                    })
                                    .is_err()
                                {
                                    return;
                                }
                            }
                            "end" => {
                                let _ = tx.send(Msg::OutputEnd(generation, None));
                                return;
                            }
                            _ => {}
                        }
                    }
                    Ok(None) | Err(_) => break,
                }
            },
        }
        tries += 1;
        std::thread::sleep(Duration::from_millis(250 * u64::from(tries.min(8))));
    }
}

/// The keyboard thread: polls crossterm every 50 ms; while `paused` (the
/// terminal is handed to `tmux attach`) it reads nothing and sets `idle`.
pub fn input(tx: Sender<Msg>, paused: Arc<AtomicBool>, idle: Arc<AtomicBool>) {
    loop {
        if paused.load(Ordering::SeqCst) {
            idle.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        match crossterm::event::poll(Duration::from_millis(50)) {
            Ok(true) => {
                if let Ok(ev) = crossterm::event::read()
                    && tx.send(Msg::Input(ev)).is_err()
                {
                    return;
                }
            }
            Ok(false) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
