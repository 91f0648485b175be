//! `approval list|show|approve|deny|ask` and `hook claude-code` (API.md §8); the
//! Claude Code protocol itself lives in `crate::hooks::claude_code`.
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

use super::output::{Align, Cell, Table, one_line, status_style, truncate};
use super::wait::{WaitPlan, expires_of, wait_for_decision};
use super::{CliError, EXIT_FAIL, EXIT_OK, EXIT_USAGE, Env, Outcome, err, out, out_json};
use crate::approvals::Approval;
use crate::client::{ClientError, path_segment};
use crate::hooks::claude_code::{self as cc, Plan, Verdict};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use std::io::{IsTerminal, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant, SystemTime};

/// Largest hook input read from stdin, bytes.
const MAX_STDIN: u64 = 32 * 1024 * 1024;

/// Long help of `ask`.
pub const ASK_LONG_ABOUT: &str = "Ask a question through the daemon and block until someone answers it\n\
(`orchestratr approve ID`, `orchestratr deny ID`, or POST /approvals/ID from any client).\n\
Prints the decision on stdout. Survives a dropped connection or a daemon restart.\n\n\
Exit codes: 0 approved (or a custom option chosen), 1 denied, 2 expired or error.";

/// `orchestratr approval …`
#[derive(Debug, Subcommand)]
pub enum ApprovalCmd {
    /// List approvals (pending first).
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show one approval with its detail.
    Show(ShowArgs),
    /// Approve a pending approval.
    Approve(DecideArgs),
    /// Deny a pending approval.
    Deny(DecideArgs),
    /// Ask a question and block until someone answers (exit 0 approved, 1 denied, 2 expired/error).
    #[command(long_about = ASK_LONG_ABOUT)]
    Ask(AskArgs),
}

/// `approval show ID`
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Approval id (appr-…).
    pub id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run one `approval` subcommand.
pub fn dispatch(env: &Env, c: ApprovalCmd) -> Outcome {
    match c {
        ApprovalCmd::List(a) => list(env, &a),
        ApprovalCmd::Show(a) => show(env, &a),
        ApprovalCmd::Approve(a) => decide(env, &a, "approve"),
        ApprovalCmd::Deny(a) => decide(env, &a, "deny"),
        ApprovalCmd::Ask(a) => Ok(ask(env, &a)),
    }
}

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

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

/// "in 9m 59s" for a pending approval's `expires_at`, "-" otherwise.
pub(super) fn expires_in(a: &Value) -> String {
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

/// The approvals table: id, status, source, title, expiry.
pub fn approvals_table(items: &[Approval]) -> Table {
    let mut t = Table::new(&[
        ("ID", Align::Left),
        ("STATUS", Align::Left),
        ("SOURCE", Align::Left),
        ("EXPIRES", Align::Left),
        ("TITLE", Align::Left),
    ]);
    for x in items {
        let st = x.status.as_str();
        let v = json!({"status": st, "expires_at": x.expires_at});
        t.row(vec![
            x.id.clone().into(),
            Cell::styled(st, status_style(st)),
            x.source.clone().unwrap_or_else(|| "-".into()).into(),
            expires_in(&v).into(),
            truncate(&one_line(&x.title), 60).into(),
        ]);
    }
    t
}

#[derive(serde::Deserialize)]
struct ApprovalList {
    approvals: Vec<Approval>,
}

pub(super) fn list(env: &Env, a: &ListArgs) -> Outcome {
    let mut path = "/approvals".to_string();
    if let Some(s) = a.status.as_deref().filter(|s| !s.is_empty()) {
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair("status", s)
            .finish();
        path = format!("{path}?{q}");
    }
    let client = env.client()?;
    if a.json {
        out_json(&client.get(&path, &env.paths)?);
        return Ok(EXIT_OK);
    }
    let v: ApprovalList = client.get_as(&path, &env.paths)?;
    if v.approvals.is_empty() {
        out("no approvals");
        return Ok(EXIT_OK);
    }
    approvals_table(&v.approvals).print();
    Ok(EXIT_OK)
}

fn show(env: &Env, a: &ShowArgs) -> Outcome {
    let path = format!("/approvals/{}", path_segment(&a.id));
    let client = env.client()?;
    if a.json {
        out_json(&client.get(&path, &env.paths)?);
        return Ok(EXIT_OK);
    }
    let x: Approval = client.get_as(&path, &env.paths)?;
    approvals_table(std::slice::from_ref(&x)).print();
    out(&format!(
        "options: {}  (default {})",
        x.options.join(", "),
        x.default
    ));
    if let Some(d) = &x.decision {
        out(&format!(
            "decision: {d}{}",
            x.decided_by
                .as_deref()
                .map(|b| format!(" by {b}"))
                .unwrap_or_default()
        ));
    }
    if let Some(c) = &x.comment {
        out(&format!("comment: {c}"));
    }
    if let Some(d) = &x.detail {
        out("");
        out(d);
    }
    Ok(EXIT_OK)
}

fn default_by() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "cli".to_string())
}

pub(super) fn decide(env: &Env, a: &DecideArgs, decision: &str) -> Outcome {
    let body = json!({
        "decision": decision,
        "comment": a.comment,
        "by": a.by.clone().unwrap_or_else(default_by),
    });
    let path = format!("/approvals/{}", path_segment(&a.id));
    let res = env.client()?.post(&path, Some(&body), &env.paths);
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
            Ok(EXIT_OK)
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
            Err(CliError::failed(format!(
                "approval {} was already {}{by} (decision '{}')",
                a.id,
                st["status"].as_str().unwrap_or("decided"),
                st["decision"].as_str().unwrap_or("")
            )))
        }
        Err(e) => Err(e.into()),
    }
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

/// Deny with exit 2: the deny JSON on stdout (for any reader) and the reason on
/// stderr (what Claude Code shows the agent on exit 2).
fn block(reason: &str) -> u8 {
    let _ = out(&cc::claude_code_output("deny", reason));
    err(reason);
    HOOK_BLOCK
}

fn claude_code(env: &Env, args: &ClaudeCodeArgs) -> u8 {
    let (word, reason) = match claude_code_verdict(env, args) {
        Ok(Verdict::Allow(r)) => ("allow", r),
        Ok(Verdict::Deny(r)) => ("deny", r),
        Err(reason) => return block(&reason),
    };
    if out(&cc::claude_code_output(word, &reason)) {
        EXIT_OK
    } else {
        err(&format!(
            "cannot write the hook answer to stdout ({reason}); denying"
        ));
        HOOK_BLOCK
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

fn claude_code_verdict(env: &Env, args: &ClaudeCodeArgs) -> Result<Verdict, String> {
    let text = read_stdin()?;
    let default = match args.default {
        HookDefault::Allow => cc::Default::Allow,
        HookDefault::Deny => cc::Default::Deny,
    };
    let timeout_ms = u64::try_from(args.timeout.as_millis()).unwrap_or(u64::MAX);
    let (tool, title, body) = match cc::plan(&text, args.matcher.as_deref(), default, timeout_ms)? {
        Plan::Answer(v) => return Ok(v),
        Plan::Ask { tool, title, body } => (tool, title, body),
    };
    let mut body = body;
    if let Ok(id) = std::env::var("ORCHESTRATR_AGENT_ID")
        && body["context"].is_object()
    {
        body["context"]["agent_id"] = json!(id); // its agent session turns `waiting`
    }
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
    cc::verdict(&fin, &tool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
