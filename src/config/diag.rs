//! Diagnostics of the config layer: [`Diagnostic`] (file:line:column and a
//! message), [`ConfigError`], and the serde-saphyr plumbing that produces them
//! (positions of YAML errors, unknown keys through `serde_ignored`).

use serde::Serialize;
use serde_saphyr::Spanned;
use std::fmt;
use std::path::{Path, PathBuf};

/// One validation problem, pointing at a file position (1-based line and column;
/// 0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Full path of the offending file.
    pub file: String,
    /// 1-based line, 0 if unknown.
    pub line: u64,
    /// 1-based column, 0 if unknown.
    pub column: u64,
    /// Lowercase message naming the offending key or value.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

/// Errors of the config layer.
#[derive(Debug)]
pub enum ConfigError {
    /// `config.yml` is invalid; every problem found, with positions.
    Invalid(Vec<Diagnostic>),
    /// A file or directory could not be read.
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Invalid(d) => {
                write!(f, "invalid config:")?;
                for x in d {
                    write!(f, "\n  {x}")?;
                }
                Ok(())
            }
            ConfigError::Io { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// The diagnostics of an invalid config (for I/O errors, one diagnostic
    /// naming the path).
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            ConfigError::Invalid(d) => d.clone(),
            ConfigError::Io { path, source } => vec![Diagnostic {
                file: path.display().to_string(),
                line: 0,
                column: 0,
                message: format!("cannot read: {source}"),
            }],
        }
    }
}

pub(crate) fn diag_at<T>(file: &Path, s: &Spanned<T>, message: String) -> Diagnostic {
    Diagnostic {
        file: file.display().to_string(),
        line: s.referenced.line(),
        column: s.referenced.column(),
        message,
    }
}

/// Turn a serde-saphyr error into a diagnostic: its message without the
/// trailing " at line L, column C", and the position as numbers.
pub(super) fn diag_from_yaml(file: &Path, e: &serde_saphyr::Error) -> Diagnostic {
    let full = e.to_string();
    let message = match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full,
    };
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    Diagnostic {
        file: file.display().to_string(),
        line,
        column,
        message: message.replace('`', "'"),
    }
}

/// Clean a `serde_ignored` path of serde-saphyr's span markers:
/// `apps.0.?.value.chord_x` → `apps[0].chord_x`.
fn clean_ignored_path(p: &str) -> Option<String> {
    if p.contains("__serde_saphyr_private_spanned") {
        return None;
    }
    let mut out = String::new();
    for seg in p.split('.') {
        if seg == "?" || seg == "value" && !out.is_empty() {
            continue;
        }
        if seg.chars().all(|c| c.is_ascii_digit()) && !out.is_empty() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    Some(out)
}

pub(super) fn yaml_options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    o.with_snippet = false;
    // `.inf`/`.nan` reach the numeric keys' own check (ranges.rs), which names
    // the allowed range; nothing else in the schema accepts a float.
    o.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::PassThrough;
    o
}

/// Deserialize `text` into `T`, collecting unknown keys into `unknown`.
pub(super) fn parse_with_unknown<T: serde::de::DeserializeOwned>(
    text: &str,
    unknown: &mut Vec<String>,
) -> Result<T, serde_saphyr::Error> {
    serde_saphyr::with_deserializer_from_str_with_options(text, yaml_options(), |de| {
        serde_ignored::deserialize(de, |p| {
            if let Some(c) = clean_ignored_path(&p.to_string()) {
                unknown.push(c)
            }
        })
    })
}
