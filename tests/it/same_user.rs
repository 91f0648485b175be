//! Same user only (API.md §9, issue 13 part 1): a connection from another uid
//! gets `403 forbidden` on every route but `GET /health`, even with the
//! token; `allow_users` lets a chosen user in. Needs root to create the second
//! user (CI runs as root); skipped with a printed reason otherwise.

use crate::common;

use common::*;
use std::process::{Command, Stdio};

const PEER_USER: &str = "orchestratr-peer";

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0")
}

/// Create the second user (idempotent). `false` if it cannot be created.
fn ensure_user() -> bool {
    let exists = Command::new("id")
        .arg("-u")
        .arg(PEER_USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if exists {
        return true;
    }
    let made = common::useradd(&[
        "--system",
        "--no-create-home",
        "--shell",
        "/bin/sh",
        PEER_USER,
    ])
    .status
    .success();
    // A parallel creation by another test process also counts.
    made || Command::new("id")
        .arg("-u")
        .arg(PEER_USER)
        .status()
        .is_ok_and(|s| s.success())
}

/// One raw HTTP/1.1 request sent AS `PEER_USER` (bash's /dev/tcp, so no
/// client tool is needed): `(status, body)`.
fn as_peer(port: u16, method: &str, path: &str, extra: &str) -> (u16, String) {
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port} && printf '{method} {path} HTTP/1.1\\r\\nHost: 127.0.0.1:{port}\\r\\n{extra}Connection: close\\r\\nContent-Length: 0\\r\\n\\r\\n' >&3 && timeout 10 cat <&3"
    );
    let out = Command::new("runuser")
        .args(["-u", PEER_USER, "--", "bash", "-c", &script])
        .output()
        .expect("runuser");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn another_user_gets_403_except_on_health_and_allow_users_lets_them_in() {
    if !is_root() {
        eprintln!("SKIPPED: same-user test needs root to create a second user with useradd");
        return;
    }
    if !ensure_user() {
        eprintln!("SKIPPED: useradd {PEER_USER} failed");
        return;
    }
    let d = Daemon::start("apps:\n  - name: x\n    command: \"sleep 300\"\n");
    let auth = format!("Authorization: Bearer {}\\r\\n", d.token);

    let (s, b) = as_peer(d.port, "GET", "/health", "");
    assert_eq!(s, 200, "health must stay open to every user: {b}");
    for (m, p) in [
        ("GET", "/events"),
        ("GET", "/events/stream"),
        ("GET", "/apps"),
        ("GET", "/api/apps/x"),
        ("POST", "/apps/x/launched"),
        ("POST", "/events"),
        ("GET", "/no/such/route"),
    ] {
        let (s, b) = as_peer(d.port, m, p, "");
        assert_eq!(s, 403, "{m} {p} from another uid: {b}");
        assert!(b.contains("\"code\":\"forbidden\""), "{m} {p}: {b}");
        // A valid token does not let another uid in.
        let (s, b) = as_peer(d.port, m, p, &auth);
        assert_eq!(s, 403, "{m} {p} from another uid with the token: {b}");
    }
    // The owner is served as before.
    assert_eq!(d.get("/events").status, 200);
    assert_eq!(d.get("/apps").status, 200);

    // allow_users (by name) lets that user in after a reload.
    let cfg =
        format!("allow_users: [{PEER_USER}]\napps:\n  - name: x\n    command: \"sleep 300\"\n");
    std::fs::write(d.cfg_dir.join("config.yml"), cfg).expect("write config");
    let (st, v) = d.post_auth("/reload");
    assert_eq!(st, 200, "{v}");
    wait_for(DEADLINE, "allow_users applies", || {
        as_peer(d.port, "GET", "/apps", "").0 == 200
    });
    let (s, b) = as_peer(d.port, "GET", "/events", "");
    assert_eq!(s, 200, "{b}");
    // Token routes still need the token.
    let (s, _) = as_peer(d.port, "POST", "/shutdown", "");
    assert_eq!(s, 401);
}

#[test]
fn an_unknown_user_name_in_allow_users_is_a_config_error() {
    let dirs = Dirs::new();
    dirs.write(
        "config.yml",
        "allow_users: [no-such-user-orchestratr-x]\nmax_connections: 0\n",
    );
    let err = match Daemon::try_start_in(dirs, &[]) {
        Ok(_) => panic!("daemon started with an unknown user in allow_users"),
        Err(e) => e,
    };
    assert!(err.contains("no-such-user-orchestratr-x"), "{err}");
    assert!(
        err.contains("max_connections 0 is out of range: allowed 1..=65536"),
        "{err}"
    );
}

/// Issue 7 part 2: running out of threads refuses connections but never kills
/// or deafens the daemon. RLIMIT_NPROC does not bind root, so the daemon runs
/// as the second user with `ulimit -u 40`.
#[test]
fn thread_exhaustion_refuses_connections_but_the_daemon_lives() {
    if !is_root() {
        eprintln!("SKIPPED: thread-limit test needs root to run the daemon as a second user");
        return;
    }
    if !ensure_user() {
        eprintln!("SKIPPED: useradd {PEER_USER} failed");
        return;
    }
    let dirs = Dirs::new();
    dirs.write("config.yml", "apps: []\n");
    let chown = |p: &std::path::Path| {
        Command::new("chown")
            .args(["-R", PEER_USER])
            .arg(p)
            .status()
            .expect("chown");
    };
    chown(&dirs.cfg);
    chown(&dirs.state);
    Command::new("chmod")
        .arg("755")
        .arg(dirs.scratch())
        .status()
        .expect("chmod");
    let log = dirs.scratch().join("limited.log");
    let script = format!(
        "ulimit -u 40 && exec env ORCHESTRATR_CONFIG_DIR='{}' ORCHESTRATR_STATE_DIR='{}' '{}' serve --port 0 2>'{}'",
        dirs.cfg.display(),
        dirs.state.display(),
        BIN,
        log.display()
    );
    std::fs::write(&log, "").expect("log");
    chown(&log);
    let _runner = ChildGuard::spawn(
        Command::new("runuser")
            .args(["-u", PEER_USER, "--", "bash", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    );
    let port = wait_some(DEADLINE, "port file", || dirs.read_port());
    let pid: u32 = wait_some(DEADLINE, "pid file", || {
        std::fs::read_to_string(dirs.state.join("orchestratr.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    });
    let _daemon = PidGuard(pid);

    let mut idle = Vec::new();
    for _ in 0..80 {
        if let Ok(s) = connect(port) {
            idle.push(s);
        }
    }
    let hit = wait_until(DEADLINE, || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("cannot spawn a connection thread"))
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(hit, "the thread limit was never reached; log:\n{text}");
    assert!(
        pid_alive(pid),
        "daemon died under the thread limit; log:\n{text}"
    );
    drop(idle);
    let ok = wait_until(DEADLINE, || {
        try_request(port, "GET", "/health", &[], b"").is_ok_and(|r| r.status == 200)
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ok, "daemon deaf after the thread limit; log:\n{text}");
    assert!(!text.contains("panicked"), "{text}");
}
