//! Launching and stopping real processes (API.md §4 launch/stop, §5 app.* events).

use crate::common;

use std::os::unix::process::CommandExt;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const CFG: &str = r#"
apps:
  - name: sleeper
    command: "sleep 300"
  - name: exit3
    command: "sh -c 'exit 3'"
  - name: family
    command: "sh -c 'sleep 300 & sleep 300'"
  - name: stubborn
    command: "trap '' TERM; sleep 300"
    stop_timeout_ms: 500
  - name: readyok
    command: "sleep 300"
    ready_cmd: "true"
  - name: readyfail
    command: "sleep 300"
    ready_cmd: "false"
    ready_timeout_ms: 1000
  - name: badcwd
    command: "sleep 300"
    cwd: "/nonexistent/orchestratr-test/dir"
  - name: detached
    command: "sleep 300"
    detached: true
"#;

/// Launches `name` with the token, registers its group for cleanup, returns the pid.
fn launch(d: &mut Daemon, name: &str) -> u32 {
    let (st, v) = d.post_auth(&format!("/apps/{name}/launch"));
    assert!((200..300).contains(&st), "launch {name}: {st} {v}");
    assert_eq!(v["status"], "launched", "{v}");
    assert_eq!(v["app"], name, "{v}");
    let pid = v["pid"].as_u64().unwrap_or_else(|| panic!("pid in {v}")) as u32;
    assert!(pid > 1);
    d.kill_group_on_drop(pid);
    pid
}

fn wait_group_empty(d: &Daemon, pgid: u32) {
    let mut last = Vec::new();
    let ok = wait_until(DEADLINE, || {
        last = group_members(pgid);
        last.is_empty()
    });
    assert!(
        ok,
        "process group {pgid} still has live processes: {last:?}\n{}",
        d.log()
    );
}

#[test]
fn launch_is_idempotent_and_state_is_tracked() {
    let mut d = Daemon::start(CFG);
    let pid = launch(&mut d, "sleeper");
    // its own process group
    let (_, _, _, pgrp, _) = proc_stat(pid).expect("launched process exists");
    assert_eq!(pgrp, pid, "app runs in its own process group");

    let (st, v) = d.post_auth("/api/apps/sleeper/launch");
    assert!((200..300).contains(&st), "{st} {v}");
    assert_eq!(
        v,
        json!({"status": "already_running", "app": "sleeper", "pid": pid})
    );

    let s = d.wait_state("sleeper", "alive with memory_mb", |s| {
        s["alive"] == true && s["memory_mb"].is_number()
    });
    assert_eq!(s["pid"].as_u64(), Some(pid as u64), "{s}");
    assert_eq!(s["launched"], true, "{s}");
    assert_ne!(s["status"], "stopped", "{s}");
    assert!(s["memory_mb"].as_f64().unwrap() >= 0.0);
    assert!(s["launched_at"].as_str().is_some_and(is_rfc3339_ms), "{s}");
    d.wait_state("sleeper", "cpu_percent sampled", |s| {
        s["cpu_percent"].is_number()
    });
    d.wait_event(DEADLINE, "type=app.launched", |_| true);

    // stop it, then a new launch gets a new process
    let (st, v) = d.post_auth("/apps/sleeper/stop");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "stopped");
    wait_group_empty(&d, pid);
    let pid2 = launch(&mut d, "sleeper");
    assert_ne!(pid2, pid);
    let (st, _) = d.post_auth("/apps/sleeper/stop");
    assert_eq!(st, 200);
    wait_group_empty(&d, pid2);
}

#[test]
fn stop_terminates_the_whole_process_group() {
    let mut d = Daemon::start(CFG);
    let pid = launch(&mut d, "family");
    // wait for the backgrounded child to exist: at least two live processes
    wait_for(DEADLINE, "family has children", || {
        group_members(pid)
            .iter()
            .filter(|(_, c)| c == "sleep")
            .count()
            >= 2
            || group_members(pid).len() >= 3
    });
    let members = group_members(pid);
    assert!(members.len() >= 2, "{members:?}");

    let (st, v) = d.post_auth("/api/apps/family/stop");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "stopped", "{v}");
    assert_eq!(v["app"], "family", "{v}");
    assert_eq!(v["killed"], false, "SIGTERM was enough: {v}");
    assert!(
        v.get("exit_code").is_some() && v.get("signal").is_some(),
        "{v}"
    );
    assert!(!v["signal"].is_null(), "terminated by a signal: {v}");
    wait_group_empty(&d, pid);

    let s = d.wait_state("family", "stopped", |s| s["status"] == "stopped");
    assert!(s["alive"] == false || s["alive"].is_null(), "{s}");
    d.wait_event(DEADLINE, "type=app.stopped", |_| true);
}

#[test]
fn sigterm_ignoring_app_is_sigkilled() {
    let mut d = Daemon::start(CFG);
    let pid = launch(&mut d, "stubborn");
    // the trap is in place once `sleep` runs
    wait_for(DEADLINE, "stubborn's sleep is running", || {
        group_members(pid).iter().any(|(_, c)| c == "sleep")
    });
    let (st, v) = d.post_auth("/apps/stubborn/stop");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "stopped", "{v}");
    assert_eq!(v["killed"], true, "needed SIGKILL: {v}");
    let sig = v["signal"].to_string();
    assert!(
        sig.contains('9') || sig.contains("KILL"),
        "signal is SIGKILL: {v}"
    );
    wait_group_empty(&d, pid);
}

#[test]
fn app_exiting_by_itself_emits_app_exited() {
    let mut d = Daemon::start(CFG);
    let pid = launch(&mut d, "exit3");
    let ev = d.wait_event(DEADLINE, "type=app.exited", |e| e["data"]["exit_code"] == 3);
    assert!(
        ev["data"].get("signal").is_some(),
        "app.exited data has signal: {ev}"
    );
    assert!(ev["data"]["signal"].is_null(), "{ev}");
    let s = d.wait_state("exit3", "stopped with exit code", |s| {
        s["status"] == "stopped"
    });
    assert_eq!(s["exit_code"], 3, "{s}");
    assert!(s["alive"] == false || s["alive"].is_null(), "{s}");
    wait_group_empty(&d, pid);
    // nothing to stop any more
    let r = d.post_auth_resp("/apps/exit3/stop");
    assert_error(&r, 409, "not_running");
}

#[test]
fn ready_cmd_success_marks_ready() {
    let mut d = Daemon::start(CFG);
    let pid = launch(&mut d, "readyok");
    let s = d.wait_state("readyok", "ready", |s| s["ready"] == true);
    assert_eq!(s["status"], "ready", "{s}");
    assert!(s["ready_at"].as_str().is_some_and(is_rfc3339_ms), "{s}");
    d.wait_event(DEADLINE, "type=app.ready", |_| true);
    let (st, _) = d.post_auth("/apps/readyok/stop");
    assert_eq!(st, 200);
    wait_group_empty(&d, pid);
}

#[test]
fn ready_cmd_failure_times_out() {
    let mut d = Daemon::start(CFG);
    let pid = launch(&mut d, "readyfail");
    d.wait_event(DEADLINE, "type=app.ready_timeout", |_| true);
    let s = d.app_state("readyfail");
    assert_eq!(s["ready"], false, "{s}");
    assert_ne!(s["status"], "ready", "{s}");
    assert!(d.events("type=app.ready").is_empty(), "never ready");
    let _ = d.post_auth("/apps/readyfail/stop");
    wait_group_empty(&d, pid);
}

#[test]
fn spawn_failure_is_422_launch_failed() {
    let d = Daemon::start(CFG);
    let r = d.post_auth_resp("/apps/badcwd/launch");
    let v = assert_error(&r, 422, "launch_failed");
    assert!(v["error"].as_str().unwrap().len() > 3, "{v}");
    d.wait_event(DEADLINE, "type=app.launch_failed", |_| true);
    let s = d.app_state("badcwd");
    assert_eq!(s["status"], "stopped", "{s}");
    assert!(s["error"].is_string(), "state records the error: {s}");
    assert!(s["error_at"].as_str().is_some_and(is_rfc3339_ms), "{s}");
}

#[test]
fn detached_app_is_not_tracked() {
    let mut d = Daemon::start(CFG);
    let pid = launch(&mut d, "detached");
    let s = d.wait_state("detached", "launched", |s| s["status"] == "launched");
    assert!(s["alive"].is_null(), "detached apps are not tracked: {s}");
    assert!(pid_alive(pid), "the process runs");
    kill_group(pid);
    // the daemon reaps it: no zombie left behind
    wait_for(DEADLINE, "detached process reaped", || {
        match proc_stat(pid) {
            None => true,
            Some((_, state, ppid, ..)) => state != 'Z' || ppid != d.pid,
        }
    });
}

#[test]
fn stop_of_non_running_app_is_409() {
    let d = Daemon::start(CFG);
    for p in ["", "/api"] {
        let r = d.post_auth_resp(&format!("{p}/apps/sleeper/stop"));
        assert_error(&r, 409, "not_running");
    }
    let r = d.post_auth_resp("/apps/nope/stop");
    assert_error(&r, 404, "not_found");
    let r = d.post_auth_resp("/apps/nope/launch");
    assert_error(&r, 404, "not_found");
}

#[test]
fn stop_of_self_reported_pid() {
    // an app that reported its own pid can be stopped through the daemon
    let d = Daemon::start(CFG);
    // In its own process group: the daemon signals the app's group.
    let mut child = ChildGuard::spawn(
        std::process::Command::new("sleep")
            .arg("300")
            .process_group(0),
    );
    let pid = child.pid();
    let (st, v) = d.post_json("/apps/sleeper/launched", &json!({"pid": pid}));
    assert_eq!(st, 200, "{v}");
    // The test process is the parent; reap it in the background so the
    // daemon can see it go away.
    let reaper = std::thread::spawn(move || {
        let _ = child.0.wait();
        child
    });
    let (st, v) = d.post_auth("/apps/sleeper/stop");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "stopped", "{v}");
    assert!(v["exit_code"].is_null(), "not a child of the daemon: {v}");
    let _child = reaper.join().unwrap();
    d.wait_state("sleeper", "stopped", |s| s["status"] == "stopped");
}

#[test]
fn launched_apps_survive_daemon_shutdown() {
    let mut d = Daemon::start(CFG);
    let pid = launch(&mut d, "sleeper");
    let r = d.post_auth_resp("/shutdown");
    assert_eq!(r.status, 202, "{}", r.text());
    let st = d.wait_exit(DEADLINE);
    assert_eq!(st.code(), Some(0), "{}", d.log());
    assert!(
        pid_alive(pid),
        "the app keeps running after the daemon stopped"
    );
    assert!(!group_members(pid).is_empty());
    // the test cleans up (Drop also kills the registered group)
    kill_group(pid);
    wait_for(DEADLINE, "app killed", || !pid_alive(pid));
}

#[test]
fn launch_emits_events_with_app_name() {
    let mut d = Daemon::start(CFG);
    let pid = launch(&mut d, "sleeper");
    let ev: Value = d.wait_event(DEADLINE, "type=app.launched", |_| true);
    assert!(
        ev.to_string().contains("sleeper"),
        "app.launched names the app: {ev}"
    );
    let _ = d.post_auth("/apps/sleeper/stop");
    wait_group_empty(&d, pid);
    let _ = Duration::ZERO;
}

#[test]
fn app_env_cwd_and_tilde_expansion() {
    let dirs = Dirs::new();
    let home = dirs.scratch().join("home");
    let work = home.join("work");
    let out = dirs.scratch().join("out");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let out_s = out.display().to_string();
    dirs.write(
        "config.yml",
        &format!(
            "apps:\n  - name: envdump\n    command: \"pwd > {out_s}/pwd.txt; env > {out_s}/env.tmp && mv {out_s}/env.tmp {out_s}/env.txt\"\n    cwd: \"~/work\"\n    env:\n      FOO: \"bar baz\"\n"
        ),
    );
    let home_s = home.display().to_string();
    let mut d = Daemon::start_env(
        dirs,
        &[],
        &[
            ("HOME", home_s.as_str()),
            ("NOTIFY_SOCKET", "/nonexistent/notify.sock"),
            ("LISTEN_FDS", "3"),
        ],
    );
    let pid = launch(&mut d, "envdump");
    let env_txt = out.join("env.txt");
    wait_for(DEADLINE, "the app wrote its environment", || {
        env_txt.exists()
    });
    let env = std::fs::read_to_string(&env_txt).unwrap();
    let pwd = std::fs::read_to_string(out.join("pwd.txt")).unwrap();
    assert_eq!(
        std::fs::canonicalize(pwd.trim()).unwrap(),
        std::fs::canonicalize(&work).unwrap(),
        "cwd with ~ expanded"
    );
    assert!(
        env.lines().any(|l| l == "FOO=bar baz"),
        "env applied:\n{env}"
    );
    assert!(
        !env.lines().any(|l| l.starts_with("NOTIFY_SOCKET=")),
        "NOTIFY_SOCKET stripped:\n{env}"
    );
    assert!(
        !env.lines().any(|l| l.starts_with("LISTEN_FDS=")),
        "LISTEN_FDS stripped:\n{env}"
    );
    d.wait_event(DEADLINE, "type=app.exited", |e| e["data"]["exit_code"] == 0);
    wait_group_empty(&d, pid);
}

#[test]
fn externally_killed_app_reports_signal() {
    let mut d = Daemon::start(CFG);
    let pid = launch(&mut d, "sleeper");
    d.wait_state("sleeper", "alive", |s| s["alive"] == true);
    kill_group(pid);
    let ev = d.wait_event(DEADLINE, "type=app.exited", |_| true);
    assert!(ev["data"]["exit_code"].is_null(), "{ev}");
    assert!(!ev["data"]["signal"].is_null(), "killed by a signal: {ev}");
    let s = d.wait_state("sleeper", "stopped", |s| s["status"] == "stopped");
    assert!(s["alive"] == false || s["alive"].is_null(), "{s}");
    let r = d.post_auth_resp("/apps/sleeper/stop");
    assert_error(&r, 409, "not_running");
}
