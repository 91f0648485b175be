//! The CLI's error type and the ONE place errors become exit codes and stderr
//! lines ([`report`]). Commands return [`Outcome`]: `Ok(code)` for a finished
//! command (0, or a run's own exit code), `Err` for anything that went wrong.

use crate::client::ClientError;
use serde_json::Value;
use std::io::Write;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the daemon answered with an error, or an operation failed.
pub const EXIT_FAIL: u8 = 1;
/// Exit code: usage error, or an invalid config (`serve`, `start`, `config check`).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the daemon is not running.
pub const EXIT_NOT_RUNNING: u8 = 3;

/// The exit-code table shown in `--help` (after_long_help) and the README,
/// as a string literal usable in `concat!`.
#[macro_export]
#[doc(hidden)]
macro_rules! exit_codes_help {
    () => {
        "Exit codes:
  0      success
  1      failure, or the daemon answered with an error
  2      usage error, or invalid config (serve, start, config check)
  3      the daemon is not running (or a remote is unreachable)
  N      run --follow / logs -f: the run's own exit code
  124    the run timed out (as timeout(1))
  128+N  the run died of signal N
  130    the run was cancelled"
    };
}

/// What a command returns: its exit code, or the error to report.
pub type Outcome = Result<u8, CliError>;

/// Errors of the CLI layer.
#[derive(Debug)]
pub enum CliError {
    /// Talking to the daemon failed (its exit code: 3 not running, 1 otherwise).
    Client(ClientError),
    /// The command line is wrong; the message names the fix (exit 2).
    Usage(String),
    /// A config is invalid: a summary and `file:line:column: message` lines (exit 2).
    Config(String, Vec<String>),
    /// The operation failed (exit 1); optional hint lines follow the message.
    Failed(String, Vec<String>),
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> CliError {
        CliError::Client(e)
    }
}

impl CliError {
    /// A plain failure (exit 1).
    pub fn failed(m: impl Into<String>) -> CliError {
        CliError::Failed(m.into(), Vec::new())
    }

    /// The process exit code of this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Client(e) => e.exit_code(),
            CliError::Usage(_) | CliError::Config(..) => EXIT_USAGE,
            CliError::Failed(..) => EXIT_FAIL,
        }
    }
}

/// Print `orchestratr: <msg>` to stderr.
pub fn err(msg: &str) {
    let _ = writeln!(std::io::stderr(), "orchestratr: {msg}");
}

/// Print an error (and its details or hints) on stderr; give its exit code.
pub fn report(e: &CliError) -> u8 {
    match e {
        CliError::Client(c) => return report_client(c),
        CliError::Usage(m) => err(m),
        CliError::Config(m, lines) | CliError::Failed(m, lines) => {
            err(m);
            let mut e = std::io::stderr().lock();
            for l in lines {
                let _ = writeln!(e, "  {l}");
            }
        }
    }
    e.exit_code()
}

/// Print a client error (and the `details` of an error answer); give its exit code.
pub fn report_client(c: &ClientError) -> u8 {
    err(&c.to_string());
    if let ClientError::Api { body, .. } = c
        && let Some(d) = body.get("details").and_then(Value::as_array)
    {
        for x in d {
            match (x["file"].as_str(), x["message"].as_str()) {
                (Some(f), Some(m)) => {
                    err(&format!("  {f}:{}:{}: {m}", x["line"], x["column"]));
                }
                _ => err(&format!("  {x}")),
            }
        }
    }
    c.exit_code()
}
