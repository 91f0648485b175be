//! Property tests of the vendored tiny_http's request parser (outside input):
//! whatever bytes a client sends, the server answers with a status or closes,
//! never panics, and the next client is served.

use proptest::prelude::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// One in-process server answering every request `200 ok`, shared by all cases.
fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let opts = tiny_http::ServerOptions {
            header_timeout: Duration::from_millis(300),
            body_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_millis(300),
            ..tiny_http::ServerOptions::default()
        };
        let s = Arc::new(tiny_http::Server::from_listener_with(l, opts).expect("server"));
        for _ in 0..2 {
            let s = s.clone();
            std::thread::spawn(move || {
                while let Ok(req) = s.recv() {
                    let _ = req.respond(tiny_http::Response::from_string("ok"));
                }
            });
        }
        addr
    })
}

/// Send `bytes`, read whatever comes back (until close or 2 s): the status, if any.
fn exchange(bytes: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(server()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn head_strategy() -> impl Strategy<Value = Vec<u8>> {
    let method = prop::sample::select(vec!["GET", "POST", "PUT", "", "G ET", "\u{e9}"]);
    let version = prop::sample::select(vec![
        "HTTP/1.1",
        "HTTP/1.0",
        "HTTP/2.0",
        "HTTP/9",
        "HTTP/1.1 x",
        "http/1.1",
        "",
    ]);
    let target = prop::collection::vec(any::<u8>(), 0..40);
    let headers = prop::collection::vec(prop::collection::vec(any::<u8>(), 0..60), 0..6);
    let body = prop::collection::vec(any::<u8>(), 0..64);
    (method, target, version, headers, body).prop_map(|(m, t, v, hs, b)| {
        let mut out = m.as_bytes().to_vec();
        out.push(b' ');
        out.extend_from_slice(&t);
        out.push(b' ');
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
        for h in hs {
            out.extend_from_slice(&h);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&b);
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_request_head_gets_a_status_or_a_close(bytes in head_strategy()) {
        if let Some(status) = exchange(&bytes) {
            prop_assert!(
                matches!(status, 200 | 400 | 408 | 413 | 414 | 417 | 431 | 505),
                "unexpected status {status}"
            );
        }
        prop_assert_eq!(exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Some(200));
    }

    #[test]
    fn random_bytes_never_break_the_server(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = exchange(&bytes);
        prop_assert_eq!(exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Some(200));
    }
}
