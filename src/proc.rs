//! Process helpers shared by the tracker (apps) and the executor (runs): `~`
//! expansion, a process's start time (PID-reuse guard), the environment a child
//! must not inherit, and liveness checks of a PID or a process group.
//!
//! No state and no threads: plain functions over `nix`, `sysinfo` and `std`.

use nix::sys::signal::{kill, killpg};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variables a service manager gives the daemon that must not leak
/// into children (DESIGN.md §4: systemd `NOTIFY_SOCKET`, socket activation).
pub const STRIPPED_ENV: &[&str] = &[
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];

/// The environment variable every execution's child carries: its execution
/// id (API.md §7). Recovery finds orphans of a crashed daemon by it.
pub const EXECUTION_ID_ENV: &str = "ORCHESTRATR_EXECUTION_ID";

/// The value of `var` in the environment of process `pid`, read from
/// `/proc/<pid>/environ` (the environment it was exec'd with); `None` if the
/// process is gone, unreadable (another user's), or lacks `var`.
pub fn env_of(pid: u32, var: &str) -> Option<String> {
    let data = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    find_env(&data, var)
}

/// `var`'s value in a NUL-separated `KEY=VALUE` block (`/proc/<pid>/environ`).
fn find_env(block: &[u8], var: &str) -> Option<String> {
    block.split(|b| *b == 0).find_map(|kv| {
        let rest = kv.strip_prefix(var.as_bytes())?.strip_prefix(b"=")?;
        Some(String::from_utf8_lossy(rest).into_owned())
    })
}

/// Every process owned by this process's effective uid whose environment has
/// `var`, with its value: `(pid, value)`. Scans `/proc/*/environ`; processes
/// that vanish meanwhile are skipped. This process itself is never listed.
pub fn processes_with_env(var: &str) -> Vec<(u32, String)> {
    use std::os::unix::fs::MetadataExt;
    let me = std::process::id();
    let uid = nix::unistd::geteuid().as_raw();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me || e.metadata().map(|m| m.uid()).ok() != Some(uid) {
            continue;
        }
        if let Some(v) = env_of(pid, var) {
            out.push((pid, v));
        }
    }
    out
}

/// Remove [`STRIPPED_ENV`] from the environment `cmd` will pass to its child.
pub fn strip_env(cmd: &mut Command) -> &mut Command {
    for k in STRIPPED_ENV {
        cmd.env_remove(k);
    }
    cmd
}

/// Start time of `pid` (sysinfo: seconds since the epoch), refreshing only that
/// process. Used to recognise a PID after a while despite PID reuse; `None` when
/// no such process exists.
pub fn process_start_time(sys: &mut sysinfo::System, pid: u32) -> Option<u64> {
    let p = sysinfo::Pid::from_u32(pid);
    sys.refresh_processes_specifics(
        sysinfo::ProcessesToUpdate::Some(&[p]),
        true,
        sysinfo::ProcessRefreshKind::nothing(),
    );
    sys.process(p).map(|pr| pr.start_time())
}

/// Expand a leading `~` or `~/` to the home directory (unchanged without a home).
pub fn expand_tilde(p: &str) -> PathBuf {
    if p == "~" {
        return dirs::home_dir().unwrap_or_else(|| PathBuf::from(p));
    }
    if let Some(rest) = p.strip_prefix("~/")
        && let Some(h) = dirs::home_dir()
    {
        return h.join(rest);
    }
    PathBuf::from(p)
}

/// Is `path` an existing directory after `~` expansion? Used by validation messages.
pub fn dir_exists(path: &str) -> bool {
    Path::new(&expand_tilde(path)).is_dir()
}

/// Does any process of group `pgid` still exist (`killpg(pgid, 0)`, POSIX
/// `kill(2)` with signal 0)? A zombie member counts as alive until reaped.
pub fn group_alive(pgid: i32) -> bool {
    killpg(Pid::from_raw(pgid), None).is_ok()
}

/// Does process `pid` still exist (`kill(pid, 0)`)? A zombie counts as alive.
pub fn pid_alive(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_expands_only_at_the_start() {
        assert_eq!(expand_tilde("/a/~/b"), PathBuf::from("/a/~/b"));
        assert_eq!(expand_tilde("~user"), PathBuf::from("~user"));
        if let Some(h) = dirs::home_dir() {
            assert_eq!(expand_tilde("~"), h);
            assert_eq!(expand_tilde("~/x"), h.join("x"));
        }
    }

    #[test]
    fn env_blocks_are_parsed_by_exact_key() {
        let b = b"A=1\0ORCHESTRATR_EXECUTION_ID_X=no\0ORCHESTRATR_EXECUTION_ID=exec-1=2\0";
        assert_eq!(find_env(b, EXECUTION_ID_ENV).as_deref(), Some("exec-1=2"));
        assert_eq!(find_env(b, "B"), None);
        assert_eq!(find_env(b"", "A"), None);
    }

    #[test]
    fn a_child_is_found_by_its_environment() {
        let mut c = Command::new("sleep")
            .arg("5")
            .env("ORCHESTRATR_PROC_TEST", "mark-1")
            .spawn()
            .expect("spawn sleep");
        let me = (c.id(), "mark-1".to_string());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut found = processes_with_env("ORCHESTRATR_PROC_TEST");
        while !found.contains(&me) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
            found = processes_with_env("ORCHESTRATR_PROC_TEST");
        }
        let _ = c.kill();
        let _ = c.wait();
        assert!(found.contains(&me), "{found:?}");
    }

    #[test]
    fn own_process_and_group_are_alive() {
        let me = std::process::id();
        assert!(pid_alive(me));
        assert!(group_alive(nix::unistd::getpgrp().as_raw()));
        let mut sys = sysinfo::System::new().expect("sysinfo");
        assert!(process_start_time(&mut sys, me).is_some());
    }
}
