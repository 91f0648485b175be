//! Storm test for exactly-once runs (issue 13 part 5/6, docs/api.md
//! "Executions: state machine and recovery"): `kill -9` of the daemon at a
//! random moment during a burst of 100 spawns, 10 repetitions. After each
//! restart:
//! - 0 orphans: once recovery ran, no process carrying the
//!   `ORCHESTRATR_EXECUTION_ID` of one of this test's runs (acknowledged or
//!   only recorded) is alive unless the
//!   new daemon is its ancestor (each run leaves a `sleep 30` in its process
//!   group, so an orphan cannot end by itself within the test);
//! - 0 doubles: each run's marker appears at most once in the shared file, and
//!   each `output.log` holds at most one line, its own run's;
//! - 0 acknowledged runs lost: every id answered `202` exists after the restart
//!   and reaches `completed`, or `lost` (a run that was starting or running).
//!
//! The figures per repetition are printed (`cargo test --test exec_storm --
//! --nocapture`).

use crate::common;
use crate::exec_support;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{proc_stat, try_request};
use exec_support::*;
use serde_json::{Value, json};

const REPS: usize = 10;
const BURST: usize = 100;
const SUBMITTERS: usize = 4;
const ID_ENV: &str = "ORCHESTRATR_EXECUTION_ID";

/// A random number (std's randomly seeded hasher; no extra crate).
fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Is `pid` a descendant of `ancestor` (by parent links in `/proc`)?
fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..64 {
        match proc_stat(pid) {
            Some((_, _, ppid, _, _)) if ppid == ancestor => return true,
            Some((_, _, ppid, _, _)) if ppid > 1 => pid = ppid,
            _ => return false,
        }
    }
    false
}

/// Live processes carrying an execution id of `ids` that the daemon `daemon`
/// did not start: `(pid, id)`.
fn orphans(ids: &HashSet<String>, daemon: Option<u32>) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for pid in common::all_pids() {
        let Ok(env) = fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let Some(id) = env.split(|b| *b == 0).find_map(|kv| {
            let v = kv.strip_prefix(ID_ENV.as_bytes())?.strip_prefix(b"=")?;
            Some(String::from_utf8_lossy(v).into_owned())
        }) else {
            continue;
        };
        if ids.contains(&id)
            && common::pid_alive(pid)
            && !daemon.is_some_and(|d| descends_from(pid, d))
        {
            out.push((pid, id));
        }
    }
    out
}

/// Submit `n` runs of `task` from `SUBMITTERS` threads; the ids answered 202.
fn burst(port: u16, token: &str, n: usize, acked: &Arc<Mutex<Vec<String>>>) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut hs = Vec::new();
    for _ in 0..SUBMITTERS {
        let (next, acked, auth) = (next.clone(), acked.clone(), format!("Bearer {token}"));
        hs.push(std::thread::spawn(move || {
            let body = serde_json::to_vec(&json!({"task": "storm"})).unwrap_or_default();
            while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < n {
                let h = [
                    ("Authorization", auth.as_str()),
                    ("Content-Type", "application/json"),
                ];
                match try_request(port, "POST", "/executions", &h, &body) {
                    Ok(r) if r.status == 202 => {
                        if let Some(id) = r.json()["id"].as_str()
                            && let Ok(mut a) = acked.lock()
                        {
                            a.push(id.to_string());
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return, // the daemon is gone
                }
            }
        }));
    }
    for h in hs {
        let _ = h.join();
    }
}

/// Every execution the daemon lists, by id.
fn all_execs(d: &Daemon) -> HashMap<String, Value> {
    let r = d.get("/executions?limit=1000");
    assert_eq!(r.status, 200, "{r}");
    r.json()["executions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| Some((e["id"].as_str()?.to_string(), e)))
        .collect()
}

fn is_final(e: &Value) -> bool {
    !matches!(
        e["status"].as_str(),
        Some("pending") | Some("starting") | Some("running")
    )
}

/// How often each id appears as a line of `shared`.
fn marker_counts(shared: &Path) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for l in fs::read_to_string(shared).unwrap_or_default().lines() {
        *m.entry(l.trim().to_string()).or_insert(0) += 1;
    }
    m
}

#[test]
fn kill9_during_a_burst_of_spawns_leaves_no_orphan_no_double_no_lost_run() {
    let mut d = Daemon::new();
    let shared = d.dir().join("markers");
    let script = format!(
        "echo \"${ID_ENV}\" >> {}; echo \"out ${ID_ENV}\"; sleep 30 & sleep 0.1",
        yq(&shared.display().to_string())
    );
    d.write_config(&format!(
        "tasks:\n  - name: storm\n    command: {}\n    pool: storm\n\
         pools:\n  storm: {{max_concurrent: 8, max_queued: 1000}}\n\
         retention: {{executions: 5000}}\nshutdown_timeout_ms: 2000\n",
        yq(&["/bin/sh", "-c", &script])
    ));
    d.start();
    let t0 = Instant::now();
    let mut all_acked: HashSet<String> = HashSet::new();
    let mut figures = Vec::new();
    for rep in 1..=REPS {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (port, token) = (d.port, d.token.clone());
        let a2 = acked.clone();
        let submitter = std::thread::spawn(move || burst(port, &token, BURST, &a2));
        // A random moment within the burst (from its first acknowledgement:
        // submissions plus ~1.3 s of runs).
        wait_until(Duration::from_secs(10), || {
            acked.lock().map(|a| !a.is_empty()).unwrap_or(true)
        });
        let wait = Duration::from_millis(random_u64() % 1300);
        std::thread::sleep(wait);
        d.kill9();
        let _ = submitter.join();
        let acked: Vec<String> = acked.lock().map(|a| a.clone()).unwrap_or_default();
        all_acked.extend(acked.iter().cloned());
        // Every run the daemon recorded, acknowledged or not (a 202 in flight).
        let mut all_ids = all_acked.clone();
        let root = d.exec_dir("x");
        if let Some(Ok(rd)) = root.parent().map(fs::read_dir) {
            all_ids.extend(
                rd.flatten()
                    .filter_map(|e| e.file_name().into_string().ok()),
            );
        }
        let before = orphans(&all_ids, None).len();

        d.start();
        let daemon = d.pid();
        // Recovery runs right after start-up: poll for the survivors to go.
        let mut left = Vec::new();
        let gone = wait_until(Duration::from_secs(10), || {
            left = orphans(&all_ids, Some(daemon));
            left.is_empty()
        });
        assert!(
            gone,
            "rep {rep}: orphans after recovery: {left:?}\n{}",
            d.log()
        );

        // Every acknowledged run exists and finishes.
        let mut execs = HashMap::new();
        let done = wait_until(Duration::from_secs(30), || {
            execs = all_execs(&d);
            acked.iter().all(|id| execs.get(id).is_some_and(is_final))
        });
        let missing: Vec<&String> = acked.iter().filter(|id| !execs.contains_key(*id)).collect();
        assert!(
            missing.is_empty(),
            "rep {rep}: acknowledged runs lost: {missing:?}"
        );
        assert!(done, "rep {rep}: runs never finished\n{}", d.log());

        let counts = marker_counts(&shared);
        let mut doubles = Vec::new();
        let (mut completed, mut lost_status) = (0, 0);
        for id in &acked {
            let e = &execs[id];
            let n = counts.get(id).copied().unwrap_or(0);
            let log = fs::read_to_string(d.exec_dir(id).join("output.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let foreign = lines.iter().any(|l| *l != format!("out {id}"));
            if n > 1 || lines.len() > 1 || foreign {
                doubles.push((id.clone(), n, log.clone()));
            }
            match e["status"].as_str() {
                Some("completed") => {
                    completed += 1;
                    assert_eq!(n, 1, "rep {rep}: completed {id} ran {n} times: {e}");
                }
                Some("lost") => lost_status += 1,
                other => panic!("rep {rep}: {id} ended {other:?}: {e}\n{}", d.log()),
            }
        }
        assert!(
            doubles.is_empty(),
            "rep {rep}: runs executed twice: {doubles:?}"
        );
        let line = format!(
            "rep {rep:>2}: kill after {:>4} ms, acknowledged {:>3}, completed {completed:>3}, \
             status lost {lost_status}, orphans before recovery {before}, after 0, doubles 0, \
             acknowledged missing 0",
            wait.as_millis(),
            acked.len()
        );
        println!("{line}");
        figures.push(line);
    }
    println!(
        "storm: {REPS} repetitions of kill -9 during {BURST} spawns in {:.1} s: 0 orphans, 0 doubles, 0 acknowledged runs lost",
        t0.elapsed().as_secs_f64()
    );
}
