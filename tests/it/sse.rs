//! The SSE stream of API.md §5 / docs/api.md §5.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(15);

const CFG: &str = r#"
apps:
  - name: t
    command: "sleep 300"
  - name: u
    command: "sleep 300"
"#;

/// Reads event frames until one with id `until`, returning all ids read.
fn read_ids_until(s: &mut SseClient, until: u64) -> Vec<u64> {
    let mut ids = Vec::new();
    loop {
        let f = s.expect_event(T);
        let id = f
            .id_u64()
            .unwrap_or_else(|| panic!("event frame without id: {f:?}"));
        ids.push(id);
        if id >= until {
            return ids;
        }
    }
}

#[test]
fn first_frame_is_retry_and_headers() {
    let d = Daemon::start(CFG);
    for path in ["/events/stream", "/api/events/stream"] {
        let mut s = SseClient::connect(d.port, path, &[]);
        assert_eq!(s.status, 200);
        let ct = s.header("content-type").unwrap_or("").to_string();
        assert!(ct.starts_with("text/event-stream"), "content-type {ct:?}");
        let cc = s.header("cache-control").unwrap_or("").to_string();
        assert!(cc.contains("no-cache"), "cache-control {cc:?}");
        // API.md §9: `retry:` is a field of the first event frame, never alone.
        let id = d.publish("first.frame", "tester", json!({}));
        let f = s.next_frame(T).expect("a first frame");
        assert_eq!(
            f.retry,
            Some(2000),
            "first frame carries retry: 2000, got {f:?}"
        );
        assert_eq!(f.id_u64(), Some(id), "{f:?}");
        let id2 = d.publish("first.frame", "tester", json!({}));
        let f = s.next_frame(T).expect("a second frame");
        assert_eq!((f.retry, f.id_u64()), (None, Some(id2)), "{f:?}");
    }
}

#[test]
fn events_arrive_live() {
    let d = Daemon::start(CFG);
    let mut s = SseClient::connect(d.port, "/events/stream?type=live.*", &[]);
    for i in 0..5 {
        let id = d.publish("live.tick", "tester", json!({"i": i}));
        let f = s.expect_event(T);
        assert_eq!(f.id_u64(), Some(id), "{f:?}");
        assert_eq!(f.event.as_deref(), Some("live.tick"));
        let data = f.data.as_deref().unwrap();
        assert!(!data.contains('\n'), "data is one line");
        let ev = f.json();
        assert_eq!(ev["id"], id);
        assert_eq!(ev["type"], "live.tick");
        assert_eq!(ev["source"], "tester");
        assert_eq!(ev["data"], json!({"i": i}));
        assert!(ev["target"].is_null());
        assert!(ev["time"].as_str().is_some_and(is_rfc3339_ms), "{ev}");
    }
}

#[test]
fn stream_filters() {
    let d = Daemon::start(CFG);
    let mut by_type = SseClient::connect(d.port, "/events/stream?type=app.*,zz.exact", &[]);
    let mut by_source = SseClient::connect(d.port, "/api/events/stream?source=x", &[]);
    let mut by_target = SseClient::connect(d.port, "/events/stream?target=t", &[]);
    let msg = |app: &str, source: &str| -> u64 {
        let (st, v) = d.post_json(
            &format!("/apps/{app}/message"),
            &json!({"source": source, "type": "hi"}),
        );
        assert_eq!(st, 202, "{v}");
        v["id"].as_u64().unwrap()
    };
    let e1 = d.publish("a.b", "y", json!({}));
    let e2 = msg("u", "w"); // `app.*` types are the daemon's (API.md §9)
    let e3 = d.publish("zz.exact", "y", json!({}));
    let e4 = d.publish("zz.exactly", "y", json!({}));
    let e5 = d.publish("application.y", "y", json!({}));
    let e6 = d.publish("q", "x", json!({}));
    let e7 = msg("u", "y");
    let e8 = msg("t", "y");
    let _ = (e1, e4, e5);
    // sentinels, last for each stream
    let s_type = msg("u", "w");
    let s_source = d.publish("end", "x", json!({}));
    let s_target = msg("t", "z");

    assert_eq!(
        read_ids_until(&mut by_type, s_type),
        vec![e2, e3, e7, e8, s_type]
    );
    assert_eq!(read_ids_until(&mut by_source, s_source), vec![e6, s_source]);
    assert_eq!(read_ids_until(&mut by_target, s_target), vec![e8, s_target]);
}

/// Publish 1..=10, read 4, disconnect, publish 11..=15, resume → 5..=15.
fn resume_case(header: bool) {
    let d = Daemon::start(CFG);
    let mut s = SseClient::connect(d.port, "/events/stream?type=resume.*", &[]);
    let ids: Vec<u64> = (0..10)
        .map(|i| d.publish("resume.n", "t", json!({"i": i})))
        .collect();
    let got = read_ids_until(&mut s, ids[3]);
    assert_eq!(got, ids[..4]);
    drop(s);
    let more: Vec<u64> = (10..15)
        .map(|i| d.publish("resume.n", "t", json!({"i": i})))
        .collect();
    let last = ids[3].to_string();
    let mut s2 = if header {
        SseClient::connect(
            d.port,
            "/events/stream?type=resume.*",
            &[("Last-Event-ID", last.as_str())],
        )
    } else {
        SseClient::connect(
            d.port,
            &format!("/events/stream?type=resume.*&last_event_id={last}"),
            &[],
        )
    };
    let mut expected: Vec<u64> = ids[4..].to_vec();
    expected.extend_from_slice(&more);
    let got = read_ids_until(&mut s2, *more.last().unwrap());
    assert_eq!(got, expected, "exactly the missing events, in order");
    // then live, with no duplicates
    let live = d.publish("resume.n", "t", json!({"i": 99}));
    let f = s2.expect_event(T);
    assert_eq!(
        f.id_u64(),
        Some(live),
        "next frame after replay is the live event: {f:?}"
    );
}

#[test]
fn resume_with_last_event_id_header() {
    resume_case(true);
}

#[test]
fn resume_with_last_event_id_query() {
    resume_case(false);
}

#[test]
fn resume_header_wins_over_query_and_bad_id_is_400() {
    let d = Daemon::start(CFG);
    let ids: Vec<u64> = (0..4)
        .map(|i| d.publish("hw.n", "t", json!({"i": i})))
        .collect();
    let h = ids[2].to_string();
    let mut s = SseClient::connect(
        d.port,
        &format!("/events/stream?type=hw.*&last_event_id={}", ids[0]),
        &[("Last-Event-ID", h.as_str())],
    );
    let f = s.expect_event(T);
    assert_eq!(f.id_u64(), Some(ids[3]), "header wins: {f:?}");

    match SseClient::open(d.port, "/events/stream", &[("Last-Event-ID", "abc")]) {
        Ok(_) => panic!("non-integer Last-Event-ID accepted"),
        Err(r) => {
            assert_error(&r, 400, "bad_request");
        }
    }
    match SseClient::open(d.port, "/events/stream?last_event_id=x1", &[]) {
        Ok(_) => panic!("non-integer last_event_id accepted"),
        Err(r) => {
            assert_error(&r, 400, "bad_request");
        }
    }
}

#[test]
fn stream_gap_when_resuming_from_evicted_id() {
    // event_buffer's minimum is 10000; publish a bit more than that over one
    // keep-alive connection.
    let d = Daemon::start(&format!("event_buffer: 10000\n{CFG}"));
    let mut conn = HttpConn::new(d.port);
    let first = conn.publish("gap.n", "t", json!({}));
    let mut last = first;
    for _ in 0..10_100 {
        last = conn.publish("gap.n", "t", json!({}));
    }
    assert!(last - first >= 10_100);
    // the oldest retained event is now newer than `first + 1`
    let (_, v) = d.get_json("/events?since=0&limit=1");
    let oldest = v["events"][0]["id"].as_u64().unwrap();
    assert!(
        oldest > first + 1,
        "events were evicted (oldest {oldest}, first {first})"
    );
    assert!(last - oldest + 1 >= 10_000, "at least 10000 retained");

    let from = first.to_string();
    let mut s = SseClient::connect(
        d.port,
        "/events/stream",
        &[("Last-Event-ID", from.as_str())],
    );
    let gap = s.expect_event(T);
    assert_eq!(
        gap.event.as_deref(),
        Some("stream.gap"),
        "first event frame: {gap:?}"
    );
    assert!(gap.id.is_none(), "synthetic frames carry no id: {gap:?}");
    let g = gap.json();
    let data = if g.get("data").is_some() {
        g["data"].clone()
    } else {
        g.clone()
    };
    let gfrom = data["from"]
        .as_u64()
        .unwrap_or_else(|| panic!("gap from: {g}"));
    let gto = data["to"].as_u64().unwrap_or_else(|| panic!("gap to: {g}"));
    assert_eq!(gfrom, first + 1, "{g}");
    assert_eq!(gto, oldest - 1, "{g}");
    let next = s.expect_event(T);
    assert_eq!(
        next.id_u64(),
        Some(gto + 1),
        "replay continues right after the gap: {next:?}"
    );
    // a couple more in order
    let n2 = s.expect_event(T);
    assert_eq!(n2.id_u64(), Some(gto + 2));

    // resuming from a retained id gives no gap
    let recent = (last - 2).to_string();
    let mut s2 = SseClient::connect(
        d.port,
        "/events/stream",
        &[("Last-Event-ID", recent.as_str())],
    );
    let f = s2.expect_event(T);
    assert_eq!(f.id_u64(), Some(last - 1), "{f:?}");
}

#[test]
fn heartbeat_comment() {
    let d = Daemon::start(&format!("sse_heartbeat_ms: 200\n{CFG}"));
    let mut s = SseClient::connect(d.port, "/events/stream", &[]);
    assert!(
        s.wait_comment("keep-alive", T),
        "no ': keep-alive' comment; comments seen: {:?}",
        s.comments
    );
}

#[test]
fn slow_reader_is_lagged_fast_reader_gets_everything() {
    let d = Daemon::start(&format!(
        "sse_queue_capacity: 16\nsse_heartbeat_ms: 60000\n{CFG}"
    ));
    // The slow reader: connects and then does not read at all until the
    // burst is over.
    let mut slow = SseClient::connect(d.port, "/events/stream?type=burst.*", &[]);

    let fast = SseClient::connect(d.port, "/events/stream?type=burst.*", &[]);
    let received = Arc::new(Mutex::new(Vec::<u64>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let received = received.clone();
        let count = count.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut fast = fast;
            while !stop.load(Ordering::SeqCst) {
                match fast.next_event(Duration::from_millis(200)) {
                    Some(f) => {
                        if f.event.as_deref() == Some("stream.lagged") {
                            panic!("fast reader was lagged: {f:?}");
                        }
                        if let Some(id) = f.id_u64() {
                            received.lock().unwrap().push(id);
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    None if fast.closed => panic!("fast reader's stream was closed"),
                    None => {}
                }
            }
        })
    };

    // ~2000 events of ~5 KB each (10 MB) cannot all sit in the slow reader's
    // socket buffers. Publish in batches of 8 and let the fast reader catch
    // up between batches, so the fast reader's queue (16) never fills
    // because of scheduling on a loaded machine; the slow one's does.
    let payload = "p".repeat(5000);
    let mut conn = HttpConn::new(d.port);
    let mut published = Vec::new();
    let total = 2000;
    while published.len() < total {
        for _ in 0..8 {
            published.push(conn.publish("burst.n", "t", json!({"pad": payload})));
        }
        let want = published.len();
        let ok = wait_until(DEADLINE, || {
            count.load(Ordering::SeqCst) >= want || reader.is_finished()
        });
        assert!(!reader.is_finished(), "fast reader thread ended early");
        assert!(
            ok,
            "fast reader fell behind: {} of {want}",
            count.load(Ordering::SeqCst)
        );
    }
    stop.store(true, Ordering::SeqCst);
    reader.join().expect("fast reader panicked");
    let got = received.lock().unwrap().clone();
    assert_eq!(
        got, published,
        "fast reader received every event, in order, once"
    );

    // The daemon stayed responsive.
    assert_eq!(d.get("/health").status, 200);

    // Now drain the slow reader: it must have been cut off (stream.lagged,
    // then closed), not have received the whole burst.
    let frames = slow
        .read_until_closed(Duration::from_secs(60))
        .expect("slow reader's stream was closed by the daemon");
    let slow_ids: Vec<u64> = frames.iter().filter_map(|f| f.id_u64()).collect();
    assert!(
        slow_ids.len() < total,
        "slow reader got all {} events: never lagged",
        slow_ids.len()
    );
    let lagged: Vec<&Frame> = frames
        .iter()
        .filter(|f| f.event.as_deref() == Some("stream.lagged"))
        .collect();
    assert_eq!(
        lagged.len(),
        1,
        "exactly one stream.lagged frame before close"
    );
    let lf = lagged[0];
    assert!(lf.id.is_none(), "stream.lagged carries no id: {lf:?}");
    let v = lf.json();
    let data: Value = if v.get("data").is_some() {
        v["data"].clone()
    } else {
        v
    };
    assert!(
        data["last_id"].is_u64(),
        "stream.lagged data.last_id: {data}"
    );
    assert!(
        frames.last().unwrap().event.as_deref() == Some("stream.lagged"),
        "stream.lagged is the last frame"
    );
    // events before the cut are in order with no gaps
    for w in slow_ids.windows(2) {
        let i = published.iter().position(|&x| x == w[0]).unwrap();
        assert_eq!(published.get(i + 1), Some(&w[1]), "slow reader saw a gap");
    }
}

#[test]
fn max_streams_limit() {
    let d = Daemon::start(&format!("sse_max_streams: 2\nsse_heartbeat_ms: 200\n{CFG}"));
    let a = SseClient::connect(d.port, "/events/stream", &[]);
    let mut b = SseClient::connect(d.port, "/api/events/stream", &[]);
    // the response head arrives once the stream holds its slot
    match SseClient::open(d.port, "/events/stream", &[]) {
        Ok(_) => panic!("third stream accepted with sse_max_streams: 2"),
        Err(r) => {
            assert_error(&r, 503, "unavailable");
        }
    }
    // other routes are unaffected
    assert_eq!(d.get("/health").status, 200);
    // once a stream goes away, a new one is accepted again (the daemon
    // notices the disconnect at the latest at the next heartbeat)
    drop(a);
    let mut c = None;
    wait_for(
        DEADLINE,
        "a slot frees up after a client disconnects",
        || match SseClient::open(d.port, "/events/stream", &[]) {
            Ok(s) => {
                c = Some(s);
                true
            }
            Err(r) => {
                assert_eq!(r.status, 503);
                false
            }
        },
    );
    let mut c = c.unwrap();
    assert!(c.wait_comment("keep-alive", T), "{:?}", c.comments);
    let _ = b.next_frame(Duration::from_millis(1));
}
