//! `events` (the newest N like `journalctl -n`, `--since ID`, `--follow`) and `emit`.

use super::follow::{Flow, Follow, follow};
use super::output::{clock, duration_ms, one_line, parse_time, truncate};
use super::{CliError, EXIT_OK, Env, Outcome, out};
use clap::Args;
use serde_json::{Value, json};

/// Largest page `GET /events` returns (API.md §5).
const PAGE: u64 = 1000;

/// `orchestratr events`
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Keep streaming new events (reconnects and resumes after a dropped connection).
    #[arg(long, short)]
    pub follow: bool,
    /// Event types, comma-separated; a trailing * is a prefix match (app.*).
    #[arg(long = "type", short = 't', value_name = "TYPES")]
    pub kind: Option<String>,
    /// Only events from this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Only events addressed to this app.
    #[arg(long)]
    pub target: Option<String>,
    /// Everything after this event id (oldest first), instead of the newest.
    #[arg(long, value_name = "ID")]
    pub since: Option<u64>,
    /// How many events: the newest N, or with --since the first N after it (1-1000).
    #[arg(long = "limit", short = 'n', visible_alias = "lines", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub limit: u64,
    /// One raw JSON event per line.
    #[arg(long)]
    pub json: bool,
}

/// `orchestratr emit TYPE --source S`
#[derive(Debug, Args)]
pub struct EmitArgs {
    /// Event type, ^[a-z0-9][a-z0-9_.:-]{0,63}$.
    #[arg(value_name = "TYPE")]
    pub kind: String,
    /// Who publishes it.
    #[arg(long)]
    pub source: String,
    /// JSON payload (default {}).
    #[arg(long)]
    pub data: Option<String>,
    /// App the event is addressed to.
    #[arg(long)]
    pub target: Option<String>,
}

fn filters(a: &EventsArgs) -> form_urlencoded::Serializer<'static, String> {
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
    q
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

/// The interesting part of an event's data, per event family.
fn summary(kind: &str, d: &Value) -> String {
    if kind.starts_with("execution.") {
        let mut l = format!("{} {} {}", s(d, "task"), s(d, "id"), s(d, "status"));
        if let Some(c) = d["exit_code"]
            .as_i64()
            .filter(|_| d["status"] != "completed")
        {
            l.push_str(&format!(", exit {c}"));
        }
        if let Some(sig) = d["signal"].as_i64() {
            l.push_str(&format!(", signal {sig}"));
        }
        if let Some(ms) = d["duration_ms"].as_u64() {
            l.push_str(&format!(", {}", duration_ms(ms)));
        }
        if let Some(p) = d["queue_position"].as_u64() {
            l.push_str(&format!(", queue position {p}"));
        }
        return l;
    }
    if kind.starts_with("approval.") {
        let mut l = format!("{} {}", s(d, "id"), s(d, "status"));
        if let Some(x) = d["decision"].as_str() {
            l.push_str(&format!(", decision {x}"));
        }
        if let Some(b) = d["decided_by"].as_str() {
            l.push_str(&format!(" by {b}"));
        }
        if let Some(src) = d["source"].as_str() {
            l.push_str(&format!(" (from {src})"));
        }
        return l;
    }
    match d {
        Value::Null => String::new(),
        // `key=value` pairs read better than JSON for the small payloads of
        // app.*, daemon.* and config.* events.
        Value::Object(m) => {
            let parts: Vec<String> = m
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| match v {
                    Value::String(x) => format!("{k}={}", one_line(x)),
                    other => format!("{k}={other}"),
                })
                .collect();
            truncate(&parts.join(" "), 160)
        }
        _ => truncate(&one_line(&d.to_string()), 160),
    }
}

/// One event as a line for a person:
/// `#42 12:03:01 execution.finished test exec-… failed, exit 3, 5.0 s`.
pub fn human(e: &Value) -> String {
    let kind = s(e, "type");
    let at = parse_time(s(e, "time"))
        .map(clock)
        .unwrap_or_else(|| "--:--:--".into());
    let id = match e["id"].as_u64() {
        Some(i) => format!("#{i}"),
        None => "#-".into(),
    };
    let mut l = format!("{id} {at} {kind}");
    if let Some(t) = e["target"].as_str() {
        l.push_str(&format!(" {t}"));
    }
    let src = s(e, "source");
    if !src.is_empty() && src != "orchestratr" {
        l.push_str(&format!(" [{src}]"));
    }
    let sum = summary(kind, &e["data"]);
    if !sum.is_empty() {
        l.push(' ');
        l.push_str(&sum);
    }
    l
}

fn print_event(e: &Value, as_json: bool) -> bool {
    if as_json {
        out(&e.to_string())
    } else {
        out(&human(e))
    }
}

fn page(env: &Env, a: &EventsArgs, since: u64, limit: u64) -> Result<(Vec<Value>, u64), CliError> {
    let mut q = filters(a);
    q.append_pair("since", &since.to_string());
    q.append_pair("limit", &limit.to_string());
    let v = env
        .client()?
        .get(&format!("/events?{}", q.finish()), &env.paths)?;
    let list = v["events"].as_array().cloned().unwrap_or_default();
    Ok((list, v["last_id"].as_u64().unwrap_or(0)))
}

/// The newest `n` matching events, oldest first: find the bus's last id, then
/// page forward through a window that doubles until it holds `n` matches.
fn newest(env: &Env, a: &EventsArgs, n: u64) -> Result<Vec<Value>, CliError> {
    let (_, last) = page(env, a, u64::MAX - 1, 1)?;
    let mut window = n;
    loop {
        let start = last.saturating_sub(window);
        let mut got: Vec<Value> = Vec::new();
        let mut since = start;
        loop {
            let (list, _) = page(env, a, since, PAGE)?;
            let full = list.len() as u64 == PAGE;
            if let Some(id) = list.last().and_then(|e| e["id"].as_u64()) {
                since = id;
            }
            got.extend(list);
            let keep = got.len().saturating_sub(n as usize);
            got.drain(..keep);
            if !full {
                break;
            }
        }
        if got.len() as u64 >= n || start == 0 {
            return Ok(got);
        }
        window = window.saturating_mul(4);
    }
}

/// `orchestratr events`.
pub fn events(env: &Env, a: &EventsArgs) -> Outcome {
    let list = match a.since {
        Some(since) => page(env, a, since, a.limit)?.0,
        None => newest(env, a, a.limit)?,
    };
    let mut last = a.since;
    for e in &list {
        if !print_event(e, a.json) {
            return Ok(EXIT_OK);
        }
        last = e["id"].as_u64().or(last);
    }
    if !a.follow {
        return Ok(EXIT_OK);
    }
    let mut q = filters(a);
    let qs = q.finish();
    let path = if qs.is_empty() {
        "/events/stream".to_string()
    } else {
        format!("/events/stream?{qs}")
    };
    // Without any listed event, resume from the bus's current end.
    let last = match last {
        Some(l) => l,
        None => page(env, a, u64::MAX - 1, 1)?.1,
    };
    follow(
        Follow {
            env,
            path,
            last_id: Some(last),
            give_up_after: None,
        },
        |f| {
            let v: Value = serde_json::from_str(&f.data)
                .unwrap_or_else(|_| json!({"type": f.event, "data": f.data}));
            let v = if f.event.starts_with("stream.") {
                json!({"type": f.event, "data": v, "id": null, "source": "orchestratr", "time": "", "target": null})
            } else {
                v
            };
            if print_event(&v, a.json) {
                Flow::Continue
            } else {
                Flow::Stop
            }
        },
    )?;
    Ok(EXIT_OK)
}

/// `orchestratr emit`.
pub fn emit(env: &Env, a: &EmitArgs) -> Outcome {
    let data: Value = match &a.data {
        None => json!({}),
        Some(d) => serde_json::from_str(d)
            .map_err(|e| CliError::Usage(format!("--data is not valid JSON: {e}")))?,
    };
    let mut body = json!({"type": a.kind, "source": a.source, "data": data});
    if let Some(t) = &a.target {
        body["target"] = json!(t);
    }
    let (_, v) = env.client()?.post("/events", Some(&body), &env.paths)?;
    out(&v["id"].to_string());
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_events_read_as_one_line() {
        let e = json!({"id": 42, "time": "2026-11-25T12:03:01.000Z", "type": "execution.finished",
            "source": "orchestratr", "target": null,
            "data": {"id": "exec-0123456789ab", "task": "test", "status": "failed",
                     "exit_code": 3, "duration_ms": 5000, "argv": ["x"]}});
        let l = human(&e);
        assert!(l.starts_with("#42 "), "{l}");
        assert!(
            l.ends_with("execution.finished test exec-0123456789ab failed, exit 3, 5.0 s"),
            "{l}"
        );
    }
}
