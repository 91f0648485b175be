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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::agents::SessionSpec;

    fn spec(d: Detect) -> SessionSpec {
        SessionSpec {
            interactive: vec!["x".into()],
            resume: None,
            detect: d,
            prompt_patterns: vec![Pattern::new("(y/n)").unwrap()],
            busy_patterns: vec![Pattern::new("re:WORK(ING)?").unwrap()],
            idle_after_ms: 1,
            submit_delay_ms: 0,
            max_sessions: 1,
        }
    }

    #[test]
    fn prompts_win_over_busy_and_only_the_tail_counts() {
        let s = spec(Detect::Claude);
        assert_eq!(
            judge(&s, "WORKING\nProceed? (y/n)\n\n"),
            Screen::Waiting("Proceed? (y/n)".into())
        );
        assert_eq!(judge(&s, "x\n  esc to interrupt\n"), Screen::Busy);
        assert_eq!(
            judge(&s, " Do you want to proceed?\n ❯ 1. Yes\n   2. No\n"),
            Screen::Waiting("Do you want to proceed?".into())
        );
        let old = format!("(y/n)\n{}", "line\n".repeat(20));
        assert_eq!(judge(&s, &old), Screen::Plain);
        assert_eq!(judge(&spec(Detect::Shell), "$ "), Screen::Plain);
    }

    proptest::proptest! {
        #[test]
        fn judging_any_screen_never_panics(t in "(?s).{0,300}") {
            for d in [Detect::Claude, Detect::Codex, Detect::Gemini, Detect::Aider, Detect::Opencode, Detect::Shell] {
                let _ = judge(&spec(d), &t);
            }
        }
    }
}
