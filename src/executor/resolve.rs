//! Request → record (API.md §7): which argv, working dir, environment, pool and
//! timeout a submitted task or delegation runs with. Request data never reaches
//! a shell: argv templates only, `{prompt}` fills exactly one argv element, and
//! a request's `cwd` must resolve inside a configured workspace root.

use super::record::{self, ExecRecord, ExecStatus, Execution};
use super::{ExecError, SubmitSpec};
use crate::config::ExecConfig;
use std::path::PathBuf;

fn now() -> String {
    crate::time::now_rfc3339()
}

/// Resolve a request `cwd` (after `~` and symlinks) and check it lies inside one of
/// `workspaces`. Returns the canonical path.
///
/// Errors: [`ExecError::Forbidden`] naming the path.
pub fn resolve_cwd(requested: &str, workspaces: &[String]) -> Result<PathBuf, ExecError> {
    let p = crate::proc::expand_tilde(requested);
    let forbidden = || {
        ExecError::Forbidden(format!(
            "cwd '{requested}' is not inside a configured workspace (config 'workspaces')"
        ))
    };
    let canon = p.canonicalize().map_err(|_| forbidden())?;
    let inside = workspaces.iter().any(|w| {
        crate::proc::expand_tilde(w)
            .canonicalize()
            .is_ok_and(|root| canon.starts_with(&root))
    });
    if inside && canon.is_dir() {
        Ok(canon)
    } else {
        Err(forbidden())
    }
}

fn home() -> PathBuf {
    dirs::home_dir().unwrap_or_else(|| PathBuf::from("/"))
}

/// Turn a request into a pending record: the task's or agent's argv (`{prompt}`
/// fills exactly one element; no shell), its working dir and environment, pool
/// and timeout. The id is new; `seq` is set when it is queued.
///
/// Errors: `UnknownTask`, `UnknownAgent`, `ArgsNotAllowed`, `Forbidden` (cwd).
pub fn resolve(cfg: &ExecConfig, spec: &SubmitSpec) -> Result<ExecRecord, ExecError> {
    let (task, argv, cwd, env, pool, timeout_ms, agent) = match spec {
        SubmitSpec::Task {
            task,
            args,
            cwd,
            timeout_ms,
        } => {
            let t = cfg
                .tasks
                .get(task)
                .ok_or_else(|| ExecError::UnknownTask(task.clone()))?;
            if !args.is_empty() && !t.allow_args {
                return Err(ExecError::ArgsNotAllowed(task.clone()));
            }
            let dir = match cwd {
                Some(c) => resolve_cwd(c, &cfg.workspaces)?,
                None => t
                    .cwd
                    .as_deref()
                    .map(crate::proc::expand_tilde)
                    .unwrap_or_else(home),
            };
            (
                task.clone(),
                t.command.argv(args),
                dir,
                t.env.clone(),
                t.pool.clone(),
                timeout_ms.or(t.timeout_ms),
                None,
            )
        }
        SubmitSpec::Delegate {
            agent,
            prompt,
            cwd,
            timeout_ms,
        } => {
            let a = cfg
                .agents
                .get(agent)
                .ok_or_else(|| ExecError::UnknownAgent(agent.clone()))?;
            if a.delegate.is_empty() {
                return Err(ExecError::NoDelegate(agent.clone()));
            }
            let dir = match cwd {
                Some(c) => resolve_cwd(c, &cfg.workspaces)?,
                None => home(),
            };
            let argv = a
                .delegate
                .iter()
                .map(|x| x.replace("{prompt}", prompt))
                .collect();
            (
                format!("agent:{agent}"),
                argv,
                dir,
                a.env.clone(),
                a.pool.clone(),
                timeout_ms.or(a.timeout_ms),
                Some(agent.clone()),
            )
        }
    };
    Ok(ExecRecord {
        exec: Execution {
            id: record::new_id("exec"),
            task,
            argv,
            cwd: cwd.display().to_string(),
            pool,
            status: ExecStatus::Pending,
            queue_position: None,
            pid: None,
            exit_code: None,
            signal: None,
            error: None,
            retry_of: None,
            created_at: now(),
            started_at: None,
            finished_at: None,
            duration_ms: None,
            output_bytes: 0,
            timeout_ms,
            agent,
            session_id: None,
        },
        seq: 0,
        env,
        pid_start_time: None,
        git_before: None,
        files_modified: None,
        session_offset: None,
        session_opened_ms: None,
    })
}

/// A new pending record for a retry of `old`: same spec, new id, `retry_of`
/// set, every run-time field cleared.
pub fn retry_record(old: &ExecRecord) -> ExecRecord {
    let id = old.exec.id.clone();
    let mut rec = old.clone();
    rec.exec.id = record::new_id("exec");
    rec.exec.status = ExecStatus::Pending;
    rec.exec.retry_of = Some(id);
    rec.exec.created_at = now();
    for f in [
        &mut rec.exec.started_at,
        &mut rec.exec.finished_at,
        &mut rec.exec.error,
    ] {
        *f = None;
    }
    rec.exec.pid = None;
    rec.exec.exit_code = None;
    rec.exec.signal = None;
    rec.exec.duration_ms = None;
    rec.exec.output_bytes = 0;
    rec.pid_start_time = None;
    rec.git_before = None;
    rec.files_modified = None;
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cwd_must_be_inside_a_workspace() {
        let root = tempfile::tempdir().expect("tmp");
        let ws = root.path().join("ws");
        std::fs::create_dir_all(ws.join("proj")).expect("mkdir");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::os::unix::fs::symlink(&outside, ws.join("link")).expect("symlink");
        let w = vec![ws.display().to_string()];
        assert!(resolve_cwd(&ws.join("proj").display().to_string(), &w).is_ok());
        for bad in [
            ws.join("proj/../../outside"),
            ws.join("link"),
            outside.clone(),
            ws.join("missing"),
        ] {
            assert!(
                matches!(
                    resolve_cwd(&bad.display().to_string(), &w),
                    Err(ExecError::Forbidden(_))
                ),
                "{}",
                bad.display()
            );
        }
        assert!(resolve_cwd("/tmp", &[]).is_err());
    }
}
