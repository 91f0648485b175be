//! The daemon never stays up deaf: resource exhaustion in the accept loop must
//! not kill the listener (DESIGN.md §4, issue "If the HTTP listener dies, the
//! daemon rebinds or exits non-zero; it never stays up deaf").

use crate::common;

use common::*;
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn file_descriptor_exhaustion_does_not_make_the_daemon_deaf() {
    let dirs = Dirs::new();
    // A tiny fd limit for the daemon only, so 60 simultaneous connections exhaust it.
    let log = dirs.scratch().join("daemon.log");
    let bin = env!("CARGO_BIN_EXE_orchestratr");
    let mut sh = std::process::Command::new("/bin/sh");
    sh.arg("-c")
        .arg("ulimit -n 48 && exec \"$0\" serve --port 0")
        .arg(bin)
        .env("ORCHESTRATR_CONFIG_DIR", &dirs.cfg)
        .env("ORCHESTRATR_STATE_DIR", &dirs.state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    let mut daemon = ChildGuard::spawn(&mut sh);
    let port = wait_some(Duration::from_secs(20), "port file", || dirs.read_port());

    // Exhaust the daemon's descriptors with idle connections.
    let mut conns = Vec::new();
    for _ in 0..80 {
        match TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)) {
            Ok(s) => conns.push(s),
            Err(_) => break,
        }
    }
    assert!(conns.len() >= 40, "only {} connections opened", conns.len());
    // Hold them until the daemon has actually hit the limit.
    let hit = wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("Too many open files"))
    });
    assert!(
        hit,
        "the daemon never ran out of descriptors; the test did not test anything"
    );
    drop(conns);

    // Once the connections are gone the daemon answers again on the same port.
    let ok = wait_until(Duration::from_secs(20), || {
        let r = raw_get(port, "/health");
        r.is_some_and(|(status, body)| status == 200 && body.contains("\"status\":\"ok\""))
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ok, "daemon deaf after fd exhaustion; log:\n{text}");
    assert!(!text.contains("panicked"), "accept path panicked:\n{text}");
    assert_eq!(dirs.read_port(), Some(port), "port changed");
    daemon.kill_and_reap();
}

/// `GET path` on a fresh connection: `(status, body)`, or `None` on any I/O error.
fn raw_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Some((status, body))
}
