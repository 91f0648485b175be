//! The WebSocket bridge `GET /ws/observe` (API.md §11, docs/api.md "WebSocket
//! bridge (§11)"), end to end: the real binary, real sockets driven by
//! tungstenite as the client, a real private tmux server per test and the
//! stand-in agent (tests/fixtures/standin_agent.py).

use crate::common;

use crate::agent_support::fixture;
use common::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<TcpStream>;

fn config(ws: &Path) -> String {
    format!(
        r#"workspaces: ["{ws}"]
agents:
  standin:
    interactive: ["python3", "{fx}"]
    detect: shell
    busy_patterns: ["WORKING"]
    idle_after_ms: 700
    submit_delay_ms: 50
    max_sessions: 4
  shell:
    interactive: ["/bin/sh"]
    detect: shell
    submit_delay_ms: 50
tasks:
  - name: hi
    command: ["sh", "-c", "echo hi"]
"#,
        ws = ws.display(),
        fx = fixture()
    )
}

/// A daemon plus the tmux server it starts; the server is killed on drop.
struct Env {
    d: Daemon,
    ws: PathBuf,
    state: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dirs = Dirs::new();
        let ws = dirs.scratch().join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        dirs.write("config.yml", &config(&ws));
        let state = dirs.state.clone();
        let d = Daemon::start_in(dirs, &[]);
        Env { d, ws, state }
    }
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let auth = self.d.auth_header();
        let b = body.map(|b| b.to_string()).unwrap_or_default();
        let mut h = vec![("Authorization", auth.as_str())];
        if body.is_some() {
            h.push(("Content-Type", "application/json"));
        }
        self.d.request(method, path, &h, b.as_bytes())
    }
    fn spawn(&self, agent_type: &str, name: &str) -> String {
        let r = self.call(
            "POST",
            "/agents/spawn",
            Some(
                &json!({"agent_type": agent_type, "working_dir": self.ws, "name": name,
                         "env": {"STANDIN_LOG": self.ws.join(format!("{name}.txt"))}}),
            ),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()["session_id"].as_str().unwrap().to_string()
    }
    fn output(&self, id: &str) -> Vec<u8> {
        self.call("GET", &format!("/agents/{id}/output"), None)
            .body
            .clone()
    }
    fn connect(&self) -> Ws {
        connect(self.d.port, &self.d.token)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(self.state.join("agents/tmux.sock"))
            .arg("kill-server")
            .env_remove("TMUX")
            .output();
    }
}

fn connect(port: u16, token: &str) -> Ws {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let url = format!("ws://127.0.0.1:{port}/ws/observe?token={token}");
    let (ws, resp) = tungstenite::client(url.as_str(), s).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 101);
    ws
}

fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).unwrap();
}

enum Next {
    Msg(Value),
    Closed(Option<u16>),
    Timeout,
}

/// The next JSON message, a close (with its code), or nothing before `wait`.
fn next(ws: &mut Ws, wait: Duration) -> Next {
    let end = Instant::now() + wait;
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return Next::Msg(serde_json::from_str(t.as_str()).unwrap()),
            Ok(Message::Close(c)) => return Next::Closed(c.map(|c| u16::from(c.code))),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Next::Closed(None),
        }
        if Instant::now() >= end {
            return Next::Timeout;
        }
    }
}

/// Wait for a message of `kind` (others are skipped).
fn expect(ws: &mut Ws, kind: &str) -> Value {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        match next(ws, Duration::from_millis(500)) {
            Next::Msg(v) if v["type"] == kind => return v,
            Next::Msg(_) | Next::Timeout => {}
            Next::Closed(c) => panic!("closed ({c:?}) while waiting for {kind}"),
        }
    }
    panic!("no {kind} message within {DEADLINE:?}");
}

/// Collect `terminal_output` of `id` until `done(all bytes so far)`; checks
/// that offsets are contiguous from `from`. Returns (bytes, last offset).
fn collect(ws: &mut Ws, id: &str, from: u64, done: impl Fn(&[u8], u64) -> bool) -> (Vec<u8>, u64) {
    let mut all = Vec::new();
    let mut offset = from;
    let end = Instant::now() + Duration::from_secs(60);
    while !done(&all, offset) {
        assert!(
            Instant::now() < end,
            "output did not complete: {} bytes",
            all.len()
        );
        match next(ws, Duration::from_millis(500)) {
            Next::Msg(v) if v["type"] == "terminal_output" && v["session_id"] == id => {
                let data = v["data"].as_str().unwrap().as_bytes();
                let off = v["offset"].as_u64().unwrap();
                assert_eq!(off, offset + data.len() as u64, "contiguous offsets: {v}");
                assert!(v["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
                all.extend_from_slice(data);
                offset = off;
            }
            Next::Msg(_) | Next::Timeout => {}
            Next::Closed(c) => panic!("closed ({c:?}) at offset {offset}"),
        }
    }
    (all, offset)
}

fn raw_status(port: u16, path: &str, extra: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).to_string()
}

fn wait_output(env: &Env, id: &str, needle: &str) {
    wait_for(DEADLINE, needle, || {
        String::from_utf8_lossy(&env.output(id)).contains(needle)
    });
}

#[test]
fn auth_and_handshake_errors_come_before_the_upgrade() {
    let env = Env::new();
    let p = env.d.port;
    let v13 = "Sec-WebSocket-Version: 13\r\n";
    let r = raw_status(p, "/ws/observe", v13);
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    let r = raw_status(p, "/ws/observe?token=wrong", v13);
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    let tok = &env.d.token;
    let r = raw_status(
        p,
        &format!("/ws/observe?token={tok}"),
        "Sec-WebSocket-Version: 8\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 426"), "{r}");
    assert!(r.contains("upgrade_required"), "{r}");
    assert!(
        r.to_ascii_lowercase().contains("sec-websocket-version: 13"),
        "{r}"
    );
    let r = raw_status(
        p,
        "/api/ws/observe",
        &format!("{v13}Authorization: Bearer {tok}\r\n"),
    );
    assert!(r.starts_with("HTTP/1.1 101"), "{r}");
    assert!(
        r.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "RFC 6455 accept key: {r}"
    );
    // A bad message is an error frame, not a closed socket.
    let mut ws = env.connect();
    ws.send(Message::text("not json")).unwrap();
    assert_eq!(expect(&mut ws, "error")["error_code"], "BAD_REQUEST");
    send(&mut ws, json!({"type": "ping"}));
    expect(&mut ws, "pong");
    send(
        &mut ws,
        json!({"type": "subscribe_terminal", "session_id": "sess-nope"}),
    );
    let e = expect(&mut ws, "error");
    assert_eq!(e["error_code"], "SESSION_NOT_FOUND", "{e}");
    assert_eq!(e["session_id"], "sess-nope");
}

#[test]
fn snapshot_then_live_output_and_user_message_reaches_the_pane() {
    let env = Env::new();
    let id = env.spawn("standin", "one");
    wait_output(&env, &id, "ready>");
    let mut ws = env.connect();
    send(
        &mut ws,
        json!({"type": "subscribe_terminal", "session_id": id}),
    );
    let snap = expect(&mut ws, "terminal_snapshot");
    assert!(snap["text"].as_str().unwrap().contains("ready>"), "{snap}");
    let from = snap["offset"].as_u64().unwrap();
    send(
        &mut ws,
        json!({"type": "user_message", "session_id": id, "content": "hello-ws"}),
    );
    let (got, _) = collect(&mut ws, &id, from, |b, _| {
        String::from_utf8_lossy(b).contains("echo: hello-ws")
    });
    assert!(!got.is_empty());
    wait_for(DEADLINE, "input recorded", || {
        std::fs::read_to_string(env.ws.join("one.txt"))
            .unwrap_or_default()
            .contains("hello-ws")
    });
    // Audited by length and hash, never the text.
    let audit = env.call("GET", "/audit", None).text();
    assert!(audit.contains("ws.user_message"), "{audit}");
    assert!(!audit.contains("hello-ws"), "{audit}");
}

#[test]
fn resume_by_offset_gives_every_byte_exactly_once() {
    let env = Env::new();
    let id = env.spawn("standin", "one");
    wait_output(&env, &id, "ready>");
    let mut ws = env.connect();
    send(
        &mut ws,
        json!({"type": "subscribe_terminal", "session_id": id, "offset": 0}),
    );
    expect(&mut ws, "terminal_snapshot");
    env.call(
        "POST",
        &format!("/agents/{id}/input"),
        Some(&json!({"text": "busy 30"})),
    );
    // First connection: up to somewhere in the middle of the busy phase.
    let (first, mid) = collect(&mut ws, &id, 0, |b, _| {
        String::from_utf8_lossy(b).contains("WORKING 10")
    });
    drop(ws);
    let mut ws = env.connect();
    send(
        &mut ws,
        json!({"type": "subscribe_terminal", "session_id": id, "offset": mid}),
    );
    expect(&mut ws, "terminal_snapshot");
    wait_output(&env, &id, "WORKING 29");
    wait_for(DEADLINE, "prompt after busy", || {
        let o = String::from_utf8_lossy(&env.output(&id)).to_string();
        o.rfind("WORKING 29")
            .is_some_and(|i| o[i..].contains("ready>"))
    });
    let total = env.output(&id);
    let (second, end) = collect(&mut ws, &id, mid, |_, off| off >= total.len() as u64);
    assert_eq!(end, total.len() as u64);
    let mut joined = first;
    joined.extend_from_slice(&second);
    assert_eq!(
        joined, total,
        "every byte exactly once across the reconnect"
    );
}

#[test]
fn events_task_updates_and_approval_decisions() {
    let env = Env::new();
    let mut ws = env.connect();
    send(
        &mut ws,
        json!({"type": "subscribe_events", "types": ["execution.*"]}),
    );
    send(&mut ws, json!({"type": "ping"}));
    expect(&mut ws, "pong");
    let r = env.call("POST", "/executions", Some(&json!({"task": "hi"})));
    assert_eq!(r.status, 202, "{}", r.text());
    let eid = r.json()["id"].as_str().unwrap().to_string();
    let mut saw_event = false;
    let mut saw_update = false;
    let end = Instant::now() + DEADLINE;
    while !(saw_event && saw_update) {
        assert!(
            Instant::now() < end,
            "event {saw_event} task_update {saw_update}"
        );
        if let Next::Msg(v) = next(&mut ws, Duration::from_millis(500)) {
            if v["type"] == "event" && v["event"]["type"] == "execution.finished" {
                saw_event = true;
            }
            if v["type"] == "task_update"
                && v["task_id"] == eid.as_str()
                && v["status"] == "completed"
            {
                assert_eq!(v["agent"], "hi", "{v}");
                assert!(v["elapsed_ms"].is_u64(), "{v}");
                saw_update = true;
            }
        }
    }
    // decide_approval with a read-only token is refused; with admin it decides.
    let r = env.call("POST", "/approvals", Some(&json!({"title": "ok?"})));
    assert_eq!(r.status, 201, "{}", r.text());
    let aid = r.json()["id"].as_str().unwrap().to_string();
    let r = env.call(
        "POST",
        "/tokens",
        Some(&json!({"name": "ro", "preset": "read-only"})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let ro = r.json()["token"].as_str().unwrap().to_string();
    let mut rows = connect(env.d.port, &ro);
    let decide =
        json!({"type": "decide_approval", "id": aid, "decision": "approve", "comment": "via ws"});
    send(&mut rows, decide.clone());
    assert_eq!(expect(&mut rows, "error")["error_code"], "FORBIDDEN");
    send(
        &mut rows,
        json!({"type": "user_message", "session_id": "x", "content": "y"}),
    );
    assert_eq!(expect(&mut rows, "error")["error_code"], "FORBIDDEN");
    send(&mut ws, decide);
    let d = expect(&mut ws, "approval_decided");
    assert_eq!(d["approval"]["status"], "approved", "{d}");
    let a = env.call("GET", &format!("/approvals/{aid}"), None).json();
    assert_eq!(a["status"], "approved", "{a}");
}

#[test]
fn more_than_600_messages_a_minute_are_refused() {
    let env = Env::new();
    let mut ws = env.connect();
    for _ in 0..605 {
        send(&mut ws, json!({"type": "ping"}));
    }
    let mut pongs = 0;
    let end = Instant::now() + DEADLINE;
    loop {
        assert!(Instant::now() < end, "no rate-limit error ({pongs} pongs)");
        if let Next::Msg(v) = next(&mut ws, Duration::from_millis(500)) {
            if v["type"] == "pong" {
                pongs += 1;
            } else if v["error_code"] == "RATE_LIMIT_EXCEEDED" {
                break;
            }
        }
    }
    assert_eq!(pongs, 600);
}

#[test]
fn sixteen_connections_then_503_and_a_closed_client_frees_its_slot() {
    let env = Env::new();
    let mut all: Vec<Ws> = (0..16).map(|_| env.connect()).collect();
    let r = raw_status(
        env.d.port,
        &format!("/ws/observe?token={}", env.d.token),
        "Sec-WebSocket-Version: 13\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    // A client that closes frees its slot promptly (the brief: within ~1 s).
    let mut one = all.pop().unwrap();
    one.close(None).unwrap();
    let _ = next(&mut one, Duration::from_secs(2));
    drop(one);
    let freed = Instant::now();
    let ok = wait_until(DEADLINE, || {
        raw_status(
            env.d.port,
            &format!("/ws/observe?token={}", env.d.token),
            "Sec-WebSocket-Version: 13\r\n",
        )
        .starts_with("HTTP/1.1 101")
    });
    assert!(ok, "slot never freed");
    eprintln!("slot freed after {:?}", freed.elapsed());
    // An abrupt drop (no close frame) frees it too.
    drop(all.pop());
    let ok = wait_until(DEADLINE, || {
        raw_status(
            env.d.port,
            &format!("/ws/observe?token={}", env.d.token),
            "Sec-WebSocket-Version: 13\r\n",
        )
        .starts_with("HTTP/1.1 101")
    });
    assert!(ok, "slot of a dropped client never freed");
}

#[test]
fn a_slow_client_is_cut_off_while_fifteen_others_get_every_byte() {
    let env = Env::new();
    let id = env.spawn("shell", "sh");
    wait_for(DEADLINE, "shell started", || !env.output(&id).is_empty());
    let start = env.output(&id).len() as u64;
    // The slow client: tiny receive buffer, never reads.
    let mut slow = env.connect();
    {
        use std::os::fd::AsRawFd;
        let fd = slow.get_ref().as_raw_fd();
        let size: libc::c_int = 4096;
        // SAFETY: fd is a live socket owned by `slow`; the option value is a c_int.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &size as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    send(
        &mut slow,
        json!({"type": "subscribe_terminal", "session_id": id, "offset": start}),
    );
    let mut others: Vec<Ws> = (0..15).map(|_| env.connect()).collect();
    for ws in &mut others {
        send(
            ws,
            json!({"type": "subscribe_terminal", "session_id": id, "offset": start}),
        );
    }
    env.call(
        "POST",
        &format!("/agents/{id}/input"),
        Some(&json!({"text": "seq 1 400000; echo SEQ-$((1+1))DONE"})),
    );
    let t0 = Instant::now();
    let id2 = id.clone();
    let done_at = std::sync::Arc::new(std::sync::Mutex::new(None::<u64>));
    let handles: Vec<_> = others
        .into_iter()
        .map(|mut ws| {
            let id = id2.clone();
            std::thread::spawn(move || {
                let (b, off) = collect(&mut ws, &id, start, |b, _| {
                    let tail = &b[b.len().saturating_sub(200)..];
                    String::from_utf8_lossy(tail).contains("SEQ-2DONE\r\n")
                });
                (b, off, Instant::now())
            })
        })
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(h.join().expect("watcher thread"));
    }
    let _ = done_at;
    let total = env.output(&id);
    for (b, off, _) in &results {
        assert_eq!(
            &total[start as usize..*off as usize],
            &b[..],
            "every byte, in order"
        );
        assert!(*off as usize > 2_000_000, "a big burst: {off}");
    }
    let last = results.iter().map(|r| r.2).max().unwrap();
    eprintln!(
        "15 watchers got {} bytes each in {:?}",
        results[0].1 - start,
        last - t0
    );
    // Now the slow one reads: it never gets everything; it sees LAGGED / 1013
    // (or a dropped connection when its writes timed out).
    let mut offset = start;
    let mut lagged = false;
    let mut msgs = 0;
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < end,
            "slow client never cut off: {msgs} messages, offset {offset}"
        );
        match next(&mut slow, Duration::from_millis(500)) {
            Next::Msg(v) if v["type"] == "terminal_output" => {
                msgs += 1;
                offset = v["offset"].as_u64().unwrap();
            }
            Next::Msg(v) if v["error_code"] == "LAGGED" => lagged = true,
            Next::Msg(_) | Next::Timeout => {}
            Next::Closed(c) => {
                assert!(c.is_none() || c == Some(1013), "close code {c:?}");
                break;
            }
        }
    }
    eprintln!("slow client: lagged message {lagged}, cut off at offset {offset}");
    assert!(
        (offset as usize) < total.len(),
        "the slow client was cut off"
    );
}
