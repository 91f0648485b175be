//! One WebSocket connection of the bridge (API.md §11): a reader thread that
//! parses client frames (RFC 6455 via tungstenite's `WebSocketContext`) and
//! produces every server message — terminal output tailed from the agent's
//! output log by byte offset, bus events — into a bounded queue, and a writer
//! thread that drains that queue onto the socket, pings every
//! [`PING_EVERY`] and closes after [`PONG_TIMEOUT`] without a pong.
//!
//! Backpressure: a queue that stays full for [`QUEUE_FULL_GRACE`] marks the
//! connection lagged; the writer then drops what is queued, sends
//! `error LAGGED` and closes with 1013 (RFC 6455 §7.4.1 "try again later").

use super::protocol::{self, ClientMsg, codes};
use crate::agents::{AgentError, Agents};
use crate::approvals::{Approvals, Decision};
use crate::events::{Bus, EventFilter, Subscription};
use crate::executor::output::{read_at, utf8_boundary};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame};
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Error as WsError, Message};

/// Client messages allowed per connection per minute (API.md §11).
pub const MAX_MESSAGES_PER_MIN: usize = 600;
/// Server messages queued per connection before backpressure applies.
pub const QUEUE_CAPACITY: usize = 128;
/// How long the queue may stay full before the connection is cut off as lagged.
pub const QUEUE_FULL_GRACE: Duration = Duration::from_secs(2);
/// The socket's kernel send buffer, bytes (`SO_SNDBUF`; Linux doubles it).
pub const SEND_BUFFER: usize = 256 * 1024;
/// Server ping interval (API.md §11).
pub const PING_EVERY: Duration = Duration::from_secs(15);
/// Close after this long without a pong (API.md §11).
pub const PONG_TIMEOUT: Duration = Duration::from_secs(45);
/// Largest `terminal_output` chunk, bytes of the output log.
pub const MAX_CHUNK: usize = 16 * 1024;
/// Largest accepted client message, bytes.
pub const MAX_CLIENT_MESSAGE: usize = 1024 * 1024;
/// How often the reader looks for new output when the client is quiet.
pub const POLL: Duration = Duration::from_millis(10);
/// A write blocked longer than this ends the connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Audit sink: `(action, target, outcome, status, detail)` (API.md §12).
pub type AuditFn = Box<dyn Fn(&str, Option<&str>, &str, u16, &Value) + Send>;

/// What a connection reaches: actor handles, the caller's scopes, the audit.
pub struct Deps {
    /// Agent sessions (terminal, input).
    pub agents: Agents,
    /// Event bus (agent.status, execution.*, subscribe_events).
    pub bus: Bus,
    /// Approvals (decide_approval).
    pub approvals: Approvals,
    /// The token's scopes; `None` = every scope.
    pub scopes: Option<Vec<&'static str>>,
    /// Writes one audit line.
    pub audit: AuditFn,
}

impl Deps {
    fn may(&self, scope: &str) -> bool {
        self.scopes
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| *x == scope || *x == "admin"))
    }
}

enum Out {
    Text(String),
    Pong(Vec<u8>),
    Close(u16, &'static str),
}

struct Shared {
    closed: AtomicBool,
    lagged: AtomicBool,
    last_pong: Mutex<Instant>,
}

/// Reading half plus a discarding write side: tungstenite answers pings and
/// closes by writing to the stream it reads; the writer thread sends those
/// replies instead.
struct ReadSide<R>(R);

impl<R: Read> Read for ReadSide<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R> Write for ReadSide<R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Serve one upgraded connection on two new threads (`ws-read`, `ws-write`).
/// `slot` is held until both end. Errors: a thread could not be spawned.
pub fn start<T: Send + Sync + 'static>(
    reader: tiny_http::UpgradeReader,
    writer: tiny_http::UpgradeWriter,
    deps: Deps,
    slot: T,
) -> io::Result<()> {
    let shared = Arc::new(Shared {
        closed: AtomicBool::new(false),
        lagged: AtomicBool::new(false),
        last_pong: Mutex::new(Instant::now()),
    });
    let slot = Arc::new(slot);
    let (tx, rx) = bounded(QUEUE_CAPACITY);
    let _ = reader.set_read_timeout(Some(POLL));
    let _ = writer.set_write_timeout(Some(WRITE_TIMEOUT));
    // Bound what the kernel buffers for a slow client, so backpressure
    // reaches the queue (and LAGGED) after about a MiB, not many.
    if let Ok(Some(tcp)) = reader.try_clone_tcp() {
        let _ = nix::sys::socket::setsockopt(&tcp, nix::sys::socket::sockopt::SndBuf, &SEND_BUFFER);
    }
    let (s2, slot2) = (shared.clone(), slot.clone());
    std::thread::Builder::new()
        .name("ws-write".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let _slot = slot2;
            write_loop(writer, rx, &s2);
        })?;
    std::thread::Builder::new()
        .name("ws-read".into())
        .stack_size(512 * 1024)
        .spawn(move || {
            let _slot = slot;
            let mut r = Reader {
                deps,
                tx,
                shared: shared.clone(),
                terms: BTreeMap::new(),
                events: None,
                status: None,
                window: VecDeque::new(),
            };
            r.run(reader);
            shared.closed.store(true, Ordering::SeqCst);
        })?;
    Ok(())
}

fn frame_bytes(f: Frame) -> Vec<u8> {
    let mut buf = Vec::with_capacity(f.len());
    // Formatting into a Vec cannot fail.
    let _ = f.format(&mut buf);
    buf
}

fn close_frame(code: u16, reason: &str) -> Frame {
    Frame::close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_string().into(),
    }))
}

fn write_loop(mut w: tiny_http::UpgradeWriter, rx: Receiver<Out>, sh: &Shared) {
    let mut last_ping = Instant::now();
    let send = |w: &mut tiny_http::UpgradeWriter, f: Frame| {
        w.write_all(&frame_bytes(f)).and_then(|_| w.flush()).is_ok()
    };
    loop {
        if sh.lagged.load(Ordering::SeqCst) {
            while rx.try_recv().is_ok() {}
            let e = protocol::error(
                codes::LAGGED,
                "the outbound queue overflowed: this client reads too slowly",
                None,
            );
            let _ = send(
                &mut w,
                Frame::message(e.to_string(), OpCode::Data(Data::Text), true),
            ) && send(&mut w, close_frame(1013, "lagged"));
            break;
        }
        let ok = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Out::Text(t)) => send(&mut w, Frame::message(t, OpCode::Data(Data::Text), true)),
            Ok(Out::Pong(d)) => send(&mut w, Frame::pong(d)),
            Ok(Out::Close(code, reason)) => {
                let _ = send(&mut w, close_frame(code, reason));
                break;
            }
            Err(RecvTimeoutError::Timeout) => true,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if !ok {
            break;
        }
        if last_ping.elapsed() >= PING_EVERY {
            let since = sh.last_pong.lock().map(|t| t.elapsed()).unwrap_or_default();
            if since >= PONG_TIMEOUT {
                let _ = send(&mut w, close_frame(1001, "no pong"));
                break;
            }
            if !send(&mut w, Frame::ping(Vec::new())) {
                break;
            }
            last_ping = Instant::now();
        }
    }
    sh.closed.store(true, Ordering::SeqCst);
    // Wakes the reader with end of stream.
    let _ = w.shutdown();
}

struct Term {
    path: PathBuf,
    offset: u64,
}

struct Reader {
    deps: Deps,
    tx: Sender<Out>,
    shared: Arc<Shared>,
    terms: BTreeMap<String, Term>,
    events: Option<Subscription>,
    status: Option<Subscription>,
    window: VecDeque<Instant>,
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

impl Reader {
    fn run(&mut self, reader: tiny_http::UpgradeReader) {
        let mut cfg = WebSocketConfig::default();
        cfg.max_message_size = Some(MAX_CLIENT_MESSAGE);
        cfg.max_frame_size = Some(MAX_CLIENT_MESSAGE);
        let mut ws = WebSocketContext::new(Role::Server, Some(cfg));
        let mut stream = ReadSide(reader);
        // agent_status and task_update go to every observer (API.md §11).
        self.status = self
            .deps
            .bus
            .subscribe(
                EventFilter::new(Some("agent.status,execution.*"), None, None),
                None,
                1024,
            )
            .ok();
        loop {
            if self.shared.closed.load(Ordering::SeqCst) {
                return;
            }
            match ws.read(&mut stream) {
                Ok(Message::Text(t)) => {
                    if !self.on_text(t.as_str()) {
                        return;
                    }
                }
                Ok(Message::Binary(_)) => {
                    if !self.push_now(protocol::error(
                        codes::BAD_REQUEST,
                        "binary frames are not accepted: send json text frames",
                        None,
                    )) {
                        return;
                    }
                }
                Ok(Message::Ping(d)) => {
                    let _ = self.tx.try_send(Out::Pong(d.to_vec()));
                }
                Ok(Message::Pong(_)) => {
                    if let Ok(mut t) = self.shared.last_pong.lock() {
                        *t = Instant::now();
                    }
                }
                Ok(Message::Close(_)) => {
                    let _ = self.tx.try_send(Out::Close(1000, ""));
                    return;
                }
                Ok(Message::Frame(_)) => {}
                Err(WsError::Io(e)) if would_block(&e) => {}
                Err(_) => return,
            }
            if !self.pump() {
                return;
            }
        }
    }

    /// Queue a message; waits up to [`QUEUE_FULL_GRACE`] for room, then marks
    /// the connection lagged. False when the connection is over.
    fn push(&self, v: Value) -> bool {
        match self
            .tx
            .send_timeout(Out::Text(v.to_string()), QUEUE_FULL_GRACE)
        {
            Ok(()) => true,
            Err(crossbeam_channel::SendTimeoutError::Timeout(_)) => {
                self.shared.lagged.store(true, Ordering::SeqCst);
                false
            }
            Err(_) => false,
        }
    }

    fn push_now(&self, v: Value) -> bool {
        self.push(v)
    }

    fn rate_ok(&mut self) -> bool {
        let now = Instant::now();
        while self
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.window.pop_front();
        }
        if self.window.len() >= MAX_MESSAGES_PER_MIN {
            return false;
        }
        self.window.push_back(now);
        true
    }

    fn on_text(&mut self, text: &str) -> bool {
        if !self.rate_ok() {
            return self.push(protocol::error(
                codes::RATE_LIMIT_EXCEEDED,
                &format!("more than {MAX_MESSAGES_PER_MIN} messages in a minute"),
                None,
            ));
        }
        let msg = match protocol::parse(text) {
            Ok(m) => m,
            Err(e) => return self.push(protocol::error(codes::BAD_REQUEST, &e, None)),
        };
        match msg {
            ClientMsg::Ping => self.push(json!({"type": "pong"})),
            ClientMsg::SubscribeTerminal { session_id, offset } => {
                self.subscribe_terminal(session_id, offset)
            }
            ClientMsg::UnsubscribeTerminal { session_id } => {
                self.terms.remove(&session_id);
                true
            }
            ClientMsg::UserMessage {
                session_id,
                content,
            } => self.user_message(&session_id, &content),
            ClientMsg::SubscribeEvents {
                types,
                last_event_id,
            } => {
                let filter = EventFilter::new(Some(&types), None, None);
                match self.deps.bus.subscribe(filter, last_event_id, 1024) {
                    Ok(sub) => {
                        let replay = sub.replay.clone();
                        self.events = Some(sub);
                        replay
                            .iter()
                            .all(|e| self.push(json!({"type": "event", "event": event_json(e)})))
                    }
                    Err(_) => self.push(protocol::error(
                        codes::BAD_REQUEST,
                        "the event bus is stopping",
                        None,
                    )),
                }
            }
            ClientMsg::DecideApproval {
                id,
                decision,
                comment,
            } => self.decide(id, decision, comment),
        }
    }

    fn subscribe_terminal(&mut self, session_id: String, offset: Option<u64>) -> bool {
        let path = match self.deps.agents.output_path(&session_id) {
            Ok(p) => p,
            Err(e) => return self.push(agent_err(&session_id, e)),
        };
        let text = match self.deps.agents.screen(&session_id) {
            Ok((text, ..)) => text,
            Err(_) => String::new(),
        };
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let offset = offset.unwrap_or(len).min(len);
        if !self.push(json!({"type": "terminal_snapshot", "session_id": session_id, "text": text, "offset": len}))
        {
            return false;
        }
        self.terms.insert(session_id, Term { path, offset });
        true
    }

    fn user_message(&mut self, session_id: &str, content: &str) -> bool {
        use sha2::Digest;
        let detail = json!({"session_id": session_id, "length": content.len(),
            "sha256": format!("{:x}", sha2::Sha256::digest(content.as_bytes()))});
        if !self.deps.may("agents") {
            (self.deps.audit)(
                "ws.user_message",
                Some(session_id),
                "forbidden",
                403,
                &detail,
            );
            return self.push(protocol::error(
                codes::FORBIDDEN,
                "user_message needs the 'agents' scope",
                Some(session_id),
            ));
        }
        match self.deps.agents.input_text(session_id, content, true) {
            Ok(()) => {
                (self.deps.audit)("ws.user_message", Some(session_id), "ok", 202, &detail);
                true
            }
            Err(e) => {
                (self.deps.audit)("ws.user_message", Some(session_id), "error", 400, &detail);
                self.push(agent_err(session_id, e))
            }
        }
    }

    fn decide(&mut self, id: String, decision: String, comment: Option<String>) -> bool {
        let detail = json!({"decision": decision});
        if !self.deps.may("approve") {
            (self.deps.audit)("ws.decide_approval", Some(&id), "forbidden", 403, &detail);
            return self.push(protocol::error(
                codes::FORBIDDEN,
                "decide_approval needs the 'approve' scope",
                None,
            ));
        }
        let d = Decision {
            id: id.clone(),
            decision,
            comment,
            by: None,
        };
        match self.deps.approvals.decide(d) {
            Ok(a) => {
                (self.deps.audit)("ws.decide_approval", Some(&id), "ok", 200, &detail);
                self.push(json!({"type": "approval_decided", "approval": a}))
            }
            Err(e) => {
                (self.deps.audit)("ws.decide_approval", Some(&id), "error", 400, &detail);
                self.push(protocol::error(codes::BAD_REQUEST, &e.to_string(), None))
            }
        }
    }

    /// Move new output and events into the queue. False when the connection is over.
    fn pump(&mut self) -> bool {
        let ids: Vec<String> = self.terms.keys().cloned().collect();
        for id in ids {
            if !self.pump_term(&id) {
                return false;
            }
        }
        if let Some(sub) = &self.status {
            let got: Vec<_> = sub.rx.try_iter().take(256).collect();
            for e in got {
                let d = e.data();
                let v = if e.kind == "agent.status" {
                    let sid = d.get("session_id").and_then(Value::as_str).unwrap_or("");
                    let last = self
                        .deps
                        .agents
                        .peek(sid)
                        .and_then(|a| a.last_activity.clone());
                    json!({"type": "agent_status", "session_id": sid,
                           "status": d.get("status"), "last_activity": last})
                } else {
                    json!({"type": "task_update", "task_id": d.get("id"),
                           "agent": d.get("agent").filter(|a| !a.is_null()).or(d.get("task")),
                           "status": d.get("status"), "elapsed_ms": d.get("duration_ms"),
                           "event": e.kind})
                };
                if !self.push(v) {
                    return false;
                }
            }
        }
        if let Some(sub) = &self.events {
            let got: Vec<_> = sub.rx.try_iter().take(256).collect();
            let lagged = sub.lagged.load(Ordering::SeqCst);
            for e in got {
                if !self.push(json!({"type": "event", "event": event_json(&e)})) {
                    return false;
                }
            }
            if lagged {
                self.events = None;
                return self.push(protocol::error(
                    codes::LAGGED,
                    "the event subscription fell behind and was dropped; subscribe again with last_event_id",
                    None,
                ));
            }
        }
        true
    }

    fn pump_term(&mut self, id: &str) -> bool {
        let Some(t) = self.terms.get(id) else {
            return true;
        };
        let (path, mut offset) = (t.path.clone(), t.offset);
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        while offset < len {
            let want = ((len - offset) as usize).min(MAX_CHUNK);
            let Ok(bytes) = read_at(&path, offset, want) else {
                break;
            };
            // The state lock behind is_final can be held by the status engine
            // during a tmux call: ask only when a character is cut at the end
            // (a finished session's log will not complete it).
            let mut n = utf8_boundary(&bytes);
            if n < bytes.len() && self.deps.agents.is_final(id) {
                n = bytes.len();
            }
            if n == 0 {
                break;
            }
            let next = offset + n as u64;
            let v = json!({"type": "terminal_output", "session_id": id,
                "data": String::from_utf8_lossy(&bytes[..n]), "timestamp": protocol::now_ms(),
                "offset": next});
            if !self.push(v) {
                return false;
            }
            offset = next;
            if let Some(t) = self.terms.get_mut(id) {
                t.offset = offset;
            }
        }
        true
    }
}

fn agent_err(session_id: &str, e: AgentError) -> Value {
    let code = match &e {
        AgentError::NotFound(_) => codes::SESSION_NOT_FOUND,
        AgentError::NotRunning(_) => codes::AGENT_CRASHED,
        AgentError::Forbidden(_) => codes::FORBIDDEN,
        _ => codes::BAD_REQUEST,
    };
    protocol::error(code, &e.to_string(), Some(session_id))
}

fn event_json(e: &crate::events::Event) -> Value {
    serde_json::from_str(e.json()).unwrap_or(Value::Null)
}
