//! Black-box harness for the executions tests (API.md §7), owned by
//! `tests/executions.rs`.
//!
//! The daemon is spawned as `orchestratr serve --port 0` with private config and
//! state dirs; requests are raw HTTP/1.1 over `std::net::TcpStream` (SSE streams
//! decode the chunked encoding incrementally, so a test can drop the connection
//! mid-stream). Every daemon carries a unique `ORCHESTRATR_TEST_MARK` in its
//! environment, which the runs it spawns inherit: on drop the daemon is stopped
//! (SIGTERM, then SIGKILL) and every live process carrying the mark is killed by
//! PID, so no test leaves a process behind.

#![allow(dead_code)]

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_orchestratr");

/// Generous deadline for state changes on a loaded machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn next_n() -> usize {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

// ---------------------------------------------------------------------------
// polling

/// Poll `f` every 25 ms until it is true or `timeout` passes; returns whether it became true.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

// ---------------------------------------------------------------------------
// processes, via /proc

/// `(state, ppid, pgrp)` of a process from `/proc/<pid>/stat`.
pub fn proc_stat(pid: u32) -> Option<(char, u32, u32)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = s.rfind(')')?;
    let rest: Vec<&str> = s[close + 1..].split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    let ppid = rest.get(1)?.parse().ok()?;
    let pgrp = rest.get(2)?.parse().ok()?;
    Some((state, ppid, pgrp))
}

fn all_pids() -> Vec<u32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect()
}

fn live(state: char) -> bool {
    state != 'Z' && state != 'X'
}

/// Live (non-zombie) processes whose process group is `pgid` (field 5 of `stat`).
pub fn group_members(pgid: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|p| proc_stat(*p).is_some_and(|(st, _, pg)| pg == pgid && live(st)))
        .collect()
}

/// Live processes whose environment contains `needle` (`KEY=value`).
pub fn processes_with_env(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    all_pids()
        .into_iter()
        .filter(|p| *p != me)
        .filter(|p| proc_stat(*p).is_some_and(|(st, _, _)| live(st)))
        .filter(|p| {
            fs::read(format!("/proc/{p}/environ"))
                .map(|b| b.split(|c| *c == 0).any(|kv| kv == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// Wait (up to `timeout`) until process group `pgid` has no live member.
pub fn wait_group_gone(pgid: u32, timeout: Duration) -> Result<(), Vec<u32>> {
    let mut last = Vec::new();
    if wait_until(timeout, || {
        last = group_members(pgid);
        last.is_empty()
    }) {
        Ok(())
    } else {
        Err(last)
    }
}

fn signal(pid: u32, sig: Signal) {
    if pid > 1 {
        let _ = kill(Pid::from_raw(pid as i32), sig);
    }
}

// ---------------------------------------------------------------------------
// HTTP

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl Resp {
    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let n = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.as_str())
    }
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl std::fmt::Display for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.text();
        let t: String = t.chars().take(2000).collect();
        write!(f, "HTTP {} {:?} {t}", self.status, self.headers)
    }
}

fn read_head(r: &mut impl BufRead) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before the status line",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed in the headers",
            ));
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok((status, headers))
}

/// Read one chunk of a chunked body: `Ok(None)` at the terminating chunk.
fn read_chunk(r: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed inside a chunked body",
        ));
    }
    let size_s = line.trim().split(';').next().unwrap_or("").trim();
    let size = usize::from_str_radix(size_s, 16)
        .map_err(|_| io::Error::other(format!("bad chunk size line {line:?}")))?;
    if size == 0 {
        // trailers until the blank line
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                break;
            }
        }
        return Ok(None);
    }
    let mut buf = vec![0u8; size];
    r.read_exact(&mut buf)?;
    let mut crlf = [0u8; 2];
    r.read_exact(&mut crlf)?;
    if &crlf != b"\r\n" {
        return Err(io::Error::other("chunk not followed by CRLF"));
    }
    Ok(Some(buf))
}

fn connect(port: u16) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(10),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.set_write_timeout(Some(Duration::from_secs(30)))?;
    Ok(s)
}

fn write_request(
    s: &mut TcpStream,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<&[u8]>,
) -> io::Result<()> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("Connection: close\r\n\r\n");
    let mut bytes = req.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    s.write_all(&bytes)?;
    s.flush()
}

/// One request with `Connection: close`; reads the whole response.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<&[u8]>,
) -> io::Result<Resp> {
    let mut s = connect(port)?;
    write_request(&mut s, port, method, path, headers, body)?;
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r)?;
    let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        while let Some(c) = read_chunk(&mut r)? {
            body.extend_from_slice(&c);
        }
    } else if let Some(n) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(Resp {
        status,
        headers,
        body,
    })
}

// ---------------------------------------------------------------------------
// SSE

/// One Server-Sent Events frame.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// `id:` if present.
    pub id: Option<String>,
    /// `event:` (default `message`).
    pub event: String,
    /// `data:` lines joined with `\n`.
    pub data: String,
}

impl SseEvent {
    /// `data` as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// An open SSE response read incrementally (chunked framing decoded here).
pub struct SseConn {
    reader: BufReader<TcpStream>,
    chunked: bool,
    buf: Vec<u8>,
    done: bool,
    /// Response status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// Whether the stream ended with the chunked terminator (a clean end).
    pub clean_end: bool,
}

impl SseConn {
    /// Open `path` with the given extra headers.
    pub fn open(port: u16, path: &str, headers: &[(&str, String)]) -> io::Result<SseConn> {
        let mut s = connect(port)?;
        write_request(&mut s, port, "GET", path, headers, None)?;
        let mut reader = BufReader::new(s);
        let (status, headers) = read_head(&mut reader)?;
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
        Ok(SseConn {
            reader,
            chunked,
            buf: Vec::new(),
            done: false,
            status,
            headers,
            clean_end: false,
        })
    }

    /// Change the read timeout of the connection.
    pub fn set_read_timeout(&mut self, t: Duration) {
        let _ = self.reader.get_ref().set_read_timeout(Some(t));
    }

    fn fill(&mut self) -> io::Result<bool> {
        if self.done {
            return Ok(false);
        }
        if self.chunked {
            match read_chunk(&mut self.reader)? {
                Some(c) => self.buf.extend_from_slice(&c),
                None => {
                    self.done = true;
                    self.clean_end = true;
                    return Ok(false);
                }
            }
        } else {
            let mut tmp = [0u8; 8192];
            let n = self.reader.read(&mut tmp)?;
            if n == 0 {
                self.done = true;
                return Ok(false);
            }
            self.buf.extend_from_slice(&tmp[..n]);
        }
        Ok(true)
    }

    /// The next frame that carries data (comments and `retry:`-only frames are
    /// skipped). `Ok(None)` when the stream ended.
    pub fn next_event(&mut self) -> io::Result<Option<SseEvent>> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let raw: Vec<u8> = self.buf.drain(..pos + 2).collect();
                let text = String::from_utf8_lossy(&raw[..pos]).into_owned();
                let (mut id, mut event, mut data) = (None, None, Vec::new());
                for line in text.split('\n') {
                    if line.starts_with(':') {
                        continue;
                    }
                    let (k, v) = match line.split_once(':') {
                        Some((k, v)) => (k, v.strip_prefix(' ').unwrap_or(v)),
                        None => (line, ""),
                    };
                    match k {
                        "id" => id = Some(v.to_string()),
                        "event" => event = Some(v.to_string()),
                        "data" => data.push(v.to_string()),
                        _ => {}
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Ok(Some(SseEvent {
                    id,
                    event: event.unwrap_or_else(|| "message".into()),
                    data: data.join("\n"),
                }));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// the daemon

/// A daemon under test with private dirs; stopped (and its runs killed) on drop.
pub struct Daemon {
    /// Holds every file of the test.
    pub root: tempfile::TempDir,
    /// `<cfg>`.
    pub cfg: PathBuf,
    /// `<state>`.
    pub state: PathBuf,
    child: Option<Child>,
    /// Current port.
    pub port: u16,
    /// Bearer token.
    pub token: String,
    mark: String,
    logs: Vec<PathBuf>,
}

impl Daemon {
    /// Private dirs, no daemon yet. Write a config with [`Daemon::write_config`],
    /// then [`Daemon::start`].
    pub fn new() -> Daemon {
        let root = tempfile::Builder::new()
            .prefix("orchestratr-exec-")
            .tempdir()
            .expect("temp dir");
        let cfg = root.path().join("cfg");
        let state = root.path().join("state");
        fs::create_dir_all(&cfg).expect("mkdir cfg");
        fs::create_dir_all(&state).expect("mkdir state");
        let mark = format!(
            "ORCHESTRATR_TEST_MARK=exec-{}-{}-{}",
            std::process::id(),
            next_n(),
            root.path().display()
        );
        Daemon {
            root,
            cfg,
            state,
            child: None,
            port: 0,
            token: String::new(),
            mark,
            logs: Vec::new(),
        }
    }

    /// The test's scratch root (canonical).
    pub fn dir(&self) -> PathBuf {
        self.root.path().canonicalize().expect("canonical root")
    }

    /// Write `<cfg>/config.yml`.
    pub fn write_config(&self, yaml: &str) {
        fs::write(self.cfg.join("config.yml"), yaml).expect("write config.yml");
    }

    /// `new` + `write_config` + `start`.
    pub fn with_config(yaml: &str) -> Daemon {
        let mut d = Daemon::new();
        d.write_config(yaml);
        d.start();
        d
    }

    /// Start `orchestratr serve --port 0` and wait until it answers `/health`.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "daemon already started");
        let _ = fs::remove_file(self.cfg.join("port"));
        let log = self
            .root
            .path()
            .join(format!("daemon-{}.log", self.logs.len()));
        let f = fs::File::create(&log).expect("daemon log");
        let f2 = f.try_clone().expect("dup log");
        let (mk, mv) = self.mark.split_once('=').expect("mark");
        let child = Command::new(BIN)
            .args(["serve", "--port", "0"])
            .env("ORCHESTRATR_CONFIG_DIR", &self.cfg)
            .env("ORCHESTRATR_STATE_DIR", &self.state)
            .env(mk, mv)
            .stdin(Stdio::null())
            .stdout(f)
            .stderr(f2)
            .spawn()
            .expect("spawn orchestratr serve");
        self.logs.push(log);
        self.child = Some(child);
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!("daemon exited during start-up ({st})\n{}", self.log());
            }
            if let Some(p) = fs::read_to_string(self.cfg.join("port"))
                .ok()
                .and_then(|s| s.trim().parse::<u16>().ok())
                && let Ok(t) = fs::read_to_string(self.cfg.join("token"))
                && t.trim().len() == 64
                && request(p, "GET", "/health", &[], None).is_ok_and(|r| r.status == 200)
            {
                self.port = p;
                self.token = t.trim().to_string();
                return;
            }
            if Instant::now() >= end {
                panic!("daemon did not come up within {DEADLINE:?}\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// PID of the running daemon.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    /// Everything the daemon(s) logged so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        for l in &self.logs {
            s.push_str(&format!("--- {} ---\n", l.display()));
            s.push_str(&fs::read_to_string(l).unwrap_or_default());
        }
        s
    }

    /// SIGKILL the daemon and reap it (its runs survive in their own groups).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Wait for the daemon to exit on its own (after `POST /shutdown`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let c = self.child.as_mut()?;
        let mut st = None;
        wait_until(timeout, || {
            st = c.try_wait().ok().flatten();
            st.is_some()
        });
        if st.is_some() {
            self.child = None;
        }
        st
    }

    fn auth(&self) -> (&'static str, String) {
        ("Authorization", format!("Bearer {}", self.token))
    }

    /// Authenticated request; panics on a transport error.
    pub fn req(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        self.try_req(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: transport error {e}\n{}", self.log()))
    }

    /// Authenticated request.
    pub fn try_req(&self, method: &str, path: &str, body: Option<&Value>) -> io::Result<Resp> {
        let b = body.map(|v| serde_json::to_vec(v).expect("json"));
        request(self.port, method, path, &[self.auth()], b.as_deref())
    }

    /// Authenticated GET.
    pub fn get(&self, path: &str) -> Resp {
        self.req("GET", path, None)
    }

    /// Authenticated POST with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.req("POST", path, Some(body))
    }

    /// Authenticated POST without a body.
    pub fn post_empty(&self, path: &str) -> Resp {
        self.req("POST", path, None)
    }

    /// `POST /executions`; asserts 202 and returns the Execution.
    pub fn submit(&self, body: &Value) -> Value {
        let r = self.post("/executions", body);
        assert_eq!(
            r.status,
            202,
            "POST /executions {body}: {r}\n{}",
            self.log()
        );
        let e = r.json();
        assert_eq!(
            r.header("location").map(str::to_string),
            Some(format!("/executions/{}", e["id"].as_str().unwrap_or("?"))),
            "Location header: {r}"
        );
        e
    }

    /// `GET /executions/{id}` (asserts 200).
    pub fn exec(&self, id: &str) -> Value {
        let r = self.get(&format!("/executions/{id}"));
        assert_eq!(r.status, 200, "GET /executions/{id}: {r}");
        r.json()
    }

    /// Poll the execution until `pred` holds.
    pub fn wait_exec(
        &self,
        id: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut last = Value::Null;
        if wait_until(timeout, || {
            last = self.exec(id);
            pred(&last)
        }) {
            return last;
        }
        panic!(
            "execution {id}: timed out after {timeout:?} waiting for {what}; last: {last}\n{}",
            self.log()
        );
    }

    /// Wait until the execution reaches a final state.
    pub fn wait_final(&self, id: &str) -> Value {
        self.wait_exec(id, "a final status", DEADLINE, |e| {
            !matches!(e["status"].as_str(), Some("pending") | Some("running"))
        })
    }

    /// Wait until it is running with a live process group of at least `members`.
    pub fn wait_running(&self, id: &str, members: usize) -> (Value, u32) {
        let e = self.wait_exec(id, "running", DEADLINE, |e| e["status"] == "running");
        let pid = e["pid"].as_u64().unwrap_or_else(|| panic!("pid in {e}")) as u32;
        let mut last = Vec::new();
        assert!(
            wait_until(DEADLINE, || {
                last = group_members(pid);
                last.len() >= members
            }),
            "group {pid} of {id} never had {members} live members: {last:?}\n{}",
            self.log()
        );
        (e, pid)
    }

    /// `<state>/executions/<id>/execution.json`.
    pub fn record(&self, id: &str) -> Value {
        let p = self
            .state
            .join("executions")
            .join(id)
            .join("execution.json");
        let b = fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        serde_json::from_slice(&b).unwrap_or_else(|e| panic!("parse {}: {e}", p.display()))
    }

    /// `<state>/executions/<id>/output.log` (empty if absent).
    pub fn output_log(&self, id: &str) -> Vec<u8> {
        fs::read(self.state.join("executions").join(id).join("output.log")).unwrap_or_default()
    }

    /// Open the output stream of `id`, optionally resuming at `last_event_id`.
    pub fn stream(&self, id: &str, last_event_id: Option<u64>) -> SseConn {
        let mut h = vec![self.auth()];
        if let Some(l) = last_event_id {
            h.push(("Last-Event-ID", l.to_string()));
        }
        let c = SseConn::open(self.port, &format!("/executions/{id}/stream"), &h)
            .unwrap_or_else(|e| panic!("open stream of {id}: {e}"));
        assert_eq!(c.status, 200, "stream of {id}: status {}", c.status);
        c
    }

    /// Run the CLI against this daemon; stdout/stderr go to files (never pipes).
    pub fn cli(&self, args: &[&str], timeout: Duration) -> Output {
        let n = next_n();
        let out_p = self.root.path().join(format!("cli-{n}.out"));
        let err_p = self.root.path().join(format!("cli-{n}.err"));
        let (mk, mv) = self.mark.split_once('=').expect("mark");
        let mut child = Command::new(BIN)
            .args(args)
            .env("ORCHESTRATR_CONFIG_DIR", &self.cfg)
            .env("ORCHESTRATR_STATE_DIR", &self.state)
            .env(mk, mv)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out_p).expect("cli out"))
            .stderr(fs::File::create(&err_p).expect("cli err"))
            .spawn()
            .expect("spawn cli");
        let end = Instant::now() + timeout;
        let status = loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                break st;
            }
            if Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "orchestratr {args:?} did not finish within {timeout:?}\nstdout: {}\nstderr: {}",
                    fs::read_to_string(&out_p).unwrap_or_default(),
                    fs::read_to_string(&err_p).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        };
        Output {
            status,
            stdout: fs::read(&out_p).unwrap_or_default(),
            stderr: fs::read(&err_p).unwrap_or_default(),
        }
    }

    /// Kill every live process that carries this daemon's mark, by PID.
    pub fn kill_marked(&self) {
        for _ in 0..20 {
            let pids = processes_with_env(&self.mark);
            if pids.is_empty() {
                return;
            }
            for p in pids {
                signal(p, Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Default for Daemon {
    fn default() -> Self {
        Daemon::new()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), Signal::SIGTERM);
            let end = Instant::now() + Duration::from_secs(15);
            loop {
                if c.try_wait().ok().flatten().is_some() {
                    break;
                }
                if Instant::now() >= end {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        self.kill_marked();
    }
}

/// A YAML (JSON-compatible) scalar or flow collection for `v`.
pub fn yq<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("json")
}

/// Write an executable script.
pub fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, body).expect("write script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod script");
}
