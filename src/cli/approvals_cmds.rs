//! `approvals`, `approve`, `deny`, `ask` and `hook claude-code` (API.md §8).
//!
//! `ask` and the Claude Code hook create an approval and then long-poll it by id
//! (`GET /approvals/{id}?wait=60` in a loop). Each poll re-discovers the daemon
//! (port file, or `--url`), so a dropped connection or a daemon restart on another
//! port only costs a retry; while the daemon is unreachable they retry every
//! second until the approval's `expires_at` has passed.
//!
//! Exit codes of `ask`: 0 approved (or a custom option chosen), 1 denied,
//! 2 expired or any error. The hook prints Claude Code's PreToolUse JSON and exits
//! 0 for an answer; every failure denies with exit 2 (Claude Code blocks the tool
//! on exit 2 and lets it run on any other non-zero exit, so 1 is never used).

use super::{EXIT_FAIL, EXIT_OK, EXIT_USAGE, Env, err, fail, out, out_json};
use crate::client::ClientError;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};
use std::io::{IsTerminal, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant, SystemTime};

/// Seconds each long poll asks the daemon to hold the request.
const LONG_POLL_S: u64 = 60;
/// Largest hook input read from stdin, bytes.
const MAX_STDIN: u64 = 32 * 1024 * 1024;
/// Longest approval title the hook builds, characters.
const TITLE_MAX: usize = 120;
/// Longest approval detail the hook builds, characters.
const DETAIL_MAX: usize = 16 * 1024;
/// Largest `tool_input` copied into the approval's context, bytes of JSON.
const CONTEXT_INPUT_MAX: usize = 256 * 1024;

/// `orchestratr approvals`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print the daemon's JSON ({"approvals":[...],"total":n,"waiting":k}).
    #[arg(long)]
    pub json: bool,
    /// Only these statuses, comma-separated: pending, approved, denied, decided,
    /// expired (default: all).
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
}

/// `orchestratr approve ID` / `orchestratr deny ID`
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// Approval id (appr-…).
    pub id: String,
    /// A note for the asker (shown to the agent by the Claude Code hook).
    #[arg(long, short)]
    pub comment: Option<String>,
    /// Who decides (default: $USER).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// Print the decided approval as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `orchestratr ask`
#[derive(Debug, Args)]
#[command(
    long_about = "Ask a question through the daemon and block until someone answers it\n\
    (`orchestratr approve ID`, `orchestratr deny ID`, or POST /approvals/ID from any client).\n\
    Prints the decision on stdout. Survives a dropped connection or a daemon restart.\n\n\
    Exit codes: 0 approved (or a custom option chosen), 1 denied, 2 expired or error."
)]
pub struct AskArgs {
    /// The question, one line.
    #[arg(long)]
    pub title: String,
    /// Longer text shown under the title.
    #[arg(long)]
    pub detail: Option<String>,
    /// A possible answer; repeat for several (default: approve, deny).
    #[arg(long = "option", value_name = "OPTION")]
    pub options: Vec<String>,
    /// The answer applied when nobody answers in time (default: deny if offered,
    /// else the first option).
    #[arg(long, value_name = "OPTION")]
    pub default: Option<String>,
    /// How long to wait for an answer, e.g. 30s, 10m, 1h (default 10m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Who asks, shown to whoever answers.
    #[arg(long, default_value = "cli")]
    pub source: String,
    /// Extra JSON attached to the approval as `context`.
    #[arg(long, value_name = "JSON")]
    pub context: Option<String>,
    /// Print the final approval as JSON instead of the decision.
    #[arg(long)]
    pub json: bool,
}

/// `orchestratr hook ...`
#[derive(Debug, Args)]
pub struct HookArgs {
    /// Which agent's hook protocol to speak.
    #[command(subcommand)]
    pub agent: HookAgent,
}

/// Agents with a hook adapter.
#[derive(Debug, Subcommand)]
pub enum HookAgent {
    /// Claude Code PreToolUse hook: ask for approval before a tool runs.
    #[command(
        name = "claude-code",
        long_about = "Claude Code PreToolUse hook. Reads the hook JSON on stdin, creates an\n\
        approval (source claude-code) describing the tool call, waits for an answer, and\n\
        prints {\"hookSpecificOutput\":{\"hookEventName\":\"PreToolUse\",\n\
        \"permissionDecision\":\"allow|deny\",\"permissionDecisionReason\":\"...\"}} with exit 0.\n\n\
        Every failure (daemon down, no answer in time with default deny, bad input) denies:\n\
        exit 2 with the reason on stderr, which makes Claude Code block the tool.\n\n\
        Set the hook's own \"timeout\" in settings.json (seconds) above --timeout: a hook\n\
        that Claude Code times out does not block the tool. Older Claude Code versions\n\
        default to 60 s, hence the conservative 50 s default here."
    )]
    ClaudeCode(ClaudeCodeArgs),
}

/// `orchestratr hook claude-code`
#[derive(Debug, Args)]
pub struct ClaudeCodeArgs {
    /// How long the approval waits for an answer (e.g. 50s, 10m). Keep it below
    /// the hook's "timeout" in settings.json.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "50s")]
    pub timeout: Duration,
    /// What applies when nobody answers in time.
    #[arg(long, value_enum, default_value_t = HookDefault::Deny)]
    pub default: HookDefault,
    /// Only ask for tools whose whole name matches this regex (e.g.
    /// 'Bash|Edit|Write'); other tools are allowed at once.
    #[arg(long = "match", value_name = "TOOL_REGEX")]
    pub matcher: Option<String>,
    /// Instead: report an agent session's status from its UserPromptSubmit,
    /// Stop, Notification and SessionStart hooks (uses ORCHESTRATR_AGENT_ID).
    #[arg(long)]
    pub agent_status: bool,
}

/// The hook's answer when an approval expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HookDefault {
    /// Let the tool run.
    Allow,
    /// Block the tool.
    Deny,
}

/// A non-zero humantime duration (`30s`, `10m`, `1h 30m`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration '{s}': {e} (examples: 30s, 10m, 1h)"))?;
    if d.is_zero() {
        return Err(format!("duration '{s}' must be greater than zero"));
    }
    Ok(d)
}

/// Percent-encode one path segment (ids typed by a person may hold anything).
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// At most `max` characters of `s`, with `…` when cut.
fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let t: String = s.chars().take(max.saturating_sub(1)).collect();
    format!("{t}…")
}

/// Whitespace runs (newlines included) collapsed to one space.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

/// "in 9m 59s" for a pending approval's `expires_at`, "-" otherwise.
fn expires_in(a: &Value) -> String {
    if a["status"] != "pending" {
        return "-".into();
    }
    let Some(t) = a["expires_at"]
        .as_str()
        .and_then(|s| humantime::parse_rfc3339(s).ok())
    else {
        return "?".into();
    };
    match t.duration_since(SystemTime::now()) {
        Ok(d) => format!(
            "in {}",
            humantime::format_duration(Duration::from_secs(d.as_secs()))
        ),
        Err(_) => "now".into(),
    }
}

pub(super) fn list(env: &Env, a: &ListArgs) -> u8 {
    let mut path = "/approvals".to_string();
    if let Some(s) = a.status.as_deref().filter(|s| !s.is_empty()) {
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair("status", s)
            .finish();
        path = format!("{path}?{q}");
    }
    let v = match env.client().and_then(|c| c.get(&path, &env.paths)) {
        Ok(v) => v,
        Err(e) => return fail(&e),
    };
    if a.json {
        out_json(&v);
        return EXIT_OK;
    }
    let items = v["approvals"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        out("no approvals");
        return EXIT_OK;
    }
    let rows: Vec<[String; 5]> = items
        .iter()
        .map(|x| {
            [
                str_of(x, "id").to_string(),
                str_of(x, "status").to_string(),
                x["source"].as_str().unwrap_or("-").to_string(),
                truncate_chars(&one_line(str_of(x, "title")), 60),
                expires_in(x),
            ]
        })
        .collect();
    let head = ["ID", "STATUS", "SOURCE", "TITLE", "EXPIRES"];
    let mut w = head.map(|h| h.chars().count());
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |r: [&str; 5]| {
        let mut s = String::new();
        for (i, c) in r.iter().enumerate() {
            if i == 4 {
                s.push_str(c);
            } else {
                let pad = w[i].saturating_sub(c.chars().count());
                s.push_str(c);
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        s
    };
    if !out(&line(head)) {
        return EXIT_OK;
    }
    for r in &rows {
        if !out(&line([&r[0], &r[1], &r[2], &r[3], &r[4]])) {
            break;
        }
    }
    EXIT_OK
}

fn default_by() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "cli".to_string())
}

pub(super) fn decide(env: &Env, a: &DecideArgs, decision: &str) -> u8 {
    let body = json!({
        "decision": decision,
        "comment": a.comment,
        "by": a.by.clone().unwrap_or_else(default_by),
    });
    let path = format!("/approvals/{}", seg(&a.id));
    let res = env
        .client()
        .and_then(|c| c.post(&path, Some(&body), &env.paths));
    match res {
        Ok((_, v)) => {
            if a.json {
                out_json(&v);
            } else {
                out(&format!(
                    "{} {}: {}",
                    str_of(&v, "status"),
                    str_of(&v, "id"),
                    str_of(&v, "title")
                ));
            }
            EXIT_OK
        }
        Err(ClientError::Api {
            status: 409, body, ..
        }) => {
            let st = &body["details"];
            if a.json {
                out_json(&body);
            }
            let by = match st["decided_by"].as_str() {
                Some(b) => format!(" by {b}"),
                None => String::new(),
            };
            err(&format!(
                "approval {} was already {}{by} (decision '{}')",
                a.id,
                st["status"].as_str().unwrap_or("decided"),
                st["decision"].as_str().unwrap_or("")
            ));
            EXIT_FAIL
        }
        Err(e) => fail(&e),
    }
}

// ---- waiting for a decision ------------------------------------------------------

/// Outcome of one long poll.
enum Poll {
    /// The approval as the daemon answered it (maybe still pending).
    Got(Value),
    /// Waiting cannot succeed (approval gone, token refused).
    Fatal(String),
    /// No answer now (daemon down or restarting); retry.
    Unreachable(String),
}

fn poll_once(env: &Env, id: &str, wait_s: u64) -> Poll {
    let client = match env.client() {
        Ok(c) => c,
        Err(ClientError::Unsafe(m)) => return Poll::Fatal(m),
        Err(e) => return Poll::Unreachable(e.to_string()),
    };
    // The shared client's 60 s overall timeout is too short for a 60 s hold.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(wait_s + 30)))
        .timeout_connect(Some(Duration::from_secs(3)))
        .build()
        .into();
    let mut req = agent.get(format!(
        "{}/approvals/{}?wait={wait_s}",
        client.base,
        seg(id)
    ));
    if let Some(t) = &client.token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(e) => return Poll::Unreachable(format!("no answer from {}: {e}", client.base)),
    };
    let status = resp.status().as_u16();
    let text = match resp.into_body().read_to_string() {
        Ok(t) => t,
        Err(e) => return Poll::Unreachable(format!("cannot read the answer: {e}")),
    };
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let msg = body["error"]
        .as_str()
        .unwrap_or("request failed")
        .to_string();
    match status {
        200 if body["status"].is_string() => Poll::Got(body),
        200 => Poll::Unreachable(format!("unexpected answer from {}", client.base)),
        404 => Poll::Fatal(format!("approval {id} does not exist on the daemon")),
        429 | 500..=599 => Poll::Unreachable(format!("{msg} ({status})")),
        _ => Poll::Fatal(format!("{msg} ({status})")),
    }
}

/// What to wait for and how.
struct WaitPlan<'a> {
    env: &'a Env,
    id: &'a str,
    /// The approval's `expires_at`: give up once it passed while unreachable.
    expires: SystemTime,
    /// Give up at this instant even if the daemon keeps answering "pending".
    deadline: Option<Instant>,
    /// Report reconnects on stderr.
    progress: bool,
}

/// Long-poll until the approval is no longer pending; the final approval, or a
/// lowercase reason why waiting failed.
fn wait_for_decision(p: &WaitPlan) -> Result<Value, String> {
    let mut down: Option<String> = None;
    loop {
        let mut wait_s = LONG_POLL_S;
        if let Some(d) = p.deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no decision on approval {} in time", p.id));
            }
            wait_s = wait_s.min(left.as_secs().max(1));
        }
        let started = Instant::now();
        match poll_once(p.env, p.id, wait_s) {
            Poll::Got(v) => {
                if v["status"] != "pending" {
                    return Ok(v);
                }
                if down.take().is_some() && p.progress {
                    err("reconnected; still waiting");
                } else if p.progress && started.elapsed() >= Duration::from_secs(wait_s) {
                    err(&format!(
                        "still waiting for an answer to {} (expires {})",
                        p.id,
                        expires_in(&v)
                    ));
                }
                // An early "pending" means the daemon is stopping: do not spin.
                if started.elapsed() < Duration::from_millis(500) {
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
            Poll::Fatal(m) => return Err(m),
            Poll::Unreachable(m) => {
                if SystemTime::now() > p.expires + Duration::from_secs(1) {
                    return Err(format!(
                        "{m}; approval {} expired at {} while the daemon was unreachable",
                        p.id,
                        crate::time::rfc3339(p.expires)
                    ));
                }
                if down.is_none() && p.progress {
                    err(&format!(
                        "{m}; retrying every second until approval {} expires",
                        p.id
                    ));
                }
                down = Some(m);
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

fn expires_of(a: &Value, fallback: Duration) -> SystemTime {
    a["expires_at"]
        .as_str()
        .and_then(|s| humantime::parse_rfc3339(s).ok())
        .unwrap_or_else(|| SystemTime::now() + fallback)
}

// ---- ask ---------------------------------------------------------------------------

/// Exit code of `ask`: expired or any error.
const ASK_EXPIRED: u8 = 2;

pub(super) fn ask(env: &Env, a: &AskArgs) -> u8 {
    let context = match &a.context {
        None => None,
        Some(s) => match serde_json::from_str::<Value>(s) {
            Ok(v) => Some(v),
            Err(e) => {
                err(&format!("--context is not valid JSON ({e}): {s}"));
                return EXIT_USAGE;
            }
        },
    };
    let mut body = json!({"title": a.title, "source": a.source});
    if let Some(d) = &a.detail {
        body["detail"] = json!(d);
    }
    if !a.options.is_empty() {
        body["options"] = json!(a.options);
    }
    if let Some(d) = &a.default {
        body["default"] = json!(d);
    }
    if let Some(t) = a.timeout {
        body["timeout_ms"] = json!(u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
    }
    if let Some(c) = context {
        body["context"] = c;
    }
    if let Ok(id) = std::env::var("ORCHESTRATR_AGENT_ID")
        && (body["context"].is_null() || body["context"].is_object())
    {
        body["context"]["agent_id"] = json!(id); // its agent session turns `waiting`
    }
    let created = env
        .client()
        .and_then(|c| c.post("/approvals", Some(&body), &env.paths));
    let appr = match created {
        Ok((_, v)) => v,
        Err(e) => {
            err(&format!("cannot ask: {e}"));
            return ASK_EXPIRED;
        }
    };
    let Some(id) = appr["id"].as_str().map(str::to_string) else {
        err("the daemon's answer has no approval id");
        return ASK_EXPIRED;
    };
    let progress = std::io::stderr().is_terminal();
    if progress {
        err(&format!(
            "waiting for an answer to {id} ({}, expires {})\n  answer with: orchestratr approve {id}   or   orchestratr deny {id}",
            str_of(&appr, "title"),
            expires_in(&appr)
        ));
    }
    let plan = WaitPlan {
        env,
        id: &id,
        expires: expires_of(&appr, a.timeout.unwrap_or(Duration::from_secs(600))),
        deadline: None,
        progress,
    };
    let fin = match wait_for_decision(&plan) {
        Ok(v) => v,
        Err(m) => {
            err(&m);
            return ASK_EXPIRED;
        }
    };
    let decision = str_of(&fin, "decision");
    if a.json {
        out_json(&fin);
    } else {
        out(decision);
    }
    if progress && let Some(c) = fin["comment"].as_str() {
        err(&format!(
            "comment from {}: {c}",
            fin["decided_by"].as_str().unwrap_or("the decider")
        ));
    }
    match str_of(&fin, "status") {
        "approved" | "decided" => EXIT_OK,
        "denied" => EXIT_FAIL,
        "expired" => {
            err(&format!(
                "approval {id} expired without an answer; default '{decision}' applied"
            ));
            ASK_EXPIRED
        }
        other => {
            err(&format!("approval {id} has an unknown status '{other}'"));
            ASK_EXPIRED
        }
    }
}

// ---- hook claude-code ----------------------------------------------------------

/// Exit code that makes Claude Code block the tool call.
const HOOK_BLOCK: u8 = 2;

pub(super) fn hook(env: &Env, a: &HookArgs) -> u8 {
    match &a.agent {
        HookAgent::ClaudeCode(args) if args.agent_status => super::agent_hook::run(env),
        HookAgent::ClaudeCode(args) => {
            match catch_unwind(AssertUnwindSafe(|| claude_code(env, args))) {
                Ok(code) => code,
                Err(_) => block("internal error in the approval hook; denying the tool call"),
            }
        }
    }
}

/// Claude Code's PreToolUse answer, exactly
/// `{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":d,"permissionDecisionReason":r}}`.
pub fn claude_code_output(decision: &str, reason: &str) -> String {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Specific<'a> {
        hook_event_name: &'a str,
        permission_decision: &'a str,
        permission_decision_reason: &'a str,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Output<'a> {
        hook_specific_output: Specific<'a>,
    }
    serde_json::to_string(&Output {
        hook_specific_output: Specific {
            hook_event_name: "PreToolUse",
            permission_decision: decision,
            permission_decision_reason: reason,
        },
    })
    .unwrap_or_else(|_| {
        format!(
            r#"{{"hookSpecificOutput":{{"hookEventName":"PreToolUse","permissionDecision":"{decision}","permissionDecisionReason":"orchestratr"}}}}"#
        )
    })
}

/// Deny with exit 2: the deny JSON on stdout (for any reader) and the reason on
/// stderr (what Claude Code shows the agent on exit 2).
fn block(reason: &str) -> u8 {
    let _ = out(&claude_code_output("deny", reason));
    err(reason);
    HOOK_BLOCK
}

/// What the hook answers.
enum Verdict {
    /// `permissionDecision: allow`, exit 0.
    Allow(String),
    /// `permissionDecision: deny` after a person denied, exit 0.
    Deny(String),
}

fn claude_code(env: &Env, args: &ClaudeCodeArgs) -> u8 {
    match claude_code_verdict(env, args) {
        Ok(Verdict::Allow(r)) => {
            if out(&claude_code_output("allow", &r)) {
                EXIT_OK
            } else {
                err("cannot write the hook answer to stdout; denying");
                HOOK_BLOCK
            }
        }
        Ok(Verdict::Deny(r)) => {
            if out(&claude_code_output("deny", &r)) {
                EXIT_OK
            } else {
                err(&r);
                HOOK_BLOCK
            }
        }
        Err(reason) => block(&reason),
    }
}

fn read_stdin() -> Result<String, String> {
    let mut buf = Vec::new();
    std::io::stdin()
        .take(MAX_STDIN + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read the hook input from stdin: {e}"))?;
    if buf.len() as u64 > MAX_STDIN {
        return Err(format!(
            "the hook input on stdin is larger than {MAX_STDIN} bytes"
        ));
    }
    String::from_utf8(buf).map_err(|_| "the hook input on stdin is not UTF-8".to_string())
}

fn decided_reason(word: &str, a: &Value) -> String {
    let mut r = format!("{word} via orchestratr");
    if let Some(b) = a["decided_by"].as_str() {
        r = format!("{word} by {b} via orchestratr");
    }
    r.push_str(&format!(" ({})", str_of(a, "id")));
    if let Some(c) = a["comment"].as_str().filter(|c| !c.is_empty()) {
        r.push_str(&format!(": {c}"));
    }
    r
}

fn claude_code_verdict(env: &Env, args: &ClaudeCodeArgs) -> Result<Verdict, String> {
    let text = read_stdin()?;
    let input: Value = serde_json::from_str(&text)
        .map_err(|e| format!("the hook input on stdin is not valid JSON: {e}; denying"))?;
    if !input.is_object() {
        return Err("the hook input on stdin is not a JSON object; denying".into());
    }
    if let Some(ev) = input["hook_event_name"].as_str()
        && ev != "PreToolUse"
    {
        return Err(format!(
            "hook event '{ev}' is not supported; register `orchestratr hook claude-code` for PreToolUse"
        ));
    }
    let tool = input["tool_name"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or("the hook input has no 'tool_name'; denying")?
        .to_string();
    if let Some(m) = &args.matcher {
        let re = regex_lite::Regex::new(&format!("^(?:{m})$"))
            .map_err(|e| format!("invalid --match regex '{m}': {e}; denying"))?;
        if !re.is_match(&tool) {
            return Ok(Verdict::Allow(format!(
                "tool '{tool}' does not match --match '{m}'; allowed without approval"
            )));
        }
    }
    let tool_input = input.get("tool_input").cloned().unwrap_or(json!({}));
    let (title, detail) = describe_tool(
        &tool,
        &tool_input,
        input["cwd"].as_str(),
        input["session_id"].as_str(),
    );
    let mut context = Map::new();
    for k in [
        "session_id",
        "transcript_path",
        "cwd",
        "hook_event_name",
        "permission_mode",
        "tool_use_id",
    ] {
        if let Some(v) = input.get(k).filter(|v| !v.is_null()) {
            context.insert(k.to_string(), v.clone());
        }
    }
    context.insert("tool_name".into(), json!(tool));
    if let Ok(id) = std::env::var("ORCHESTRATR_AGENT_ID") {
        context.insert("agent_id".into(), json!(id)); // its agent session turns `waiting`
    }
    let input_len = tool_input.to_string().len();
    if input_len > CONTEXT_INPUT_MAX {
        context.insert("tool_input".into(), Value::Null);
        context.insert("tool_input_truncated".into(), json!(true));
        context.insert("tool_input_bytes".into(), json!(input_len));
    } else {
        context.insert("tool_input".into(), tool_input);
    }
    let default = match args.default {
        HookDefault::Allow => "approve",
        HookDefault::Deny => "deny",
    };
    let body = json!({
        "title": title,
        "detail": detail,
        "source": "claude-code",
        "options": ["approve", "deny"],
        "default": default,
        "timeout_ms": u64::try_from(args.timeout.as_millis()).unwrap_or(u64::MAX),
        "context": context,
    });
    let client = env
        .client()
        .map_err(|e| format!("cannot ask orchestratr for approval: {e}; denying {tool}"))?;
    let (_, appr) = client
        .post("/approvals", Some(&body), &env.paths)
        .map_err(|e| format!("cannot create an approval: {e}; denying {tool}"))?;
    let id = appr["id"]
        .as_str()
        .ok_or("the daemon's answer has no approval id; denying")?
        .to_string();
    let progress = std::io::stderr().is_terminal();
    if progress {
        err(&format!(
            "waiting for an answer to {id}: {title}\n  answer with: orchestratr approve {id}   or   orchestratr deny {id}"
        ));
    }
    let plan = WaitPlan {
        env,
        id: &id,
        expires: expires_of(&appr, args.timeout),
        deadline: Some(Instant::now() + args.timeout + Duration::from_secs(15)),
        progress,
    };
    let fin = wait_for_decision(&plan).map_err(|m| format!("{m}; denying {tool}"))?;
    let decision = str_of(&fin, "decision");
    match (str_of(&fin, "status"), decision) {
        ("approved", _) => Ok(Verdict::Allow(decided_reason("approved", &fin))),
        ("denied", _) => Ok(Verdict::Deny(decided_reason("denied", &fin))),
        ("expired", "approve") => Ok(Verdict::Allow(format!(
            "approval {id} expired without an answer; its default (allow) applied"
        ))),
        ("expired", _) => Err(format!(
            "approval {id} expired without an answer; {tool} denied by default"
        )),
        (st, d) => Err(format!(
            "approval {id} ended as '{st}' with decision '{d}'; denying {tool}"
        )),
    }
}

// ---- describing a tool call ----------------------------------------------------

/// Lines removed and added between `old` and `new` once common leading and
/// trailing lines are dropped: `(removed, added)`.
fn changed_lines<'a>(old: &'a str, new: &'a str) -> (Vec<&'a str>, Vec<&'a str>) {
    let o: Vec<&str> = old.lines().collect();
    let n: Vec<&str> = new.lines().collect();
    let mut p = 0;
    while p < o.len() && p < n.len() && o[p] == n[p] {
        p += 1;
    }
    let mut s = 0;
    while s < o.len() - p && s < n.len() - p && o[o.len() - 1 - s] == n[n.len() - 1 - s] {
        s += 1;
    }
    (o[p..o.len() - s].to_vec(), n[p..n.len() - s].to_vec())
}

/// `-N/+M lines` and up to `max` lines of each side, prefixed `- ` / `+ `.
fn diff_summary(old: &str, new: &str, max: usize) -> String {
    let (rm, add) = changed_lines(old, new);
    let mut s = format!("-{}/+{} lines", rm.len(), add.len());
    if rm.is_empty() && add.is_empty() && old != new {
        s.push_str(" (whitespace or line-ending change only)");
    }
    for (sign, lines) in [("-", &rm), ("+", &add)] {
        for l in lines.iter().take(max) {
            s.push_str(&format!("\n{sign} {}", truncate_chars(l, 200)));
        }
        if lines.len() > max {
            s.push_str(&format!("\n{sign} … ({} more lines)", lines.len() - max));
        }
    }
    s
}

/// A title a person can judge at a glance and a detail with the full picture,
/// for one Claude Code tool call (`tool_name`, `tool_input`, `cwd`, `session_id`).
pub fn describe_tool(
    tool: &str,
    input: &Value,
    cwd: Option<&str>,
    session: Option<&str>,
) -> (String, String) {
    let path = str_of(input, "file_path");
    let (title, mut detail) = match tool {
        "Bash" => {
            let cmd = str_of(input, "command");
            let mut d = format!("$ {cmd}");
            if let Some(desc) = input["description"].as_str() {
                d.push_str(&format!("\n\ndescription: {desc}"));
            }
            if input["run_in_background"] == json!(true) {
                d.push_str("\nruns in the background");
            }
            (format!("Bash: {}", one_line(cmd)), d)
        }
        "Edit" => {
            let mut d = format!("edit {path}: ");
            d.push_str(&diff_summary(
                str_of(input, "old_string"),
                str_of(input, "new_string"),
                8,
            ));
            if input["replace_all"] == json!(true) {
                d.push_str("\n(replaces every occurrence)");
            }
            (format!("Edit {path}"), d)
        }
        "MultiEdit" => {
            let edits = input["edits"].as_array().cloned().unwrap_or_default();
            let mut d = format!("{} edits to {path}", edits.len());
            for (i, e) in edits.iter().take(5).enumerate() {
                d.push_str(&format!("\n\nedit {}: ", i + 1));
                d.push_str(&diff_summary(
                    str_of(e, "old_string"),
                    str_of(e, "new_string"),
                    4,
                ));
            }
            if edits.len() > 5 {
                d.push_str(&format!("\n\n… and {} more edits", edits.len() - 5));
            }
            (format!("MultiEdit {path} ({} edits)", edits.len()), d)
        }
        "Write" => {
            let content = str_of(input, "content");
            let lines: Vec<&str> = content.lines().collect();
            let mut d = format!(
                "write {path}: {} lines, {} bytes",
                lines.len(),
                content.len()
            );
            for l in lines.iter().take(15) {
                d.push_str(&format!("\n  {}", truncate_chars(l, 200)));
            }
            if lines.len() > 15 {
                d.push_str(&format!("\n  … ({} more lines)", lines.len() - 15));
            }
            (format!("Write {path}"), d)
        }
        _ => {
            let compact = input.to_string();
            let pretty = serde_json::to_string_pretty(input).unwrap_or(compact.clone());
            (
                format!("{tool}: {compact}"),
                format!("{tool} with input:\n{pretty}"),
            )
        }
    };
    if let Some(c) = cwd {
        detail.push_str(&format!("\n\ncwd: {c}"));
    }
    if let Some(s) = session {
        detail.push_str(&format!("\nsession: {s}"));
    }
    (
        truncate_chars(&title, TITLE_MAX),
        truncate_chars(&detail, DETAIL_MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_title_is_one_truncated_line() {
        let long = format!("echo {}\nrm -rf build", "x".repeat(300));
        let (t, d) = describe_tool(
            "Bash",
            &json!({"command": long, "description": "clean"}),
            Some("/p"),
            None,
        );
        assert!(t.starts_with("Bash: echo xxx"), "{t}");
        assert_eq!(t.chars().count(), TITLE_MAX);
        assert!(t.ends_with('…'));
        assert!(d.contains("rm -rf build") && d.contains("description: clean"));
        assert!(d.contains("cwd: /p"));
    }

    #[test]
    fn edit_summary_counts_changed_lines() {
        let (t, d) = describe_tool(
            "Edit",
            &json!({"file_path": "/p/a.rs", "old_string": "a\nb\nc", "new_string": "a\nB\nB2\nc"}),
            None,
            None,
        );
        assert_eq!(t, "Edit /p/a.rs");
        assert!(d.contains("-1/+2 lines"), "{d}");
        assert!(d.contains("\n- b") && d.contains("\n+ B2"), "{d}");
    }

    #[test]
    fn write_and_other_tools() {
        let (t, d) = describe_tool(
            "Write",
            &json!({"file_path": "/p/x", "content": "1\n2\n3\n"}),
            None,
            None,
        );
        assert_eq!(t, "Write /p/x");
        assert!(d.contains("3 lines, 6 bytes"), "{d}");
        let (t, _) = describe_tool("WebFetch", &json!({"url": "https://x"}), None, None);
        assert_eq!(t, r#"WebFetch: {"url":"https://x"}"#);
    }

    #[test]
    fn output_shape_is_exact() {
        assert_eq!(
            claude_code_output("allow", "ok"),
            r#"{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"allow","permissionDecisionReason":"ok"}}"#
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(seg("appr-0a/b"), "appr-0a%2Fb");
    }
}
