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

    /// While a delegation's `git status` is blocked (a repository whose
    /// fsmonitor hook waits for a file), the executor still answers: the
    /// snapshot runs off its thread.
    #[test]
    fn the_executor_answers_while_git_status_is_blocked() {
        use crate::config::{AgentSpec, ExecConfig, Retention};
        use crate::executor::record::ExecStatus;
        use crate::executor::{Executor, SubmitSpec};
        use std::time::{Duration, Instant};

        let root = tempfile::tempdir().expect("tmp");
        let ws = root.path().join("ws");
        let repo = ws.join("repo");
        std::fs::create_dir_all(&repo).expect("mkdir");
        let release = root.path().join("release");
        let hook = root.path().join("fsmonitor.sh");
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\nwhile [ ! -e '{}' ]; do sleep 0.05; done\nexit 1\n",
                release.display()
            ),
        )
        .expect("hook");
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        for args in [
            vec!["init", "-q"],
            vec!["config", "core.fsmonitor", &hook.to_string_lossy()],
        ] {
            let st = Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(&args)
                .status()
                .expect("git");
            assert!(st.success(), "git {args:?}");
        }
        let mut cfg = ExecConfig {
            workspaces: vec![ws.display().to_string()],
            ..Default::default()
        };
        cfg.agents.insert(
            "fake".into(),
            AgentSpec {
                name: "fake".into(),
                delegate: vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    "true".into(),
                    "{prompt}".into(),
                ],
                pool: "default".into(),
                env: Default::default(),
                timeout_ms: None,
                session: None,
            },
        );
        let (bus, _bus_thread) =
            crate::events::Bus::start(100, crate::config::DEFAULT_EVENT_BUFFER_BYTES);
        let state = root.path().join("state");
        let (ex, h) = Executor::start(&state, cfg, Retention::default(), bus.clone());
        // Submitted and listed although git status cannot finish until
        // `release` exists (on the executor's thread both would hang).
        let (tx, rx) = crossbeam_channel::bounded(1);
        let ex2 = ex.clone();
        let cwd = repo.display().to_string();
        std::thread::spawn(move || {
            let e = ex2.submit(SubmitSpec::Delegate {
                agent: "fake".into(),
                prompt: "p".into(),
                cwd: Some(cwd),
                timeout_ms: None,
            });
            let _ = tx.send((e, ex2.list(None, None, 10)));
        });
        let answered = rx.recv_timeout(Duration::from_secs(60));
        std::fs::write(&release, b"").expect("release");
        let (e, (page, total)) = answered.expect("answered while git status was blocked");
        let e = e.expect("submitted");
        assert_eq!(total, 1);
        assert_eq!(
            page[0].status,
            ExecStatus::Pending,
            "started before its snapshot"
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let done = loop {
            let cur = ex.get(&e.id).expect("exists").exec;
            if cur.status.is_final() || Instant::now() > deadline {
                break cur;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(done.status, ExecStatus::Completed, "{done:?}");
        ex.drain(Duration::from_secs(5));
        ex.stop();
        let _ = h.join();
        bus.stop();
    }
}
