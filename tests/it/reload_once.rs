//! Reload only on change (issue 7 part 3, API.md §6/§9): one edit is exactly one
//! `registry.reloaded`, one broken edit exactly one `config.invalid`, and
//! rewriting identical bytes (or merely reading the files) reloads nothing.
//!
//! These tests observe the event log for a fixed window after each edit: the
//! claim is "nothing more happens", so waiting the whole window is the test.

use crate::common;

use std::fs;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// How long each edit is observed for further events.
const OBSERVE: Duration = Duration::from_secs(3);
/// Deadline for the first reaction to an edit (hot reload targets ~1 s).
const REACT: Duration = Duration::from_secs(10);

const GOOD: &str = "apps:\n  - name: keep\n    command: \"sleep 30\"\n";
const GOOD2: &str = "apps:\n  - name: keep\n    command: \"sleep 31\"\n";
const BAD: &str = "apps:\n  - name: keep\n    command: \"sleep 30\"\n    ready_timeout_ms: lots\n";

fn last_id(d: &Daemon) -> u64 {
    d.events("limit=1000")
        .last()
        .and_then(|e| e["id"].as_u64())
        .unwrap_or(0)
}

/// Config events (`registry.reloaded`, `config.invalid`) after `since`.
fn config_events(d: &Daemon, since: u64) -> Vec<Value> {
    d.events(&format!(
        "since={since}&limit=1000&type=registry.reloaded,config.invalid"
    ))
}

fn count(evs: &[Value], ty: &str) -> usize {
    evs.iter().filter(|e| e["type"] == ty).count()
}

/// `#id type` of each event, for assertion messages.
fn brief(evs: &[Value]) -> Vec<String> {
    evs.iter()
        .map(|e| format!("#{} {}", e["id"], e["type"].as_str().unwrap_or("?")))
        .collect()
}

/// Poll the config events after `since` for the whole [`OBSERVE`] window (after
/// the first one arrived, within [`REACT`]); returns what was seen at the end.
fn observe(d: &Daemon, since: u64, what: &str) -> Vec<Value> {
    wait_for(REACT, what, || !config_events(d, since).is_empty());
    let end = Instant::now() + OBSERVE;
    let mut seen = Vec::new();
    while Instant::now() < end {
        seen = config_events(d, since);
        std::thread::sleep(Duration::from_millis(100));
    }
    let last = config_events(d, since);
    if last.len() > seen.len() {
        seen = last;
    }
    seen
}

/// Make sure the watcher is live before the real edits: a drop-in is
/// (re)written until the registry shows its latest content, so no reload of
/// the warm-up is still pending when counting starts.
fn watcher_live(d: &Daemon) {
    let mut n = 0;
    wait_for(REACT, "the watcher picks up a warm-up drop-in", || {
        n += 1;
        let cmd = format!("sleep {n}");
        d.dirs.write(
            "apps.d/warm.yml",
            &format!("name: warm\ncommand: \"{cmd}\"\n"),
        );
        wait_until(Duration::from_millis(1000), || {
            let (st, app) = d.get_json("/apps/warm");
            st == 200 && app["command"] == cmd.as_str()
        })
    });
}

#[test]
fn one_edit_is_one_reload_and_one_invalid_event() {
    let d = Daemon::start(GOOD);
    watcher_live(&d);

    // A valid edit: exactly one registry.reloaded over the window.
    let mark = last_id(&d);
    d.dirs.write("config.yml", GOOD2);
    let evs = observe(&d, mark, "registry.reloaded after an edit");
    assert_eq!(count(&evs, "registry.reloaded"), 1, "{:?}", brief(&evs));
    assert_eq!(count(&evs, "config.invalid"), 0, "{:?}", brief(&evs));
    assert_eq!(evs[0]["data"]["changed"], serde_json::json!(["keep"]));

    // A broken edit: exactly one config.invalid, the registry kept.
    let mark = last_id(&d);
    d.dirs.write("config.yml", BAD);
    let evs = observe(&d, mark, "config.invalid after a broken edit");
    assert_eq!(count(&evs, "config.invalid"), 1, "{:?}", brief(&evs));
    assert_eq!(count(&evs, "registry.reloaded"), 0, "{:?}", brief(&evs));
    let (st, app) = d.get_json("/apps/keep");
    assert_eq!(st, 200);
    assert_eq!(app["command"], "sleep 31", "previous registry kept: {app}");

    // Editing back: exactly one reload, no further config.invalid.
    let mark = last_id(&d);
    d.dirs.write_by_rename("config.yml", GOOD);
    let evs = observe(&d, mark, "registry.reloaded after the fix");
    assert_eq!(count(&evs, "registry.reloaded"), 1, "{:?}", brief(&evs));
    assert_eq!(count(&evs, "config.invalid"), 0, "{:?}", brief(&evs));
    let (_, app) = d.get_json("/apps/keep");
    assert_eq!(app["command"], "sleep 30", "{app}");
}

#[test]
fn identical_rewrite_and_reads_do_not_reload() {
    let d = Daemon::start(GOOD);
    watcher_live(&d);
    let mark = last_id(&d);

    // Same bytes, written in place and by rename; the files read; mtime bumped.
    d.dirs.write("config.yml", GOOD);
    d.dirs.write_by_rename("config.yml", GOOD);
    let _ = fs::read_to_string(d.dirs.config_path());
    let _ = fs::read_to_string(d.dirs.cfg.join("apps.d/warm.yml"));
    if let Ok(f) = fs::File::options().append(true).open(d.dirs.config_path()) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
    let end = Instant::now() + OBSERVE;
    while Instant::now() < end {
        let evs = config_events(&d, mark);
        assert!(
            evs.is_empty(),
            "no reload for identical content: {:?}",
            brief(&evs)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The watcher is still alive: a real change reloads, once.
    d.dirs.write("config.yml", GOOD2);
    let evs = observe(&d, mark, "registry.reloaded after a real change");
    assert_eq!(count(&evs, "registry.reloaded"), 1, "{:?}", brief(&evs));
}

#[test]
fn same_broken_bytes_rewritten_do_not_repeat_config_invalid() {
    let d = Daemon::start(GOOD);
    watcher_live(&d);
    let mark = last_id(&d);
    d.dirs.write("config.yml", BAD);
    wait_for(REACT, "config.invalid", || {
        count(&config_events(&d, mark), "config.invalid") == 1
    });
    // The same broken bytes again, by rename: no second event.
    d.dirs.write_by_rename("config.yml", BAD);
    let evs = observe(&d, mark, "config events");
    assert_eq!(count(&evs, "config.invalid"), 1, "{:?}", brief(&evs));
    // A different broken content is reported.
    d.dirs.write("config.yml", "auth: sometimes\n");
    wait_for(REACT, "a second config.invalid", || {
        count(&config_events(&d, mark), "config.invalid") == 2
    });
}
