//! Transport limits (API.md §9, issue 7 parts 1-2): no client, whatever it
//! sends or withholds, makes the daemon deaf or grows its memory; every
//! connection has deadlines and size limits, and errors keep the API's JSON
//! shape. The daemons here use short deadlines (config `header_timeout_ms`,
//! `body_timeout_ms`, `idle_timeout_ms`) so the tests wait seconds, not minutes.

use crate::common;

use common::*;
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const SHORT: &str = r#"
header_timeout_ms: 1000
body_timeout_ms: 1000
idle_timeout_ms: 1500
apps:
  - name: x
    command: "sleep 300"
"#;

/// `VmRSS` or `VmHWM` of `pid` in KiB.
fn vm_kib(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn threads(pid: u32) -> u64 {
    vm_kib(pid, "Threads:")
}

/// `/health` from a new connection answers 200 (with a 10 s client timeout).
fn health_ok(port: u16) {
    let t = Instant::now();
    let r = try_request(port, "GET", "/health", &[], b"")
        .unwrap_or_else(|e| panic!("GET /health failed after {:?}: {e}", t.elapsed()));
    assert_eq!(r.status, 200, "{r}");
}

/// Reads until the peer closes (or 10 s pass); `true` if it closed.
fn closes_within(s: &mut TcpStream, limit: Duration) -> bool {
    let _ = s.set_read_timeout(Some(limit));
    let mut buf = [0u8; 4096];
    let end = Instant::now() + limit;
    while Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
    false
}

fn read_resp(s: &TcpStream) -> Resp {
    let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    read_response(&mut r).expect("a response")
}

#[test]
fn stalled_bodies_do_not_make_the_daemon_deaf() {
    let d = Daemon::start(SHORT);
    let head = format!(
        "POST /events HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n",
        d.port
    );
    // 12 connections (more than the 8 workers) announce 5000 bytes and send none.
    let mut stalled = Vec::new();
    for _ in 0..12 {
        let mut s = connect(d.port).expect("connect");
        s.write_all(head.as_bytes()).expect("write head");
        stalled.push(s);
    }
    // Two more send their body one byte a second.
    let mut tricklers = Vec::new();
    for _ in 0..2 {
        let mut s = connect(d.port).expect("connect");
        s.write_all(head.as_bytes()).expect("write head");
        let mut w = s.try_clone().expect("clone");
        let h = std::thread::spawn(move || {
            for _ in 0..30 {
                if w.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1000));
            }
        });
        tricklers.push((s, h));
    }
    for _ in 0..10 {
        health_ok(d.port);
    }
    // A stalled body gets 408 (JSON error body) and the connection is closed.
    for s in &stalled {
        let r = read_resp(s);
        assert_error(&r, 408, "bad_request");
    }
    for (s, _) in &tricklers {
        let r = read_resp(s);
        assert_error(&r, 408, "bad_request");
    }
    health_ok(d.port);
    drop(stalled);
    for (s, h) in tricklers {
        drop(s);
        let _ = h.join();
    }
}

#[test]
fn silent_connections_and_idle_keep_alive_are_closed() {
    let d = Daemon::start(SHORT);
    let mut silent: Vec<TcpStream> = (0..40).map(|_| connect(d.port).expect("connect")).collect();
    for _ in 0..5 {
        health_ok(d.port);
    }
    // A keep-alive connection that goes idle after one request.
    let mut ka = connect(d.port).expect("connect");
    ka.write_all(&build_request(d.port, "GET", "/health", &[], b"", false))
        .expect("write");
    let r = read_resp(&ka);
    assert_eq!(r.status, 200);
    assert!(
        closes_within(&mut ka, Duration::from_secs(10)),
        "idle keep-alive connection still open after idle_timeout_ms"
    );
    for s in silent.iter_mut() {
        assert!(
            closes_within(s, Duration::from_secs(10)),
            "silent connection never closed"
        );
    }
    // Headers that never complete: 408 then close.
    let mut s = connect(d.port).expect("connect");
    s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .expect("write");
    let r = read_resp(&s);
    assert_error(&r, 408, "bad_request");
    assert!(closes_within(&mut s, Duration::from_secs(10)));
    health_ok(d.port);
}

#[test]
fn giant_header_and_target_are_refused_with_flat_memory() {
    let d = Daemon::start(SHORT);
    health_ok(d.port);
    let rss0 = vm_kib(d.pid, "VmRSS:");

    // A 100 MB header line: 431, read no further than the limit.
    let s = connect(d.port).expect("connect");
    let mut w = s.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ");
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..100 {
            if w.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let r = read_resp(&s);
    assert_error(&r, 431, "bad_request");
    drop(s);
    let _ = writer.join();

    // 101 header fields: 431.
    let mut req = String::from("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for i in 0..101 {
        req.push_str(&format!("X-F{i}: v\r\n"));
    }
    req.push_str("\r\n");
    let r = raw_exchange(d.port, req.as_bytes()).expect("answer");
    assert_error(&r, 431, "bad_request");

    // A 64 MiB request target: 414.
    let s = connect(d.port).expect("connect");
    let mut w = s.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(b"GET /");
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..64 {
            if w.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let r = read_resp(&s);
    assert_error(&r, 414, "bad_request");
    drop(s);
    let _ = writer.join();

    health_ok(d.port);
    let hwm = vm_kib(d.pid, "VmHWM:");
    assert!(
        hwm < rss0 + 16 * 1024,
        "peak RSS {hwm} KiB grew more than 16 MiB over {rss0} KiB"
    );
}

#[test]
fn pipelined_flood_that_never_reads_does_not_stop_health() {
    let d = Daemon::start(SHORT);
    health_ok(d.port);
    let rss0 = vm_kib(d.pid, "VmRSS:");
    let s = connect(d.port).expect("connect");
    let mut w = s.try_clone().expect("clone");
    let one = format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n", d.port);
    let flood = std::thread::spawn(move || {
        let batch = one.repeat(1000);
        for _ in 0..20 {
            if w.write_all(batch.as_bytes()).is_err() {
                return;
            }
        }
    });
    for _ in 0..20 {
        health_ok(d.port);
    }
    let hwm = vm_kib(d.pid, "VmHWM:");
    assert!(
        hwm < rss0 + 16 * 1024,
        "peak RSS {hwm} KiB grew more than 16 MiB over {rss0} KiB"
    );
    drop(s);
    let _ = flood.join();
    health_ok(d.port);
}

#[test]
fn http2_request_line_is_505_and_the_daemon_still_serves() {
    let d = Daemon::start(SHORT);
    let t0 = threads(d.pid);
    for _ in 0..200 {
        let r = raw_exchange(d.port, b"GET /health HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n")
            .expect("an answer");
        assert_error(&r, 505, "bad_request");
    }
    health_ok(d.port);
    // No connection thread is left blocked on itself: idle pool threads exit.
    wait_for(
        Duration::from_secs(30),
        "connection threads return to the pool size",
        || threads(d.pid) <= t0 + 8,
    );
}

#[test]
fn non_utf8_target_is_400() {
    let d = Daemon::start(SHORT);
    for target in [&b"/apps/%ff%fe"[..], b"/events?type=%c3%28", b"/apps/\xff"] {
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(target);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let r = raw_exchange(d.port, &req).expect("an answer, not a dropped connection");
        assert_error(&r, 400, "bad_request");
    }
    // Valid UTF-8 after decoding passes.
    let r = d.get("/apps/x?q=%E2%82%AC");
    assert_eq!(r.status, 200, "{r}");
}

#[test]
fn beyond_max_connections_is_503_at_once() {
    let cfg = format!("max_connections: 8\n{SHORT}");
    let d = Daemon::start(&cfg);
    let idle: Vec<TcpStream> = (0..8).map(|_| connect(d.port).expect("connect")).collect();
    // The next connection is answered 503 without sending anything.
    let r = wait_some(
        Duration::from_secs(10),
        "a 503 beyond max_connections",
        || {
            let s = connect(d.port).ok()?;
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut r = BufReader::new(s);
            read_response(&mut r).ok().filter(|r| r.status == 503)
        },
    );
    assert_error(&r, 503, "unavailable");
    drop(idle);
    wait_for(
        Duration::from_secs(10),
        "health after the idle ones left",
        || try_request(d.port, "GET", "/health", &[], b"").is_ok_and(|r| r.status == 200),
    );
}

#[test]
fn expect_continue_keep_alive_and_chunked_bodies_still_work() {
    let d = Daemon::start(SHORT);
    let body = br#"{"source":"t","type":"t.one","data":{}}"#;
    let mut s = connect(d.port).expect("connect");
    let head = format!(
        "POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("head");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let cont = read_response(&mut r).expect("100 Continue");
    assert_eq!(cont.status, 100);
    s.write_all(body).expect("body");
    let resp = read_response(&mut r).expect("answer");
    assert_eq!(resp.status, 202, "{resp}");
    // Same connection, chunked body.
    let mut req = b"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for c in body.chunks(7) {
        req.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        req.extend_from_slice(c);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&req).expect("chunked");
    let resp = read_response(&mut r).expect("answer");
    assert_eq!(resp.status, 202, "{resp}");
    // Pipelined: two requests in one write, two answers in order.
    let two = [
        build_request(d.port, "GET", "/health", &[], b"", false),
        build_request(d.port, "GET", "/apps", &[], b"", false),
    ]
    .concat();
    s.write_all(&two).expect("pipelined");
    let a = read_response(&mut r).expect("first");
    let b = read_response(&mut r).expect("second");
    assert_eq!(a.status, 200);
    assert!(a.text().contains("uptime_seconds"), "{a}");
    assert!(b.text().contains("\"apps\""), "{b}");
}
