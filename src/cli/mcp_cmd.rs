//! `orchestratr mcp`: the MCP stdio transport for Claude Desktop, Claude Code
//! and other MCP hosts (API.md §13). Reads newline-delimited JSON-RPC messages
//! on stdin, forwards each to the daemon's `POST /mcp` with the user's bearer
//! token, and writes the answers (and any progress notifications streamed as
//! SSE) on stdout, one message per line.
//!
//! stdout carries protocol messages only; diagnostics go to stderr. Each
//! message is forwarded on its own thread, so a long `tools/call` never holds
//! up a `ping`. The daemon is discovered again for every message (port file,
//! or `--url`/`ORCHESTRATR_URL`), so a restarted daemon is picked up; when it
//! is not running, requests get a JSON-RPC error naming the problem.

use super::Env;
use crate::client::next_frame;
use crate::mcp::jsonrpc;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Run the bridge until stdin closes and every forwarded call has answered.
/// Returns the process exit code (0).
pub(crate) fn run(env: &Env) -> u8 {
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(3)))
        .build()
        .into();
    let mut threads = Vec::new();
    let cache: Arc<Mutex<Option<Target>>> = Arc::new(Mutex::new(None));
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let msg: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                write_msg(
                    &out,
                    &jsonrpc::error(
                        &Value::Null,
                        jsonrpc::PARSE_ERROR,
                        &format!("parse error: {e}"),
                    ),
                );
                continue;
            }
        };
        let (out, agent, cache) = (out.clone(), agent.clone(), cache.clone());
        let discover = {
            let (paths, url, token) = (env.paths.clone(), env.url.clone(), env.token.clone());
            move || {
                crate::client::Client::discover(&paths, url.as_deref(), token.as_deref())
                    .map(|c| (c.base, c.token))
            }
        };
        threads.retain(|h: &std::thread::JoinHandle<()>| !h.is_finished());
        let spawned = std::thread::Builder::new()
            .name("mcp-forward".into())
            .spawn(move || forward_cached(&agent, &cache, discover, msg, &out));
        match spawned {
            Ok(h) => threads.push(h),
            Err(e) => eprintln!("orchestratr mcp: cannot start a thread: {e}"),
        }
    }
    for h in threads {
        let _ = h.join();
    }
    0
}

fn write_msg(out: &Mutex<std::io::Stdout>, v: &Value) {
    let mut o = match out.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let line = v.to_string();
    if writeln!(o, "{line}").and_then(|_| o.flush()).is_err() {
        eprintln!("orchestratr mcp: stdout is closed");
    }
}

/// The ids of the requests in a message or batch (they get errors if the
/// daemon cannot be reached).
fn request_ids(msg: &Value) -> Vec<Value> {
    let one = |m: &Value| -> Option<Value> {
        (m.get("method").is_some())
            .then(|| m.get("id").cloned())
            .flatten()
    };
    match msg {
        Value::Array(a) => a.iter().filter_map(one).collect(),
        m => one(m).into_iter().collect(),
    }
}

fn fail(out: &Mutex<std::io::Stdout>, msg: &Value, why: &str) {
    eprintln!("orchestratr mcp: {why}");
    for id in request_ids(msg) {
        write_msg(out, &jsonrpc::error(&id, jsonrpc::INTERNAL_ERROR, why));
    }
}

/// Base URL and bearer token of the daemon.
type Target = (String, Option<String>);

/// Forward with the cached daemon address; on a connection failure, discover
/// again (the daemon may have restarted on another port) and retry once.
fn forward_cached(
    agent: &ureq::Agent,
    cache: &Mutex<Option<Target>>,
    discover: impl Fn() -> Result<Target, crate::client::ClientError>,
    msg: Value,
    out: &Mutex<std::io::Stdout>,
) {
    let lock = || match cache.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let cached = lock().clone();
    if let Some(t) = cached {
        match forward(agent, &t, &msg, out) {
            Ok(()) => return,
            Err(_) => *lock() = None,
        }
    }
    match discover() {
        Ok(t) => {
            *lock() = Some(t.clone());
            if let Err(why) = forward(agent, &t, &msg, out) {
                *lock() = None;
                fail(out, &msg, &why);
            }
        }
        Err(e) => fail(out, &msg, &e.to_string()),
    }
}

fn connect_failed(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::ConnectionFailed => true,
        ureq::Error::Io(io) => io.kind() == std::io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}

/// Forward one message. Errors: the daemon could not be reached (nothing
/// was written); every other outcome is written to `out`.
fn forward(
    agent: &ureq::Agent,
    target: &Target,
    msg: &Value,
    out: &Mutex<std::io::Stdout>,
) -> Result<(), String> {
    let (base, token) = target;
    let mut req = agent
        .post(format!("{base}/mcp"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream");
    if let Some(t) = &token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let resp = match req.send(msg.to_string()) {
        Ok(r) => r,
        // Only a refused connection is retried (after a new discovery): a
        // request that may have reached the daemon is never sent twice.
        Err(e) if connect_failed(&e) => {
            return Err(format!("cannot reach the daemon at {base}: {e}"));
        }
        Err(e) => {
            fail(
                out,
                msg,
                &format!("request to the daemon at {base} failed: {e}"),
            );
            return Ok(());
        }
    };
    let status = resp.status().as_u16();
    let is_sse = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut body = resp.into_body();
    if is_sse {
        let mut r = BufReader::new(body.as_reader());
        while let Ok(Some(f)) = next_frame(&mut r) {
            match serde_json::from_str::<Value>(&f.data) {
                Ok(v) => write_msg(out, &v),
                Err(_) => eprintln!("orchestratr mcp: skipped a non-JSON event from the daemon"),
            }
        }
        return Ok(());
    }
    let text = body
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_string()
        .unwrap_or_default();
    if status == 202 || text.trim().is_empty() {
        return Ok(());
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(v) if v.get("jsonrpc").is_some() || v.is_array() => write_msg(out, &v),
        Ok(v) => {
            let why = v["error"].as_str().unwrap_or("request failed");
            fail(out, msg, &format!("the daemon answered {status}: {why}"));
        }
        Err(_) => fail(
            out,
            msg,
            &format!("the daemon answered {status} without JSON"),
        ),
    }
    Ok(())
}
