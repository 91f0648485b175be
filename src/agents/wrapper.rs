//! `orchestratr agent-exec <dir>`: the first process of every agent pane.
//!
//! It keeps the agent's argv and environment out of the tmux server's command
//! line (`ps`): they come from `<dir>/spec.json` (0600), deleted once read. It
//! waits for `<dir>/go`, which the daemon creates once `pipe-pane` is attached,
//! so the output log holds every byte from the first. It then runs the agent
//! as its child and records the exit status in `<dir>/exit.json` (tmux 3.3a may
//! not report it, tmux issue 311).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// What the daemon hands the wrapper.
#[derive(Debug, Serialize, Deserialize)]
pub struct Spec {
    /// argv of the agent (no shell).
    pub argv: Vec<String>,
    /// Environment added to the pane's.
    pub env: BTreeMap<String, String>,
}

/// The recorded end of an agent.
#[derive(Debug, Serialize, Deserialize, Clone, Copy, PartialEq)]
pub struct ExitRecord {
    /// Exit code; `128 + N` for signal N.
    pub code: i32,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
}

/// How long the wrapper waits for `go`, milliseconds.
pub const GO_TIMEOUT_MS: u64 = 60_000;

extern "C" fn ignore(_: nix::libc::c_int) {}

/// Read `<dir>/exit.json`, if the agent ended.
pub fn read_exit(dir: &Path) -> Option<ExitRecord> {
    serde_json::from_slice(&std::fs::read(dir.join("exit.json")).ok()?).ok()
}

/// Run the wrapper; returns the process exit code.
pub fn run(dir: &Path) -> u8 {
    let spec: Spec = match std::fs::read(dir.join("spec.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("orchestratr agent-exec: cannot read spec: {e}");
            return 127;
        }
    };
    let _ = std::fs::remove_file(dir.join("spec.json"));
    let end = Instant::now() + Duration::from_millis(GO_TIMEOUT_MS);
    while !dir.join("go").exists() {
        if Instant::now() > end {
            eprintln!("orchestratr agent-exec: the daemon never started this agent");
            return 127;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // A caught signal is reset to the default in the child at exec, an ignored
    // one would not be: catch, so the agent gets the terminal's signals as usual
    // and the wrapper stays to record the status.
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let act = SigAction::new(
        SigHandler::Handler(ignore),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in [
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGHUP,
        Signal::SIGTERM,
    ] {
        // SAFETY: `ignore` is async-signal-safe (it does nothing).
        unsafe {
            let _ = sigaction(s, &act);
        }
    }
    let Some((prog, args)) = spec.argv.split_first() else {
        return 127;
    };
    let rec = match std::process::Command::new(prog)
        .args(args)
        .envs(&spec.env)
        .status()
    {
        Ok(st) => {
            use std::os::unix::process::ExitStatusExt;
            match (st.code(), st.signal()) {
                (Some(c), _) => ExitRecord {
                    code: c,
                    signal: None,
                },
                (None, Some(s)) => ExitRecord {
                    code: 128 + s,
                    signal: Some(s),
                },
                _ => ExitRecord {
                    code: 1,
                    signal: None,
                },
            }
        }
        Err(e) => {
            eprintln!("orchestratr agent-exec: cannot run {prog}: {e}");
            ExitRecord {
                code: 127,
                signal: None,
            }
        }
    };
    if let Ok(b) = serde_json::to_vec(&rec) {
        let _ = crate::fsutil::write_atomic(&dir.join("exit.json"), &b, 0o600);
    }
    rec.code.clamp(0, 255) as u8
}
