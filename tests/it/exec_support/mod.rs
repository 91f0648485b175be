//! Black-box harness for the executions tests (API.md §7), owned by
//! `tests/executions.rs`, on top of the generic helpers in `tests/common`
//! (polling, `/proc`, spawning, raw HTTP/1.1).
//!
//! The daemon is spawned as `orchestratr serve --port 0` with private config and
//! state dirs; SSE streams decode the chunked encoding incrementally, so a test
//! can drop the connection mid-stream. Every daemon carries a unique
//! `ORCHESTRATR_TEST_MARK` in its environment, which the runs it spawns
//! inherit: on drop the daemon is stopped (SIGTERM, then SIGKILL) and every live
//! process carrying the mark is killed by PID, so no test leaves a process
//! behind.

#![allow(dead_code)]

use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output};
use std::time::Duration;

use serde_json::Value;

use crate::common::{
    Dirs, all_pids, build_request, connect, is_chunked, kill_and_reap, next_n, pid_alive,
    poll_exit, read_chunk, read_head, run_with_timeout, send_signal, terminate_child, wait_healthy,
};
#[allow(unused_imports)] // each test crate uses a different subset
pub use crate::common::{Resp, group_pids, request, try_request, wait_until};

/// Generous deadline for state changes on a loaded machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// processes

/// Live processes whose environment contains `needle` (`KEY=value`).
pub fn processes_with_env(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    all_pids()
        .into_iter()
        .filter(|p| *p != me && pid_alive(*p))
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
        last = group_pids(pgid);
        last.is_empty()
    }) {
        Ok(())
    } else {
        Err(last)
    }
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
/// Unlike `common::SseClient` it blocks on reads and tells a clean chunked end
/// from a dropped connection.
pub struct SseConn {
    reader: BufReader<TcpStream>,
    chunked: bool,
    buf: Vec<u8>,
    done: bool,
    /// Response status.
    pub status: u16,
    /// Response headers (names lowercased).
    pub headers: Vec<(String, String)>,
    /// Whether the stream ended with the chunked terminator (a clean end).
    pub clean_end: bool,
}

impl SseConn {
    /// Open `path` with the given extra headers (60 s read timeout).
    pub fn open(port: u16, path: &str, headers: &[(&str, &str)]) -> io::Result<SseConn> {
        let mut s = connect(port)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        s.write_all(&build_request(port, "GET", path, headers, b"", true))?;
        s.flush()?;
        let mut reader = BufReader::new(s);
        let (status, headers) = read_head(&mut reader)?;
        Ok(SseConn {
            reader,
            chunked: is_chunked(&headers),
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
    /// `<tmp>/cfg` and `<tmp>/state`; the temp dir holds every file of the test.
    pub dirs: Dirs,
    child: Option<Child>,
    /// Current port.
    pub port: u16,
    /// Bearer token.
    pub token: String,
    /// `ORCHESTRATR_TEST_MARK=<unique value>`, in the environment of the
    /// daemon, of its runs and of the CLI.
    mark: String,
    logs: Vec<PathBuf>,
}

impl Daemon {
    /// Private dirs, no daemon yet. Write a config with [`Daemon::write_config`],
    /// then [`Daemon::start`].
    pub fn new() -> Daemon {
        let dirs = Dirs::new();
        let mark = format!(
            "ORCHESTRATR_TEST_MARK=exec-{}-{}-{}",
            std::process::id(),
            next_n(),
            dirs.scratch().display()
        );
        Daemon {
            dirs,
            child: None,
            port: 0,
            token: String::new(),
            mark,
            logs: Vec::new(),
        }
    }

    /// The test's scratch root (canonical).
    pub fn dir(&self) -> PathBuf {
        self.dirs.scratch().canonicalize().expect("canonical root")
    }

    /// Write `<cfg>/config.yml`.
    pub fn write_config(&self, yaml: &str) {
        self.dirs.write("config.yml", yaml);
    }

    /// `new` + `write_config` + `start`.
    pub fn with_config(yaml: &str) -> Daemon {
        let mut d = Daemon::new();
        d.write_config(yaml);
        d.start();
        d
    }

    /// The mark as an environment variable `(name, value)`.
    fn mark_env(&self) -> (&str, &str) {
        self.mark.split_once('=').expect("mark")
    }

    /// Start `orchestratr serve --port 0` and wait until it answers `/health`.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "daemon already started");
        let _ = fs::remove_file(self.dirs.port_file());
        let (mut child, out, err) = self.dirs.spawn_serve_env(&[], &[self.mark_env()]);
        self.logs.extend([out, err]);
        match wait_healthy(&mut child, &self.dirs, DEADLINE) {
            Ok(port) => {
                self.port = port;
                self.token = self.dirs.read_token().expect("token file");
                self.child = Some(child);
            }
            Err(Some(st)) => panic!("daemon exited during start-up ({st})\n{}", self.log()),
            Err(None) => {
                // Drop stops it.
                self.child = Some(child);
                panic!("daemon did not come up within {DEADLINE:?}\n{}", self.log());
            }
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
            kill_and_reap(&mut c);
        }
    }

    /// Wait for the daemon to exit on its own (after `POST /shutdown`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let st = poll_exit(self.child.as_mut()?, timeout);
        if st.is_some() {
            self.child = None;
        }
        st
    }

    /// The `Authorization` header value.
    pub fn auth_header(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// Authenticated request; panics on a transport error.
    pub fn req(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        self.try_req(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: transport error {e}\n{}", self.log()))
    }

    /// Authenticated request.
    pub fn try_req(&self, method: &str, path: &str, body: Option<&Value>) -> io::Result<Resp> {
        let auth = self.auth_header();
        let mut h = vec![("Authorization", auth.as_str())];
        let mut b = Vec::new();
        if let Some(v) = body {
            h.push(("Content-Type", "application/json"));
            b = serde_json::to_vec(v).expect("json");
        }
        try_request(self.port, method, path, &h, &b)
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
            !matches!(
                e["status"].as_str(),
                Some("pending") | Some("starting") | Some("running")
            )
        })
    }

    /// Wait until it is running with a live process group of at least `members`.
    pub fn wait_running(&self, id: &str, members: usize) -> (Value, u32) {
        let e = self.wait_exec(id, "running", DEADLINE, |e| e["status"] == "running");
        let pid = e["pid"].as_u64().unwrap_or_else(|| panic!("pid in {e}")) as u32;
        let mut last = Vec::new();
        assert!(
            wait_until(DEADLINE, || {
                last = group_pids(pid);
                last.len() >= members
            }),
            "group {pid} of {id} never had {members} live members: {last:?}\n{}",
            self.log()
        );
        (e, pid)
    }

    /// `<state>/executions/<id>`.
    pub fn exec_dir(&self, id: &str) -> PathBuf {
        self.dirs.state.join("executions").join(id)
    }

    /// `<state>/executions/<id>/execution.json`.
    pub fn record(&self, id: &str) -> Value {
        let p = self.exec_dir(id).join("execution.json");
        let b = fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        serde_json::from_slice(&b).unwrap_or_else(|e| panic!("parse {}: {e}", p.display()))
    }

    /// `<state>/executions/<id>/output.log` (empty if absent).
    pub fn output_log(&self, id: &str) -> Vec<u8> {
        fs::read(self.exec_dir(id).join("output.log")).unwrap_or_default()
    }

    /// Open the output stream of `id`, optionally resuming at `last_event_id`.
    pub fn stream(&self, id: &str, last_event_id: Option<u64>) -> SseConn {
        let auth = self.auth_header();
        let last = last_event_id.map(|l| l.to_string());
        let mut h = vec![("Authorization", auth.as_str())];
        if let Some(l) = &last {
            h.push(("Last-Event-ID", l));
        }
        let c = SseConn::open(self.port, &format!("/executions/{id}/stream"), &h)
            .unwrap_or_else(|e| panic!("open stream of {id}: {e}"));
        assert_eq!(c.status, 200, "stream of {id}: status {}", c.status);
        c
    }

    /// Run the CLI against this daemon; stdout/stderr go to files (never pipes).
    pub fn cli(&self, args: &[&str], timeout: Duration) -> Output {
        let mut c = self.dirs.command();
        let (mk, mv) = self.mark_env();
        c.args(args).env(mk, mv);
        run_with_timeout(&mut c, self.dirs.scratch(), timeout)
    }

    /// Kill every live process that carries this daemon's mark, by PID.
    pub fn kill_marked(&self) {
        for _ in 0..20 {
            let pids = processes_with_env(&self.mark);
            if pids.is_empty() {
                return;
            }
            for p in pids {
                send_signal(p as i64, "KILL");
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
        if let Some(c) = self.child.take() {
            terminate_child(c, Duration::from_secs(15));
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
