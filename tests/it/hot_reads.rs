//! Hot reads served from the registry's snapshot (issue 7 part 7): the list and
//! the per-app bodies agree, and an event a subscriber sees is already visible
//! in `GET /apps/{name}/state` (events are published after the snapshot).

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(10);

const APPS: &str = r#"
apps:
  - name: quick
    command: "sh -c 'exit 3'"
    description: "exits at once"
  - name: idle
    command: "sleep 300"
    description: "never launched"
"#;

#[test]
fn list_agrees_with_per_app_bodies() {
    let d = Daemon::start(APPS);
    let (st, list) = d.get_json("/apps");
    assert_eq!(st, 200);
    assert_eq!(list["total"], 2);
    let apps = list["apps"].as_array().expect("apps array");
    assert_eq!(apps.len(), 2);
    for a in apps {
        let name = a["name"].as_str().expect("name");
        let (st, one) = d.get_json(&format!("/apps/{name}"));
        assert_eq!(st, 200);
        assert_eq!(&one, a, "GET /apps/{name} vs its item in GET /apps");
        let (st, state) = d.get_json(&format!("/apps/{name}/state"));
        assert_eq!(st, 200);
        assert_eq!(state, a["state"], "GET /apps/{name}/state");
    }
    let (st, h) = d.get_json("/health");
    assert_eq!(st, 200);
    assert_eq!(h["apps"], 2);
    assert_eq!(d.get("/apps/nope").status, 404);
    assert_eq!(d.get("/apps/nope/state").status, 404);
}

#[test]
fn exit_event_implies_state_visible() {
    let d = Daemon::start(APPS);
    let mut s = SseClient::connect(d.port, "/events/stream?type=app.exited", &[]);
    let (st, v) = d.post_auth("/apps/quick/launch");
    assert_eq!(st, 200, "{v}");
    // The launch reply is sent after the snapshot: read-your-writes (unless the
    // child already exited, which is also a consistent state).
    let (_, state) = d.get_json("/apps/quick/state");
    assert!(
        state["status"] == "launched" || state["exit_code"] == 3,
        "{state}"
    );
    let f = s.next_event(T).expect("an app.exited event");
    assert_eq!(f.json()["target"], "quick", "{f:?}");
    // No polling: the event is published only after the snapshot holds the exit.
    let (_, state) = d.get_json("/apps/quick/state");
    assert_eq!(state["status"], "stopped", "{state}");
    assert_eq!(state["exit_code"], 3, "{state}");
    let (_, list) = d.get_json("/apps");
    let item: &Value = list["apps"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "quick"))
        .expect("quick in the list");
    assert_eq!(item["state"]["exit_code"], 3, "{item}");
}

#[test]
fn empty_registry_lists_nothing() {
    let d = Daemon::start("apps: []\n");
    let r = d.get("/apps");
    assert_eq!(r.status, 200);
    assert_eq!(String::from_utf8_lossy(&r.body), r#"{"apps":[],"total":0}"#);
}
