//! The config watcher: notify (via notify-debouncer-mini, 200 ms) on the config dir
//! and `apps.d/`, non-recursive, so editors' rename-saves are seen (DESIGN.md §4).
//! Only `config.yml` and drop-in manifests trigger a reload; the port, token and
//! pid files and editors' temporaries are ignored.
//!
//! Reload only on change (issue 7 part 3, DESIGN.md §5): on Linux notify reports
//! *opens* and *read-closes*, so the daemon's own reads of the config would
//! re-trigger the watcher for ever. Two guards:
//! 1. [`FilteredWatcher`] drops access events (open, read, read-close) before the
//!    debouncer sees them; only writes, creates, removes, renames and metadata
//!    changes pass.
//! 2. Content comparison: after a debounced burst the watcher hashes the files
//!    ([`crate::config::fingerprint`]) and asks the registry to reload only when
//!    the hash differs from the last one it acted on; the registry compares the
//!    loaded bytes' fingerprint again, and emits `config.invalid` once per
//!    distinct broken content.

use crate::config::is_dropin_name;
use crate::registry::Registry;
use notify_debouncer_mini::notify::event::{AccessKind, AccessMode, MetadataKind, ModifyKind};
use notify_debouncer_mini::notify::{
    self, Event, EventHandler, EventKind, RecommendedWatcher, RecursiveMode, Watcher, WatcherKind,
};
use notify_debouncer_mini::{Config, DebounceEventResult, Debouncer, new_debouncer_opt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Debounce window: bursts of file events within it cause one reload.
pub const DEBOUNCE_MS: u64 = 200;

/// A running watcher; dropping it stops watching.
pub struct ConfigWatcher {
    _debouncer: Debouncer<FilteredWatcher>,
}

/// Does this notify event say something may have changed a file's content or
/// presence? Access events (open, read, read-close: what any reader of the file,
/// the daemon included, causes) and access-time updates do not; a write-close
/// does.
pub fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        _ => true,
    }
}

/// The platform's recommended watcher with access events filtered out before
/// they reach the debouncer (see [`is_change`]); errors pass through.
pub struct FilteredWatcher(RecommendedWatcher);

impl Watcher for FilteredWatcher {
    fn new<F: EventHandler>(mut event_handler: F, config: notify::Config) -> notify::Result<Self> {
        let filter = move |res: notify::Result<Event>| match res {
            Ok(ev) if !is_change(&ev.kind) => {}
            other => event_handler.handle_event(other),
        };
        RecommendedWatcher::new(filter, config).map(FilteredWatcher)
    }

    fn watch(&mut self, path: &Path, recursive_mode: RecursiveMode) -> notify::Result<()> {
        self.0.watch(path, recursive_mode)
    }

    fn unwatch(&mut self, path: &Path) -> notify::Result<()> {
        self.0.unwatch(path)
    }

    fn configure(&mut self, option: notify::Config) -> notify::Result<bool> {
        self.0.configure(option)
    }

    fn kind() -> WatcherKind {
        RecommendedWatcher::kind()
    }
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
    /// `registry.reload(false)` after each debounced burst of relevant changes
    /// whose content hash differs from the last one acted on.
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
        // The content the registry was last asked to load. Starts unknown, so
        // the first change is always handed to the registry, which compares
        // against what it runs on.
        let mut last: Option<u64> = None;
        let handler = move |res: DebounceEventResult| {
            let relevant = match res {
                Ok(events) => events.iter().any(|e| is_relevant(&filter_dir, &e.path)),
                Err(e) => {
                    log::warn!("config watcher error ({e}); checking the config");
                    true
                }
            };
            if !relevant {
                return;
            }
            let now = crate::config::fingerprint(&filter_dir);
            if last == Some(now) {
                log::trace!("config event without a content change; not reloading");
                return;
            }
            last = Some(now);
            match registry.reload(false) {
                Ok(r) if !r.unchanged => log::debug!("hot reload applied"),
                Ok(_) => {}
                Err(e) => log::debug!("hot reload rejected: {e}"),
            }
        };
        let config = Config::default().with_timeout(Duration::from_millis(DEBOUNCE_MS));
        let mut debouncer =
            new_debouncer_opt::<_, FilteredWatcher>(config, handler).map_err(|e| WatchError {
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

    #[test]
    fn reads_are_not_changes() {
        use notify::event::{CreateKind, DataChange, RemoveKind, RenameMode};
        for k in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)),
        ] {
            assert!(!is_change(&k), "{k:?}");
        }
        for k in [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Create(CreateKind::File),
            EventKind::Remove(RemoveKind::File),
            EventKind::Any,
        ] {
            assert!(is_change(&k), "{k:?}");
        }
    }
}
