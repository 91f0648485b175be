//! The CLI client, daemon lifecycle, discovery files and signals.

use crate::common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;

use common::*;
use serde_json::{Value, json};

const CFG: &str = r#"
apps:
  - name: sleeper
    command: "sleep 300"
    description: "sleeps"
  - name: alpha
    command: "sleep 300"
"#;

fn json_out(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", describe(o)))
}

fn assert_code(o: &std::process::Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "expected exit {code}\n{}",
        describe(o)
    );
}

#[test]
fn status_without_daemon_exits_3() {
    let dirs = Dirs::new();
    let o = dirs.cli(&["status"], &[]);
    assert_code(&o, 3);
    let o = dirs.cli(&["status", "--json"], &[]);
    assert_code(&o, 3);
    let v = json_out(&o);
    assert_eq!(v["running"], false, "{v}");
}

#[test]
fn status_with_daemon() {
    let d = Daemon::start(CFG);
    let o = d.cli(&["status"]);
    assert_code(&o, 0);
    assert!(!stdout_str(&o).trim().is_empty());
    let o = d.cli(&["status", "--json"]);
    assert_code(&o, 0);
    let v = json_out(&o);
    assert_eq!(v["running"], true, "{v}");
    assert_eq!(v["pid"].as_u64(), Some(d.pid as u64), "{v}");
    assert_eq!(v["port"].as_u64(), Some(d.port as u64), "{v}");
    assert_eq!(v["version"], "0.1.0", "{v}");
    assert!(v["uptime_seconds"].is_u64(), "{v}");
    assert!(
        v["url"]
            .as_str()
            .is_some_and(|u| u.contains(&d.port.to_string())),
        "{v}"
    );
    // global options also work before the subcommand
    let o = d.cli(&["--url", &d.url(), "status", "--json"]);
    assert_code(&o, 0);
}

#[test]
fn discovery_files() {
    let d = Daemon::start(CFG);
    let port = fs::read_to_string(d.dirs.port_file()).unwrap();
    assert_eq!(
        port,
        format!("{}\n", d.port),
        "port file is the port plus newline"
    );
    let pid = fs::read_to_string(d.dirs.pid_file()).unwrap();
    assert_eq!(pid.trim(), d.pid.to_string(), "pid file");
    assert_eq!(d.token.len(), 64);
    assert!(d.token.chars().all(|c| c.is_ascii_hexdigit()));
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(d.dirs.token_file())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // the token is never logged
    assert!(
        !d.log().contains(&d.token),
        "token appears in the daemon log"
    );
}

#[test]
fn apps_command() {
    let d = Daemon::start(CFG);
    let o = d.cli(&["apps", "--json"]);
    assert_code(&o, 0);
    let v = json_out(&o);
    assert_eq!(v["total"], 2, "{v}");
    let names: Vec<&str> = v["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "sleeper"]);
    let o = d.cli(&["apps"]);
    assert_code(&o, 0);
    let out = stdout_str(&o);
    assert!(out.contains("alpha") && out.contains("sleeper"), "{out}");
}

#[test]
fn launch_and_stop_app_commands() {
    let mut d = Daemon::start(CFG);
    let o = d.cli(&["launch", "sleeper", "--json"]);
    assert_code(&o, 0);
    let v = json_out(&o);
    assert_eq!(v["status"], "launched", "{v}");
    let pid = v["pid"].as_u64().unwrap() as u32;
    d.kill_group_on_drop(pid);
    let o = d.cli(&["launch", "sleeper"]);
    assert_code(&o, 0);
    assert!(
        stdout_str(&o).contains(&pid.to_string()),
        "already running with the same pid\n{}",
        describe(&o)
    );

    let o = d.cli(&["stop-app", "sleeper", "--json"]);
    assert_code(&o, 0);
    let v = json_out(&o);
    assert_eq!(v["status"], "stopped", "{v}");
    wait_for(DEADLINE, "sleeper gone", || group_members(pid).is_empty());

    // error answers → exit 1 with a message on stderr
    let o = d.cli(&["stop-app", "sleeper"]);
    assert_code(&o, 1);
    assert!(!stderr_str(&o).trim().is_empty(), "{}", describe(&o));
    let o = d.cli(&["launch", "nope"]);
    assert_code(&o, 1);
    assert!(!stderr_str(&o).trim().is_empty(), "{}", describe(&o));

    // plain launch + stop-app
    let o = d.cli(&["launch", "alpha"]);
    assert_code(&o, 0);
    let st = d.app_state("alpha");
    let pid = st["pid"].as_u64().unwrap() as u32;
    d.kill_group_on_drop(pid);
    let o = d.cli(&["stop-app", "alpha"]);
    assert_code(&o, 0);
    wait_for(DEADLINE, "alpha gone", || group_members(pid).is_empty());
}

#[test]
fn reload_command() {
    let d = Daemon::start(CFG);
    let o = d.cli(&["reload"]);
    assert_code(&o, 0);
    let o = d.cli(&["reload", "--json"]);
    assert_code(&o, 0);
    let v = json_out(&o);
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["total"], 2, "{v}");

    d.dirs
        .write("config.yml", "apps:\n  - name: a\n    command: [broken\n");
    let o = d.cli(&["reload"]);
    assert_code(&o, 1);
    assert!(stderr_str(&o).contains("config.yml"), "{}", describe(&o));
}

#[test]
fn emit_and_events_commands() {
    let d = Daemon::start(CFG);
    let o = d.cli(&[
        "emit",
        "cli.test",
        "--source",
        "clitest",
        "--data",
        r#"{"a":1}"#,
    ]);
    assert_code(&o, 0);
    let id: u64 = stdout_str(&o)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("emit prints the id\n{}", describe(&o)));
    let o = d.cli(&[
        "emit",
        "cli.other",
        "--source",
        "clitest",
        "--target",
        "alpha",
    ]);
    assert_code(&o, 0);
    let id2: u64 = stdout_str(&o).trim().parse().unwrap();
    assert!(id2 > id);

    let o = d.cli(&["events", "--type", "cli.test", "--json"]);
    assert_code(&o, 0);
    let lines: Vec<Value> = stdout_str(&o)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("line is not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["id"], id);
    assert_eq!(lines[0]["type"], "cli.test");
    assert_eq!(lines[0]["source"], "clitest");
    assert_eq!(lines[0]["data"], json!({"a": 1}));

    // the HTTP view agrees
    let evs = d.events(&format!("since={}&type=cli.*", id - 1));
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[1]["target"], "alpha", "{:?}", evs[1]);
    assert_eq!(evs[1]["data"], json!({}));

    // filters of the events command
    let o = d.cli(&["events", "--target", "alpha", "--json"]);
    assert_code(&o, 0);
    assert!(
        stdout_str(&o).contains("cli.other") && !stdout_str(&o).contains("\"cli.test\""),
        "{}",
        describe(&o)
    );
    let o = d.cli(&[
        "events",
        "--source",
        "clitest",
        "--since",
        &id.to_string(),
        "--limit",
        "5",
        "--json",
    ]);
    assert_code(&o, 0);
    let n = stdout_str(&o)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    assert_eq!(n, 1, "{}", describe(&o));
    let o = d.cli(&["events"]);
    assert_code(&o, 0);
    assert!(stdout_str(&o).contains("cli.test"), "{}", describe(&o));

    // a bad type is an error answer
    let o = d.cli(&["emit", "Bad Type", "--source", "s"]);
    assert_code(&o, 1);
    // --source is required: usage error
    let o = d.cli(&["emit", "x.y"]);
    assert_code(&o, 2);
}

#[test]
fn events_follow() {
    let d = Daemon::start(CFG);
    let first = d.publish("follow.a", "t", json!({"n": 1}));
    let mut cmd = d.dirs.command();
    cmd.args([
        "events",
        "--follow",
        "--json",
        "--type",
        "follow.*",
        "--since",
        &(first - 1).to_string(),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut child = ChildGuard::spawn(&mut cmd);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_event = |rx: &mpsc::Receiver<String>| -> Value {
        loop {
            let line = rx
                .recv_timeout(DEADLINE)
                .expect("a line from events --follow");
            if line.trim().is_empty() {
                continue;
            }
            return serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        }
    };
    let v = next_event(&rx);
    assert_eq!(v["id"], first, "replayed from --since: {v}");
    let second = d.publish("follow.b", "t", json!({"n": 2}));
    d.publish("other.x", "t", json!({}));
    let third = d.publish("follow.c", "t", json!({"n": 3}));
    let v = next_event(&rx);
    assert_eq!(v["id"], second, "{v}");
    let v = next_event(&rx);
    assert_eq!(v["id"], third, "filtered by type: {v}");
    child.kill_and_reap();
    let _ = reader.join();
}

#[test]
fn no_daemon_exits_3_with_message() {
    let dirs = Dirs::new();
    for args in [
        &["apps"][..],
        &["apps", "--json"],
        &["launch", "x"],
        &["stop-app", "x"],
        &["reload"],
        &["emit", "a.b", "--source", "s"],
        &["events"],
        &["stop"],
    ] {
        let o = dirs.cli(args, &[]);
        assert_code(&o, 3);
        let err = stderr_str(&o).to_lowercase();
        assert!(
            err.contains("not running"),
            "{args:?}: clear message\n{}",
            describe(&o)
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let dirs = Dirs::new();
    let o = dirs.cli(&["no-such-command"], &[]);
    assert_code(&o, 2);
    let o = dirs.cli(&["launch"], &[]);
    assert_code(&o, 2);
    let o = dirs.cli(&["events", "--limit", "many"], &[]);
    assert_code(&o, 2);
}

#[test]
fn url_and_token_overrides() {
    let mut d = Daemon::start(CFG);
    // a client with other (empty) directories: no port file, no token
    let other = Dirs::new();
    let url = d.url();
    let o = other.cli(&["status", "--json", "--url", &url], &[]);
    assert_code(&o, 0);
    assert_eq!(json_out(&o)["pid"].as_u64(), Some(d.pid as u64));
    let o = other.cli(&["apps", "--json"], &[("ORCHESTRATR_URL", &url)]);
    assert_code(&o, 0);
    assert_eq!(json_out(&o)["total"], 2);

    // no token available → the daemon answers 401 → exit 1
    let o = other.cli(&["launch", "sleeper"], &[("ORCHESTRATR_URL", &url)]);
    assert_code(&o, 1);
    let o = other.cli(
        &[
            "--token",
            &"0".repeat(64),
            "launch",
            "sleeper",
            "--url",
            &url,
        ],
        &[],
    );
    assert_code(&o, 1);
    assert!(d.app_state("sleeper")["status"] == "stopped");

    // --token flag
    let o = other.cli(
        &[
            "launch", "sleeper", "--json", "--url", &url, "--token", &d.token,
        ],
        &[],
    );
    assert_code(&o, 0);
    let pid = json_out(&o)["pid"].as_u64().unwrap() as u32;
    d.kill_group_on_drop(pid);
    // ORCHESTRATR_TOKEN env
    let o = other.cli(
        &["stop-app", "sleeper"],
        &[("ORCHESTRATR_URL", &url), ("ORCHESTRATR_TOKEN", &d.token)],
    );
    assert_code(&o, 0);
    wait_for(DEADLINE, "sleeper gone", || group_members(pid).is_empty());

    // --url to a dead port → not running
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let o = other.cli(&["status", "--url", &dead], &[]);
    assert_code(&o, 3);
}

/// A port nothing listens on (bound then released).
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn second_serve_refuses_to_start() {
    let d = Daemon::start(CFG);
    let port_before = fs::read_to_string(d.dirs.port_file()).unwrap();
    let (mut child, _out, err) = d.dirs.spawn_serve(&[]);
    let st = wait_child(&mut child, DEADLINE);
    let stderr = fs::read_to_string(&err).unwrap_or_default();
    assert_eq!(st.code(), Some(1), "second serve exit code\n{stderr}");
    assert!(
        stderr.contains(&d.pid.to_string()),
        "message names the running pid:\n{stderr}"
    );
    assert!(
        stderr.contains(&d.port.to_string()),
        "message names the running port:\n{stderr}"
    );
    // the first daemon is untouched
    assert_eq!(fs::read_to_string(d.dirs.port_file()).unwrap(), port_before);
    assert_eq!(d.get("/health").status, 200);
    let o = d.cli(&["status", "--json"]);
    assert_eq!(json_out(&o)["pid"].as_u64(), Some(d.pid as u64));
}

#[test]
fn stale_files_after_kill_9() {
    let d = Daemon::start(CFG);
    let dirs = d.kill9();
    assert!(dirs.port_file().exists(), "kill -9 leaves the port file");
    // the CLI does not hang on the stale port file: exit 3
    let o = dirs.cli(&["status"], &[]);
    assert_code(&o, 3);
    let o = dirs.cli(&["apps"], &[]);
    assert_code(&o, 3);
    // a new daemon starts fine in the same directories
    let d2 = Daemon::start_in(dirs, &[]);
    assert_eq!(d2.get("/health").status, 200);
    assert_eq!(d2.dirs.read_port(), Some(d2.port));
    let o = d2.cli(&["status", "--json"]);
    assert_code(&o, 0);
    assert_eq!(json_out(&o)["pid"].as_u64(), Some(d2.pid as u64));
}

fn wait_gone(pid: u32) {
    wait_for(DEADLINE, &format!("process {pid} gone"), || !pid_alive(pid));
}

#[test]
fn start_and_stop_detached_daemon() {
    let dirs = Dirs::new();
    dirs.write("config.yml", CFG);
    let o = dirs.cli(&["start", "--port", "0", "--json"], &[]);
    assert_code(&o, 0);
    let v = json_out(&o);
    let pid = v["pid"].as_u64().unwrap_or_else(|| panic!("{v}")) as u32;
    let _guard = PidGuard(pid);
    let port = v["port"].as_u64().unwrap_or_else(|| panic!("{v}")) as u16;
    assert_eq!(
        dirs.read_port(),
        Some(port),
        "start returns once the port file is written"
    );
    let r = request(port, "GET", "/health", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["pid"].as_u64(), Some(pid as u64));
    assert!(
        dirs.state.join("orchestratr.log").exists(),
        "log under the state dir"
    );
    let o = dirs.cli(&["status"], &[]);
    assert_code(&o, 0);

    let o = dirs.cli(&["stop", "--json"], &[]);
    assert_code(&o, 0);
    let _ = json_out(&o);
    wait_gone(pid);
    assert!(!dirs.port_file().exists(), "port file removed");
    let o = dirs.cli(&["status"], &[]);
    assert_code(&o, 3);

    // plain output names pid and port
    let o = dirs.cli(&["start", "--port", "0"], &[]);
    assert_code(&o, 0);
    let port = dirs.read_port().expect("port file");
    let (_, h) = {
        let r = request(port, "GET", "/health", &[], b"");
        (r.status, r.json())
    };
    let pid = h["pid"].as_u64().unwrap() as u32;
    let _guard2 = PidGuard(pid);
    let out = stdout_str(&o);
    assert!(
        out.contains(&pid.to_string()) && out.contains(&port.to_string()),
        "{}",
        describe(&o)
    );
    let o = dirs.cli(&["stop"], &[]);
    assert_code(&o, 0);
    wait_gone(pid);
    assert!(!dirs.port_file().exists());
}

fn signal_shutdown(sig: &str) {
    let mut d = Daemon::start(CFG);
    let mut s = SseClient::connect(d.port, "/events/stream?type=daemon.*", &[]);
    d.signal(sig);
    let st = d.wait_exit(DEADLINE);
    assert_eq!(
        st.code(),
        Some(0),
        "exit after SIG{sig}: {st:?}\n{}",
        d.log()
    );
    assert!(
        !d.dirs.port_file().exists(),
        "port file removed after SIG{sig}"
    );
    // SSE clients saw daemon.stopping, then the stream ended
    let frames = s
        .read_until_closed(DEADLINE)
        .expect("stream closed on shutdown");
    assert!(
        frames
            .iter()
            .any(|f| f.event.as_deref() == Some("daemon.stopping")),
        "daemon.stopping delivered: {frames:?}"
    );
}

#[test]
fn sigterm_shutdown() {
    signal_shutdown("TERM");
}

#[test]
fn sigint_shutdown() {
    signal_shutdown("INT");
}

#[test]
fn api_port_from_config_is_used() {
    let q = dead_port();
    let dirs = Dirs::new();
    dirs.write("config.yml", &format!("api_port: {q}\n{CFG}"));
    let d = Daemon::start_raw(dirs, &["serve"], &[]);
    assert_eq!(
        d.port, q,
        "config api_port is used when --port is not given"
    );
}

#[test]
fn taken_port_falls_back_to_a_free_one() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p = held.local_addr().unwrap().port();
    // --port N taken
    let ps = p.to_string();
    let d = Daemon::start_with(CFG, &[], &["--port", &ps]);
    assert_ne!(d.port, p);
    assert_eq!(
        d.dirs.read_port(),
        Some(d.port),
        "the port file names the real port"
    );
    assert!(
        d.log().contains(&ps),
        "a warning names the taken port:\n{}",
        d.log()
    );
    drop(d);
    // api_port taken
    let dirs = Dirs::new();
    dirs.write("config.yml", &format!("api_port: {p}\n{CFG}"));
    let d = Daemon::start_raw(dirs, &["serve"], &[]);
    assert_ne!(d.port, p);
    assert_eq!(d.dirs.read_port(), Some(d.port));
    drop(held);
}

#[test]
fn stale_pid_file_of_another_process_is_replaced() {
    for content in ["1\n", "999999\n", "garbage\n", ""] {
        let dirs = Dirs::new();
        dirs.write("config.yml", CFG);
        fs::write(dirs.pid_file(), content).unwrap();
        let d = Daemon::start_in(dirs, &[]);
        let pid = fs::read_to_string(d.dirs.pid_file()).unwrap();
        assert_eq!(
            pid.trim(),
            d.pid.to_string(),
            "pid file rewritten (was {content:?})"
        );
    }
}

#[test]
fn invalid_token_file_exits_2_and_is_kept() {
    let dirs = Dirs::new();
    dirs.write("config.yml", CFG);
    dirs.write("token", "not-a-token\n");
    let (mut child, _out, err) = dirs.spawn_serve(&[]);
    let st = wait_child(&mut child, DEADLINE);
    let stderr = fs::read_to_string(&err).unwrap_or_default();
    assert_eq!(st.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("token"),
        "message mentions the token file:\n{stderr}"
    );
    assert_eq!(
        fs::read_to_string(dirs.token_file()).unwrap(),
        "not-a-token\n"
    );
    assert!(!dirs.port_file().exists());
}
