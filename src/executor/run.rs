//! The thread that accompanies one running execution: it waits for the exit
//! (decided by `wait`, never by end-of-output), checks the output log against
//! its cap meanwhile, kills what is left of the process group, and reports.
//!
//! The child writes `output.log` itself (output.rs), so this thread copies no
//! byte. It sleeps in `poll(2)` on a pidfd (Linux ≥ 5.3, `pidfd_open(2)`),
//! which wakes at the exit; without pidfds it checks every few milliseconds.

use super::output::{CAP_CHECK, Output};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::time::Duration;

/// What the run thread reports.
pub(super) struct RunResult {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Signal that ended it, if any.
    pub signal: Option<i32>,
}

fn parts(s: std::io::Result<ExitStatus>) -> RunResult {
    match s {
        Ok(s) => RunResult {
            code: s.code(),
            signal: s.signal(),
        },
        Err(_) => RunResult {
            code: None,
            signal: None,
        },
    }
}

/// A pidfd for `pid` (`pidfd_open(2)`), readable once the process exits.
fn pidfd(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // or -1; the descriptor is owned by nobody else.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a fresh, valid descriptor we own (checked above).
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Wait for `child` (its own process group leader, writing `out`'s log),
/// checking the log's cap every [`CAP_CHECK`]; then SIGKILL the rest of its
/// process group and settle the log (`Output::end_run`).
pub(super) fn supervise(mut child: Child, out: Arc<Output>) -> RunResult {
    let pid = child.id();
    let status = match pidfd(pid) {
        Some(fd) => loop {
            let mut fds = [PollFd::new(
                std::os::fd::AsFd::as_fd(&fd),
                PollFlags::POLLIN,
            )];
            let ms = u16::try_from(CAP_CHECK.as_millis()).unwrap_or(u16::MAX);
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(n) if n > 0 => break child.wait(),
                Err(nix::errno::Errno::EINTR) | Ok(_) => out.refresh(),
                Err(_) => break child.wait(),
            }
        },
        None => {
            let mut step = Duration::from_millis(1);
            let mut since_check = Duration::ZERO;
            loop {
                match child.try_wait() {
                    Ok(Some(s)) => break Ok(s),
                    Ok(None) => {}
                    Err(e) => break Err(e),
                }
                std::thread::sleep(step);
                since_check += step;
                if since_check >= CAP_CHECK {
                    since_check = Duration::ZERO;
                    out.refresh();
                }
                step = (step * 2).min(Duration::from_millis(10));
            }
        }
    };
    // Leftover members of the group (background jobs) go with the run.
    if killpg(Pid::from_raw(pid as i32), None).is_ok() {
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    out.end_run();
    parts(status)
}
