//! Screen heuristics of the status engine (API.md §10): built-in patterns per
//! `detect` kind plus the configured ones, checked only when the output grew.

use crate::config::agents::{Detect, Pattern, SessionSpec};

/// What a screen capture says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    /// A prompt pattern matched: the line that matched.
    Waiting(String),
    /// A busy pattern matched.
    Busy,
    /// Nothing matched.
    Plain,
}

fn builtin(d: Detect) -> (&'static [&'static str], &'static [&'static str]) {
    match d {
        Detect::Claude => (
            &[
                "Do you want to proceed?",
                "Do you want to make this edit",
                "Do you want to create",
                "Would you like to proceed?",
                "❯ 1. Yes",
            ],
            &["esc to interrupt", "re:[·✢✳✶✻✽*] \\w+…"],
        ),
        Detect::Codex => (
            &["Allow command?", "Approve this", "(y/n)", "[y/N]"],
            &["esc to interrupt", "Esc to interrupt"],
        ),
        Detect::Gemini => (
            &[
                "Allow execution",
                "Apply this change?",
                "Do you want to proceed",
            ],
            &["esc to cancel"],
        ),
        Detect::Aider => (&["(Y)es/(N)o", "[Yes]:"], &[]),
        Detect::Opencode => (&["Permission required", "Allow once"], &["esc interrupt"]),
        Detect::Shell => (&[], &[]),
    }
}

/// Judge a screen: prompt patterns first (a question on screen wins over a
/// spinner), then busy patterns. Only the last 15 non-blank lines count, so
/// scrolled-off history does not.
pub fn judge(spec: &SessionSpec, text: &str) -> Screen {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    let (bp, bb) = builtin(spec.detect);
    let built =
        |v: &[&str]| -> Vec<Pattern> { v.iter().filter_map(|s| Pattern::new(s).ok()).collect() };
    let prompts = built(bp)
        .into_iter()
        .chain(spec.prompt_patterns.iter().cloned());
    for p in prompts {
        if p.is_match(&tail) {
            let line = tail
                .lines()
                .rev()
                .find(|l| p.is_match(l))
                .unwrap_or(&p.source)
                .trim()
                .to_string();
            return Screen::Waiting(line);
        }
    }
    if built(bb)
        .iter()
        .chain(spec.busy_patterns.iter())
        .any(|p| p.is_match(&tail))
    {
        return Screen::Busy;
    }
    Screen::Plain
}
