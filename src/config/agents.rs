//! Config of interactive agent sessions (API.md §10): the `interactive`,
//! `resume`, `detect`, `prompt_patterns`, `busy_patterns`, `idle_after_ms`,
//! `submit_delay_ms` and `max_sessions` keys of `agents.<type>`. The raw keys
//! live on `exec::RawAgent` (one YAML mapping per agent type); this file
//! validates them with file:line:column diagnostics like the rest.

use super::{Diagnostic, diag_at};
use serde::{Serialize, Serializer};
use serde_saphyr::Spanned;
use std::path::Path;

/// Default of `idle_after_ms`: no output this long and no busy pattern → idle.
pub const DEFAULT_IDLE_AFTER_MS: u64 = 5000;
/// Default of `submit_delay_ms`: between pasting text and pressing Enter.
pub const DEFAULT_SUBMIT_DELAY_MS: u64 = 1000;
/// Default of `max_sessions` per agent type.
pub const DEFAULT_MAX_SESSIONS: usize = 8;

/// Which built-in screen heuristics apply (API.md §10 `detect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Detect {
    /// Claude Code.
    Claude,
    /// OpenAI Codex CLI.
    Codex,
    /// Gemini CLI.
    Gemini,
    /// Aider.
    Aider,
    /// opencode.
    Opencode,
    /// A plain shell or any other program: no built-in patterns.
    Shell,
}

impl Detect {
    /// Parse a `detect` value; `None` for an unknown kind.
    pub fn parse(s: &str) -> Option<Detect> {
        Some(match s {
            "claude" => Detect::Claude,
            "codex" => Detect::Codex,
            "gemini" => Detect::Gemini,
            "aider" => Detect::Aider,
            "opencode" => Detect::Opencode,
            "shell" => Detect::Shell,
            _ => return None,
        })
    }
}

/// A screen pattern: `re:<regex>` (regex-lite syntax) or a plain substring.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// As written in the config.
    pub source: String,
    re: Option<regex_lite::Regex>,
}

impl PartialEq for Pattern {
    fn eq(&self, o: &Pattern) -> bool {
        self.source == o.source
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl Pattern {
    /// Compile `source`. Errors: the regex-lite message for a bad `re:` pattern,
    /// or "empty pattern".
    pub fn new(source: &str) -> Result<Pattern, String> {
        let re = match source.strip_prefix("re:") {
            Some("") => return Err("empty regex".into()),
            Some(r) => Some(regex_lite::Regex::new(r).map_err(|e| e.to_string())?),
            None if source.is_empty() => return Err("empty pattern".into()),
            None => None,
        };
        Ok(Pattern {
            source: source.to_string(),
            re,
        })
    }
    /// Does `text` (a screen capture) match?
    pub fn is_match(&self, text: &str) -> bool {
        match &self.re {
            Some(r) => r.is_match(text),
            None => text.contains(&self.source),
        }
    }
}

/// What an agent type needs to run as an interactive session (API.md §10).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSpec {
    /// argv of a session; executed without a shell.
    pub interactive: Vec<String>,
    /// argv to resume a session; one element contains `{resume_id}`.
    pub resume: Option<Vec<String>>,
    /// Built-in status heuristics.
    pub detect: Detect,
    /// Extra "waiting for input" screen patterns.
    pub prompt_patterns: Vec<Pattern>,
    /// Extra "working" screen patterns.
    pub busy_patterns: Vec<Pattern>,
    /// Silence before `idle`, milliseconds (1..=86400000, default 5000).
    pub idle_after_ms: u64,
    /// Delay between paste and Enter, milliseconds (0..=60000, default 1000).
    pub submit_delay_ms: u64,
    /// Live sessions of this type at once (1..=256, default 8).
    pub max_sessions: usize,
}

/// The raw session keys of one `agents.<type>` entry (fields of `exec::RawAgent`).
pub(super) struct RawSession<'a> {
    pub interactive: &'a Option<Spanned<Vec<String>>>,
    pub resume: &'a Option<Spanned<Vec<String>>>,
    pub detect: &'a Option<Spanned<String>>,
    pub prompt_patterns: &'a Option<Spanned<Vec<String>>>,
    pub busy_patterns: &'a Option<Spanned<Vec<String>>>,
    pub idle_after_ms: &'a Option<Spanned<u64>>,
    pub submit_delay_ms: &'a Option<Spanned<u64>>,
    pub max_sessions: &'a Option<Spanned<u64>>,
}

fn ranged(
    file: &Path,
    v: &Option<Spanned<u64>>,
    what: &str,
    range: std::ops::RangeInclusive<u64>,
    default: u64,
    errs: &mut Vec<Diagnostic>,
) -> u64 {
    match v {
        Some(t) if !range.contains(&t.value) => {
            errs.push(diag_at(
                file,
                t,
                format!(
                    "{what} must be between {} and {}, not {}",
                    range.start(),
                    range.end(),
                    t.value
                ),
            ));
            default
        }
        Some(t) => t.value,
        None => default,
    }
}

fn patterns(
    file: &Path,
    v: &Option<Spanned<Vec<String>>>,
    what: &str,
    errs: &mut Vec<Diagnostic>,
) -> Vec<Pattern> {
    let Some(list) = v else { return Vec::new() };
    let mut out = Vec::new();
    for p in &list.value {
        match Pattern::new(p) {
            Ok(p) => out.push(p),
            Err(e) => errs.push(diag_at(
                file,
                list,
                format!("{what}: bad pattern '{p}': {e}"),
            )),
        }
    }
    out
}

/// Validate the session keys of agent type `name`. `None` when the type has no
/// `interactive` argv (then the other keys are ignored, but still checked).
pub(super) fn validate(
    name: &str,
    raw: RawSession<'_>,
    file: &Path,
    errs: &mut Vec<Diagnostic>,
) -> Option<SessionSpec> {
    let detect = match raw.detect {
        None => Detect::Shell,
        Some(d) => Detect::parse(&d.value).unwrap_or_else(|| {
            errs.push(diag_at(
                file,
                d,
                format!(
                    "agent '{name}': unknown detect '{}': expected claude, codex, gemini, aider, opencode or shell",
                    d.value
                ),
            ));
            Detect::Shell
        }),
    };
    let resume = raw.resume.as_ref().and_then(|r| {
        if r.value.is_empty() || r.value[0].is_empty() {
            errs.push(diag_at(
                file,
                r,
                format!("agent '{name}': resume must be a non-empty argv"),
            ));
            None
        } else if !r.value.iter().any(|x| x.contains("{resume_id}")) {
            errs.push(diag_at(
                file,
                r,
                format!("agent '{name}': resume must contain {{resume_id}}"),
            ));
            None
        } else {
            Some(r.value.clone())
        }
    });
    let spec = SessionSpec {
        interactive: Vec::new(),
        resume,
        detect,
        prompt_patterns: patterns(
            file,
            raw.prompt_patterns,
            &format!("agent '{name}': prompt_patterns"),
            errs,
        ),
        busy_patterns: patterns(
            file,
            raw.busy_patterns,
            &format!("agent '{name}': busy_patterns"),
            errs,
        ),
        idle_after_ms: ranged(
            file,
            raw.idle_after_ms,
            &format!("agent '{name}': idle_after_ms"),
            1..=86_400_000,
            DEFAULT_IDLE_AFTER_MS,
            errs,
        ),
        submit_delay_ms: ranged(
            file,
            raw.submit_delay_ms,
            &format!("agent '{name}': submit_delay_ms"),
            0..=60_000,
            DEFAULT_SUBMIT_DELAY_MS,
            errs,
        ),
        max_sessions: ranged(
            file,
            raw.max_sessions,
            &format!("agent '{name}': max_sessions"),
            1..=256,
            DEFAULT_MAX_SESSIONS as u64,
            errs,
        ) as usize,
    };
    let i = raw.interactive.as_ref()?;
    if i.value.is_empty() || i.value[0].is_empty() {
        errs.push(diag_at(
            file,
            i,
            format!("agent '{name}': interactive must be a non-empty argv"),
        ));
        return None;
    }
    Some(SessionSpec {
        interactive: i.value.clone(),
        ..spec
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigError, load};

    fn load_text(text: &str) -> Result<crate::config::Config, Vec<Diagnostic>> {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join("config.yml"), text).expect("write");
        match load(d.path()) {
            Ok(c) => Ok(c),
            Err(ConfigError::Invalid(v)) => Err(v),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn session_keys_parse_with_defaults() {
        let c = load_text(
            "agents:\n  claude:\n    interactive: [claude]\n    resume: [claude, --resume, '{resume_id}']\n    detect: claude\n    busy_patterns: ['re:\\d+s']\n  batch:\n    delegate: [x, '{prompt}']\n",
        )
        .expect("valid");
        let s = c.exec.agents["claude"]
            .session
            .clone()
            .expect("interactive");
        assert_eq!(s.interactive, vec!["claude"]);
        assert_eq!(s.detect, Detect::Claude);
        assert_eq!(s.idle_after_ms, DEFAULT_IDLE_AFTER_MS);
        assert_eq!(s.submit_delay_ms, DEFAULT_SUBMIT_DELAY_MS);
        assert_eq!(s.max_sessions, DEFAULT_MAX_SESSIONS);
        assert!(s.busy_patterns[0].is_match("12s"));
        assert!(c.exec.agents["claude"].delegate.is_empty());
        assert!(c.exec.agents["batch"].session.is_none());
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn session_keys_are_validated_with_positions() {
        let e = load_text(
            "agents:\n  a:\n    interactive: []\n  b:\n    interactive: [x]\n    detect: vim\n    idle_after_ms: 0\n    max_sessions: 1000\n    prompt_patterns: ['re:(']\n    resume: [x]\n  c:\n    pool: default\n",
        )
        .expect_err("invalid");
        let m: Vec<String> = e
            .iter()
            .map(|d| format!("{}:{} {}", d.line, d.column, d.message))
            .collect();
        let has = |s: &str| m.iter().any(|x| x.contains(s));
        assert!(
            has("3:18 agent 'a': interactive must be a non-empty argv"),
            "{m:?}"
        );
        assert!(has("6:13 agent 'b': unknown detect 'vim'"), "{m:?}");
        assert!(
            has("7:20 agent 'b': idle_after_ms must be between 1 and 86400000, not 0"),
            "{m:?}"
        );
        assert!(
            has("agent 'b': max_sessions must be between 1 and 256, not 1000"),
            "{m:?}"
        );
        assert!(
            has("agent 'b': prompt_patterns: bad pattern 're:('"),
            "{m:?}"
        );
        assert!(has("agent 'b': resume must contain {resume_id}"), "{m:?}");
        assert!(
            has("agent 'c': needs delegate, interactive or both"),
            "{m:?}"
        );
    }

    proptest::proptest! {
        #[test]
        fn pattern_parsing_never_panics(s in ".{0,40}") {
            if let Ok(p) = Pattern::new(&s) {
                let _ = p.is_match(&s);
                if !s.starts_with("re:") {
                    proptest::prop_assert!(p.is_match(&s));
                }
            }
        }
    }

    #[test]
    fn patterns_substring_and_regex() {
        let p = Pattern::new("Do you want").unwrap();
        assert!(p.is_match("x Do you want to proceed?"));
        assert!(!p.is_match("do you want"));
        let r = Pattern::new("re:^\\s*>\\s*$").unwrap();
        assert!(r.is_match(">  "));
        assert!(Pattern::new("re:(").is_err());
        assert!(Pattern::new("").is_err());
    }
}
