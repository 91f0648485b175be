//! The command-line interface: `orchestratr serve` runs the daemon; every other
//! subcommand is a client of a running daemon (see `docs/api.md` for exit codes).

pub mod approvals_cmds;
mod daemon_cmds;
mod events_cmds;
pub mod exec_cmds;

use crate::client::{Client, ClientError};
use crate::paths::Paths;
use clap::{Parser, Subcommand};
use serde_json::Value;
use std::io::Write;
use std::process::ExitCode;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the daemon answered with an error, or an operation failed.
pub const EXIT_FAIL: u8 = 1;
/// Exit code: usage error, or invalid config at `serve` start-up.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the daemon is not running.
pub const EXIT_NOT_RUNNING: u8 = 3;

const AFTER_HELP: &str = "\
Files:
  <cfg>/config.yml, <cfg>/apps.d/*.yml   registry (hot-reloaded)
  <cfg>/port, <cfg>/token                 discovery and bearer token
  <state>/orchestratr.pid, .log           lock and log of `orchestratr start`
  <state>/logs/<app>.log                  output of apps launched by the daemon
  <state>/executions/<id>/                execution records and output.log
  <state>/approvals/<id>.json             approvals
  <cfg> = $ORCHESTRATR_CONFIG_DIR or ~/.config/orchestratr
  <state> = $ORCHESTRATR_STATE_DIR or ~/.local/state/orchestratr

Exit codes:
  0 success, 1 failure or error answer, 2 usage or config error,
  3 the daemon is not running";

/// orchestratr: a small, fast, per-user orchestration daemon and its own client.
#[derive(Debug, Parser)]
#[command(name = "orchestratr", version, about, after_long_help = AFTER_HELP)]
pub struct Cli {
    /// Daemon URL, e.g. http://127.0.0.1:9876 (default: from the port file).
    #[arg(long, global = true, env = "ORCHESTRATR_URL", value_name = "URL")]
    pub url: Option<String>,
    /// Bearer token (default: the token file beside config.yml).
    #[arg(
        long,
        global = true,
        env = "ORCHESTRATR_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (for systemd, launchd, or a terminal).
    #[command(
        long_about = "Run the daemon in the foreground until SIGINT, SIGTERM or POST /shutdown.\n\n\
        On first start it writes a commented default config.yml and a 0600 token file.\n\
        Logs go to stderr. Exits 0 after a clean shutdown, 1 if it cannot run\n\
        (e.g. another daemon holds the PID file), 2 if config.yml is invalid."
    )]
    Serve {
        /// Port on 127.0.0.1 (0 = any free port); overrides config api_port.
        #[arg(long)]
        port: Option<u16>,
    },
    /// Start the daemon in the background and wait until it answers.
    #[command(
        long_about = "Start `orchestratr serve` detached from the terminal, logging to\n\
        <state>/orchestratr.log; wait until it answers /health, then print its PID and\n\
        port. Does nothing (exit 0) if a daemon is already running."
    )]
    Start {
        /// Port on 127.0.0.1 (0 = any free port).
        #[arg(long)]
        port: Option<u16>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Stop the running daemon gracefully and wait until it has exited.
    Stop {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Is the daemon running? Exit 0 if yes, 3 if not.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List registered apps and their state.
    Apps {
        /// Print the daemon's JSON ({"apps":[...],"total":n}).
        #[arg(long)]
        json: bool,
    },
    /// Launch a registered app (no duplicate instances).
    Launch {
        /// App name.
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Stop a running app: SIGTERM to its process group, SIGKILL after its stop_timeout_ms.
    #[command(name = "stop-app")]
    StopApp {
        /// App name.
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Re-read config.yml and apps.d/ now (the daemon also does it on every save).
    Reload {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show recent events, or follow them live.
    Events {
        /// Keep streaming new events (reconnects and resumes after a dropped connection).
        #[arg(long, short)]
        follow: bool,
        /// Event types, comma-separated; a trailing * is a prefix match (app.*).
        #[arg(long = "type", short = 't', value_name = "TYPES")]
        kind: Option<String>,
        /// Only events from this source.
        #[arg(long)]
        source: Option<String>,
        /// Only events addressed to this app.
        #[arg(long)]
        target: Option<String>,
        /// Only events with an id greater than this.
        #[arg(long)]
        since: Option<u64>,
        /// At most this many events (1-1000; without --follow).
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// One JSON event per line.
        #[arg(long)]
        json: bool,
    },
    /// Publish an event on the daemon's bus; prints its id.
    Emit {
        /// Event type, ^[a-z0-9][a-z0-9_.:-]{0,63}$.
        #[arg(value_name = "TYPE")]
        kind: String,
        /// Who publishes it.
        #[arg(long)]
        source: String,
        /// JSON payload (default {}).
        #[arg(long)]
        data: Option<String>,
        /// App the event is addressed to.
        #[arg(long)]
        target: Option<String>,
    },
    /// List approvals (pending first).
    Approvals(approvals_cmds::ListArgs),
    /// Approve a pending approval.
    Approve(approvals_cmds::DecideArgs),
    /// Deny a pending approval.
    Deny(approvals_cmds::DecideArgs),
    /// Ask a question and block until someone answers (exit 0 approved, 1 denied, 2 expired/error).
    Ask(approvals_cmds::AskArgs),
    /// Hook adapters for coding agents (`orchestratr hook claude-code`).
    Hook(approvals_cmds::HookArgs),
    /// Run a registered task (queued in its pool); --follow streams its output.
    #[command(
        long_about = "Queue a run of a task registered under `tasks:` in config.yml.\n\n\
        Prints the execution id. With --follow, streams the output and exits with the\n\
        run's exit code (128+N for signal N, 124 timeout, 130 cancelled, 1 lost).\n\
        Arguments after `--` are appended to the task's argv (needs allow_args: true);\n\
        they never reach a shell."
    )]
    Run(exec_cmds::RunArgs),
    /// List executions, newest first.
    Executions(exec_cmds::ListArgs),
    /// Print an execution's output; --follow streams it live until the run ends.
    Logs(exec_cmds::LogsArgs),
    /// Cancel a pending or running execution.
    Cancel(exec_cmds::IdArgs),
    /// Run an execution again (same argv, cwd and environment).
    Retry(exec_cmds::IdArgs),
    /// Delegate a task to a coding agent configured under `agents:`; prints the ticket id.
    Delegate(exec_cmds::DelegateArgs),
    /// Watch everything live in a terminal UI (apps, runs, approvals, agents); `?` lists keys.
    #[command(visible_alias = "top")]
    Dashboard {
        /// Hide and refuse every action (approve, cancel, input...).
        #[arg(long)]
        read_only: bool,
    },
}

/// Print a line to stdout; `false` when stdout is closed (e.g. piped to `head`).
pub(crate) fn out(line: &str) -> bool {
    let mut o = std::io::stdout().lock();
    writeln!(o, "{line}").and_then(|_| o.flush()).is_ok()
}

/// Print `orchestratr: <msg>` to stderr.
pub(crate) fn err(msg: &str) {
    let _ = writeln!(std::io::stderr(), "orchestratr: {msg}");
}

/// Print a pretty JSON value.
pub(crate) fn out_json(v: &Value) -> bool {
    out(&serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()))
}

/// Report a client error and give its exit code.
pub(crate) fn fail(e: &ClientError) -> u8 {
    err(&e.to_string());
    if let ClientError::Api { body, .. } = e
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
    e.exit_code()
}

pub(crate) struct Env {
    pub paths: Paths,
    pub url: Option<String>,
    pub token: Option<String>,
}

impl Env {
    pub fn client(&self) -> Result<Client, ClientError> {
        Client::discover(&self.paths, self.url.as_deref(), self.token.as_deref())
    }
}

/// Parse the command line and run it. Returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = Env {
        paths: Paths::from_env(),
        url: cli.url,
        token: cli.token,
    };
    let code = match cli.command {
        Command::Serve { port } => daemon_cmds::serve(&env, port),
        Command::Start { port, json } => daemon_cmds::start(&env, port, json),
        Command::Stop { json } => daemon_cmds::stop(&env, json),
        Command::Status { json } => daemon_cmds::status(&env, json),
        Command::Apps { json } => daemon_cmds::apps(&env, json),
        Command::Launch { name, json } => daemon_cmds::launch(&env, &name, json),
        Command::StopApp { name, json } => daemon_cmds::stop_app(&env, &name, json),
        Command::Reload { json } => daemon_cmds::reload(&env, json),
        Command::Events {
            follow,
            kind,
            source,
            target,
            since,
            limit,
            json,
        } => events_cmds::events(
            &env,
            &events_cmds::EventsArgs {
                follow,
                kind,
                source,
                target,
                since,
                limit,
                json,
            },
        ),
        Command::Emit {
            kind,
            source,
            data,
            target,
        } => events_cmds::emit(&env, &kind, &source, data.as_deref(), target.as_deref()),
        Command::Approvals(a) => approvals_cmds::list(&env, &a),
        Command::Approve(a) => approvals_cmds::decide(&env, &a, "approve"),
        Command::Deny(a) => approvals_cmds::decide(&env, &a, "deny"),
        Command::Ask(a) => approvals_cmds::ask(&env, &a),
        Command::Hook(a) => approvals_cmds::hook(&env, &a),
        Command::Run(a) => exec_cmds::run(&env, &a),
        Command::Executions(a) => exec_cmds::list(&env, &a),
        Command::Logs(a) => exec_cmds::logs(&env, &a),
        Command::Cancel(a) => exec_cmds::cancel(&env, &a),
        Command::Retry(a) => exec_cmds::retry(&env, &a),
        Command::Delegate(a) => exec_cmds::delegate(&env, &a),
        Command::Dashboard { read_only } => crate::dashboard::run(crate::dashboard::Opts {
            paths: env.paths,
            url: env.url,
            token: env.token,
            read_only,
        }),
    };
    ExitCode::from(code)
}
