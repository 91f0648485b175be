//! Black-box test harness for the `orchestratr` binary.
//!
//! Everything here talks to the daemon the way an external client would: by
//! spawning the binary, reading the discovery files and speaking raw HTTP/1.1
//! over `std::net::TcpStream` (so tests keep full control of `Host`, `Origin`,
//! chunked bodies and incremental SSE reads).
//!
//! Rules followed by every test: no fixed sleeps to wait for state (poll with
//! deadlines), no assertions on wall-clock speed, and every process a test
//! starts is stopped or killed before the test ends (see `Drop` impls).

#![allow(dead_code)]

use std::collections::VecDeque;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_orchestratr");

/// Default generous deadline for state changes on a loaded machine.
pub const DEADLINE: Duration = Duration::from_secs(20);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A number unique within this test binary (for scratch file names).
pub fn next_n() -> usize {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

// ---------------------------------------------------------------------------
// polling helpers

/// Polls `f` every 20 ms until it returns true or `timeout` passes.
/// Returns whether the condition became true.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Like `wait_until` but panics with `what` when the deadline passes.
pub fn wait_for(timeout: Duration, what: &str, f: impl FnMut() -> bool) {
    if !wait_until(timeout, f) {
        panic!("timed out after {timeout:?} waiting for: {what}");
    }
}

/// Polls `f` until it returns `Some`, panicking after `timeout`.
pub fn wait_some<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let mut out = None;
    wait_for(timeout, what, || {
        out = f();
        out.is_some()
    });
    out.unwrap()
}

// ---------------------------------------------------------------------------
// process helpers (no libc: /proc and the `kill` utility)

/// Sends `sig` (e.g. "TERM", "KILL", "INT") to a pid. Negative targets are
/// process groups.
pub fn send_signal(target: i64, sig: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg("--")
        .arg(target.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Kills a whole process group with SIGKILL (best effort).
pub fn kill_group(pgid: u32) {
    if pgid > 1 {
        send_signal(-(pgid as i64), "KILL");
    }
}

/// `(pid, state, ppid, pgrp, comm)` parsed from `/proc/<pid>/stat`.
pub fn proc_stat(pid: u32) -> Option<(u32, char, u32, u32, String)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    let rest: Vec<&str> = s[close + 1..].split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    let ppid = rest.get(1)?.parse().ok()?;
    let pgrp = rest.get(2)?.parse().ok()?;
    Some((pid, state, ppid, pgrp, comm))
}

/// True for a `/proc/<pid>/stat` state of a process that still runs (not a
/// zombie, not dead).
fn is_live(state: char) -> bool {
    state != 'Z' && state != 'X'
}

/// True if the process exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(_, state, ..)| is_live(state))
}

/// Every pid listed in `/proc`.
pub fn all_pids() -> Vec<u32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// Live (non-zombie) processes whose process group is `pgid`: `(pid, comm)`.
pub fn group_members(pgid: u32) -> Vec<(u32, String)> {
    all_pids()
        .into_iter()
        .filter_map(proc_stat)
        .filter(|(_, state, _, pgrp, _)| *pgrp == pgid && is_live(*state))
        .map(|(pid, _, _, _, comm)| (pid, comm))
        .collect()
}

/// The pids of `group_members(pgid)`.
pub fn group_pids(pgid: u32) -> Vec<u32> {
    group_members(pgid)
        .into_iter()
        .map(|(pid, _)| pid)
        .collect()
}

/// Polls `child` until it exits or `timeout` passes (one look for a zero
/// timeout); `None` if it is still running.
pub fn poll_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

/// Kills (SIGKILL) and reaps a child, ignoring errors (it may be gone).
pub fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Asks a child to stop (SIGTERM), SIGKILLs it if it is still running after
/// `grace`, and reaps it.
pub fn terminate_child(mut child: Child, grace: Duration) {
    if poll_exit(&mut child, Duration::ZERO).is_none() {
        send_signal(child.id() as i64, "TERM");
        if poll_exit(&mut child, grace).is_none() {
            let _ = child.kill();
        }
    }
    let _ = child.wait();
}

/// A child process the test spawned itself; killed and reaped on drop.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        ChildGuard(cmd.spawn().expect("spawn test helper process"))
    }
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
    /// Kills (SIGKILL) and reaps the process.
    pub fn kill_and_reap(&mut self) {
        kill_and_reap(&mut self.0);
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

/// Kills a process (and its group, if it leads one) that is not our child,
/// e.g. a daemon started by `orchestratr start`, on drop.
pub struct PidGuard(pub u32);

impl Drop for PidGuard {
    fn drop(&mut self) {
        if self.0 > 1 && pid_alive(self.0) {
            send_signal(self.0 as i64, "KILL");
        }
    }
}

/// Runs a command with stdout/stderr redirected to files (not pipes, so a
/// detached grandchild inheriting them cannot make us hang), with a timeout.
pub fn run_with_timeout(cmd: &mut Command, scratch: &Path, timeout: Duration) -> Output {
    let n = next_n();
    let out_p = scratch.join(format!("cmd-{n}.stdout"));
    let err_p = scratch.join(format!("cmd-{n}.stderr"));
    let out_f = fs::File::create(&out_p).unwrap();
    let err_f = fs::File::create(&err_p).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out_f)
        .stderr(err_f)
        .spawn()
        .expect("spawn command");
    let Some(status) = poll_exit(&mut child, timeout) else {
        kill_and_reap(&mut child);
        panic!(
            "command {cmd:?} did not finish within {timeout:?}\nstdout: {}\nstderr: {}",
            fs::read_to_string(&out_p).unwrap_or_default(),
            fs::read_to_string(&err_p).unwrap_or_default()
        );
    };
    Output {
        status,
        stdout: fs::read(&out_p).unwrap_or_default(),
        stderr: fs::read(&err_p).unwrap_or_default(),
    }
}

pub fn stdout_str(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr_str(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn describe(o: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        stdout_str(o),
        stderr_str(o)
    )
}

// ---------------------------------------------------------------------------
// directories

/// Private config and state directories inside one temp dir.
pub struct Dirs {
    pub tmp: tempfile::TempDir,
    pub cfg: PathBuf,
    pub state: PathBuf,
}

impl Dirs {
    /// Creates `<tmp>/cfg` and `<tmp>/state` (both exist, both empty).
    pub fn new() -> Dirs {
        let tmp = tempfile::Builder::new()
            .prefix("orchestratr-test-")
            .tempdir()
            .expect("tempdir");
        let cfg = tmp.path().join("cfg");
        let state = tmp.path().join("state");
        fs::create_dir_all(&cfg).unwrap();
        fs::create_dir_all(&state).unwrap();
        Dirs { tmp, cfg, state }
    }

    /// Like `new` but the config and state directories do not exist yet.
    pub fn new_missing() -> Dirs {
        let d = Dirs::new();
        fs::remove_dir_all(&d.cfg).unwrap();
        fs::remove_dir_all(&d.state).unwrap();
        let cfg = d.tmp.path().join("nested/cfg");
        let state = d.tmp.path().join("nested/state");
        Dirs { cfg, state, ..d }
    }

    pub fn scratch(&self) -> &Path {
        self.tmp.path()
    }

    /// Writes `<cfg>/<rel>` (parents created).
    pub fn write(&self, rel: &str, content: &str) {
        let p = self.cfg.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&p, content).unwrap();
    }

    /// Editor-style save: write `<rel>.tmp` then rename it over `<rel>`.
    pub fn write_by_rename(&self, rel: &str, content: &str) {
        let p = self.cfg.join(rel);
        let tmp = self.cfg.join(format!("{rel}.tmp"));
        fs::write(&tmp, content).unwrap();
        fs::rename(&tmp, &p).unwrap();
    }

    pub fn config_path(&self) -> PathBuf {
        self.cfg.join("config.yml")
    }
    pub fn port_file(&self) -> PathBuf {
        self.cfg.join("port")
    }
    pub fn token_file(&self) -> PathBuf {
        self.cfg.join("token")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.state.join("orchestratr.pid")
    }

    pub fn read_port(&self) -> Option<u16> {
        fs::read_to_string(self.port_file())
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    pub fn read_token(&self) -> Option<String> {
        fs::read_to_string(self.token_file())
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// A `Command` for the binary with this config/state dir and no
    /// inherited URL/token overrides.
    pub fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("ORCHESTRATR_CONFIG_DIR", &self.cfg)
            .env("ORCHESTRATR_STATE_DIR", &self.state)
            .env_remove("ORCHESTRATR_URL")
            .env_remove("ORCHESTRATR_TOKEN")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS");
        c
    }

    /// Runs the binary as a CLI client (30 s timeout).
    pub fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.command();
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        run_with_timeout(&mut c, self.scratch(), Duration::from_secs(30))
    }

    /// Spawns `serve --port 0 <args>` with stdout/stderr in files, without
    /// waiting for it to be ready (`--port 0` is left out when `args` has a
    /// `--port` of its own).
    pub fn spawn_serve(&self, args: &[&str]) -> (Child, PathBuf, PathBuf) {
        self.spawn_serve_env(args, &[])
    }

    /// Like `spawn_serve`, with extra environment variables for the daemon.
    pub fn spawn_serve_env(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (Child, PathBuf, PathBuf) {
        self.spawn_raw(&serve_args(args), env)
    }

    /// Spawns the binary with exactly `args` (e.g. `["serve"]` to use the
    /// config's `api_port`), stdout/stderr in files.
    pub fn spawn_raw(&self, args: &[&str], env: &[(&str, &str)]) -> (Child, PathBuf, PathBuf) {
        let n = next_n();
        let out_p = self.scratch().join(format!("daemon-{n}.stdout.log"));
        let err_p = self.scratch().join(format!("daemon-{n}.stderr.log"));
        let mut c = self.command();
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.stdin(Stdio::null())
            .stdout(fs::File::create(&out_p).unwrap())
            .stderr(fs::File::create(&err_p).unwrap());
        let child = c.spawn().expect("spawn orchestratr");
        (child, out_p, err_p)
    }
}

/// `serve --port 0 <args>`, leaving out `--port 0` when `args` has a `--port`
/// of its own.
fn serve_args<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut full = vec!["serve"];
    if !args
        .iter()
        .any(|a| *a == "--port" || a.starts_with("--port="))
    {
        full.extend_from_slice(&["--port", "0"]);
    }
    full.extend_from_slice(args);
    full
}

/// True if a daemon with this pid answers `GET /health` on `port` (a stale
/// port file may name a dead or foreign daemon).
fn answers_health(port: u16, pid: u32) -> bool {
    try_request(port, "GET", "/health", &[], b"").is_ok_and(|r| {
        r.status == 200
            && serde_json::from_slice::<Value>(&r.body)
                .is_ok_and(|v| v["pid"].as_u64() == Some(pid as u64))
    })
}

/// Polls until the daemon `child`, started with `dirs`, answers `/health` on
/// the port named in the port file; returns that port. `Err(Some(status))` if
/// it exited first, `Err(None)` if `timeout` passed (it is left running).
pub fn wait_healthy(
    child: &mut Child,
    dirs: &Dirs,
    timeout: Duration,
) -> Result<u16, Option<ExitStatus>> {
    let pid = child.id();
    let mut exited = None;
    let mut port = None;
    wait_until(timeout, || {
        exited = child.try_wait().expect("try_wait");
        if exited.is_some() {
            return true;
        }
        port = dirs.read_port().filter(|p| answers_health(*p, pid));
        port.is_some()
    });
    port.ok_or(exited)
}

/// Waits for a child to exit (polling), killing it and panicking after `timeout`.
pub fn wait_child(child: &mut Child, timeout: Duration) -> ExitStatus {
    poll_exit(child, timeout).unwrap_or_else(|| {
        kill_and_reap(child);
        panic!("process {} did not exit within {timeout:?}", child.id());
    })
}

// ---------------------------------------------------------------------------
// the daemon

pub struct Daemon {
    pub dirs: Dirs,
    pub cfg_dir: PathBuf,
    pub state_dir: PathBuf,
    pub port: u16,
    pub token: String,
    pub pid: u32,
    child: Option<Child>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    groups: Vec<u32>,
    exited: Option<ExitStatus>,
}

impl Daemon {
    /// Starts a daemon with `config_yml` as `<cfg>/config.yml`.
    pub fn start(config_yml: &str) -> Daemon {
        Daemon::start_with(config_yml, &[], &[])
    }

    /// Starts a daemon with `config_yml`, extra files relative to `<cfg>`
    /// (e.g. `("apps.d/x.yml", "...")`) and extra `serve` arguments.
    pub fn start_with(config_yml: &str, extra_files: &[(&str, &str)], args: &[&str]) -> Daemon {
        let dirs = Dirs::new();
        dirs.write("config.yml", config_yml);
        for (rel, content) in extra_files {
            dirs.write(rel, content);
        }
        Daemon::start_in(dirs, args)
    }

    /// Starts a daemon in prepared directories.
    pub fn start_in(dirs: Dirs, args: &[&str]) -> Daemon {
        Daemon::try_start_in(dirs, args).unwrap_or_else(|msg| panic!("{msg}"))
    }

    /// Starts a daemon in prepared directories; `Err` carries the log if it
    /// exited or never became healthy.
    pub fn try_start_in(dirs: Dirs, args: &[&str]) -> Result<Daemon, String> {
        Daemon::try_start_env(dirs, args, &[])
    }

    /// Starts a daemon in prepared directories with extra environment
    /// variables (e.g. `HOME`, `NOTIFY_SOCKET`).
    pub fn start_env(dirs: Dirs, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::try_start_env(dirs, args, env).unwrap_or_else(|msg| panic!("{msg}"))
    }

    pub fn try_start_env(
        dirs: Dirs,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Daemon, String> {
        Daemon::try_start_raw(dirs, &serve_args(args), env)
    }

    /// Starts the binary with exactly `args` (which must run `serve`), e.g.
    /// `["serve"]` so that the config's `api_port` applies.
    pub fn start_raw(dirs: Dirs, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::try_start_raw(dirs, args, env).unwrap_or_else(|msg| panic!("{msg}"))
    }

    pub fn try_start_raw(
        dirs: Dirs,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Daemon, String> {
        let (mut child, stdout_path, stderr_path) = dirs.spawn_raw(args, env);
        let pid = child.id();
        let logs = || {
            format!(
                "--- stdout ---\n{}\n--- stderr ---\n{}",
                fs::read_to_string(&stdout_path).unwrap_or_default(),
                fs::read_to_string(&stderr_path).unwrap_or_default()
            )
        };
        let port = match wait_healthy(&mut child, &dirs, DEADLINE) {
            Ok(port) => port,
            Err(Some(st)) => {
                return Err(format!(
                    "daemon exited during start-up with {st:?}\n{}",
                    logs()
                ));
            }
            Err(None) => {
                kill_and_reap(&mut child);
                return Err(format!(
                    "daemon did not become healthy within {DEADLINE:?}\n{}",
                    logs()
                ));
            }
        };
        let token = dirs.read_token().unwrap_or_default();
        Ok(Daemon {
            cfg_dir: dirs.cfg.clone(),
            state_dir: dirs.state.clone(),
            dirs,
            port,
            token,
            pid,
            child: Some(child),
            stdout_path,
            stderr_path,
            groups: Vec::new(),
            exited: None,
        })
    }

    /// The daemon's stdout and stderr so far.
    pub fn log(&self) -> String {
        format!(
            "--- daemon stdout ---\n{}\n--- daemon stderr ---\n{}",
            fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            fs::read_to_string(&self.stderr_path).unwrap_or_default()
        )
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Registers a process group (an app the daemon launched) to be killed
    /// when the test ends.
    pub fn kill_group_on_drop(&mut self, pgid: u32) {
        if pgid > 1 && !self.groups.contains(&pgid) {
            self.groups.push(pgid);
        }
    }

    /// Sends a signal ("TERM", "INT", "KILL") to the daemon process.
    pub fn signal(&self, sig: &str) {
        assert!(
            send_signal(self.pid as i64, sig),
            "kill -{sig} {}",
            self.pid
        );
    }

    /// Waits for the daemon to exit (panics with the log after `timeout`).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(st) = self.exited {
            return st;
        }
        let child = self.child.as_mut().expect("daemon child");
        let Some(st) = poll_exit(child, timeout) else {
            panic!("daemon did not exit within {timeout:?}\n{}", self.log());
        };
        self.exited = Some(st);
        st
    }

    /// SIGKILLs the daemon, reaps it, and hands back the directories (with
    /// the stale port and PID files left in place).
    pub fn kill9(mut self) -> Dirs {
        if let Some(mut c) = self.child.take() {
            kill_and_reap(&mut c);
        }
        self.kill_groups();
        // Move the dirs out; Drop sees no child and does nothing else.
        std::mem::replace(&mut self.dirs, Dirs::new())
    }

    /// Stops the daemon gracefully (SIGTERM) and hands back the directories.
    pub fn stop_into_dirs(mut self) -> Dirs {
        self.terminate();
        std::mem::replace(&mut self.dirs, Dirs::new())
    }

    fn kill_groups(&mut self) {
        for g in self.groups.drain(..) {
            kill_group(g);
            send_signal(g as i64, "KILL");
        }
    }

    fn terminate(&mut self) {
        if let Some(c) = self.child.take() {
            terminate_child(c, Duration::from_secs(10));
        }
        self.kill_groups();
    }

    /// Runs the CLI against this daemon's directories.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.dirs.cli(args, &[])
    }

    pub fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.dirs.cli(args, env)
    }

    // --- HTTP helpers ----------------------------------------------------

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        request(self.port, method, path, headers, body)
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], b"")
    }

    pub fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.get(path);
        (r.status, r.json())
    }

    pub fn auth_header(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// POST with a JSON body, no token.
    pub fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.post_json_resp(path, body, false);
        (r.status, r.json())
    }

    /// POST with a JSON body and the token.
    pub fn post_json_auth(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.post_json_resp(path, body, true);
        (r.status, r.json())
    }

    pub fn post_json_resp(&self, path: &str, body: &Value, auth: bool) -> Resp {
        let b = serde_json::to_vec(body).unwrap();
        let auth_h = self.auth_header();
        let mut h = vec![("Content-Type", "application/json")];
        if auth {
            h.push(("Authorization", auth_h.as_str()));
        }
        self.request("POST", path, &h, &b)
    }

    /// POST with an empty body, no token.
    pub fn post(&self, path: &str) -> (u16, Value) {
        let r = self.request("POST", path, &[], b"");
        (r.status, r.json())
    }

    /// POST with an empty body and the token.
    pub fn post_auth(&self, path: &str) -> (u16, Value) {
        let r = self.post_auth_resp(path);
        (r.status, r.json())
    }

    pub fn post_auth_resp(&self, path: &str) -> Resp {
        let a = self.auth_header();
        self.request("POST", path, &[("Authorization", a.as_str())], b"")
    }

    /// Publishes an event through `POST /events`; returns its id.
    pub fn publish(&self, ty: &str, source: &str, data: Value) -> u64 {
        let (st, v) = self.post_json(
            "/events",
            &json!({"type": ty, "source": source, "data": data}),
        );
        assert_eq!(st, 202, "POST /events: {v}");
        v["id"].as_u64().unwrap_or_else(|| panic!("no id in {v}"))
    }

    /// `GET /events?<query>` → the events array.
    pub fn events(&self, query: &str) -> Vec<Value> {
        let path = if query.is_empty() {
            "/events".to_string()
        } else {
            format!("/events?{query}")
        };
        let (st, v) = self.get_json(&path);
        assert_eq!(st, 200, "GET {path}: {v}");
        v["events"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("no events array: {v}"))
    }

    /// Polls `GET /events?<query>` until an event satisfies `pred`.
    pub fn wait_event(
        &self,
        timeout: Duration,
        query: &str,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Value {
        let mut last = Vec::new();
        let mut found = None;
        let ok = wait_until(timeout, || {
            last = self.events(&format!("limit=1000&{query}"));
            found = last.iter().find(|e| pred(e)).cloned();
            found.is_some()
        });
        if !ok {
            panic!(
                "no matching event for query {query:?} within {timeout:?}; last seen: {}\n{}",
                Value::Array(last),
                self.log()
            );
        }
        found.unwrap()
    }

    /// `GET /apps/<name>/state`.
    pub fn app_state(&self, name: &str) -> Value {
        let (st, v) = self.get_json(&format!("/apps/{name}/state"));
        assert_eq!(st, 200, "state of {name}: {v}");
        v
    }

    /// Polls the app state until `pred` holds; returns the state.
    pub fn wait_state(
        &self,
        name: &str,
        what: &str,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Value {
        let mut last = Value::Null;
        let ok = wait_until(DEADLINE, || {
            last = self.app_state(name);
            pred(&last)
        });
        if !ok {
            panic!(
                "app {name}: timed out waiting for {what}; last state: {last}\n{}",
                self.log()
            );
        }
        last
    }

    /// Names in `GET /apps`.
    pub fn app_names(&self) -> Vec<String> {
        let (st, v) = self.get_json("/apps");
        assert_eq!(st, 200, "GET /apps: {v}");
        v["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log());
        }
        self.terminate();
    }
}

// ---------------------------------------------------------------------------
// raw HTTP/1.1 client

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    /// Headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl Resp {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (`Null` for an empty body); panics on invalid JSON.
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response {} is not JSON ({e}): {:?}",
                self.status,
                self.text()
            )
        })
    }
}

impl std::fmt::Display for Resp {
    /// Status, headers and (the start of) the body, for assertion messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t: String = self.text().chars().take(2000).collect();
        write!(f, "HTTP {} {:?} {t}", self.status, self.headers)
    }
}

/// Asserts an error response: status, JSON body with a non-empty `error`
/// string and the given `code`. Returns the body.
pub fn assert_error(r: &Resp, status: u16, code: &str) -> Value {
    assert_eq!(
        r.status,
        status,
        "expected {status} {code}, got {} {}",
        r.status,
        r.text()
    );
    let v = r.json();
    assert!(
        v["error"].as_str().is_some_and(|s| !s.is_empty()),
        "error body lacks a non-empty \"error\": {v}"
    );
    assert_eq!(v["code"], code, "wrong error code in {v}");
    if let Some(ct) = r.header("content-type") {
        assert!(
            ct.starts_with("application/json"),
            "error content-type {ct}"
        );
    }
    v
}

/// The bytes of one request: a `Host` header unless `headers` has one (an
/// empty `Host` value sends none), `Content-Length` unless given (left out for
/// a GET without a body), and `Connection: close` when `close` is set.
pub fn build_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !has("host") {
        req.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        // A Host header with an empty value means "send no Host header".
        if k.eq_ignore_ascii_case("host") && v.is_empty() {
            continue;
        }
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has("content-length") && !has("transfer-encoding") && (!body.is_empty() || method != "GET")
    {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    if close && !has("connection") {
        req.push_str("Connection: close\r\n");
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A TCP connection to the daemon on `127.0.0.1:port` (30 s I/O timeouts).
pub fn connect(port: u16) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(30)))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// One request on a fresh connection (`Connection: close`).
pub fn try_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Resp> {
    let s = connect(port)?;
    let bytes = build_request(port, method, path, headers, body, true);
    raw_exchange_on(s, &bytes)
}

/// One request on a fresh connection; panics on I/O errors.
pub fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    try_request(port, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} on port {port}: {e}"))
}

/// Writes raw bytes (ignoring write errors: the server may answer early and
/// close) and reads one response.
pub fn raw_exchange(port: u16, bytes: &[u8]) -> io::Result<Resp> {
    raw_exchange_on(connect(port)?, bytes)
}

fn raw_exchange_on(mut s: TcpStream, bytes: &[u8]) -> io::Result<Resp> {
    let write_err = s.write_all(bytes).and_then(|_| s.flush()).err();
    let mut r = BufReader::new(s);
    match read_response(&mut r) {
        Ok(resp) => Ok(resp),
        Err(e) => Err(match write_err {
            Some(we) => io::Error::new(e.kind(), format!("{e} (after write error: {we})")),
            None => e,
        }),
    }
}

fn read_line_crlf(r: &mut impl BufRead) -> io::Result<String> {
    let mut buf = Vec::new();
    let n = r.read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    while buf.last() == Some(&b'\n') || buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Reads a status line and headers (names lowercased) up to the blank line.
pub fn read_head(r: &mut impl BufRead) -> io::Result<(u16, Vec<(String, String)>)> {
    let status_line = read_line_crlf(r)?;
    let mut parts = status_line.splitn(3, ' ');
    let _version = parts.next();
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad status line {status_line:?}"),
        )
    })?;
    let mut headers = Vec::new();
    loop {
        let line = read_line_crlf(r)?;
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok((status, headers))
}

fn header_of<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// True if `Transfer-Encoding` says chunked.
pub fn is_chunked(headers: &[(String, String)]) -> bool {
    header_of(headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
}

/// Reads one chunk of a chunked body: `Ok(None)` at the terminating chunk
/// (whose trailers it consumes).
pub fn read_chunk(r: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let line = read_line_crlf(r)?;
    let size_s = line.split(';').next().unwrap_or("").trim();
    let size = usize::from_str_radix(size_s, 16).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad chunk size {line:?}"),
        )
    })?;
    if size == 0 {
        while !read_line_crlf(r)?.is_empty() {}
        return Ok(None);
    }
    let mut chunk = vec![0u8; size];
    r.read_exact(&mut chunk)?;
    if !read_line_crlf(r)?.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "chunk not followed by CRLF",
        ));
    }
    Ok(Some(chunk))
}

/// Reads one full response (Content-Length, chunked, or until EOF).
pub fn read_response(r: &mut impl BufRead) -> io::Result<Resp> {
    let (status, headers) = read_head(r)?;
    let mut body = Vec::new();
    if is_chunked(&headers) {
        while let Some(chunk) = read_chunk(r)? {
            body.extend_from_slice(&chunk);
        }
    } else if let Some(cl) = header_of(&headers, "content-length") {
        let n: usize = cl
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))?;
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if status != 204 && status != 304 && !(100..200).contains(&status) {
        r.read_to_end(&mut body)?;
    }
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// A keep-alive connection for many sequential requests (reconnects if the
/// server closes it).
pub struct HttpConn {
    port: u16,
    reader: Option<BufReader<TcpStream>>,
}

impl HttpConn {
    pub fn new(port: u16) -> HttpConn {
        HttpConn { port, reader: None }
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        for attempt in 0..2 {
            if self.reader.is_none() {
                self.reader = Some(BufReader::new(connect(self.port).expect("connect")));
            }
            let bytes = build_request(self.port, method, path, headers, body, false);
            let r = self.reader.as_mut().unwrap();
            let res = r.get_mut().write_all(&bytes).and_then(|_| read_response(r));
            match res {
                Ok(resp) => {
                    let close = resp
                        .header("connection")
                        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
                    if close {
                        self.reader = None;
                    }
                    return resp;
                }
                Err(e) => {
                    self.reader = None;
                    if attempt == 1 {
                        panic!("{method} {path}: {e}");
                    }
                }
            }
        }
        unreachable!()
    }

    pub fn post_json(&mut self, path: &str, body: &Value) -> Resp {
        let b = serde_json::to_vec(body).unwrap();
        self.request("POST", path, &[("Content-Type", "application/json")], &b)
    }

    /// Publishes an event; returns its id.
    pub fn publish(&mut self, ty: &str, source: &str, data: Value) -> u64 {
        let r = self.post_json(
            "/events",
            &json!({"type": ty, "source": source, "data": data}),
        );
        assert_eq!(r.status, 202, "POST /events: {}", r.text());
        r.json()["id"].as_u64().expect("id")
    }
}

// ---------------------------------------------------------------------------
// SSE client

#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Option<String>,
    pub retry: Option<u64>,
    pub comments: Vec<String>,
}

impl Frame {
    pub fn id_u64(&self) -> Option<u64> {
        self.id.as_deref().and_then(|s| s.trim().parse().ok())
    }
    pub fn json(&self) -> Value {
        let d = self.data.as_deref().unwrap_or("");
        serde_json::from_str(d).unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {d:?}"))
    }
    /// True for a frame carrying an event (has `event:` or `data:`).
    pub fn is_event(&self) -> bool {
        self.event.is_some() || self.data.is_some()
    }
}

pub struct SseClient {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    stream: TcpStream,
    raw: Vec<u8>,
    chunked: bool,
    text: Vec<u8>,
    cur: Frame,
    frames: VecDeque<Frame>,
    /// Every comment line seen so far (without the leading `:` and space).
    pub comments: Vec<String>,
    pub closed: bool,
}

impl SseClient {
    /// Connects to `path` (e.g. `/events/stream?type=app.*`) with extra
    /// headers. `Err` carries a non-200 response.
    pub fn open(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<SseClient, Resp> {
        let mut s = connect(port).expect("connect SSE");
        let mut h: Vec<(&str, &str)> = vec![("Accept", "text/event-stream")];
        h.extend_from_slice(headers);
        let bytes = build_request(port, "GET", path, &h, b"", false);
        s.write_all(&bytes).expect("write SSE request");
        // Read the head byte by byte-ish through a small buffer we keep.
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        let head_end;
        loop {
            if let Some(p) = find(&raw, b"\r\n\r\n") {
                head_end = p + 4;
                break;
            }
            let n = s.read(&mut buf).expect("read SSE head");
            if n == 0 {
                panic!(
                    "SSE connection closed before headers: {:?}",
                    String::from_utf8_lossy(&raw)
                );
            }
            raw.extend_from_slice(&buf[..n]);
        }
        let mut cursor = io::Cursor::new(raw[..head_end].to_vec());
        let (status, headers) = read_head(&mut cursor).expect("parse SSE head");
        let rest = raw[head_end..].to_vec();
        if status != 200 {
            // Read the whole (error) response.
            let mut all = raw[..head_end].to_vec();
            all.extend_from_slice(&rest);
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut chain = BufReader::new(io::Cursor::new(all).chain(s));
            return Err(read_response(&mut chain).expect("read SSE error response"));
        }
        let chunked = is_chunked(&headers);
        let mut c = SseClient {
            status,
            headers,
            stream: s,
            raw: rest,
            chunked,
            text: Vec::new(),
            cur: Frame::default(),
            frames: VecDeque::new(),
            comments: Vec::new(),
            closed: false,
        };
        // Body bytes that arrived together with the head.
        c.process();
        Ok(c)
    }

    /// Like `open` but panics on a non-200 answer.
    pub fn connect(port: u16, path: &str, headers: &[(&str, &str)]) -> SseClient {
        match SseClient::open(port, path, headers) {
            Ok(c) => c,
            Err(r) => panic!("SSE {path}: {} {}", r.status, r.text()),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header_of(&self.headers, name)
    }

    /// Decodes as much of `raw` as possible into `text`, then frames.
    fn process(&mut self) {
        if self.chunked {
            while let Some(le) = find(&self.raw, b"\r\n") {
                let line = String::from_utf8_lossy(&self.raw[..le]).into_owned();
                let size_s = line.split(';').next().unwrap_or("").trim().to_string();
                let Ok(size) = usize::from_str_radix(&size_s, 16) else {
                    panic!("bad chunk size line {line:?}");
                };
                if size == 0 {
                    self.closed = true;
                    self.raw.clear();
                    break;
                }
                if self.raw.len() < le + 2 + size + 2 {
                    break;
                }
                let data = self.raw[le + 2..le + 2 + size].to_vec();
                self.text.extend_from_slice(&data);
                self.raw.drain(..le + 2 + size + 2);
            }
        } else {
            let r = std::mem::take(&mut self.raw);
            self.text.extend_from_slice(&r);
        }
        // parse lines
        while let Some(nl) = self.text.iter().position(|&b| b == b'\n') {
            let mut line = self.text[..nl].to_vec();
            self.text.drain(..=nl);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() {
                let f = std::mem::take(&mut self.cur);
                if f.is_event() || f.id.is_some() || f.retry.is_some() || !f.comments.is_empty() {
                    self.frames.push_back(f);
                }
                continue;
            }
            if let Some(c) = line.strip_prefix(':') {
                let c = c.strip_prefix(' ').unwrap_or(c).to_string();
                self.comments.push(c.clone());
                self.cur.comments.push(c);
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f.to_string(), v.strip_prefix(' ').unwrap_or(v).to_string()),
                None => (line.clone(), String::new()),
            };
            match field.as_str() {
                "id" => self.cur.id = Some(value),
                "event" => self.cur.event = Some(value),
                "data" => {
                    self.cur.data = Some(match self.cur.data.take() {
                        Some(d) => format!("{d}\n{value}"),
                        None => value,
                    })
                }
                "retry" => self.cur.retry = value.trim().parse().ok(),
                _ => {}
            }
        }
    }

    /// Reads from the socket once (waiting at most `wait`). Returns false on
    /// EOF or error.
    fn fill(&mut self, wait: Duration) -> bool {
        if self.closed {
            return false;
        }
        let wait = wait.max(Duration::from_millis(1));
        let _ = self.stream.set_read_timeout(Some(wait));
        let mut buf = [0u8; 65536];
        match self.stream.read(&mut buf) {
            Ok(0) => {
                self.closed = true;
                false
            }
            Ok(n) => {
                self.raw.extend_from_slice(&buf[..n]);
                self.process();
                true
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                true
            }
            Err(_) => {
                self.closed = true;
                false
            }
        }
    }

    /// Next frame of any kind (retry, comment-only, event), or `None` when
    /// the timeout passes or the stream ends.
    pub fn next_frame(&mut self, timeout: Duration) -> Option<Frame> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(f) = self.frames.pop_front() {
                return Some(f);
            }
            if self.closed {
                return None;
            }
            let now = Instant::now();
            if now >= end {
                return None;
            }
            self.fill((end - now).min(Duration::from_millis(200)));
        }
    }

    /// Next frame that carries an event (skips retry and comment frames).
    pub fn next_event(&mut self, timeout: Duration) -> Option<Frame> {
        let end = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if now >= end {
                return None;
            }
            let f = self.next_frame(end - now)?;
            if f.is_event() {
                return Some(f);
            }
        }
    }

    /// Next event frame, panicking after `timeout`.
    pub fn expect_event(&mut self, timeout: Duration) -> Frame {
        match self.next_event(timeout) {
            Some(f) => f,
            None => panic!("no SSE event within {timeout:?} (closed: {})", self.closed),
        }
    }

    /// Waits until the server closes the stream, collecting remaining frames.
    /// Returns `None` if still open after `timeout`.
    pub fn read_until_closed(&mut self, timeout: Duration) -> Option<Vec<Frame>> {
        let end = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            while let Some(f) = self.frames.pop_front() {
                out.push(f);
            }
            if self.closed {
                return Some(out);
            }
            let now = Instant::now();
            if now >= end {
                return None;
            }
            self.fill((end - now).min(Duration::from_millis(200)));
        }
    }

    /// Polls the socket until a comment line equal to `text` arrived.
    pub fn wait_comment(&mut self, text: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if self.comments.iter().any(|c| c.trim() == text) {
                return true;
            }
            if self.closed {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            self.fill((end - now).min(Duration::from_millis(200)));
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Checks the RFC 3339 UTC millisecond timestamp shape `2026-01-10T12:00:00.123Z`.
pub fn is_rfc3339_ms(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 24 {
        return false;
    }
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22];
    digits.iter().all(|&i| b[i].is_ascii_digit())
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
}

/// Run `useradd ARGS`, retrying while another test holds the passwd lock
/// (tests that create users run in parallel in one binary). Returns the last
/// attempt's output.
pub fn useradd(args: &[&str]) -> std::process::Output {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = std::process::Command::new("useradd")
            .args(args)
            .output()
            .expect("run useradd");
        let locked = String::from_utf8_lossy(&out.stderr).contains("lock");
        if out.status.success() || !locked || std::time::Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
