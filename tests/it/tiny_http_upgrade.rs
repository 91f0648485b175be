//! The vendored tiny_http's split upgrade (ORCHESTRATR-PATCH.md, DESIGN.md §5):
//! after `Request::upgrade_split`, one thread can block reading the client
//! while another writes to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn split_upgrade_reads_and_writes_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server =
        tiny_http::Server::from_listener_with(listener, tiny_http::ServerOptions::default())
            .expect("server");

    let mut client = TcpStream::connect(addr).expect("connect");
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    client
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\nearly",
        )
        .expect("write");

    let req = server.recv().expect("request");
    let (mut reader, mut writer) = req
        .upgrade_split(
            "test",
            tiny_http::Response::new_empty(tiny_http::StatusCode(101)),
        )
        .expect("split upgrade");

    // The reader thread blocks in read() ...
    let (tx, rx) = mpsc::channel();
    let reading = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    let _ = tx.send(got.clone());
                }
            }
        }
        got
    });

    let mut c = BufReader::new(client.try_clone().expect("clone"));
    let mut status = String::new();
    c.read_line(&mut status).expect("status line");
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    loop {
        let mut h = String::new();
        c.read_line(&mut h).expect("header");
        if h == "\r\n" {
            break;
        }
    }
    // Bytes sent after the head come first from the reader.
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("early bytes");
    assert_eq!(first, b"early");

    // ... while this thread writes: the push arrives although a read is pending.
    writer.write_all(b"push").expect("push");
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf).expect("push arrives");
    assert_eq!(&buf, b"push");

    client.write_all(b"ping").expect("ping");
    let got = rx.recv_timeout(Duration::from_secs(10)).expect("ping read");
    assert_eq!(got, b"earlyping");

    // Shutting the writer down ends the reader.
    writer.shutdown().expect("shutdown");
    let all = reading.join().expect("reader thread");
    assert_eq!(all, b"earlyping");
}

#[test]
fn the_server_counts_connections_and_refuses_beyond_the_cap() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let opts = tiny_http::ServerOptions {
        max_connections: 2,
        ..tiny_http::ServerOptions::default()
    };
    let server = tiny_http::Server::from_listener_with(listener, opts).expect("server");
    let a = TcpStream::connect(addr).expect("a");
    let b = TcpStream::connect(addr).expect("b");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.num_connections() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "connections not counted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut c = TcpStream::connect(addr).expect("c");
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut text = String::new();
    let _ = c.read_to_string(&mut text);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("\"code\":\"unavailable\""), "{text}");
    drop((a, b));
}

#[test]
fn into_split_lets_a_stream_notice_the_client_hanging_up() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server =
        tiny_http::Server::from_listener_with(listener, tiny_http::ServerOptions::default())
            .expect("server");
    let mut client = TcpStream::connect(addr).expect("connect");
    client
        .write_all(b"GET /events/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let req = server.recv().expect("request");
    let (mut reader, mut writer) = req.into_split().expect("split");
    writer
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        .expect("answer");
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    while !got.ends_with(b"hi") {
        let n = client.read(&mut buf).expect("read");
        assert!(n > 0, "closed early");
        got.extend_from_slice(&buf[..n]);
    }
    drop(client);
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    assert_eq!(reader.read(&mut buf).expect("end of stream"), 0);
}

#[test]
fn bodies_in_flight_are_bounded_over_all_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let opts = tiny_http::ServerOptions {
        max_body_bytes_in_flight: 10,
        body_timeout: Duration::from_millis(300),
        ..tiny_http::ServerOptions::default()
    };
    let server = tiny_http::Server::from_listener_with(listener, opts).expect("server");
    let post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n12345678";
    let mut a = TcpStream::connect(addr).expect("a");
    a.write_all(post).expect("a");
    // Held unanswered: its 8 bytes stay in flight.
    let held = server.recv().expect("first request");
    let mut b = TcpStream::connect(addr).expect("b");
    b.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    b.write_all(post).expect("b");
    let mut text = String::new();
    let _ = b.read_to_string(&mut text);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    // Once the first is answered, bodies fit again.
    held.respond(tiny_http::Response::from_string("ok"))
        .expect("respond");
    let mut c = TcpStream::connect(addr).expect("c");
    c.write_all(post).expect("c");
    let req = server.recv().expect("third request");
    req.respond(tiny_http::Response::from_string("ok"))
        .expect("respond");
    drop(a);
}
