//! The config watcher: notify (via notify-debouncer-mini, 200 ms) on the config dir
//! and `apps.d/`, non-recursive, so editors' rename-saves are seen (DESIGN.md §4).
//! Only `config.yml` and drop-in manifests trigger a reload; the port, token and
//! pid files and editors' temporaries are ignored. The registry skips a reload
//! whose content fingerprint is unchanged.

use crate::config::is_dropin_name;
use crate::registry::Registry;
use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Debounce window: bursts of file events within it cause one reload.
pub const DEBOUNCE_MS: u64 = 200;

/// A running watcher; dropping it stops watching.
pub struct ConfigWatcher {
    _debouncer: Debouncer<RecommendedWatcher>,
}

/// Errors of the watcher layer.
#[derive(Debug)]
pub struct WatchError {
    /// The directory that could not be watched.
    pub path: PathBuf,
    /// notify's message.
    pub message: String,
}

impl std::fmt::Display for WatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot watch {}: {}", self.path.display(), self.message)
    }
}
impl std::error::Error for WatchError {}

/// Does a change to `path` concern the config? (`config.yml` in `config_dir`, or a
/// drop-in manifest in `config_dir/apps.d`, or `apps.d` itself.)
pub fn is_relevant(config_dir: &Path, path: &Path) -> bool {
    let apps_dir = config_dir.join("apps.d");
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let parent = path.parent().unwrap_or(Path::new(""));
    if path == apps_dir {
        return true;
    }
    if parent == config_dir {
        return name == "config.yml";
    }
    parent == apps_dir && is_dropin_name(name)
}

impl ConfigWatcher {
    /// Watch `config_dir` and `config_dir/apps.d` (created if missing) and call
    /// `registry.reload(false)` after each debounced burst of relevant changes.
    ///
    /// Errors: [`WatchError`] when notify cannot watch a directory (e.g. inotify
    /// limits); the daemon then runs without hot reload (POST /reload still works).
    pub fn start(config_dir: &Path, registry: Registry) -> Result<ConfigWatcher, WatchError> {
        // Canonical paths: notify reports canonical ones on some platforms.
        let dir = config_dir
            .canonicalize()
            .unwrap_or_else(|_| config_dir.to_path_buf());
        let apps_dir = dir.join("apps.d");
        let _ = crate::fsutil::create_private_dir(&apps_dir);
        let filter_dir = dir.clone();
        let mut debouncer = new_debouncer(
            Duration::from_millis(DEBOUNCE_MS),
            move |res: DebounceEventResult| {
                let relevant = match res {
                    Ok(events) => events.iter().any(|e| is_relevant(&filter_dir, &e.path)),
                    Err(e) => {
                        log::warn!("config watcher error ({e}); reloading");
                        true
                    }
                };
                if relevant {
                    match registry.reload(false) {
                        Ok(r) if !r.unchanged => log::debug!("hot reload applied"),
                        Ok(_) => {}
                        Err(e) => log::debug!("hot reload rejected: {e}"),
                    }
                }
            },
        )
        .map_err(|e| WatchError {
            path: dir.clone(),
            message: e.to_string(),
        })?;
        for (p, mode) in [
            (&dir, RecursiveMode::NonRecursive),
            (&apps_dir, RecursiveMode::NonRecursive),
        ] {
            debouncer.watcher().watch(p, mode).map_err(|e| WatchError {
                path: p.clone(),
                message: e.to_string(),
            })?;
        }
        Ok(ConfigWatcher {
            _debouncer: debouncer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_config_and_dropins_are_relevant() {
        let d = Path::new("/c");
        assert!(is_relevant(d, Path::new("/c/config.yml")));
        assert!(is_relevant(d, Path::new("/c/apps.d/x.yml")));
        assert!(is_relevant(d, Path::new("/c/apps.d")));
        assert!(!is_relevant(d, Path::new("/c/port")));
        assert!(!is_relevant(d, Path::new("/c/token")));
        assert!(!is_relevant(d, Path::new("/c/.port.tmp.1")));
        assert!(!is_relevant(d, Path::new("/c/apps.d/.x.yml.swp")));
        assert!(!is_relevant(d, Path::new("/c/config.yml.tmp")));
    }
}
