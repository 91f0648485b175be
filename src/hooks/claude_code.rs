//! The Claude Code adapter (PreToolUse hook protocol): a hook payload becomes an
//! approval request, and a decided approval becomes the hook's JSON answer.
//! Pure functions, no I/O: `orchestratr hook claude-code` (src/cli/approvals_cmds.rs)
//! reads stdin, talks to the daemon and waits.
//!
//! Protocol: https://docs.anthropic.com/en/docs/claude-code/hooks (PreToolUse;
//! `hookSpecificOutput.permissionDecision` allow|deny; exit 2 blocks the tool).

use serde_json::{Map, Value, json};

/// Longest approval title built, characters.
pub const TITLE_MAX: usize = 120;
/// Longest approval detail built, characters.
pub const DETAIL_MAX: usize = 16 * 1024;
/// Largest `tool_input` copied into the approval's context, bytes of JSON.
pub const CONTEXT_INPUT_MAX: usize = 256 * 1024;

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

/// What applies when nobody answers in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// Let the tool run.
    Allow,
    /// Block the tool.
    Deny,
}

/// What the hook answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `permissionDecision: allow`, exit 0.
    Allow(String),
    /// `permissionDecision: deny` after a person denied, exit 0.
    Deny(String),
}

/// What to do with one hook payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Answer at once (the tool does not match `--match`).
    Answer(Verdict),
    /// Create this approval (`POST /approvals` body) for `tool` and wait.
    Ask {
        /// The tool name, for messages.
        tool: String,
        /// The approval's title.
        title: String,
        /// The request body.
        body: Value,
    },
}

/// Turn a hook payload (stdin JSON) into a [`Plan`].
///
/// `matcher`: only tools whose whole name matches ask; `timeout_ms`: the
/// approval's timeout. Errors: a lowercase reason (bad JSON, wrong event, no
/// `tool_name`, bad regex) — the caller denies with it.
pub fn plan(
    text: &str,
    matcher: Option<&str>,
    default: Default,
    timeout_ms: u64,
) -> Result<Plan, String> {
    let input: Value = serde_json::from_str(text)
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
    if let Some(m) = matcher {
        let re = regex_lite::Regex::new(&format!("^(?:{m})$"))
            .map_err(|e| format!("invalid --match regex '{m}': {e}; denying"))?;
        if !re.is_match(&tool) {
            return Ok(Plan::Answer(Verdict::Allow(format!(
                "tool '{tool}' does not match --match '{m}'; allowed without approval"
            ))));
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
    let input_len = tool_input.to_string().len();
    if input_len > CONTEXT_INPUT_MAX {
        context.insert("tool_input".into(), Value::Null);
        context.insert("tool_input_truncated".into(), json!(true));
        context.insert("tool_input_bytes".into(), json!(input_len));
    } else {
        context.insert("tool_input".into(), tool_input);
    }
    let default = match default {
        Default::Allow => "approve",
        Default::Deny => "deny",
    };
    let body = json!({
        "title": title,
        "detail": detail,
        "source": "claude-code",
        "options": ["approve", "deny"],
        "default": default,
        "timeout_ms": timeout_ms,
        "context": context,
    });
    Ok(Plan::Ask { tool, title, body })
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

/// The hook's answer for a final approval `fin` (API.md §8) about `tool`.
///
/// Errors: a reason to deny with exit 2 (expired with default deny, unknown status).
pub fn verdict(fin: &Value, tool: &str) -> Result<Verdict, String> {
    let id = str_of(fin, "id");
    let decision = str_of(fin, "decision");
    match (str_of(fin, "status"), decision) {
        ("approved", _) => Ok(Verdict::Allow(decided_reason("approved", fin))),
        ("denied", _) => Ok(Verdict::Deny(decided_reason("denied", fin))),
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
    fn unmatched_tools_are_allowed_at_once() {
        let p = plan(r#"{"tool_name":"Read"}"#, Some("Bash"), Default::Deny, 1000).unwrap();
        assert!(matches!(p, Plan::Answer(Verdict::Allow(_))), "{p:?}");
        assert!(plan("[]", None, Default::Deny, 1000).is_err());
    }
}
