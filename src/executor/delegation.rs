//! Delegation helpers: the `git status` snapshots around an agent's run that
//! give a ticket its `files_modified` (API.md §7 delegation).
//!
//! `git status` on a large repository can take seconds, so it never runs on the
//! executor's thread: [`snapshot_async`] runs it on a short-lived thread and
//! hands the result to a callback, which sends it back to the executor as a
//! command. The snapshot after the run is taken on the run's own thread.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `git status --porcelain` lines in `dir`, or `None` when it is not a git work tree.
pub fn git_status(dir: &Path) -> Option<Vec<String>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["status", "--porcelain", "--untracked-files=all"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.len() > 3)
            .map(|l| l.to_string())
            .collect(),
    )
}

/// Paths whose porcelain line is new after the run (renames give the new path).
pub fn files_modified(before: &[String], after: &[String]) -> Vec<String> {
    let mut out: Vec<String> = after
        .iter()
        .filter(|l| !before.contains(l))
        .map(|l| {
            let p = &l[3..];
            p.rsplit(" -> ")
                .next()
                .unwrap_or(p)
                .trim_matches('"')
                .to_string()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Take `git_status(dir)` on a short-lived thread and pass the result to `done`.
/// If no thread can be spawned, the snapshot is skipped: `done(None)` runs here.
pub fn snapshot_async<F>(dir: PathBuf, done: F)
where
    F: FnOnce(Option<Vec<String>>) + Clone + Send + 'static,
{
    let fallback = done.clone();
    let spawned = std::thread::Builder::new()
        .name("exec-git".into())
        .spawn(move || done(git_status(&dir)));
    if let Err(e) = spawned {
        log::warn!("cannot start a thread for git status: {e}");
        fallback(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_modified_lists_new_paths_only() {
        let before = vec![" M a.rs".to_string()];
        let after = vec![
            " M a.rs".to_string(),
            "?? new.rs".to_string(),
            "R  old.rs -> renamed.rs".to_string(),
        ];
        assert_eq!(
            files_modified(&before, &after),
            vec!["new.rs", "renamed.rs"]
        );
    }

    #[test]
    fn snapshot_async_reports_outside_a_work_tree() {
        let dir = tempfile::tempdir().expect("tmp");
        let (tx, rx) = crossbeam_channel::bounded(1);
        snapshot_async(dir.path().to_path_buf(), move |r| {
            let _ = tx.send(r);
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("snapshot reported");
        assert_eq!(got, None);
    }
}
