//! The thread that accompanies one running execution: it creates the output
//! log, records the leader's start time, pumps stdout and stderr (polled
//! together, so neither pipe can fill and block the child) into `output.log`,
//! and reports the exit, which is decided by `wait`, never by end-of-pipe.

use super::output::Output;
use nix::fcntl::{FcntlArg, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdout, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pipe buffer requested for a run's stdout and stderr, bytes (Linux
/// `F_SETPIPE_SZ`; the default 64 KiB makes a fast writer and the reader take
/// turns far more often).
pub const PIPE_BUFFER: i32 = 1 << 20;
/// Read size from a pipe, bytes.
const READ_CHUNK: usize = 256 * 1024;
/// How often a live run is checked for an exit while its pipes stay open.
const EXIT_CHECK_MS: u64 = 100;
/// After the exit, how long the pipes are drained (a grandchild outside the
/// process group could hold them open forever).
const DRAIN_MS: u64 = 2000;

/// What the run thread reports.
pub(super) struct RunResult {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Signal that ended it, if any.
    pub signal: Option<i32>,
}

enum Pipe {
    Out(ChildStdout),
    Err(ChildStderr),
}

impl Pipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Pipe::Out(p) => p.read(buf),
            Pipe::Err(p) => p.read(buf),
        }
    }
    fn grow(&self) {
        let fd = match self {
            Pipe::Out(p) => p.as_fd(),
            Pipe::Err(p) => p.as_fd(),
        };
        let _ = fcntl(fd, FcntlArg::F_SETPIPE_SZ(PIPE_BUFFER));
    }
}

/// Read whatever is ready on `pipes` into `out`, waiting at most `wait`.
/// Closed pipes are removed. Returns whether anything happened.
fn pump(pipes: &mut Vec<Pipe>, out: &Output, buf: &mut [u8], wait: Duration) -> bool {
    let ready: Vec<bool> = {
        let mut fds: Vec<PollFd> = pipes
            .iter()
            .map(|p| {
                let fd = match p {
                    Pipe::Out(x) => x.as_fd(),
                    Pipe::Err(x) => x.as_fd(),
                };
                PollFd::new(fd, PollFlags::POLLIN)
            })
            .collect();
        let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(_) => return false,
            Ok(_) => fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect(),
        }
    };
    let mut closed = Vec::new();
    for (i, r) in ready.iter().enumerate() {
        if !r {
            continue;
        }
        match pipes[i].read(buf) {
            Ok(0) => closed.push(i),
            Ok(n) => out.append(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => closed.push(i),
        }
    }
    for i in closed.into_iter().rev() {
        pipes.remove(i);
    }
    true
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

/// Run the pump-and-wait loop for `child` (its own process group leader). Calls
/// `started(start_time)` once the output log is open, and returns when the
/// process has exited and its pipes are drained (or the drain timed out). The
/// rest of its process group is SIGKILLed after the exit.
pub(super) fn supervise(
    mut child: Child,
    out: Arc<Output>,
    dir: PathBuf,
    started: impl FnOnce(Option<u64>),
) -> RunResult {
    let pid = child.id();
    if let Err(e) = crate::fsutil::create_private_dir(&dir).and_then(|_| out.open_for_append()) {
        log::error!("cannot open {}: {e}", out.path().display());
    }
    let start_time = sysinfo::System::new()
        .ok()
        .and_then(|mut sys| crate::proc::process_start_time(&mut sys, pid));
    started(start_time);
    let mut pipes: Vec<Pipe> = Vec::with_capacity(2);
    if let Some(p) = child.stdout.take() {
        pipes.push(Pipe::Out(p));
    }
    if let Some(p) = child.stderr.take() {
        pipes.push(Pipe::Err(p));
    }
    for p in &pipes {
        p.grow();
    }
    let mut buf = vec![0u8; READ_CHUNK];
    let mut status = None;
    let mut next_check = Instant::now() + Duration::from_millis(EXIT_CHECK_MS);
    while !pipes.is_empty() {
        pump(
            &mut pipes,
            &out,
            &mut buf,
            Duration::from_millis(EXIT_CHECK_MS),
        );
        if Instant::now() >= next_check {
            next_check = Instant::now() + Duration::from_millis(EXIT_CHECK_MS);
            if let Ok(Some(s)) = child.try_wait() {
                status = Some(Ok(s));
                break;
            }
        }
    }
    let status = match status {
        Some(s) => s,
        None => child.wait(),
    };
    // Leftover members of the group (background jobs) go with the run.
    if killpg(Pid::from_raw(pid as i32), None).is_ok() {
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_millis(DRAIN_MS);
    while !pipes.is_empty() && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        pump(
            &mut pipes,
            &out,
            &mut buf,
            left.min(Duration::from_millis(EXIT_CHECK_MS)),
        );
    }
    parts(status)
}
