//! `run`, `executions`, `logs`, `cancel`, `retry`, `delegate` (API.md §7).

use super::{EXIT_OK, EXIT_USAGE, Env, err, fail, out, out_json};
use crate::client::{ClientError, next_frame};
use clap::Args;
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// `orchestratr run TASK [-- ARGS…]`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Registered task name.
    pub task: String,
    /// Extra argv elements (the task needs `allow_args: true`).
    #[arg(last = true)]
    pub args: Vec<String>,
    /// Working directory (must be inside a configured workspace).
    #[arg(long)]
    pub cwd: Option<String>,
    /// Time limit, e.g. 30s, 10m (overrides the task's timeout_ms).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Stream the output and exit with the run's exit code.
    #[arg(long, short)]
    pub follow: bool,
    /// Print the Execution as JSON (without --follow).
    #[arg(long)]
    pub json: bool,
}

/// `orchestratr executions`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this status (pending, running, completed, failed, timeout, cancelled, lost).
    #[arg(long)]
    pub status: Option<String>,
    /// Only this task.
    #[arg(long)]
    pub task: Option<String>,
    /// At most this many (1-1000).
    #[arg(long, default_value_t = 50)]
    pub limit: u64,
    /// Print the daemon's JSON.
    #[arg(long)]
    pub json: bool,
}

/// `orchestratr logs ID`
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Execution id.
    pub id: String,
    /// Keep streaming until the run ends (resumes after a dropped connection).
    #[arg(long, short)]
    pub follow: bool,
}

/// `orchestratr cancel ID` / `orchestratr retry ID`
#[derive(Debug, Args)]
pub struct IdArgs {
    /// Execution id.
    pub id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `orchestratr delegate AGENT "task text"`
#[derive(Debug, Args)]
pub struct DelegateArgs {
    /// Agent type, as configured under `agents:`.
    pub agent: String,
    /// What the agent should do.
    pub text: String,
    /// A file the task concerns (repeatable); sent as context.files.
    #[arg(long = "file", value_name = "PATH")]
    pub files: Vec<String>,
    /// A requirement (repeatable); sent as context.requirements.
    #[arg(long = "requirement", value_name = "TEXT")]
    pub requirements: Vec<String>,
    /// Working directory (must be inside a configured workspace).
    #[arg(long)]
    pub cwd: Option<String>,
    /// Time limit, e.g. 30m.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Stream the agent's output and exit with its exit code.
    #[arg(long, short)]
    pub follow: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Exit code of `run --follow` for a finished Execution: its exit code when it
/// exited; 128+N for signal N; 124 for a timeout (as timeout(1)); 130 when
/// cancelled; 1 when lost or failed to start.
pub fn exit_code_of(e: &Value) -> u8 {
    match e["status"].as_str() {
        Some("completed") => 0,
        Some("timeout") => 124,
        Some("cancelled") => 130,
        Some("failed") => match (e["exit_code"].as_i64(), e["signal"].as_i64()) {
            (Some(c), _) => u8::try_from(c).unwrap_or(1),
            (None, Some(s)) => u8::try_from(128 + s).unwrap_or(1),
            _ => 1,
        },
        _ => 1,
    }
}

fn status_line(e: &Value) -> String {
    let id = e["id"].as_str().unwrap_or("?");
    match e["status"].as_str().unwrap_or("?") {
        "pending" => format!("{id} pending (queue position {})", e["queue_position"]),
        "running" => format!("{id} running (pid {})", e["pid"]),
        s => {
            let extra = match (&e["exit_code"], &e["error"]) {
                (Value::Number(c), _) => format!(", exit code {c}"),
                (_, Value::String(m)) => format!(", {m}"),
                _ => String::new(),
            };
            format!("{id} {s}{extra} in {} ms", e["duration_ms"])
        }
    }
}

/// Follow an execution's output stream from `from`, writing text to stdout,
/// reconnecting with `Last-Event-ID` (the byte offset) after a dropped connection
/// so no byte is repeated or lost. Returns the final Execution.
fn follow_output(env: &Env, id: &str, mut from: u64) -> Result<Value, ClientError> {
    let tty = std::io::stderr().is_terminal();
    let path = format!("/executions/{id}/stream");
    let mut last_status = String::new();
    let mut failures = 0;
    loop {
        let mut reader = match env
            .client()
            .and_then(|c| c.stream(&path, Some(from), &env.paths))
        {
            Ok(r) => r,
            Err(e @ ClientError::Api { .. }) => return Err(e),
            Err(e) => {
                failures += 1;
                if failures > 120 {
                    return Err(e);
                }
                if failures == 1 {
                    err(&format!("{e}; retrying"));
                }
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        failures = 0;
        // A dropped connection ends this loop; reconnect from `from`.
        while let Ok(Some(f)) = next_frame(&mut *reader) {
            let v: Value = serde_json::from_str(&f.data).unwrap_or(Value::Null);
            match f.event.as_str() {
                "output" => {
                    if let Some(t) = v["text"].as_str() {
                        let mut o = std::io::stdout().lock();
                        if o.write_all(t.as_bytes()).and_then(|_| o.flush()).is_err() {
                            return Ok(v);
                        }
                    }
                    if let Some(next) = f.id.as_deref().and_then(|i| i.parse().ok()) {
                        from = next;
                    }
                }
                "status" => {
                    let line = status_line(&v);
                    if tty && line != last_status {
                        err(&line);
                        last_status = line;
                    }
                }
                "end" => return Ok(v),
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(super) fn run(env: &Env, a: &RunArgs) -> u8 {
    let mut body = json!({"task": a.task, "args": a.args});
    if let Some(c) = &a.cwd {
        body["cwd"] = json!(c);
    }
    if let Some(t) = a.timeout {
        body["timeout_ms"] = json!(t.as_millis() as u64);
    }
    let e = match env
        .client()
        .and_then(|c| c.post("/executions", Some(&body), &env.paths))
    {
        Ok((_, e)) => e,
        Err(e) => return fail(&e),
    };
    finish_submit(env, &e, a.follow, a.json)
}

fn finish_submit(env: &Env, e: &Value, follow: bool, as_json: bool) -> u8 {
    let id = e["id"].as_str().unwrap_or("").to_string();
    if !follow {
        if as_json {
            out_json(e);
        } else {
            out(&id);
            if std::io::stderr().is_terminal() {
                err(&format!(
                    "{}; follow with `orchestratr logs -f {id}`",
                    status_line(e)
                ));
            }
        }
        return EXIT_OK;
    }
    match follow_output(env, &id, 0) {
        Ok(fin) => {
            if std::io::stderr().is_terminal() {
                err(&status_line(&fin));
            }
            exit_code_of(&fin)
        }
        Err(e) => fail(&e),
    }
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

pub(super) fn list(env: &Env, a: &ListArgs) -> u8 {
    let mut q = form_urlencoded::Serializer::new(String::new());
    if let Some(s) = &a.status {
        q.append_pair("status", s);
    }
    if let Some(t) = &a.task {
        q.append_pair("task", t);
    }
    q.append_pair("limit", &a.limit.to_string());
    let v = match env
        .client()
        .and_then(|c| c.get(&format!("/executions?{}", q.finish()), &env.paths))
    {
        Ok(v) => v,
        Err(e) => return fail(&e),
    };
    if a.json {
        out_json(&v);
        return EXIT_OK;
    }
    let list = v["executions"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        out("no executions");
        return EXIT_OK;
    }
    out(&format!(
        "{:<17} {:<16} {:<9} {:>4} {:>9}  {:<24} {:>8}",
        "ID", "TASK", "STATUS", "EXIT", "DURATION", "CREATED", "OUTPUT"
    ));
    for e in &list {
        let dur = e["duration_ms"]
            .as_u64()
            .map(|d| format!("{:.1}s", d as f64 / 1000.0));
        out(&format!(
            "{:<17} {:<16} {:<9} {:>4} {:>9}  {:<24} {:>8}",
            e["id"].as_str().unwrap_or(""),
            short(e["task"].as_str().unwrap_or(""), 16),
            e["status"].as_str().unwrap_or(""),
            e["exit_code"]
                .as_i64()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            dur.unwrap_or_else(|| "-".into()),
            e["created_at"].as_str().unwrap_or(""),
            e["output_bytes"]
        ));
    }
    if v["total"].as_u64().unwrap_or(0) > list.len() as u64 {
        out(&format!("({} of {}; use --limit)", list.len(), v["total"]));
    }
    EXIT_OK
}

pub(super) fn logs(env: &Env, a: &LogsArgs) -> u8 {
    if a.follow {
        return match follow_output(env, &a.id, 0) {
            Ok(_) => EXIT_OK,
            Err(e) => fail(&e),
        };
    }
    let client = match env.client() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    match client.get_bytes(&format!("/executions/{}/output", a.id), &env.paths) {
        Ok(b) => {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(&b).and_then(|_| o.flush());
            EXIT_OK
        }
        Err(e) => fail(&e),
    }
}

pub(super) fn cancel(env: &Env, a: &IdArgs) -> u8 {
    match env
        .client()
        .and_then(|c| c.post(&format!("/executions/{}/cancel", a.id), None, &env.paths))
    {
        Ok((_, e)) => {
            if a.json {
                out_json(&e);
            } else {
                out(&format!("cancelled {}", a.id));
            }
            EXIT_OK
        }
        Err(e) => fail(&e),
    }
}

pub(super) fn retry(env: &Env, a: &IdArgs) -> u8 {
    match env
        .client()
        .and_then(|c| c.post(&format!("/executions/{}/retry", a.id), None, &env.paths))
    {
        Ok((_, e)) => finish_submit(env, &e, false, a.json),
        Err(e) => fail(&e),
    }
}

pub(super) fn delegate(env: &Env, a: &DelegateArgs) -> u8 {
    if a.text.trim().is_empty() {
        err("the task text must not be empty");
        return EXIT_USAGE;
    }
    let mut context = serde_json::Map::new();
    if !a.files.is_empty() {
        context.insert("files".into(), json!(a.files));
    }
    if !a.requirements.is_empty() {
        context.insert("requirements".into(), json!(a.requirements));
    }
    let mut body = json!({"agent_type": a.agent, "task": a.text, "context": context});
    if let Some(c) = &a.cwd {
        body["working_dir"] = json!(c);
    }
    if let Some(t) = a.timeout {
        body["timeout_ms"] = json!(t.as_millis() as u64);
    }
    let t = match env
        .client()
        .and_then(|c| c.post("/delegate", Some(&body), &env.paths))
    {
        Ok((_, t)) => t,
        Err(e) => return fail(&e),
    };
    let id = t["ticket_id"].as_str().unwrap_or("").to_string();
    if !a.follow {
        if a.json {
            out_json(&t);
        } else {
            out(&id);
        }
        return EXIT_OK;
    }
    match follow_output(env, &id, 0) {
        Ok(fin) => {
            if let Ok(ticket) = env
                .client()
                .and_then(|c| c.get(&format!("/tasks/{id}"), &env.paths))
                && a.json
            {
                out_json(&ticket);
            }
            exit_code_of(&fin)
        }
        Err(e) => fail(&e),
    }
}
