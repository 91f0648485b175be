//! The command-line interface, grouped by noun the way `gh` is (`app list`,
//! `exec run`, `approval approve`, `daemon start`, …). `orchestratr serve` runs
//! the daemon; every other command is a client of a running daemon.
//!
//! Layout: one file per noun (`app_cmds`, `exec_cmds`, `approvals_cmds`,
//! `events_cmds`, `daemon_cmds`, `config_cmds`, `remote_cmds`, `gen_cmds`), one
//! formatting module (`output`), one resume-and-reconnect loop for SSE streams (`follow`) and one for
//! long polls (`wait`), and
//! one place that maps errors to exit codes (`error::report`, called only by
//! [`main`]). Today's flat spellings (`apps`, `launch`, `stop-app`, `executions`,
//! `approve`, …) stay as hidden aliases.
//!
//! Adding a noun group: add a variant to [`Command`] in the "noun groups" block,
//! one dispatch arm in [`run`], and a line in `COMMANDS_HELP`.

pub mod agent_cmds;
mod agent_hook;
pub mod app_cmds;
pub mod approvals_cmds;
mod audit_cmds;
pub mod config_cmds;
mod daemon_cmds;
pub mod error;
mod events_cmds;
pub mod exec_cmds;
pub mod follow;
mod gen_cmds;
pub mod output;
pub mod remote_cmds;
mod trigger_cmd;
mod wait;

pub use error::{CliError, EXIT_FAIL, EXIT_NOT_RUNNING, EXIT_OK, EXIT_USAGE, Outcome};
mod mcp_cmd;
mod token_cmds;

use crate::client::{Client, ClientError};
use crate::paths::Paths;
use clap::{Parser, Subcommand};
use serde_json::Value;
use std::io::Write;
use std::process::ExitCode;

/// orchestratr: a small, fast, per-user orchestration daemon and its own client.
#[derive(Debug, Parser)]
#[command(
    name = "orchestratr",
    version,
    about,
    help_template = HELP_TEMPLATE,
    after_help = "Files and exit codes: orchestratr --help",
    after_long_help = AFTER_LONG_HELP,
)]
pub struct Cli {
    /// Daemon URL, e.g. http://127.0.0.1:9876 (default: from the port file).
    #[arg(
        long,
        global = true,
        env = "ORCHESTRATR_URL",
        value_name = "URL",
        help_heading = "Connection"
    )]
    pub url: Option<String>,
    /// Bearer token (default: the token file beside config.yml).
    #[arg(
        long,
        global = true,
        env = "ORCHESTRATR_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "Connection"
    )]
    pub token: Option<String>,
    /// A named remote from `orchestratr remote add` (its URL and token file).
    #[arg(
        long,
        global = true,
        env = "ORCHESTRATR_REMOTE",
        value_name = "NAME",
        help_heading = "Connection"
    )]
    pub remote: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The command list of `--help`, in sections (clap lists subcommands under one
/// heading only, so the template carries this list; a unit test checks that
/// every visible subcommand appears here).
macro_rules! commands_help {
    () => { concat!(
    "Watch:\n  dashboard | top [--read-only]      everything live in a terminal UI\n\n",
    "Apps:\n  app list|show|launch|stop|logs     apps registered in config.yml and apps.d/\n",
    "  trigger CHORD                      launch the app bound to a hotkey chord\n\n",
    "Executions:\n  exec list|show|run|logs|cancel|retry|delegate\n",
    "                                     runs of tasks from config.yml `tasks:`\n",
    "  run TASK [-f] [-- ARGS…]           shortcut for `exec run`\n",
    "  logs ID [-f]                       shortcut for `exec logs`\n\n",
    "Approvals:\n  approval list|show|approve|deny|ask\n",
    "                                     questions waiting for a person\n",
    "  ask --title …                      shortcut for `approval ask`\n",
    "  hook claude-code                   Claude Code PreToolUse hook\n\n",
    "Agents:\n  agent spawn|list|show|send|keys|screen|logs|attach|kill\n",
    "                                     coding agents in tmux: watch, type, stop\n\n",
    "Events:\n  events [-n N] [--since ID] [-f]    the newest events, or follow them live\n",
    "  emit TYPE --source S               publish an event\n\n",
    "Daemon:\n  daemon start|stop|status|serve|reload\n",
    "  start | stop | status | serve      shortcuts for `daemon …`\n\n",
    "Security:\n  token list|create|revoke|rotate    scoped API tokens (secret shown once)\n",
    "  audit [-f] [--verify]              the audit log of control actions\n\n",
    "Programs:\n  mcp                                MCP server on stdio (for Claude Code / Desktop)\n\n",
    "Setup:\n  config check|path                  validate config.yml without a daemon\n",
    "  remote add|list|remove             named daemons on other machines\n",
    "  completions bash|zsh|fish          shell completion script\n",
    "  man                                the man page (roff)\n\n",
    "Run `orchestratr COMMAND --help` for details.\n\n"
    ) };
}

/// The command list, for the test below.
#[cfg(test)]
const COMMANDS_HELP: &str = commands_help!();

const HELP_TEMPLATE: &str = concat!(
    "{before-help}{about-with-newline}\n{usage-heading} {usage}\n\n",
    commands_help!(),
    "Options:\n{options}\n{after-help}"
);

const AFTER_LONG_HELP: &str = concat!(
    "Files:\n",
    "  <cfg>/config.yml, <cfg>/apps.d/*.yml   registry (hot-reloaded)\n",
    "  <cfg>/port, <cfg>/token                 discovery and bearer token\n",
    "  <cfg>/remotes.json                      named remotes (`orchestratr remote`)\n",
    "  <cfg>/tokens.json                       scoped tokens (SHA-256 hashes only)\n",
    "  <state>/audit.jsonl[.1-.5]              audit log of control actions (hash-chained)\n",
    "  <state>/agents/<id>/                    agent session records and output.log\n",
    "  <state>/orchestratr.pid, .log           lock and log of `orchestratr start`\n",
    "  <state>/logs/<app>.log                  output of apps launched by the daemon\n",
    "  <state>/executions/<id>/                execution records and output.log\n",
    "  <state>/approvals/<id>.json             approvals\n",
    "  <cfg> = $ORCHESTRATR_CONFIG_DIR or ~/.config/orchestratr\n",
    "  <state> = $ORCHESTRATR_STATE_DIR or ~/.local/state/orchestratr\n",
    "\n",
    crate::exit_codes_help!()
);

/// Subcommands: noun groups, shortcuts, then hidden aliases of older spellings.
#[derive(Debug, Subcommand)]
pub enum Command {
    // ---- noun groups (new groups plug in here) ----------------------------------
    /// Apps: list, show, launch, stop, read their logs.
    #[command(subcommand)]
    App(app_cmds::AppCmd),
    /// Executions of tasks: list, show, run, logs, cancel, retry, delegate.
    #[command(subcommand, visible_alias = "execution")]
    Exec(exec_cmds::ExecCmd),
    /// Approvals: list, show, approve, deny, ask.
    #[command(subcommand)]
    Approval(approvals_cmds::ApprovalCmd),
    /// Interactive coding agents in tmux: spawn, list, show, send, keys, screen, logs, attach, kill.
    Agent(agent_cmds::AgentArgs),
    /// Scoped API tokens: list, create (secret shown once), revoke, rotate the admin token.
    Token(token_cmds::TokenArgs),
    /// Show, follow (--follow) or verify (--verify) the audit log of control actions.
    Audit(audit_cmds::AuditArgs),
    /// Show the newest events (like `journalctl -n`), or follow them live.
    Events(events_cmds::EventsArgs),
    /// Publish an event on the daemon's bus; prints its id.
    Emit(events_cmds::EmitArgs),
    /// Launch the app bound to a hotkey chord (POST /trigger), for compositor keybindings.
    Trigger(trigger_cmd::TriggerArgs),
    /// The daemon: start, stop, status, serve, reload.
    #[command(subcommand)]
    Daemon(daemon_cmds::DaemonCmd),
    /// Config: check it without a daemon, print its path.
    #[command(subcommand)]
    Config(config_cmds::ConfigCmd),
    /// Named remotes (daemons on other machines): add, list, remove.
    #[command(subcommand)]
    Remote(remote_cmds::RemoteCmd),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(gen_cmds::CompletionsArgs),
    /// Print the man page (roff), e.g. `orchestratr man | man -l -`.
    Man,
    /// Hook adapters for coding agents (`orchestratr hook claude-code`).
    Hook(approvals_cmds::HookArgs),
    /// Watch everything live in a terminal UI (apps, runs, approvals, agents); `?` lists keys.
    #[command(visible_alias = "top")]
    Dashboard {
        /// Hide and refuse every action (approve, cancel, input...).
        #[arg(long)]
        read_only: bool,
    },

    // ---- shortcuts --------------------------------------------------------------
    /// Run a task (same as `exec run`).
    #[command(long_about = exec_cmds::RUN_LONG_ABOUT)]
    Run(exec_cmds::RunArgs),
    /// Print or follow an execution's output (same as `exec logs`).
    Logs(exec_cmds::LogsArgs),
    /// Start the daemon in the background (same as `daemon start`).
    Start(daemon_cmds::StartArgs),
    /// Stop the daemon (same as `daemon stop`; apps are stopped with `app stop`).
    Stop(daemon_cmds::StopArgs),
    /// Is the daemon running? Exit 0 if yes, 3 if not (same as `daemon status`).
    Status(daemon_cmds::JsonArgs),
    /// Run the daemon in the foreground (same as `daemon serve`).
    #[command(long_about = daemon_cmds::SERVE_LONG_ABOUT)]
    Serve(daemon_cmds::ServeArgs),
    /// Ask a question and wait for the answer (same as `approval ask`).
    #[command(long_about = approvals_cmds::ASK_LONG_ABOUT)]
    Ask(approvals_cmds::AskArgs),

    // ---- hidden aliases of the flat spellings of earlier versions ----------------
    /// = `app list`
    #[command(hide = true)]
    Apps(daemon_cmds::JsonArgs),
    /// = `app launch`
    #[command(hide = true)]
    Launch(app_cmds::NameArgs),
    /// = `app stop`
    #[command(hide = true, name = "stop-app")]
    StopApp(app_cmds::NameArgs),
    /// = `daemon reload`
    #[command(hide = true)]
    Reload(daemon_cmds::JsonArgs),
    /// = `approval list`
    #[command(hide = true)]
    Approvals(approvals_cmds::ListArgs),
    /// = `approval approve`
    #[command(hide = true)]
    Approve(approvals_cmds::DecideArgs),
    /// = `approval deny`
    #[command(hide = true)]
    Deny(approvals_cmds::DecideArgs),
    /// = `exec list`
    #[command(hide = true)]
    Executions(exec_cmds::ListArgs),
    /// = `exec cancel`
    #[command(hide = true)]
    Cancel(exec_cmds::IdArgs),
    /// = `exec retry`
    #[command(hide = true)]
    Retry(exec_cmds::IdArgs),
    /// = `exec delegate`
    #[command(hide = true)]
    Delegate(exec_cmds::DelegateArgs),
    /// Internal: the first process of an agent pane (reads <dir>/spec.json).
    #[command(name = "agent-exec", hide = true)]
    AgentExec { dir: std::path::PathBuf },
    /// MCP stdio server for Claude Desktop / Claude Code (forwards to the daemon's /mcp).
    Mcp,
}

/// Print a line to stdout; `false` when stdout is closed (e.g. piped to `head`).
pub(crate) fn out(line: &str) -> bool {
    let mut o = std::io::stdout().lock();
    writeln!(o, "{line}").and_then(|_| o.flush()).is_ok()
}

pub(crate) use error::err;

/// Print a pretty JSON value.
pub(crate) fn out_json(v: &Value) -> bool {
    out(&serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()))
}

/// Report a client error on stderr and give its exit code. For commands that
/// still return a bare exit code (`ask`, `hook`, and noun groups plugged in by
/// other modules); new commands return [`Outcome`] and let [`main`] report.
pub fn fail(e: &ClientError) -> u8 {
    error::report_client(e)
}

/// Where the CLI finds its daemon.
pub struct Env {
    /// Config and state dirs.
    pub paths: Paths,
    /// `--url` / `ORCHESTRATR_URL`, or the selected remote's URL.
    pub url: Option<String>,
    /// `--token` / `ORCHESTRATR_TOKEN`, or the selected remote's token.
    pub token: Option<String>,
}

impl Env {
    /// A client for the daemon (see [`Client::discover`]).
    pub fn client(&self) -> Result<Client, ClientError> {
        Client::discover(&self.paths, self.url.as_deref(), self.token.as_deref())
    }
}

/// Parse the command line and run it. Returns the process exit code; the only
/// place errors become exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    ExitCode::from(match run(cli) {
        Ok(code) => code,
        Err(e) => error::report(&e),
    })
}

/// Resolve the daemon (flags, environment, named remote) and run one command.
///
/// Errors: whatever the command raises; an unknown `--remote` is a usage error.
pub fn run(cli: Cli) -> Outcome {
    let paths = Paths::from_env();
    let (mut url, mut token) = (cli.url, cli.token);
    if url.is_none()
        && let Some(name) = cli.remote.as_deref().filter(|n| !n.is_empty())
    {
        let r = remote_cmds::resolve(&paths, name)?;
        url = Some(r.0);
        token = token.or(r.1);
    }
    let env = Env { paths, url, token };
    match cli.command {
        Command::App(c) => app_cmds::dispatch(&env, c),
        Command::Exec(c) => exec_cmds::dispatch(&env, c),
        Command::Approval(c) => approvals_cmds::dispatch(&env, c),
        Command::Events(a) => events_cmds::events(&env, &a),
        Command::Emit(a) => events_cmds::emit(&env, &a),
        Command::Trigger(a) => Ok(trigger_cmd::trigger(&env, &a)),
        Command::Agent(a) => Ok(agent_cmds::run(&env, &a)),
        Command::Token(a) => Ok(token_cmds::run(&env, &a)),
        Command::Audit(a) => Ok(audit_cmds::run(&env, &a)),
        Command::Mcp => Ok(mcp_cmd::run(&env)),
        Command::AgentExec { dir } => Ok(agent_cmds::agent_exec(&dir)),
        Command::Daemon(c) => daemon_cmds::dispatch(&env, c),
        Command::Config(c) => config_cmds::dispatch(&env, c),
        Command::Remote(c) => remote_cmds::dispatch(&env, c),
        Command::Completions(a) => gen_cmds::completions(&a),
        Command::Man => gen_cmds::man(),
        Command::Hook(a) => Ok(approvals_cmds::hook(&env, &a)),
        Command::Dashboard { read_only } => Ok(crate::dashboard::run(crate::dashboard::Opts {
            paths: env.paths.clone(),
            url: env.url.clone(),
            token: env.token.clone(),
            read_only,
        })),
        Command::Run(a) => exec_cmds::run(&env, &a),
        Command::Logs(a) => exec_cmds::logs(&env, &a),
        Command::Start(a) => daemon_cmds::start(&env, &a),
        Command::Stop(a) => daemon_cmds::stop(&env, &a),
        Command::Status(a) => daemon_cmds::status(&env, a.json),
        Command::Serve(a) => daemon_cmds::serve(&env, a.port),
        Command::Ask(a) => Ok(approvals_cmds::ask(&env, &a)),
        Command::Apps(a) => app_cmds::list(&env, a.json),
        Command::Launch(a) => app_cmds::launch(&env, &a),
        Command::StopApp(a) => app_cmds::stop(&env, &a),
        Command::Reload(a) => daemon_cmds::reload(&env, a.json),
        Command::Approvals(a) => approvals_cmds::list(&env, &a),
        Command::Approve(a) => approvals_cmds::decide(&env, &a, "approve"),
        Command::Deny(a) => approvals_cmds::decide(&env, &a, "deny"),
        Command::Executions(a) => exec_cmds::list(&env, &a),
        Command::Cancel(a) => exec_cmds::cancel(&env, &a),
        Command::Retry(a) => exec_cmds::retry(&env, &a),
        Command::Delegate(a) => exec_cmds::delegate(&env, &a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_tree_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_visible_command_is_in_the_sectioned_help() {
        let cmd = Cli::command();
        for sc in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
            let name = sc.get_name();
            assert!(
                COMMANDS_HELP.contains(&format!("  {name}"))
                    || COMMANDS_HELP.contains(&format!("| {name}")),
                "{name} missing from the --help sections"
            );
            for sub in sc.get_subcommands().filter(|c| !c.is_hide_set()) {
                let s = sub.get_name();
                if s == "help" {
                    continue;
                }
                assert!(
                    COMMANDS_HELP.contains(s),
                    "{name} {s} missing from the --help sections"
                );
            }
        }
    }
}
