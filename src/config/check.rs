//! `orchestratr config check` without a daemon (issue 8 part 2): load
//! `config.yml` and `apps.d/*.yml` exactly as the daemon would and report every
//! problem with file:line:column.

use super::{Diagnostic, load};
use serde::Serialize;
use std::path::Path;

/// What [`check`] found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Problems that make the config invalid (`config.yml` errors: the daemon
    /// would refuse to start, or keep the previous registry on reload) and
    /// broken drop-ins (the daemon skips them). Empty when valid.
    pub errors: Vec<Diagnostic>,
    /// Warnings the daemon would log (unknown keys with "did you mean",
    /// shadowed or duplicate drop-ins, duplicate chords).
    pub warnings: Vec<String>,
    /// Apps the daemon would register (0 when `config.yml` is invalid).
    pub apps: usize,
    /// Tasks configured.
    pub tasks: usize,
}

impl CheckReport {
    /// `true` when there is no error (the CLI exits 0, else 2).
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Validate the config in `config_dir` (`<cfg>/config.yml`, the embedded
/// default when missing, plus `<cfg>/apps.d/`) without a daemon. Never fails:
/// unreadable or oversized files are errors in the report.
pub fn check(config_dir: &Path) -> CheckReport {
    match load(config_dir) {
        Ok(cfg) => {
            let skipped: Vec<String> = cfg
                .skipped
                .iter()
                .map(|d| format!("{d}; drop-in skipped"))
                .collect();
            CheckReport {
                warnings: cfg
                    .warnings
                    .into_iter()
                    .filter(|w| !skipped.contains(w))
                    .collect(),
                errors: cfg.skipped,
                apps: cfg.apps.len(),
                tasks: cfg.exec.tasks.len(),
            }
        }
        Err(e) => CheckReport {
            errors: e.diagnostics(),
            warnings: Vec::new(),
            apps: 0,
            tasks: 0,
        },
    }
}
