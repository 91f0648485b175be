//! `exec list|show|run|logs|cancel|retry|delegate` (API.md §7), and the
//! shortcuts `run` and `logs`.

use super::follow::{Flow, Follow, follow};
use super::output::{Align, Cell, Table, bytes, duration_ms, relative_str, status_style, truncate};
use super::{CliError, EXIT_OK, Env, Outcome, err, out, out_json};
use crate::client::ClientError;
use crate::executor::record::{ExecStatus, Execution};
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// Long help of `run`.
pub const RUN_LONG_ABOUT: &str = "Queue a run of a task registered under `tasks:` in config.yml.\n\n\
Prints the execution id. With --follow, streams the output (a status line while\n\
queued, on a terminal), prints the final status once on stderr, and exits with the\n\
run's exit code (128+N for signal N, 124 timeout, 130 cancelled, 1 lost).\n\
Arguments after `--` are appended to the task's argv (needs allow_args: true);\n\
they never reach a shell.";

/// `orchestratr exec …`
#[derive(Debug, Subcommand)]
pub enum ExecCmd {
    /// List executions, newest first.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show one execution.
    Show(IdArgs),
    /// Run a registered task (queued in its pool); --follow streams its output.
    #[command(long_about = RUN_LONG_ABOUT)]
    Run(RunArgs),
    /// Print an execution's output; --follow streams it live until the run ends.
    Logs(LogsArgs),
    /// Cancel a pending or running execution.
    Cancel(IdArgs),
    /// Run an execution again (same argv, cwd and environment).
    Retry(IdArgs),
    /// Delegate a task to a coding agent configured under `agents:`; prints the ticket id.
    Delegate(DelegateArgs),
}

/// Run one `exec` subcommand.
pub fn dispatch(env: &Env, c: ExecCmd) -> Outcome {
    match c {
        ExecCmd::List(a) => list(env, &a),
        ExecCmd::Show(a) => show(env, &a),
        ExecCmd::Run(a) => run(env, &a),
        ExecCmd::Logs(a) => logs(env, &a),
        ExecCmd::Cancel(a) => cancel(env, &a),
        ExecCmd::Retry(a) => retry(env, &a),
        ExecCmd::Delegate(a) => delegate(env, &a),
    }
}

/// `orchestratr run TASK [-- ARGS…]`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Registered task name.
    pub task: String,
    /// Extra argv elements (the task needs `allow_args: true`).
    #[arg(last = true)]
    pub args: Vec<String>,
    /// Working directory (must be inside a configured workspace).
    #[arg(long)]
    pub cwd: Option<String>,
    /// Time limit, e.g. 30s, 10m (overrides the task's timeout_ms).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Stream the output and exit with the run's exit code.
    #[arg(long, short)]
    pub follow: bool,
    /// Print the Execution as JSON (without --follow).
    #[arg(long)]
    pub json: bool,
}

/// `orchestratr executions`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this status (pending, starting, running, completed, failed, timeout, cancelled, lost).
    #[arg(long)]
    pub status: Option<String>,
    /// Only this task.
    #[arg(long)]
    pub task: Option<String>,
    /// At most this many (1-1000).
    #[arg(long, short = 'n', default_value_t = 50)]
    pub limit: u64,
    /// Print the daemon's JSON.
    #[arg(long)]
    pub json: bool,
}

/// `orchestratr logs ID`
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Execution id.
    pub id: String,
    /// Keep streaming until the run ends (resumes after a dropped connection);
    /// exits with the run's exit code, like `run --follow`.
    #[arg(long, short)]
    pub follow: bool,
}

/// `exec show|cancel|retry ID`
#[derive(Debug, Args)]
pub struct IdArgs {
    /// Execution id.
    pub id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `orchestratr delegate AGENT "task text"`
#[derive(Debug, Args)]
pub struct DelegateArgs {
    /// Agent type, as configured under `agents:`.
    pub agent: String,
    /// What the agent should do.
    pub text: String,
    /// A file the task concerns (repeatable); sent as context.files.
    #[arg(long = "file", value_name = "PATH")]
    pub files: Vec<String>,
    /// A requirement (repeatable); sent as context.requirements.
    #[arg(long = "requirement", value_name = "TEXT")]
    pub requirements: Vec<String>,
    /// Working directory (must be inside a configured workspace).
    #[arg(long)]
    pub cwd: Option<String>,
    /// Time limit, e.g. 30m.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Stream the agent's output and exit with its exit code.
    #[arg(long, short)]
    pub follow: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Exit code of `run --follow` for a finished Execution: its exit code when it
/// exited; 128+N for signal N; 124 for a timeout (as timeout(1)); 130 when
/// cancelled; 1 when lost or failed to start.
pub fn exit_code_of(e: &Execution) -> u8 {
    match e.status {
        ExecStatus::Completed => 0,
        ExecStatus::Timeout => 124,
        ExecStatus::Cancelled => 130,
        ExecStatus::Failed => match (e.exit_code, e.signal) {
            (Some(c), _) => u8::try_from(c).unwrap_or(1),
            (None, Some(s)) => u8::try_from(128 + s).unwrap_or(1),
            _ => 1,
        },
        _ => 1,
    }
}

/// One line for a person: `exec-… pending (queue position 2)`, `… running (pid 42)`,
/// `… failed, exit 3, in 5.0 s`.
pub fn status_line(e: &Execution) -> String {
    let id = &e.id;
    match e.status {
        ExecStatus::Pending => match e.queue_position {
            Some(p) => format!("{id} queued in pool {} (position {p})", e.pool),
            None => format!("{id} queued in pool {}", e.pool),
        },
        ExecStatus::Starting => format!("{id} starting in pool {}", e.pool),
        ExecStatus::Running => match e.pid {
            Some(p) => format!("{id} running (pid {p})"),
            None => format!("{id} running"),
        },
        s => {
            let mut l = format!("{id} {}", s.as_str());
            if let Some(c) = e.exit_code.filter(|_| s != ExecStatus::Completed) {
                l.push_str(&format!(", exit {c}"));
            }
            if let Some(sig) = e.signal {
                l.push_str(&format!(", signal {sig}"));
            }
            if let Some(m) = e.error.as_ref().filter(|_| e.exit_code.is_none()) {
                l.push_str(&format!(", {m}"));
            }
            if let Some(d) = e.duration_ms {
                l.push_str(&format!(", in {}", duration_ms(d)));
            }
            l
        }
    }
}

/// Follow an execution's output stream, writing text to stdout (through the one
/// reconnect loop, resuming at the byte offset). While queued it shows a status
/// line on a terminal. Returns the final Execution.
fn follow_output(env: &Env, id: &str) -> Result<Execution, CliError> {
    let tty = std::io::stderr().is_terminal();
    let mut last_status = String::new();
    let mut fin: Option<Execution> = None;
    let mut closed = false;
    follow(
        Follow {
            env,
            path: format!("/executions/{id}/stream"),
            last_id: Some(0),
            give_up_after: Some(120),
        },
        |f| match f.event.as_str() {
            "output" => {
                let v: Value = serde_json::from_str(&f.data).unwrap_or(Value::Null);
                if let Some(t) = v["text"].as_str() {
                    let mut o = std::io::stdout().lock();
                    if o.write_all(t.as_bytes()).and_then(|_| o.flush()).is_err() {
                        closed = true;
                        return Flow::Stop;
                    }
                }
                Flow::Continue
            }
            "status" => {
                if let Ok(e) = serde_json::from_str::<Execution>(&f.data)
                    && tty
                    && !e.status.is_final()
                {
                    let line = status_line(&e);
                    if line != last_status {
                        err(&line);
                        last_status = line;
                    }
                }
                Flow::Continue
            }
            "end" => {
                fin = serde_json::from_str::<Execution>(&f.data).ok();
                Flow::Stop
            }
            _ => Flow::Continue,
        },
    )?;
    match fin {
        Some(e) => Ok(e),
        None if closed => Err(CliError::failed("stdout closed")),
        None => Err(CliError::failed(format!(
            "the stream of {id} ended without a final status"
        ))),
    }
}

/// Follow to the end; print the final status ONCE on stderr (terminal or not);
/// the run's exit code.
fn follow_to_exit(env: &Env, id: &str) -> Outcome {
    let fin = follow_output(env, id)?;
    err(&status_line(&fin));
    Ok(exit_code_of(&fin))
}

/// The tasks of the local config and the file to add one to, as hint lines.
fn task_hint(env: &Env, task: &str) -> Vec<String> {
    let file = env.paths.config_dir.join("config.yml");
    let mut hints = Vec::new();
    if env.url.is_none()
        && let Ok(cfg) = crate::config::load(&env.paths.config_dir)
    {
        let names: Vec<&str> = cfg.exec.tasks.keys().map(String::as_str).collect();
        if names.is_empty() {
            hints.push("no tasks are configured".to_string());
        } else {
            hints.push(format!("configured tasks: {}", names.join(", ")));
        }
    }
    hints.push(format!(
        "add one under `tasks:` in {}, e.g.\n      tasks:\n        - name: {task}\n          command: [\"make\", \"{task}\"]",
        file.display()
    ));
    hints
}

pub(super) fn run(env: &Env, a: &RunArgs) -> Outcome {
    let mut body = json!({"task": a.task, "args": a.args});
    if let Some(c) = &a.cwd {
        body["cwd"] = json!(c);
    }
    if let Some(t) = a.timeout {
        body["timeout_ms"] = json!(t.as_millis() as u64);
    }
    let (_, v) = match env.client()?.post("/executions", Some(&body), &env.paths) {
        Ok(x) => x,
        Err(ClientError::Api {
            status: 404,
            message,
            ..
        }) if message.contains("task") => {
            return Err(CliError::Failed(message, task_hint(env, &a.task)));
        }
        Err(e) => return Err(e.into()),
    };
    finish_submit(env, v, a.follow, a.json)
}

fn parse_exec(v: Value) -> Result<Execution, CliError> {
    serde_json::from_value(v)
        .map_err(|e| CliError::failed(format!("unexpected answer from the daemon: {e}")))
}

fn finish_submit(env: &Env, v: Value, follow: bool, as_json: bool) -> Outcome {
    if !follow {
        if as_json {
            out_json(&v);
            return Ok(EXIT_OK);
        }
        let e = parse_exec(v)?;
        out(&e.id);
        if std::io::stderr().is_terminal() {
            err(&format!(
                "{}; follow with `orchestratr logs -f {}`",
                status_line(&e),
                e.id
            ));
        }
        return Ok(EXIT_OK);
    }
    let e = parse_exec(v)?;
    follow_to_exit(env, &e.id)
}

#[derive(Debug, Deserialize)]
struct ExecList {
    executions: Vec<Execution>,
    total: u64,
}

/// The executions table: id, task, status, exit, duration, created, output size.
pub fn executions_table(list: &[Execution]) -> Table {
    let mut t = Table::new(&[
        ("ID", Align::Left),
        ("TASK", Align::Left),
        ("STATUS", Align::Left),
        ("EXIT", Align::Right),
        ("DURATION", Align::Right),
        ("CREATED", Align::Left),
        ("OUTPUT", Align::Right),
    ]);
    for e in list {
        let st = e.status.as_str();
        let exit = match (e.exit_code, e.signal) {
            (Some(c), _) => c.to_string(),
            (None, Some(s)) => format!("sig {s}"),
            _ => "-".into(),
        };
        t.row(vec![
            e.id.clone().into(),
            truncate(&e.task, 24).into(),
            Cell::styled(st, status_style(st)),
            exit.into(),
            e.duration_ms
                .map(duration_ms)
                .unwrap_or_else(|| "-".into())
                .into(),
            relative_str(Some(&e.created_at)).into(),
            bytes(e.output_bytes).into(),
        ]);
    }
    t
}

pub(super) fn list(env: &Env, a: &ListArgs) -> Outcome {
    let mut q = form_urlencoded::Serializer::new(String::new());
    if let Some(s) = &a.status {
        q.append_pair("status", s);
    }
    if let Some(t) = &a.task {
        q.append_pair("task", t);
    }
    q.append_pair("limit", &a.limit.to_string());
    let path = format!("/executions?{}", q.finish());
    let client = env.client()?;
    if a.json {
        out_json(&client.get(&path, &env.paths)?);
        return Ok(EXIT_OK);
    }
    let v: ExecList = client.get_as(&path, &env.paths)?;
    if v.executions.is_empty() {
        out("no executions (start one with `orchestratr run TASK`)");
        return Ok(EXIT_OK);
    }
    executions_table(&v.executions).print();
    if v.total > v.executions.len() as u64 {
        out(&format!(
            "({} of {}; use --limit)",
            v.executions.len(),
            v.total
        ));
    }
    Ok(EXIT_OK)
}

fn exec_path(id: &str, action: &str) -> String {
    let enc = crate::client::path_segment(id);
    if action.is_empty() {
        format!("/executions/{enc}")
    } else {
        format!("/executions/{enc}/{action}")
    }
}

fn show(env: &Env, a: &IdArgs) -> Outcome {
    let client = env.client()?;
    if a.json {
        out_json(&client.get(&exec_path(&a.id, ""), &env.paths)?);
        return Ok(EXIT_OK);
    }
    let e: Execution = client.get_as(&exec_path(&a.id, ""), &env.paths)?;
    executions_table(std::slice::from_ref(&e)).print();
    out(&format!("argv: {}", e.argv.join(" ")));
    out(&format!("cwd:  {}", e.cwd));
    out(&format!("pool: {}", e.pool));
    if let Some(r) = &e.retry_of {
        out(&format!("retry of: {r}"));
    }
    if let Some(m) = &e.error {
        out(&format!("error: {m}"));
    }
    Ok(EXIT_OK)
}

pub(super) fn logs(env: &Env, a: &LogsArgs) -> Outcome {
    if a.follow {
        return follow_to_exit(env, &a.id);
    }
    let b = env
        .client()?
        .get_bytes(&exec_path(&a.id, "output"), &env.paths)?;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(&b).and_then(|_| o.flush());
    Ok(EXIT_OK)
}

pub(super) fn cancel(env: &Env, a: &IdArgs) -> Outcome {
    let (_, e) = env
        .client()?
        .post(&exec_path(&a.id, "cancel"), None, &env.paths)?;
    if a.json {
        out_json(&e);
    } else {
        out(&format!("cancelled {}", a.id));
    }
    Ok(EXIT_OK)
}

pub(super) fn retry(env: &Env, a: &IdArgs) -> Outcome {
    let (_, e) = env
        .client()?
        .post(&exec_path(&a.id, "retry"), None, &env.paths)?;
    finish_submit(env, e, false, a.json)
}

pub(super) fn delegate(env: &Env, a: &DelegateArgs) -> Outcome {
    if a.text.trim().is_empty() {
        return Err(CliError::Usage("the task text must not be empty".into()));
    }
    let mut context = serde_json::Map::new();
    if !a.files.is_empty() {
        context.insert("files".into(), json!(a.files));
    }
    if !a.requirements.is_empty() {
        context.insert("requirements".into(), json!(a.requirements));
    }
    let mut body = json!({"agent_type": a.agent, "task": a.text, "context": context});
    if let Some(c) = &a.cwd {
        body["working_dir"] = json!(c);
    }
    if let Some(t) = a.timeout {
        body["timeout_ms"] = json!(t.as_millis() as u64);
    }
    let (_, t) = env.client()?.post("/delegate", Some(&body), &env.paths)?;
    let id = t["ticket_id"].as_str().unwrap_or("").to_string();
    if !a.follow {
        if a.json {
            out_json(&t);
        } else {
            out(&id);
        }
        return Ok(EXIT_OK);
    }
    let fin = follow_output(env, &id)?;
    if a.json
        && let Ok(ticket) = env
            .client()
            .and_then(|c| c.get(&format!("/tasks/{id}"), &env.paths))
    {
        out_json(&ticket);
    }
    err(&status_line(&fin));
    Ok(exit_code_of(&fin))
}
