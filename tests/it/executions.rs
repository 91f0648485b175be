//! Executions (API.md §7): queues and pools, timeouts, cancellation, output
//! capture and its resumable SSE stream, restart recovery, working-dir
//! confinement, argv verbatim, graceful shutdown, delegation tickets and the CLI.
//!
//! Black-box: real daemon processes, real runs, raw HTTP. No fixed sleeps to
//! wait for state (polls with deadlines), no wall-clock speed assertions, and
//! every process a test starts is killed by the harness (`exec_support`).

use crate::exec_support;

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use exec_support::*;
use serde_json::{Value, json};

/// `sh -c` script whose group holds two background sleeps; prints `ready` once
/// both were forked.
const TREE: &str = "sleep 300 & sleep 300 & echo ready; wait";

/// `sh -c` script that reports SIGTERM in its output and exits.
const TRAP_TERM: &str = "trap 'echo got TERM; exit 0' TERM; sleep 300 & echo ready; wait";

fn id_of(e: &Value) -> String {
    e["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {e}"))
        .to_string()
}

fn is_exec_id(s: &str) -> bool {
    s.len() == 17
        && s.starts_with("exec-")
        && s[5..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn assert_group_gone(d: &Daemon, pgid: u32, what: &str) {
    if let Err(left) = wait_group_gone(pgid, Duration::from_secs(10)) {
        panic!(
            "{what}: process group {pgid} still has live members {left:?}\n{}",
            d.log()
        );
    }
}

fn error_code(r: &Resp) -> String {
    r.json()["code"].as_str().unwrap_or("").to_string()
}

/// The ids in a `GET /executions` page, in its order.
fn listed_ids(page: &Value) -> Vec<String> {
    page["executions"]
        .as_array()
        .unwrap_or_else(|| panic!("no executions array: {page}"))
        .iter()
        .map(id_of)
        .collect()
}

/// Ids of the executions (the events' data) in the bus events of type `kind`
/// for task `task`, in bus order.
fn bus_exec_ids(d: &Daemon, kind: &str, task: &str) -> Vec<String> {
    let ev = d.get(&format!("/events?type={kind}&limit=1000")).json();
    ev["events"]
        .as_array()
        .unwrap_or_else(|| panic!("events: {ev}"))
        .iter()
        .filter(|e| e["data"]["task"] == task)
        .map(|e| id_of(&e["data"]))
        .collect()
}

/// A started daemon with the single task `name` running `argv`, and the id
/// of one run of it, submitted at once.
fn one_run(name: &str, argv: &[&str]) -> (Daemon, String) {
    let d = Daemon::with_config(&format!(
        "tasks:\n  - name: {name}\n    command: {}\nshutdown_timeout_ms: 500\n",
        yq(argv)
    ));
    let id = id_of(&d.submit(&json!({"task": name})));
    (d, id)
}

// ---------------------------------------------------------------------------
// 1. queue order and concurrency

/// A started daemon whose task `work` (pool `p`: 2 at once, 100 queued) takes
/// a name: each run holds the token dir `<work>/running/<name>` for `hold`
/// seconds and appends how many tokens it saw to `<work>/counts`. Returns the
/// daemon and `<work>`.
fn counting_pool(hold: &str) -> (Daemon, PathBuf) {
    let mut d = Daemon::new();
    let w = d.dir().join("work");
    fs::create_dir_all(w.join("running")).unwrap();
    let script = format!(
        r#"mkdir "running/$1" && n=$(ls running | wc -l) && echo $n >> counts && sleep {hold}; rmdir "running/$1""#
    );
    d.write_config(&format!(
        "tasks:\n  - name: work\n    command: {}\n    cwd: {}\n    pool: p\n    allow_args: true\n\
         pools:\n  p: {{max_concurrent: 2, max_queued: 100}}\nshutdown_timeout_ms: 500\n",
        yq(&script),
        yq(&w)
    ));
    d.start();
    (d, w)
}

#[test]
fn pool_runs_fifo_and_never_exceeds_max_concurrent() {
    let (d, w) = counting_pool("0.3");

    let mut ids = Vec::new();
    for i in 0..20 {
        let name = format!("r{i:02}");
        let e = d.submit(&json!({"task": "work", "args": [name]}));
        let id = id_of(&e);
        assert!(is_exec_id(&id), "id format exec-<12 hex>: {id}");
        assert_eq!(e["task"], "work", "{e}");
        assert_eq!(e["pool"], "p", "{e}");
        assert_eq!(
            e["argv"].as_array().and_then(|a| a.last()),
            Some(&json!(name))
        );
        match e["status"].as_str() {
            Some("pending") => assert!(
                e["queue_position"].as_u64().is_some_and(|p| p >= 1),
                "a pending run has a queue_position: {e}"
            ),
            // `starting`: holds a slot, its record committed before the spawn.
            Some("starting") | Some("running") => assert!(e["queue_position"].is_null(), "{e}"),
            other => panic!("fresh submission is {other:?}: {e}"),
        }
        ids.push(id);
    }

    let mut last = Value::Null;
    let done = wait_until(Duration::from_secs(120), || {
        last = d.get("/executions?task=work&limit=100").json();
        last["executions"]
            .as_array()
            .is_some_and(|a| a.len() == 20 && a.iter().all(|e| e["status"] == "completed"))
    });
    assert!(done, "20 runs did not all complete: {last}\n{}", d.log());

    // Newest first, total = 20.
    assert_eq!(last["total"], 20, "{last}");
    let listed = listed_ids(&last);
    let mut rev = ids.clone();
    rev.reverse();
    assert_eq!(listed, rev, "GET /executions is newest first");
    let page = d.get("/executions?task=work&limit=5").json();
    assert_eq!(
        page["executions"].as_array().map(Vec::len),
        Some(5),
        "{page}"
    );
    assert_eq!(page["total"], 20, "{page}");
    assert_eq!(
        d.get("/executions?status=completed&task=work").json()["total"],
        20
    );
    assert_eq!(
        d.get("/executions?status=pending&task=work").json()["total"],
        0
    );

    // Never more than 2 at once, and the pool did run 2 at once.
    let counts: Vec<u32> = fs::read_to_string(w.join("counts"))
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 20, "{counts:?}");
    let max = *counts.iter().max().unwrap();
    assert!(
        max <= 2,
        "more than max_concurrent=2 runs at once: {counts:?}"
    );
    assert_eq!(max, 2, "the pool never ran 2 at once: {counts:?}");

    // FIFO: the daemon started them in submission order (bus order of
    // execution.started) and started_at never goes backwards.
    let started = bus_exec_ids(&d, "execution.started", "work");
    assert_eq!(started, ids, "start order differs from submission order");
    let execs: Vec<Value> = ids.iter().map(|i| d.exec(i)).collect();
    for w2 in execs.windows(2) {
        let (a, b) = (
            w2[0]["started_at"].as_str().unwrap(),
            w2[1]["started_at"].as_str().unwrap(),
        );
        assert!(a <= b, "started_at out of FIFO order: {a} > {b}");
    }
    for e in &execs {
        assert_eq!(e["exit_code"], 0, "{e}");
        assert!(
            e["finished_at"].is_string() && e["duration_ms"].is_u64(),
            "{e}"
        );
        assert!(e["queue_position"].is_null(), "{e}");
    }
    // Every run announced queued and finished on the bus, with the Execution as data.
    for kind in ["execution.queued", "execution.finished"] {
        let mut got = bus_exec_ids(&d, kind, "work");
        got.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(got, want, "{kind} events");
    }
}

// ---------------------------------------------------------------------------
// 2. starts_per_minute

#[test]
fn starts_per_minute_holds_excess_runs_in_the_queue() {
    let d = Daemon::with_config(
        "tasks:\n  - name: quick\n    command: [\"sh\", \"-c\", \"echo hi\"]\n    pool: rl\n\
         pools:\n  rl: {max_concurrent: 10, max_queued: 100, starts_per_minute: 3}\n\
         shutdown_timeout_ms: 500\n",
    );
    let ids: Vec<String> = (0..5)
        .map(|_| id_of(&d.submit(&json!({"task": "quick"}))))
        .collect();
    for id in &ids[..3] {
        let e = d.wait_final(id);
        assert_eq!(e["status"], "completed", "{e}");
    }
    // The two others cannot start before the rolling minute is over: watch them
    // stay pending for a few seconds, in FIFO queue positions.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        for (i, id) in ids[3..].iter().enumerate() {
            let e = d.exec(id);
            assert_eq!(e["status"], "pending", "run {} started early: {e}", i + 4);
            assert_eq!(e["queue_position"], i as u64 + 1, "{e}");
            assert!(e["started_at"].is_null() && e["pid"].is_null(), "{e}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for id in &ids[3..] {
        let r = d.post_empty(&format!("/executions/{id}/cancel"));
        assert_eq!(r.status, 200, "{r}");
        assert_eq!(r.json()["status"], "cancelled", "{r}");
        assert!(r.json()["started_at"].is_null(), "{r}");
    }
    assert_eq!(d.get("/executions?status=pending").json()["total"], 0);
}

// ---------------------------------------------------------------------------
// 3. timeout

#[test]
fn timeout_kills_the_whole_group() {
    let d = Daemon::with_config(&format!(
        "tasks:\n  - name: slow\n    command: {}\n    timeout_ms: 1000\n\
         \x20 - name: free\n    command: {}\n\
         \x20 - name: polite\n    command: {}\n    timeout_ms: 1000\nshutdown_timeout_ms: 500\n",
        yq(&["sh", "-c", TREE]),
        yq(&["sh", "-c", TREE]),
        yq(&["sh", "-c", TRAP_TERM])
    ));
    // The task's own timeout.
    let e = d.submit(&json!({"task": "slow"}));
    let id = id_of(&e);
    assert_eq!(e["timeout_ms"], 1000, "{e}");
    let fin = d.wait_final(&id);
    assert_eq!(fin["status"], "timeout", "{fin}\n{}", d.log());
    assert!(fin["error"].is_string(), "{fin}");
    assert!(fin["duration_ms"].as_u64().unwrap() >= 1000, "{fin}");
    assert!(fin["finished_at"].is_string(), "{fin}");
    let pgid = fin["pid"].as_u64().unwrap() as u32;
    assert_eq!(
        d.output_log(&id),
        b"ready\n",
        "both sleeps had been forked into the group"
    );
    assert_group_gone(&d, pgid, "after timeout");

    // The timeout sends SIGTERM first.
    let e = d.submit(&json!({"task": "polite"}));
    let fin = d.wait_final(&id_of(&e));
    assert_eq!(fin["status"], "timeout", "{fin}");
    assert_eq!(d.output_log(&id_of(&e)), b"ready\ngot TERM\n");
    assert_group_gone(&d, fin["pid"].as_u64().unwrap() as u32, "after timeout");

    // A request's timeout_ms overrides (here: adds) one.
    let e = d.submit(&json!({"task": "free", "timeout_ms": 700}));
    let id = id_of(&e);
    assert_eq!(e["timeout_ms"], 700, "{e}");
    let fin = d.wait_final(&id);
    assert_eq!(fin["status"], "timeout", "{fin}");
    assert!(fin["duration_ms"].as_u64().unwrap() >= 700, "{fin}");
    assert_group_gone(&d, fin["pid"].as_u64().unwrap() as u32, "after timeout_ms");

    // timeout_ms must be a positive integer.
    for bad in [json!(0), json!(-5), json!("1000")] {
        let r = d.post("/executions", &json!({"task": "free", "timeout_ms": bad}));
        assert_eq!(r.status, 400, "timeout_ms {bad}: {r}");
    }
}

// ---------------------------------------------------------------------------
// 4. cancel

#[test]
fn cancel_pending_and_running_kills_the_process_tree() {
    let d = Daemon::with_config(&format!(
        "tasks:\n  - name: tree\n    command: {}\n    pool: c\n\
         \x20 - name: stubborn\n    command: {}\n    pool: s\n\
         \x20 - name: polite\n    command: {}\n    pool: s\n\
         pools:\n  c: {{max_concurrent: 1}}\n  s: {{max_concurrent: 1}}\nshutdown_timeout_ms: 500\n",
        yq(&["sh", "-c", TREE]),
        yq(&["sh", "-c", format!("trap '' TERM; {TREE}").as_str()]),
        yq(&["sh", "-c", TRAP_TERM])
    ));
    let a = id_of(&d.submit(&json!({"task": "tree"})));
    let (_, pgid) = d.wait_running(&a, 3);
    let b = d.submit(&json!({"task": "tree"}));
    assert_eq!(b["status"], "pending", "{b}");
    assert_eq!(b["queue_position"], 1, "{b}");
    let b = id_of(&b);

    // Pending: cancelled at once, never started.
    let r = d.post_empty(&format!("/executions/{b}/cancel"));
    assert_eq!(r.status, 200, "{r}");
    let v = r.json();
    assert_eq!(v["status"], "cancelled", "{v}");
    assert!(v["started_at"].is_null() && v["pid"].is_null(), "{v}");
    assert!(v["queue_position"].is_null(), "{v}");
    assert_eq!(d.exec(&b)["status"], "cancelled");

    // Running: SIGTERM to the group; the answer comes once it is dead.
    let r = d.post_empty(&format!("/executions/{a}/cancel"));
    assert_eq!(r.status, 200, "{r}");
    assert!(
        !group_pids(pgid).contains(&pgid),
        "the leader is dead (reaped) when the cancel answers"
    );
    let v = r.json();
    assert_eq!(v["status"], "cancelled", "{v}");
    assert!(
        v["finished_at"].is_string() && v["error"].is_string(),
        "{v}"
    );
    assert_group_gone(&d, pgid, "after cancelling a running run");
    let rec = d.record(&a);
    assert_eq!(rec["status"], "cancelled", "record on disk: {rec}");

    // Finished runs cannot be cancelled again.
    for id in [&a, &b] {
        let r = d.post_empty(&format!("/executions/{id}/cancel"));
        assert_eq!(r.status, 409, "{r}");
        assert_eq!(error_code(&r), "conflict", "{r}");
    }
    // The cancelled pending run did not start when the pool freed up.
    let e = d.exec(&b);
    assert_eq!(e["status"], "cancelled", "{e}");
    assert!(e["pid"].is_null(), "{e}");
    assert_eq!(
        d.post_empty("/executions/exec-000000000000/cancel").status,
        404
    );

    // A run whose whole group ignores SIGTERM gets SIGKILL after the grace.
    let s = id_of(&d.submit(&json!({"task": "stubborn"})));
    let (_, spg) = d.wait_running(&s, 3);
    let t0 = Instant::now();
    let r = d.post_empty(&format!("/executions/{s}/cancel"));
    let waited = t0.elapsed();
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.json()["status"], "cancelled", "{r}");
    assert!(
        waited >= Duration::from_millis(4500),
        "SIGKILL came before the 5 s grace ({waited:?})"
    );
    assert_group_gone(&d, spg, "after cancelling a SIGTERM-ignoring run");

    // SIGTERM comes first: a run that handles it gets to clean up.
    let p = id_of(&d.submit(&json!({"task": "polite"})));
    let (_, ppg) = d.wait_running(&p, 2);
    let r = d.post_empty(&format!("/executions/{p}/cancel"));
    assert_eq!(r.json()["status"], "cancelled", "{r}");
    assert_eq!(
        d.output_log(&p),
        b"ready\ngot TERM\n",
        "the TERM handler ran"
    );
    assert_group_gone(&d, ppg, "after cancelling a TERM-handling run");
}

// ---------------------------------------------------------------------------
// 5. fast output on both pipes

#[test]
fn fast_output_on_stdout_and_stderr_arrives_complete() {
    let (d, id) = one_run(
        "flood",
        &[
            "sh",
            "-c",
            "(yes out | head -c 5000000) & (yes err | head -c 5000000 >&2); wait",
        ],
    );
    let fin = d.wait_exec(&id, "final", Duration::from_secs(120), |e| {
        !matches!(
            e["status"].as_str(),
            Some("pending") | Some("starting") | Some("running")
        )
    });
    assert_eq!(fin["status"], "completed", "{fin}");
    assert_eq!(fin["output_bytes"], 10_000_000, "{fin}");
    let log = d.output_log(&id);
    assert_eq!(log.len(), 10_000_000);
    // Streams may interleave at any byte, but each one's bytes keep their order
    // and none is lost: project the log onto each stream's alphabet.
    let only =
        |set: &[u8]| -> Vec<u8> { log.iter().copied().filter(|b| set.contains(b)).collect() };
    assert!(
        only(b"out") == b"out".repeat(1_250_000),
        "stdout bytes lost or reordered"
    );
    assert!(
        only(b"er") == b"err".repeat(1_250_000),
        "stderr bytes lost or reordered"
    );
    assert_eq!(log.iter().filter(|b| **b == b'\n').count(), 2_500_000);

    let r = d.get(&format!("/executions/{id}/output"));
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("x-output-length"), Some("10000000"));
    assert_eq!(r.header("x-output-offset"), Some("0"));
    assert!(r.body == log, "GET /output differs from output.log");
    let r = d.get(&format!("/executions/{id}/output?offset=4999990&limit=20"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-output-offset"), Some("4999990"));
    assert_eq!(r.header("x-output-length"), Some("10000000"));
    assert_eq!(r.body, &log[4_999_990..5_000_010]);
    let r = d.get(&format!("/executions/{id}/output?offset=10000000"));
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty(), "{r}");
}

// ---------------------------------------------------------------------------
// 6. SSE resume

/// Reads output frames into `acc`, checking that each continues exactly where the
/// previous one (on any connection) stopped. Stops when `acc` holds `stop_at`
/// bytes (the caller then drops the connection) or at `end`. Returns the last
/// `id` and the `end` frame's Execution, if reached.
fn read_output(
    c: &mut SseConn,
    acc: &mut Vec<u8>,
    stop_at: Option<usize>,
    statuses: &mut Vec<Value>,
) -> (u64, Option<Value>) {
    let mut last_id = acc.len() as u64;
    loop {
        let ev = c
            .next_event()
            .unwrap_or_else(|e| panic!("stream read error: {e}"))
            .unwrap_or_else(|| panic!("stream closed before `end` ({} bytes)", acc.len()));
        match ev.event.as_str() {
            "output" => {
                let v = ev.json();
                let off = v["offset"].as_u64().unwrap_or_else(|| panic!("{v}"));
                let text = v["text"].as_str().unwrap_or_else(|| panic!("{v}"));
                assert_eq!(off, acc.len() as u64, "output frame offset");
                let id: u64 = ev.id.as_deref().unwrap_or("").parse().expect("numeric id");
                assert_eq!(id, off + text.len() as u64, "id = offset after chunk");
                acc.extend_from_slice(text.as_bytes());
                last_id = id;
                if stop_at.is_some_and(|s| acc.len() >= s) {
                    return (last_id, None);
                }
            }
            "status" => {
                assert!(ev.id.is_none(), "status frames carry no id");
                statuses.push(ev.json());
            }
            "end" => {
                assert!(ev.id.is_none(), "end frame carries no id");
                return (last_id, Some(ev.json()));
            }
            other => panic!("unexpected event {other}: {}", ev.data),
        }
    }
}

#[test]
fn sse_resume_delivers_every_byte_exactly_once() {
    let (d, id) = one_run(
        "lines",
        &[
            "sh",
            "-c",
            "i=1; while [ $i -le 300 ]; do echo \"line $i\"; i=$((i+1)); sleep 0.01; done",
        ],
    );
    let expected: String = (1..=300).map(|i| format!("line {i}\n")).collect();

    // Without the token: 401.
    let c = SseConn::open(d.port, &format!("/executions/{id}/stream"), &[]).unwrap();
    assert_eq!(c.status, 401);
    drop(c);

    // Browsers' EventSource cannot send headers: ?token= works too.
    let mut c = SseConn::open(
        d.port,
        &format!("/executions/{id}/stream?token={}", d.token),
        &[],
    )
    .unwrap();
    assert_eq!(c.status, 200);
    assert_eq!(c.next_event().unwrap().expect("status").event, "status");
    drop(c);

    let mut acc = Vec::new();
    let mut statuses = Vec::new();
    let mut c = d.stream(&id, None);
    assert!(
        c.headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("text/event-stream")),
        "{:?}",
        c.headers
    );
    let first = c.next_event().unwrap().expect("first frame");
    assert_eq!(first.event, "status", "the stream opens with the status");
    assert_eq!(first.json()["id"], json!(id));
    let (last, end) = read_output(&mut c, &mut acc, Some(1000), &mut statuses);
    assert!(end.is_none(), "the run ended before 1000 bytes?");
    drop(c); // mid-stream

    let mut c = d.stream(&id, Some(last));
    let (last, end) = read_output(&mut c, &mut acc, Some(2500), &mut statuses);
    assert!(end.is_none());
    drop(c);

    let mut c = d.stream(&id, Some(last));
    let (_, end) = read_output(&mut c, &mut acc, None, &mut statuses);
    let end = end.expect("end frame");
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(end["output_bytes"], expected.len() as u64, "{end}");
    assert!(
        c.next_event().unwrap().is_none(),
        "the server closes the stream after `end`"
    );
    assert!(c.clean_end, "chunked stream terminated properly");

    assert_eq!(String::from_utf8_lossy(&acc), expected);
    assert_eq!(d.output_log(&id), expected.as_bytes(), "output.log");
    let r = d.get(&format!("/executions/{id}/output"));
    assert_eq!(r.body, expected.as_bytes(), "GET /output");

    // After the end: resuming at the end gives no output, just the final status.
    let mut c = d.stream(&id, Some(expected.len() as u64));
    let mut tail = expected.as_bytes().to_vec();
    let (_, end) = read_output(&mut c, &mut tail, None, &mut Vec::new());
    assert_eq!(tail, expected.as_bytes());
    assert_eq!(end.expect("end")["status"], "completed");
    // ...and resuming in the middle replays exactly the rest.
    let mut part = expected.as_bytes()[..777].to_vec();
    let mut c = d.stream(&id, Some(777));
    let (_, end) = read_output(&mut c, &mut part, None, &mut Vec::new());
    assert!(end.is_some());
    assert_eq!(part, expected.as_bytes());
    // A Last-Event-ID that is not an offset is a client error.
    let r = request(
        d.port,
        "GET",
        &format!("/executions/{id}/stream"),
        &[
            ("Authorization", &d.auth_header()),
            ("Last-Event-ID", "abc"),
        ],
        b"",
    );
    assert_eq!(r.status, 400, "{r}");
}

// ---------------------------------------------------------------------------
// 7. restart recovery

#[test]
fn restart_marks_running_lost_kills_its_group_and_requeues_pending() {
    let mut d = Daemon::new();
    d.write_config(&format!(
        "tasks:\n  - name: long\n    command: {}\n    pool: one\n\
         \x20 - name: short\n    command: [\"echo\", \"short\"]\n    pool: one\n\
         pools:\n  one: {{max_concurrent: 1}}\nshutdown_timeout_ms: 500\n",
        yq(&["sh", "-c", TREE])
    ));
    d.start();
    let long = id_of(&d.submit(&json!({"task": "long"})));
    let (running, pgid) = d.wait_running(&long, 3);
    let p1 = d.submit(&json!({"task": "short"}));
    let p2 = d.submit(&json!({"task": "short"}));
    assert_eq!(p1["status"], "pending", "{p1}");
    assert_eq!(p2["status"], "pending", "{p2}");
    let (p1, p2) = (id_of(&p1), id_of(&p2));
    let before: HashMap<String, Value> = [&long, &p1, &p2]
        .iter()
        .map(|i| (i.to_string(), d.record(i)))
        .collect();
    assert_eq!(before[&long]["status"], "running");
    assert_eq!(before[&p1]["status"], "pending");

    d.kill9();
    assert!(
        !group_pids(pgid).is_empty(),
        "the run's group outlives a kill -9 of the daemon (own process group)"
    );

    d.start();
    let lost = d.wait_exec(&long, "lost", DEADLINE, |e| e["status"] == "lost");
    assert!(lost["error"].is_string(), "{lost}");
    assert!(lost["finished_at"].is_string(), "{lost}");
    assert_eq!(lost["created_at"], running["created_at"], "{lost}");
    assert_eq!(lost["started_at"], running["started_at"], "{lost}");
    assert_eq!(lost["pid"], running["pid"], "{lost}");
    assert_eq!(lost["output_bytes"], 6, "output kept: {lost}");
    assert_eq!(d.output_log(&long), b"ready\n");
    assert_group_gone(
        &d,
        pgid,
        "the lost run's surviving group is killed on start-up",
    );
    assert_eq!(d.record(&long)["status"], "lost", "record on disk");

    for id in [&p1, &p2] {
        let e = d.wait_final(id);
        assert_eq!(e["status"], "completed", "{e}\n{}", d.log());
        assert_eq!(e["id"], json!(id));
        assert_eq!(e["created_at"], before[id]["created_at"], "created_at kept");
        assert_eq!(e["task"], "short");
        assert!(e["retry_of"].is_null(), "{e}");
        assert_eq!(d.output_log(id), b"short\n");
        assert_eq!(d.record(id)["status"], "completed");
    }
    // FIFO survives the restart.
    assert!(
        d.exec(&p1)["started_at"].as_str().unwrap() <= d.exec(&p2)["started_at"].as_str().unwrap()
    );
    let all = d.get("/executions").json();
    assert_eq!(all["total"], 3, "{all}");
}

// ---------------------------------------------------------------------------
// 8. cwd confinement

#[test]
fn cwd_outside_the_workspaces_is_forbidden() {
    let d = Daemon::new();
    let root = d.dir();
    let ws = root.join("ws");
    let outside = root.join("outside");
    fs::create_dir_all(ws.join("sub")).unwrap();
    fs::create_dir_all(ws.join("other")).unwrap();
    fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, ws.join("escape")).unwrap();
    std::os::unix::fs::symlink(ws.join("sub"), ws.join("inlink")).unwrap();
    d.write_config(&format!(
        "tasks:\n  - name: where\n    command: [\"sh\", \"-c\", \"pwd -P\"]\n\
         workspaces: [{}]\nshutdown_timeout_ms: 500\n",
        yq(&ws)
    ));
    let mut d = d;
    d.start();

    let bad = [
        ws.join("sub/../../outside"),
        ws.join("../outside"),
        ws.join("escape"),
        ws.join("escape/."),
        outside.clone(),
        root.clone(),
        "/".into(),
    ];
    for p in &bad {
        let r = d.post(
            "/executions",
            &json!({"task": "where", "cwd": p.display().to_string()}),
        );
        assert_eq!(r.status, 403, "cwd {}: {r}", p.display());
        assert_eq!(error_code(&r), "forbidden", "{r}");
    }
    assert_eq!(
        d.get("/executions").json()["total"],
        0,
        "no record for a refused run"
    );

    let ok = [
        (ws.join("sub"), ws.join("sub")),
        (ws.join("other/../sub"), ws.join("sub")),
        (ws.join("inlink"), ws.join("sub")),
        (ws.clone(), ws.clone()),
    ];
    for (req, real) in &ok {
        let e = d.submit(&json!({"task": "where", "cwd": req.display().to_string()}));
        let fin = d.wait_final(&id_of(&e));
        assert_eq!(fin["status"], "completed", "{fin}");
        assert_eq!(fin["cwd"], json!(real.display().to_string()), "{fin}");
        assert_eq!(
            String::from_utf8_lossy(&d.output_log(&id_of(&e))),
            format!("{}\n", real.display())
        );
    }
}

// ---------------------------------------------------------------------------
// 9. args verbatim

#[test]
fn args_reach_the_child_verbatim() {
    // Argv form (no shell) and shell form (args become "$@").
    let d = Daemon::with_config(&format!(
        "tasks:\n  - name: echo\n    command: {}\n    allow_args: true\n\
         \x20 - name: shecho\n    command: {}\n    allow_args: true\n\
         \x20 - name: fixed\n    command: [\"echo\", \"fixed\"]\nshutdown_timeout_ms: 500\n",
        yq(&["printf", "%s\\n"]),
        yq("printf '%s\\n' \"$@\"")
    ));
    let args = [
        "a; echo pwned",
        "$(id)",
        "`x`",
        "*",
        "'q'",
        "\"dq\" && rm -rf nothing",
        "two  spaces",
        "",
        "back\\slash",
        "a\nb",
    ];
    let expected: String = args.iter().map(|a| format!("{a}\n")).collect();
    for task in ["echo", "shecho"] {
        let e = d.submit(&json!({"task": task, "args": args}));
        if task == "echo" {
            let mut want = vec![json!("printf"), json!("%s\\n")];
            want.extend(args.iter().map(|a| json!(a)));
            assert_eq!(e["argv"], Value::Array(want), "{e}");
        }
        let fin = d.wait_final(&id_of(&e));
        assert_eq!(fin["status"], "completed", "{task}: {fin}");
        assert_eq!(
            String::from_utf8_lossy(&d.output_log(&id_of(&e))),
            expected,
            "task {task}"
        );
    }
    // The alias.
    let r = d.post("/execute", &json!({"task": "fixed"}));
    assert_eq!(r.status, 202, "{r}");
    assert!(r.header("location").is_some(), "{r}");
    let fin = d.wait_final(&id_of(&r.json()));
    assert_eq!(fin["status"], "completed", "{fin}");

    // Args to a task that does not allow them: 422.
    let r = d.post("/executions", &json!({"task": "fixed", "args": ["x"]}));
    assert_eq!(r.status, 422, "{r}");
    assert_eq!(error_code(&r), "unprocessable", "{r}");
    // Unknown task: 404.
    let r = d.post("/executions", &json!({"task": "nope"}));
    assert_eq!(r.status, 404, "{r}");
    assert_eq!(error_code(&r), "not_found", "{r}");
    // Missing task: 400. Without the token: 401.
    assert_eq!(d.post("/executions", &json!({})).status, 400);
    let r = request(
        d.port,
        "POST",
        "/executions",
        &[("Content-Type", "application/json")],
        br#"{"task":"fixed"}"#,
    );
    assert_eq!(r.status, 401, "{r}");
    assert_eq!(
        d.get("/executions?task=fixed").json()["total"],
        1,
        "refused requests leave no record"
    );
}

// ---------------------------------------------------------------------------
// 10. graceful shutdown

#[test]
fn graceful_shutdown_refuses_new_runs_and_cancels_running_ones() {
    let mut d = Daemon::with_config(&format!(
        "tasks:\n  - name: long\n    command: {}\n    pool: busy\n\
         \x20 - name: quick\n    command: [\"true\"]\n\
         pools:\n  busy: {{max_concurrent: 1}}\nshutdown_timeout_ms: 1000\n",
        yq(&["sh", "-c", TREE])
    ));
    let id = id_of(&d.submit(&json!({"task": "long"})));
    let (_, pgid) = d.wait_running(&id, 3);

    let r = d.post_empty("/shutdown");
    assert_eq!(r.status, 202, "{r}");
    let mut saw_503 = 0;
    let mut refused = false;
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        match d.try_req("POST", "/executions", Some(&json!({"task": "quick"}))) {
            Ok(r) if r.status == 503 => {
                assert_eq!(error_code(&r), "unavailable", "{r}");
                saw_503 += 1;
            }
            // The request raced the shutdown request itself.
            Ok(r) if r.status == 202 && saw_503 == 0 => {}
            Ok(r) => panic!("during shutdown: {r}"),
            Err(_) => {
                refused = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(refused, "the daemon never stopped listening\n{}", d.log());
    assert!(
        saw_503 > 0,
        "no 503 while running executions were draining\n{}",
        d.log()
    );
    let st = d
        .wait_exit(DEADLINE)
        .unwrap_or_else(|| panic!("daemon did not exit\n{}", d.log()));
    assert!(st.success(), "daemon exit status {st}\n{}", d.log());
    let rec = d.record(&id);
    assert_eq!(rec["status"], "cancelled", "{rec}");
    assert_eq!(rec["error"], "daemon shutdown", "{rec}");
    assert!(rec["finished_at"].is_string(), "{rec}");
    assert_group_gone(&d, pgid, "after shutdown");
    assert!(!d.dirs.cfg.join("port").exists(), "port file removed");
}

// ---------------------------------------------------------------------------
// 11. delegation

fn git(dir: &std::path::Path, args: &[&str]) {
    let st = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("git");
    assert!(st.success(), "git {args:?}");
}

#[test]
fn delegate_runs_the_agent_with_one_prompt_argument_and_reports_a_ticket() {
    let d = Daemon::new();
    let root = d.dir();
    let ws = root.join("ws");
    let repo = ws.join("repo");
    fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    fs::write(repo.join("tracked.txt"), "v1\n").unwrap();
    git(&repo, &["add", "tracked.txt"]);
    git(&repo, &["commit", "-q", "-m", "init"]);
    fs::write(repo.join("pre.txt"), "untracked before the run\n").unwrap();
    let stub = root.join("stub-agent.sh");
    write_script(
        &stub,
        "#!/bin/sh\nprintf '%s' \"$1\" > prompt.txt\necho v2 >> tracked.txt\n\
         echo \"argc=$#\"\nprintf '%s\\n' \"$1\"\necho 'stub done'\n",
    );
    d.write_config(&format!(
        "agents:\n  stub: {{delegate: [{}, \"{{prompt}}\"], pool: default}}\n\
         workspaces: [{}]\nshutdown_timeout_ms: 500\n",
        yq(&stub),
        yq(&ws)
    ));
    let mut d = d;
    d.start();

    let task = "Fix the bug; then run `make` && echo \"done\" $(id) 'quoted'\nSecond line: * ?";
    let r = d.post(
        "/delegate",
        &json!({
            "agent_type": "stub",
            "task": task,
            "context": {"files": ["src/a.py"], "requirements": ["Use bcrypt; not md5"], "tests_required": true},
            "working_dir": repo.display().to_string(),
            "timeout_ms": 60000
        }),
    );
    assert_eq!(r.status, 202, "{r}");
    let t = r.json();
    let tid = t["ticket_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{t}"))
        .to_string();
    assert!(is_exec_id(&tid), "{t}");
    assert!(t.get("session_id").is_some(), "{t}");
    assert!(t["created_at"].is_string(), "{t}");
    assert!(
        matches!(
            t["status"].as_str(),
            Some("pending") | Some("starting") | Some("running")
        ),
        "{t}"
    );

    let mut ticket = Value::Null;
    assert!(
        wait_until(DEADLINE, || {
            let r = d.get(&format!("/tasks/{tid}"));
            assert_eq!(r.status, 200, "{r}");
            ticket = r.json();
            !matches!(
                ticket["status"].as_str(),
                Some("pending") | Some("starting") | Some("running")
            )
        }),
        "ticket never finished: {ticket}\n{}",
        d.log()
    );
    assert_eq!(ticket["ticket_id"], json!(tid), "{ticket}");
    assert_eq!(ticket["status"], "completed", "{ticket}");
    assert_eq!(ticket["agent"], "stub", "{ticket}");
    assert_eq!(ticket["result"]["exit_code"], 0, "{ticket}");
    assert!(ticket["started_at"].is_string(), "{ticket}");
    assert!(ticket["completed_at"].is_string(), "{ticket}");
    assert!(ticket["duration_ms"].is_u64(), "{ticket}");
    assert_eq!(
        ticket["result"]["files_modified"],
        json!(["prompt.txt", "tracked.txt"]),
        "only paths changed by the run: {ticket}"
    );

    // The prompt arrived as ONE argv element, verbatim, task text first.
    let prompt = fs::read_to_string(repo.join("prompt.txt")).unwrap();
    assert!(prompt.starts_with(task), "prompt: {prompt:?}");
    for needle in ["src/a.py", "Use bcrypt; not md5"] {
        assert!(
            prompt.contains(needle),
            "context {needle} in prompt {prompt:?}"
        );
    }
    let out = String::from_utf8_lossy(&d.output_log(&tid)).into_owned();
    assert!(out.starts_with("argc=1\n"), "output: {out:?}");
    let msg = ticket["result"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{ticket}"));
    let last_prompt_line = prompt.trim_end().lines().last().unwrap();
    assert!(msg.contains(last_prompt_line), "message {msg:?}");
    assert!(msg.trim_end().ends_with("stub done"), "message {msg:?}");

    // A ticket is an execution.
    let e = d.exec(&tid);
    assert_eq!(e["status"], "completed", "{e}");
    assert_eq!(e["cwd"], json!(repo.display().to_string()), "{e}");
    assert_eq!(e["argv"].as_array().map(Vec::len), Some(2), "{e}");
    assert_eq!(e["argv"][1], json!(prompt), "{e}");
    let list = d.get("/executions").json();
    assert!(
        list["executions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == json!(tid)),
        "{list}"
    );

    // Unknown agent type: 400. Missing task: 400. working_dir outside: 403.
    let r = d.post("/delegate", &json!({"agent_type": "claude", "task": "x"}));
    assert_eq!(r.status, 400, "{r}");
    assert_eq!(error_code(&r), "bad_request", "{r}");
    assert_eq!(
        d.post("/delegate", &json!({"agent_type": "stub"})).status,
        400
    );
    let r = d.post(
        "/delegate",
        &json!({"agent_type": "stub", "task": "x", "working_dir": root.display().to_string()}),
    );
    assert_eq!(r.status, 403, "{r}");
    assert_eq!(d.get("/tasks/exec-000000000000").status, 404);
    let r = d.post(
        "/delegate",
        &json!({"agent_type": "stub", "task": "x", "context": "not an object"}),
    );
    assert_eq!(r.status, 400, "{r}");
}

// ---------------------------------------------------------------------------
// 12. CLI

#[test]
fn cli_run_follow_logs_and_executions() {
    let d = Daemon::with_config(&format!(
        "tasks:\n  - name: seven\n    command: [\"sh\", \"-c\", \"echo out-line; echo err-line >&2; exit 7\"]\n\
         \x20 - name: ok\n    command: [\"echo\", \"fine\"]\n\
         \x20 - name: echo\n    command: {}\n    allow_args: true\n\
         \x20 - name: long\n    command: {}\nshutdown_timeout_ms: 500\n",
        yq(&["printf", "%s\\n"]),
        yq(&["sh", "-c", TREE])
    ));
    let o = d.cli(&["run", "seven", "--follow"], DEADLINE);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(7),
        "run --follow exits with the run's code; stdout {stdout:?} stderr {:?}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("out-line\n") && stdout.contains("err-line\n"),
        "{stdout:?}"
    );

    let o = d.cli(&["run", "ok", "--follow"], DEADLINE);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "fine\n");

    let o = d.cli(&["executions", "--json"], DEADLINE);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v: Value = serde_json::from_slice(&o.stdout).expect("executions --json is JSON");
    assert_eq!(v["total"], 2, "{v}");
    let seven = v["executions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["task"] == "seven")
        .unwrap_or_else(|| panic!("{v}"))
        .clone();
    assert_eq!(seven["status"], "failed", "{seven}");
    assert_eq!(seven["exit_code"], 7, "{seven}");
    let sid = id_of(&seven);

    let o = d.cli(&["logs", &sid], DEADLINE);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(o.stdout, d.output_log(&sid), "logs prints the bytes");
    assert_eq!(o.stdout, d.get(&format!("/executions/{sid}/output")).body);

    // Without --follow: prints the id.
    let o = d.cli(&["run", "ok"], DEADLINE);
    assert_eq!(o.status.code(), Some(0));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(is_exec_id(&id), "{id:?}");
    assert_eq!(d.wait_final(&id)["status"], "completed");

    // Unknown task: non-zero exit.
    let o = d.cli(&["run", "nope"], DEADLINE);
    assert_eq!(o.status.code(), Some(1), "{o:?}");

    // Args after `--` reach the child verbatim.
    let o = d.cli(
        &["run", "echo", "--follow", "--", "a; b", "$(id)", "-n", "*"],
        DEADLINE,
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "a; b\n$(id)\n-n\n*\n");

    // A timeout exits 124; retry and cancel by id.
    let o = d.cli(&["run", "long", "--timeout", "500ms", "--follow"], DEADLINE);
    assert_eq!(o.status.code(), Some(124), "{o:?}");
    let o = d.cli(&["run", "long", "--json"], DEADLINE);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let e: Value = serde_json::from_slice(&o.stdout).expect("run --json");
    let lid = id_of(&e);
    let (_, pg) = d.wait_running(&lid, 3);
    let o = d.cli(&["cancel", &lid], DEADLINE);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(d.exec(&lid)["status"], "cancelled");
    assert!(wait_group_gone(pg, Duration::from_secs(10)).is_ok());
    let o = d.cli(&["cancel", &lid], DEADLINE);
    assert_eq!(
        o.status.code(),
        Some(1),
        "cancel of a finished run fails: {o:?}"
    );
    let o = d.cli(&["retry", &sid, "--json"], DEADLINE);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let r: Value = serde_json::from_slice(&o.stdout).expect("retry --json");
    assert_eq!(r["retry_of"], json!(sid), "{r}");
    assert_eq!(d.wait_final(&id_of(&r))["exit_code"], 7);
}

// ---------------------------------------------------------------------------
// 13. retry, 409, 429

#[test]
fn retry_conflict_and_queue_full() {
    let d = Daemon::with_config(&format!(
        "tasks:\n  - name: quick\n    command: [\"sh\", \"-c\", \"echo quick\"]\n\
         \x20 - name: long\n    command: {}\n    pool: q\n\
         pools:\n  q: {{max_concurrent: 1, max_queued: 2}}\nshutdown_timeout_ms: 500\n",
        yq(&["sh", "-c", TREE])
    ));
    let first = id_of(&d.submit(&json!({"task": "quick"})));
    assert_eq!(d.wait_final(&first)["status"], "completed");
    let r = d.post_empty(&format!("/executions/{first}/cancel"));
    assert_eq!(r.status, 409, "{r}");
    assert_eq!(error_code(&r), "conflict", "{r}");

    let r = d.post_empty(&format!("/executions/{first}/retry"));
    assert_eq!(r.status, 202, "{r}");
    let again = r.json();
    let aid = id_of(&again);
    assert_eq!(
        r.header("location").map(str::to_string),
        Some(format!("/executions/{aid}"))
    );
    assert_ne!(aid, first);
    assert_eq!(again["retry_of"], json!(first), "{again}");
    assert_eq!(again["task"], "quick");
    assert_eq!(again["argv"], d.exec(&first)["argv"]);
    let fin = d.wait_final(&aid);
    assert_eq!(fin["status"], "completed", "{fin}");
    assert_eq!(fin["retry_of"], json!(first), "{fin}");
    assert_eq!(d.output_log(&aid), b"quick\n");
    assert!(d.exec(&first)["retry_of"].is_null());
    assert_eq!(
        d.post_empty("/executions/exec-000000000000/retry").status,
        404
    );

    // Pool q: 1 running + 2 queued; the next is refused with Retry-After.
    let a = id_of(&d.submit(&json!({"task": "long"})));
    let (_, pgid) = d.wait_running(&a, 3);
    let b = d.submit(&json!({"task": "long"}));
    let c = d.submit(&json!({"task": "long"}));
    assert_eq!(b["queue_position"], 1, "{b}");
    assert_eq!(c["queue_position"], 2, "{c}");
    let r = d.post("/executions", &json!({"task": "long"}));
    assert_eq!(r.status, 429, "{r}");
    assert_eq!(error_code(&r), "queue_full", "{r}");
    let ra = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("Retry-After: {r}"));
    assert!(ra.parse::<u64>().is_ok_and(|s| s > 0), "Retry-After {ra}");
    // Retrying into a full queue is refused the same way.
    let r = d.post_empty(&format!("/executions/{a}/retry"));
    assert_eq!(r.status, 429, "{r}");
    // Other pools are unaffected.
    let q = id_of(&d.submit(&json!({"task": "quick"})));
    assert_eq!(d.wait_final(&q)["status"], "completed");

    for id in [id_of(&c), id_of(&b), a.clone()] {
        let r = d.post_empty(&format!("/executions/{id}/cancel"));
        assert_eq!(r.status, 200, "{r}");
        assert_eq!(r.json()["status"], "cancelled", "{r}");
    }
    assert_group_gone(&d, pgid, "after cancel");
    // A cancelled run can be retried.
    let r = d.post_empty(&format!("/executions/{a}/retry"));
    assert_eq!(r.status, 202, "{r}");
    let rid = id_of(&r.json());
    let (_, rpg) = d.wait_running(&rid, 3);
    assert_eq!(
        d.post_empty(&format!("/executions/{rid}/cancel")).json()["status"],
        "cancelled"
    );
    assert_group_gone(&d, rpg, "after cancel of the retry");
}

// ---------------------------------------------------------------------------
// more edges

/// CPU time (user + system) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest: Vec<&str> = s[s.rfind(')').unwrap() + 1..].split_whitespace().collect();
    // fields 14 and 15 of stat; `rest` starts at field 3
    rest[11].parse::<u64>().unwrap() + rest[12].parse::<u64>().unwrap()
}

fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

#[test]
fn sse_never_splits_a_character_and_waits_for_the_rest_without_spinning() {
    // "a" + first byte of "é", a pause, then the second byte and "b\n".
    let (d, id) = one_run(
        "split",
        &["sh", "-c", "printf 'a\\303'; sleep 4; printf '\\251b\\n'"],
    );
    let mut c = d.stream(&id, None);
    let mut acc = Vec::new();
    let mut texts = Vec::new();
    let mut spin: Option<(u64, f64)> = None;
    loop {
        let ev = c
            .next_event()
            .unwrap()
            .unwrap_or_else(|| panic!("stream ended without `end`: {texts:?}"));
        match ev.event.as_str() {
            "output" => {
                let v = ev.json();
                let t = v["text"].as_str().unwrap().to_string();
                assert_eq!(v["offset"], acc.len() as u64, "{v}");
                assert!(
                    !t.contains('\u{FFFD}'),
                    "a character was split: {texts:?} + {t:?}"
                );
                acc.extend_from_slice(t.as_bytes());
                assert_eq!(ev.id.as_deref(), Some(acc.len().to_string().as_str()));
                texts.push(t);
                if acc == b"a" && spin.is_none() {
                    // The run now sleeps with half a character pending in the log:
                    // the stream must wait for it, not busy-loop.
                    let t0 = cpu_ticks(d.pid());
                    let w0 = Instant::now();
                    std::thread::sleep(Duration::from_millis(1500));
                    spin = Some((cpu_ticks(d.pid()) - t0, w0.elapsed().as_secs_f64()));
                }
            }
            "end" => break,
            _ => {}
        }
    }
    assert_eq!(String::from_utf8(acc).unwrap(), "aéb\n", "{texts:?}");
    // (Only measurable when the stream saw "a" alone, i.e. connected in time.)
    if let Some((ticks, secs)) = spin {
        let cpu = ticks as f64 / clk_tck() as f64;
        assert!(
            cpu < 0.4 * secs,
            "the daemon burnt {cpu:.2} s of CPU in {secs:.2} s while a stream waited for the rest of a character"
        );
    }
}

#[test]
fn invalid_utf8_is_shown_lossily_but_offsets_count_raw_bytes() {
    let (d, id) = one_run("bin", &["printf", "x\\377y\\n"]);
    assert_eq!(d.wait_final(&id)["output_bytes"], 4);
    assert_eq!(d.output_log(&id), b"x\xffy\n");
    assert_eq!(d.get(&format!("/executions/{id}/output")).body, b"x\xffy\n");
    let mut c = d.stream(&id, None);
    let (mut text, mut last_id, mut end) = (String::new(), None, None);
    while let Some(ev) = c.next_event().unwrap() {
        match ev.event.as_str() {
            "output" => {
                text.push_str(ev.json()["text"].as_str().unwrap());
                last_id = ev.id.clone();
            }
            "end" => end = Some(ev.json()),
            _ => {}
        }
    }
    assert_eq!(text, "x\u{FFFD}y\n");
    assert_eq!(last_id.as_deref(), Some("4"), "ids are raw byte offsets");
    assert_eq!(end.expect("end")["status"], "completed");
}

#[test]
fn stream_of_a_queued_run_follows_it_from_pending_to_end() {
    let d = Daemon::with_config(&format!(
        "tasks:\n  - name: long\n    command: {}\n    pool: one\n\
         \x20 - name: later\n    command: [\"sh\", \"-c\", \"echo first; sleep 2; echo second\"]\n    pool: one\n\
         pools:\n  one: {{max_concurrent: 1}}\nshutdown_timeout_ms: 500\n",
        yq(&["sh", "-c", TREE])
    ));
    let a = id_of(&d.submit(&json!({"task": "long"})));
    d.wait_running(&a, 3);
    let b = d.submit(&json!({"task": "later"}));
    assert_eq!(b["status"], "pending", "{b}");
    let b = id_of(&b);
    let mut c = d.stream(&b, None);
    let first = c.next_event().unwrap().unwrap();
    assert_eq!(first.event, "status");
    assert_eq!(first.json()["status"], "pending", "{}", first.data);
    assert_eq!(first.json()["queue_position"], 1, "{}", first.data);
    assert_eq!(d.post_empty(&format!("/executions/{a}/cancel")).status, 200);
    let mut acc = Vec::new();
    let mut statuses = Vec::new();
    let (_, end) = read_output(&mut c, &mut acc, None, &mut statuses);
    let end = end.expect("end");
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(acc, b"first\nsecond\n");
    assert!(
        statuses.iter().any(|s| s["status"] == "running"),
        "a status frame announced the start: {statuses:?}"
    );
}

#[test]
fn retention_keeps_the_newest_records_and_caps_output() {
    let d = Daemon::with_config(
        "tasks:\n  - name: big\n    command: [\"sh\", \"-c\", \"i=0; while [ $i -lt 1000 ]; do echo 0123456789; i=$((i+1)); done\"]\n\
         \x20 - name: small\n    command: [\"echo\", \"s\"]\n\
         retention: {executions: 3, output_bytes: 2048}\nshutdown_timeout_ms: 500\n",
    );
    let expected = "0123456789\n".repeat(1000);
    let big = id_of(&d.submit(&json!({"task": "big"})));
    let fin = d.wait_final(&big);
    assert_eq!(fin["status"], "completed", "{fin}");
    let log = d.output_log(&big);
    assert!(
        log.len() >= 2048 && log.len() < 2048 + 300,
        "log is capped near 2048 bytes: {}",
        log.len()
    );
    assert_eq!(&log[..2048], &expected.as_bytes()[..2048]);
    assert_eq!(fin["output_bytes"], log.len() as u64, "{fin}");
    assert_eq!(d.get(&format!("/executions/{big}/output")).body, log);

    let mut ids = vec![big.clone()];
    for _ in 0..4 {
        let id = id_of(&d.submit(&json!({"task": "small"})));
        assert_eq!(d.wait_final(&id)["status"], "completed");
        ids.push(id);
    }
    let list = d.get("/executions").json();
    assert_eq!(list["total"], 3, "{list}");
    assert_eq!(
        listed_ids(&list),
        vec![ids[4].clone(), ids[3].clone(), ids[2].clone()]
    );
    assert_eq!(d.get(&format!("/executions/{big}")).status, 404);
    assert!(
        !d.exec_dir(&big).exists(),
        "a pruned record's directory is removed"
    );
}

#[test]
fn concurrent_submissions_keep_fifo_and_the_limit() {
    let (d, w) = counting_pool("0.1");
    let (port, token) = (d.port, d.token.clone());
    let mut ids: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let token = token.clone();
                s.spawn(move || {
                    (0..6)
                        .map(|i| {
                            let body = json!({"task": "work", "args": [format!("t{t}-{i}")]});
                            let r = request(
                                port,
                                "POST",
                                "/executions",
                                &[
                                    ("Authorization", &format!("Bearer {token}")),
                                    ("Content-Type", "application/json"),
                                ],
                                &serde_json::to_vec(&body).unwrap(),
                            );
                            assert_eq!(r.status, 202, "{r}");
                            id_of(&r.json())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    for id in &ids {
        assert_eq!(d.wait_final(id)["status"], "completed");
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 24, "ids are unique");
    let counts = fs::read_to_string(w.join("counts")).unwrap();
    assert!(
        counts
            .lines()
            .all(|l| l.trim().parse::<u32>().unwrap() <= 2),
        "{counts}"
    );
    // `work` is the only task.
    let queued = bus_exec_ids(&d, "execution.queued", "work");
    assert_eq!(queued.len(), 24);
    assert_eq!(
        bus_exec_ids(&d, "execution.started", "work"),
        queued,
        "started in queue order"
    );
}

#[test]
fn shutdown_keeps_pending_runs_for_the_next_start() {
    let mut d = Daemon::with_config(&format!(
        "tasks:\n  - name: long\n    command: {}\n    pool: busy\n\
         \x20 - name: later\n    command: [\"echo\", \"later\"]\n    pool: busy\n\
         pools:\n  busy: {{max_concurrent: 1}}\nshutdown_timeout_ms: 300\n",
        yq(&["sh", "-c", TREE])
    ));
    let long = id_of(&d.submit(&json!({"task": "long"})));
    let (_, pgid) = d.wait_running(&long, 3);
    let later = d.submit(&json!({"task": "later"}));
    assert_eq!(later["status"], "pending");
    let later = id_of(&later);
    assert_eq!(d.post_empty("/shutdown").status, 202);
    let st = d
        .wait_exit(DEADLINE)
        .unwrap_or_else(|| panic!("daemon did not exit\n{}", d.log()));
    assert!(st.success(), "{st}");
    assert_group_gone(&d, pgid, "after shutdown");
    assert_eq!(d.record(&long)["status"], "cancelled");
    let rec = d.record(&later);
    assert_eq!(
        rec["status"], "pending",
        "not started during the drain: {rec}"
    );
    assert!(rec["pid"].is_null(), "{rec}");

    d.start();
    let e = d.wait_final(&later);
    assert_eq!(e["status"], "completed", "{e}\n{}", d.log());
    assert_eq!(d.output_log(&later), b"later\n");
    assert_eq!(d.exec(&long)["status"], "cancelled", "not turned into lost");
}

#[test]
fn executions_api_edges() {
    let d = Daemon::new();
    let root = d.dir();
    let ws = root.join("ws");
    fs::create_dir_all(&ws).unwrap();
    fs::create_dir_all(root.join("ws-evil")).unwrap();
    fs::create_dir_all(root.join("plain")).unwrap();
    let stub = root.join("stub.sh");
    write_script(&stub, "#!/bin/sh\necho hi > out.txt\necho \"$1\"\n");
    d.write_config(&format!(
        "tasks:\n  - name: ok\n    command: [\"echo\", \"ok\"]\n\
         agents:\n  stub: {{delegate: [{}, \"{{prompt}}\"]}}\n\
         workspaces: [{}, {}]\nshutdown_timeout_ms: 500\n",
        yq(&stub),
        yq(&ws),
        yq(&root.join("plain"))
    ));
    let mut d = d;
    d.start();
    // A sibling whose name merely starts with the workspace's name is outside.
    let r = d.post(
        "/executions",
        &json!({"task": "ok", "cwd": root.join("ws-evil").display().to_string()}),
    );
    assert_eq!(r.status, 403, "{r}");
    // /api alias, bad fields, unknown ids, list parameters.
    let r = d.post("/api/executions", &json!({"task": "ok"}));
    assert_eq!(r.status, 202, "{r}");
    let id = id_of(&r.json());
    assert_eq!(d.wait_final(&id)["status"], "completed");
    assert_eq!(
        d.get(&format!("/api/executions/{id}")).json()["id"],
        json!(id)
    );
    for bad in [
        json!({"task": "ok", "args": "x"}),
        json!({"task": "ok", "args": [1]}),
        json!({"task": 5}),
        json!({"task": "ok", "cwd": 5}),
    ] {
        assert_eq!(d.post("/executions", &bad).status, 400, "{bad}");
    }
    for p in [
        "/executions/exec-000000000000",
        "/executions/exec-000000000000/output",
        "/executions/exec-000000000000/stream",
    ] {
        let r = d.get(p);
        assert_eq!(r.status, 404, "{p}: {r}");
        assert_eq!(error_code(&r), "not_found", "{r}");
    }
    assert_eq!(d.get("/executions?limit=0").status, 400);
    assert_eq!(d.get("/executions?limit=1001").status, 400);
    assert_eq!(d.get("/executions?status=bogus").status, 400);
    assert_eq!(d.get("/executions?status=completed").json()["total"], 1);
    // Without the token: 401 on every executions route.
    for (m, p) in [
        ("GET", "/executions".to_string()),
        ("GET", format!("/executions/{id}")),
        ("GET", format!("/executions/{id}/output")),
        ("POST", format!("/executions/{id}/retry")),
        ("POST", format!("/executions/{id}/cancel")),
        ("GET", format!("/tasks/{id}")),
    ] {
        let r = request(d.port, m, &p, &[], b"");
        assert_eq!(r.status, 401, "{m} {p}: {r}");
    }
    // A delegation outside a git work tree reports no modified files.
    let r = d.post(
        "/delegate",
        &json!({"agent_type": "stub", "task": "hello", "working_dir": root.join("plain").display().to_string()}),
    );
    assert_eq!(r.status, 202, "{r}");
    let tid = r.json()["ticket_id"].as_str().unwrap().to_string();
    let e = d.wait_final(&tid);
    assert_eq!(e["status"], "completed", "{e}");
    let t = d.get(&format!("/tasks/{tid}")).json();
    assert_eq!(t["result"]["files_modified"], json!([]), "{t}");
    assert_eq!(t["result"]["message"], "hello", "{t}");
}

fn is_rfc3339_ms_utc(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn execution_records_have_the_contract_shape_and_failures_are_reported() {
    let d = Daemon::with_config(
        "tasks:\n  - name: ok\n    command: [\"echo\", \"ok\"]\n\
         \x20 - name: missing\n    command: [\"/nonexistent/orchestratr-test-binary\"]\n\
         \x20 - name: badcwd\n    command: [\"echo\", \"x\"]\n    cwd: /nonexistent/orchestratr-test-dir\n\
         \x20 - name: killed\n    command: [\"sh\", \"-c\", \"kill -9 $$\"]\n\
         \x20 - name: three\n    command: \"exit 3\"\n\
         \x20 - name: stdin\n    command: [\"cat\"]\nshutdown_timeout_ms: 500\n",
    );
    // The contract's own example body (empty args, explicit nulls) is accepted.
    let e = d.submit(&json!({"task": "ok", "args": [], "cwd": null, "timeout_ms": null}));
    let fin = d.wait_final(&id_of(&e));
    let keys = [
        "id",
        "task",
        "argv",
        "cwd",
        "pool",
        "status",
        "queue_position",
        "pid",
        "exit_code",
        "signal",
        "error",
        "retry_of",
        "created_at",
        "started_at",
        "finished_at",
        "duration_ms",
        "output_bytes",
    ];
    for k in keys {
        assert!(fin.get(k).is_some(), "field {k} missing: {fin}");
        assert!(e.get(k).is_some(), "field {k} missing in the 202 body: {e}");
    }
    assert_eq!(fin["status"], "completed", "{fin}");
    assert_eq!(fin["exit_code"], 0, "{fin}");
    assert!(fin["signal"].is_null() && fin["error"].is_null(), "{fin}");
    assert_eq!(fin["argv"], json!(["echo", "ok"]));
    assert_eq!(fin["pool"], "default");
    assert_eq!(fin["output_bytes"], 3);
    for k in ["created_at", "started_at", "finished_at"] {
        let t = fin[k].as_str().unwrap_or_else(|| panic!("{k}: {fin}"));
        assert!(is_rfc3339_ms_utc(t), "{k} = {t}");
    }
    assert!(fin["created_at"].as_str() <= fin["started_at"].as_str());
    assert!(fin["started_at"].as_str() <= fin["finished_at"].as_str());
    // The record on disk holds the same public fields.
    let rec = d.record(&id_of(&e));
    for k in keys.iter().filter(|k| **k != "queue_position") {
        assert_eq!(rec[*k], fin[*k], "execution.json field {k}");
    }

    for task in ["missing", "badcwd"] {
        let f = d.wait_final(&id_of(&d.submit(&json!({"task": task}))));
        assert_eq!(f["status"], "failed", "spawn error of {task}: {f}");
        assert!(f["error"].as_str().is_some_and(|s| !s.is_empty()), "{f}");
        assert!(f["exit_code"].is_null(), "{f}");
    }
    let f = d.wait_final(&id_of(&d.submit(&json!({"task": "killed"}))));
    assert_eq!(f["status"], "failed", "{f}");
    assert_eq!(f["signal"], 9, "{f}");
    assert!(f["exit_code"].is_null(), "{f}");
    let f = d.wait_final(&id_of(&d.submit(&json!({"task": "three"}))));
    assert_eq!(f["status"], "failed", "{f}");
    assert_eq!(f["exit_code"], 3, "{f}");
    assert_eq!(
        f["argv"][0], "/bin/sh",
        "a string command runs via /bin/sh -c: {f}"
    );
    // Non-interactive: stdin is empty, so `cat` ends at once.
    let f = d.wait_final(&id_of(&d.submit(&json!({"task": "stdin"}))));
    assert_eq!(f["status"], "completed", "{f}");
    assert_eq!(f["output_bytes"], 0, "{f}");
}

#[test]
fn a_detached_grandchild_holding_the_pipe_does_not_keep_the_run_open() {
    let (d, id) = one_run(
        "detach",
        &["sh", "-c", "setsid sleep 300 & echo parent done"],
    );
    let f = d.wait_final(&id);
    assert_eq!(f["status"], "completed", "{f}");
    assert_eq!(d.output_log(&id), b"parent done\n");
    let mut c = d.stream(&id, None);
    let mut acc = Vec::new();
    let (_, end) = read_output(&mut c, &mut acc, None, &mut Vec::new());
    assert_eq!(end.expect("end")["status"], "completed");
}

#[test]
fn reload_applies_new_pool_limits_to_queued_runs() {
    let yaml = |n: u32| {
        format!(
            "tasks:\n  - name: long\n    command: {}\n    pool: p\n\
             pools:\n  p: {{max_concurrent: {n}}}\nshutdown_timeout_ms: 500\n",
            yq(&["sh", "-c", TREE])
        )
    };
    let d = Daemon::with_config(&yaml(1));
    let a = id_of(&d.submit(&json!({"task": "long"})));
    let (running, pgid) = d.wait_running(&a, 3);
    let b = id_of(&d.submit(&json!({"task": "long"})));
    let c = id_of(&d.submit(&json!({"task": "long"})));
    assert_eq!(d.exec(&c)["queue_position"], 2);
    d.write_config(&yaml(3));
    let r = request(d.port, "POST", "/reload", &[], b"");
    assert_eq!(r.status, 200, "{r}");
    for id in [&b, &c] {
        d.wait_exec(id, "running after the limit was raised", DEADLINE, |e| {
            e["status"] == "running"
        });
    }
    let still = d.exec(&a);
    assert_eq!(still["status"], "running", "{still}");
    assert_eq!(still["pid"], running["pid"], "running run undisturbed");
    assert!(!group_pids(pgid).is_empty());
    for id in [&a, &b, &c] {
        let r = d.post_empty(&format!("/executions/{id}/cancel"));
        assert_eq!(r.json()["status"], "cancelled", "{r}");
    }
}

#[test]
fn a_stream_open_during_shutdown_gets_its_end_frame() {
    let mut d = Daemon::with_config(&format!(
        "tasks:\n  - name: long\n    command: {}\nshutdown_timeout_ms: 300\n",
        yq(&["sh", "-c", TREE])
    ));
    let id = id_of(&d.submit(&json!({"task": "long"})));
    d.wait_running(&id, 3);
    let mut c = d.stream(&id, None);
    let mut acc = Vec::new();
    let (_, end) = read_output(&mut c, &mut acc, Some(6), &mut Vec::new());
    assert!(end.is_none());
    assert_eq!(d.post_empty("/shutdown").status, 202);
    let mut end = None;
    while let Ok(Some(ev)) = c.next_event() {
        if ev.event == "end" {
            end = Some(ev.json());
            break;
        }
    }
    let end = end.unwrap_or_else(|| panic!("stream cut without `end`\n{}", d.log()));
    assert_eq!(end["status"], "cancelled", "{end}");
    assert_eq!(end["error"], "daemon shutdown", "{end}");
    assert!(d.wait_exit(DEADLINE).is_some_and(|s| s.success()));
}

#[test]
fn a_stream_of_a_pruned_execution_ends_instead_of_hanging() {
    let d = Daemon::with_config(
        "tasks:\n  - name: big\n    command: [\"sh\", \"-c\", \"yes | head -c 20000000\"]\n\
         \x20 - name: small\n    command: [\"echo\", \"s\"]\n\
         retention: {executions: 1}\nshutdown_timeout_ms: 500\n",
    );
    let big = id_of(&d.submit(&json!({"task": "big"})));
    assert_eq!(
        d.wait_exec(&big, "final", Duration::from_secs(120), |e| e["status"]
            == "completed")["output_bytes"],
        20_000_000
    );
    let mut c = d.stream(&big, None);
    let mut got = 0usize;
    // Read a little, then let retention remove the record while the stream is
    // still far from the end of the log.
    while got < 100_000 {
        let ev = c.next_event().unwrap().expect("frames");
        if ev.event == "output" {
            got += ev.json()["text"].as_str().unwrap().len();
        }
    }
    let small = id_of(&d.submit(&json!({"task": "small"})));
    d.wait_final(&small);
    assert_eq!(d.get(&format!("/executions/{big}")).status, 404, "pruned");
    c.set_read_timeout(Duration::from_secs(10));
    let t0 = Instant::now();
    let outcome = loop {
        match c.next_event() {
            Ok(Some(ev)) => {
                if ev.event == "output" {
                    got += ev.json()["text"].as_str().unwrap().len();
                }
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    let cpu = cpu_ticks(d.pid());
    std::thread::sleep(Duration::from_secs(1));
    let spent = (cpu_ticks(d.pid()) - cpu) as f64 / clk_tck() as f64;
    assert!(
        outcome.is_ok(),
        "the stream hung after {got} of 20000000 bytes ({:?}; {e:?}); the daemon burnt {spent:.2} s CPU in the next 1 s",
        t0.elapsed(),
        e = outcome.err()
    );
}

#[test]
fn an_unreadable_record_does_not_stop_the_daemon_and_records_stay_parseable() {
    let mut d = Daemon::new();
    let bad = d.exec_dir("exec-0123456789ab");
    fs::create_dir_all(&bad).unwrap();
    fs::write(bad.join("execution.json"), "{ not json").unwrap();
    d.write_config(&format!(
        "tasks:\n  - name: chatty\n    command: {}\n    pool: p\n\
         pools:\n  p: {{max_concurrent: 2}}\n\
         agents:\n  slow: {{delegate: [\"sh\", \"-c\", \"sleep 300\", \"sh\", \"{{prompt}}\"]}}\n\
         shutdown_timeout_ms: 500\n",
        yq(&[
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do echo $i; sleep 0.05; done"
        ])
    ));
    d.start();
    assert_eq!(d.get("/executions").json()["total"], 0);
    // While runs change state, every execution.json on disk parses (atomic writes).
    let root = d.dirs.state.join("executions");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let ids: Vec<String> = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for e in fs::read_dir(&root).unwrap().flatten() {
                    if e.file_name() == "exec-0123456789ab" {
                        continue;
                    }
                    if let Ok(b) = fs::read(e.path().join("execution.json")) {
                        let v: Value = serde_json::from_slice(&b).unwrap_or_else(|err| {
                            panic!("torn record {}: {err}", e.path().display())
                        });
                        assert!(v["status"].is_string());
                        reads += 1;
                    }
                }
            }
            reads
        });
        let ids: Vec<String> = (0..8)
            .map(|_| id_of(&d.submit(&json!({"task": "chatty"}))))
            .collect();
        for id in &ids {
            assert_eq!(d.wait_final(id)["status"], "completed");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        ids
    });
    for id in &ids {
        assert_eq!(d.record(id)["status"], "completed");
        assert_eq!(d.output_log(id), b"1\n2\n3\n4\n5\n");
    }
    // A delegation's timeout_ms applies; the ticket reports it.
    let r = d.post(
        "/delegate",
        &json!({"agent_type": "slow", "task": "wait", "timeout_ms": 500}),
    );
    assert_eq!(r.status, 202, "{r}");
    let tid = r.json()["ticket_id"].as_str().unwrap().to_string();
    let e = d.wait_final(&tid);
    assert_eq!(e["status"], "timeout", "{e}");
    let t = d.get(&format!("/tasks/{tid}")).json();
    assert_eq!(t["status"], "timeout", "{t}");
    assert!(t["completed_at"].is_string(), "{t}");
    assert_group_gone(&d, e["pid"].as_u64().unwrap() as u32, "delegation timeout");
}
