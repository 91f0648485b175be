//! `events` (list or follow) and `emit`.

use super::{EXIT_OK, EXIT_USAGE, Env, err, fail, out};
use crate::client::{ClientError, next_frame};
use serde_json::{Value, json};
use std::time::Duration;

pub(super) struct EventsArgs {
    pub follow: bool,
    pub kind: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub since: Option<u64>,
    pub limit: u64,
    pub json: bool,
}

fn query(a: &EventsArgs, with_paging: bool) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    if let Some(t) = &a.kind {
        q.append_pair("type", t);
    }
    if let Some(s) = &a.source {
        q.append_pair("source", s);
    }
    if let Some(t) = &a.target {
        q.append_pair("target", t);
    }
    if with_paging {
        q.append_pair("since", &a.since.unwrap_or(0).to_string());
        q.append_pair("limit", &a.limit.to_string());
    }
    let s = q.finish();
    if s.is_empty() { s } else { format!("?{s}") }
}

/// One event as a human-readable line: `time #id type source [-> target] data`.
fn human(e: &Value) -> String {
    let target = match e["target"].as_str() {
        Some(t) => format!(" -> {t}"),
        None => String::new(),
    };
    format!(
        "{} #{} {} {}{} {}",
        e["time"].as_str().unwrap_or(""),
        e["id"],
        e["type"].as_str().unwrap_or(""),
        e["source"].as_str().unwrap_or(""),
        target,
        e["data"]
    )
}

fn print_event(e: &Value, as_json: bool) -> bool {
    if as_json {
        out(&e.to_string())
    } else {
        out(&human(e))
    }
}

pub(super) fn events(env: &Env, a: &EventsArgs) -> u8 {
    if !a.follow {
        let path = format!("/events{}", query(a, true));
        return match env.client().and_then(|c| c.get(&path, &env.paths)) {
            Ok(v) => {
                for e in v["events"].as_array().into_iter().flatten() {
                    if !print_event(e, a.json) {
                        break;
                    }
                }
                EXIT_OK
            }
            Err(e) => fail(&e),
        };
    }
    follow(env, a)
}

/// Follow the stream; on a dropped connection, reconnect with `Last-Event-ID` so
/// nothing is lost or repeated. Runs until interrupted or stdout closes.
fn follow(env: &Env, a: &EventsArgs) -> u8 {
    let path = format!("/events/stream{}", query(a, false));
    let mut last_id = a.since;
    let mut warned = false;
    loop {
        let stream = env
            .client()
            .and_then(|c| c.stream(&path, last_id, &env.paths));
        let mut reader = match stream {
            Ok(r) => {
                if warned {
                    err("reconnected");
                    warned = false;
                }
                r
            }
            Err(e @ ClientError::Api { .. }) | Err(e @ ClientError::Unsafe(_)) => return fail(&e),
            Err(e) => {
                if !warned {
                    err(&format!("{e}; retrying every second (Ctrl-C to stop)"));
                    warned = true;
                }
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        loop {
            match next_frame(&mut *reader) {
                Ok(Some(f)) => {
                    if let Some(id) = f.id.as_deref().and_then(|i| i.parse().ok()) {
                        last_id = Some(id);
                    }
                    let v: Value = serde_json::from_str(&f.data)
                        .unwrap_or_else(|_| json!({"type": f.event, "data": f.data}));
                    let v = if f.event.starts_with("stream.") {
                        json!({"type": f.event, "data": v, "id": null, "source": "orchestratr", "time": "", "target": null})
                    } else {
                        v
                    };
                    if !print_event(&v, a.json) {
                        return EXIT_OK;
                    }
                }
                Ok(None) | Err(_) => {
                    if !warned {
                        err("event stream closed; reconnecting");
                        warned = true;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                    break;
                }
            }
        }
    }
}

pub(super) fn emit(
    env: &Env,
    kind: &str,
    source: &str,
    data: Option<&str>,
    target: Option<&str>,
) -> u8 {
    let data: Value = match data {
        None => json!({}),
        Some(d) => match serde_json::from_str(d) {
            Ok(v) => v,
            Err(e) => {
                err(&format!("--data is not valid JSON: {e}"));
                return EXIT_USAGE;
            }
        },
    };
    let mut body = json!({"type": kind, "source": source, "data": data});
    if let Some(t) = target {
        body["target"] = json!(t);
    }
    match env
        .client()
        .and_then(|c| c.post("/events", Some(&body), &env.paths))
    {
        Ok((_, v)) => {
            out(&v["id"].to_string());
            EXIT_OK
        }
        Err(e) => fail(&e),
    }
}
