//! `app list|show|launch|stop|logs` (API.md §4, and `docs/api.md` "App output").

use super::follow::{Flow, Follow, follow};
use super::output::{Align, Cell, Table, bytes, relative_str, status_style, truncate};
use super::{EXIT_OK, Env, Outcome, out, out_json};
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::Value;
use std::io::Write;

/// `orchestratr app …`
#[derive(Debug, Subcommand)]
pub enum AppCmd {
    /// List registered apps and their state.
    #[command(visible_alias = "ls")]
    List(super::daemon_cmds::JsonArgs),
    /// Show one app: its spec and state.
    Show(NameArgs),
    /// Launch a registered app (no duplicate instances).
    Launch(NameArgs),
    /// Stop a running app: SIGTERM to its process group, SIGKILL after its stop_timeout_ms.
    Stop(NameArgs),
    /// Print an app's captured output (<state>/logs/NAME.log); -f follows it.
    Logs(AppLogsArgs),
}

/// An app name and `--json`.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// App name.
    pub name: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `app logs NAME [-f]`
#[derive(Debug, Args)]
pub struct AppLogsArgs {
    /// App name.
    pub name: String,
    /// Keep streaming new output (resumes after a dropped connection).
    #[arg(long, short)]
    pub follow: bool,
}

/// The CLI's view of an app (`GET /apps` items, API.md §4 `App`).
#[derive(Debug, Clone, Deserialize)]
pub struct AppRow {
    /// App name.
    pub name: String,
    /// Where it was registered (`config.yml`, `apps.d/x.yml`).
    #[serde(default)]
    pub source: Option<String>,
    /// One-line description.
    #[serde(default)]
    pub description: Option<String>,
    /// Runtime state.
    pub state: AppStateRow,
}

/// The runtime part of [`AppRow`].
#[derive(Debug, Clone, Deserialize)]
pub struct AppStateRow {
    /// `stopped`, `launched`, `ready`.
    pub status: String,
    /// Tracked PID.
    #[serde(default)]
    pub pid: Option<u32>,
    /// Whether `pid` is alive (`null` when untracked).
    #[serde(default)]
    pub alive: Option<bool>,
    /// Resident memory, MiB.
    #[serde(default)]
    pub memory_mb: Option<f64>,
    /// CPU, percent of one core.
    #[serde(default)]
    pub cpu_percent: Option<f64>,
    /// RFC 3339 time of the last launch.
    #[serde(default)]
    pub launched_at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AppList {
    apps: Vec<AppRow>,
}

/// Run one `app` subcommand.
pub fn dispatch(env: &Env, c: AppCmd) -> Outcome {
    match c {
        AppCmd::List(a) => list(env, a.json),
        AppCmd::Show(a) => show(env, &a),
        AppCmd::Launch(a) => launch(env, &a),
        AppCmd::Stop(a) => stop(env, &a),
        AppCmd::Logs(a) => logs(env, &a),
    }
}

fn app_path(name: &str, action: &str) -> String {
    let enc = crate::client::path_segment(name);
    if action.is_empty() {
        format!("/apps/{enc}")
    } else {
        format!("/apps/{enc}/{action}")
    }
}

/// The apps table (also used by snapshot tests through the binary).
pub fn apps_table(apps: &[AppRow]) -> Table {
    let mut t = Table::new(&[
        ("NAME", Align::Left),
        ("STATUS", Align::Left),
        ("PID", Align::Right),
        ("MEM", Align::Right),
        ("CPU", Align::Right),
        ("LAUNCHED", Align::Left),
        ("SOURCE", Align::Left),
        ("DESCRIPTION", Align::Left),
    ]);
    for a in apps {
        let st = &a.state;
        let live = st.alive != Some(false);
        let opt = |v: Option<String>| v.filter(|_| live).unwrap_or_else(|| "-".into());
        t.row(vec![
            a.name.clone().into(),
            Cell::styled(st.status.clone(), status_style(&st.status)),
            opt(st.pid.map(|p| p.to_string())).into(),
            opt(st.memory_mb.map(|m| bytes((m * 1024.0 * 1024.0) as u64))).into(),
            opt(st.cpu_percent.map(|c| format!("{c:.1}%"))).into(),
            if st.status == "stopped" {
                "-".to_string()
            } else {
                relative_str(st.launched_at.as_deref())
            }
            .into(),
            a.source.clone().unwrap_or_default().into(),
            truncate(a.description.as_deref().unwrap_or(""), 50).into(),
        ]);
    }
    t
}

pub(super) fn list(env: &Env, as_json: bool) -> Outcome {
    let v = env.client()?.get("/apps", &env.paths)?;
    if as_json {
        out_json(&v);
        return Ok(EXIT_OK);
    }
    let apps: AppList = serde_json::from_value(v)
        .map_err(|e| super::CliError::failed(format!("unexpected answer to GET /apps: {e}")))?;
    if apps.apps.is_empty() {
        out("no apps registered (add them to config.yml or drop a manifest into apps.d/)");
        return Ok(EXIT_OK);
    }
    apps_table(&apps.apps).print();
    Ok(EXIT_OK)
}

fn show(env: &Env, a: &NameArgs) -> Outcome {
    let v = env.client()?.get(&app_path(&a.name, ""), &env.paths)?;
    if a.json {
        out_json(&v);
        return Ok(EXIT_OK);
    }
    let row: AppRow = serde_json::from_value(v.clone())
        .map_err(|e| super::CliError::failed(format!("unexpected answer: {e}")))?;
    apps_table(std::slice::from_ref(&row)).print();
    for k in [
        "command",
        "cwd",
        "ready_probe",
        "stop_timeout_ms",
        "detached",
    ] {
        if let Some(x) = v.get(k).filter(|x| !x.is_null()) {
            out(&format!("{k}: {x}"));
        }
    }
    Ok(EXIT_OK)
}

pub(super) fn launch(env: &Env, a: &NameArgs) -> Outcome {
    let (_, v) = env
        .client()?
        .post(&app_path(&a.name, "launch"), None, &env.paths)?;
    let name = &a.name;
    if a.json {
        out_json(&v);
    } else if v["status"] == "already_running" {
        out(&format!("{name} is already running (pid {})", v["pid"]));
    } else {
        out(&format!("launched {name} (pid {})", v["pid"]));
    }
    Ok(EXIT_OK)
}

pub(super) fn stop(env: &Env, a: &NameArgs) -> Outcome {
    let (_, v) = env
        .client()?
        .post(&app_path(&a.name, "stop"), None, &env.paths)?;
    if a.json {
        out_json(&v);
    } else {
        let how = match (&v["exit_code"], &v["signal"]) {
            (Value::Number(c), _) => format!("exit code {c}"),
            (_, Value::Number(s)) => format!("signal {s}"),
            _ => "exit status unknown".into(),
        };
        let killed = if v["killed"] == Value::Bool(true) {
            ", killed after the stop timeout"
        } else {
            ""
        };
        out(&format!(
            "stopped {} (pid {}, {how}{killed})",
            a.name, v["pid"]
        ));
    }
    Ok(EXIT_OK)
}

fn logs(env: &Env, a: &AppLogsArgs) -> Outcome {
    if !a.follow {
        let b = env
            .client()?
            .get_bytes(&app_path(&a.name, "output"), &env.paths)?;
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(&b).and_then(|_| o.flush());
        return Ok(EXIT_OK);
    }
    follow(
        Follow {
            env,
            path: app_path(&a.name, "stream"),
            last_id: Some(0),
            give_up_after: None,
        },
        |f| {
            if f.event != "output" {
                return Flow::Continue;
            }
            let v: Value = serde_json::from_str(&f.data).unwrap_or(Value::Null);
            let t = v["text"].as_str().unwrap_or("");
            let mut o = std::io::stdout().lock();
            if o.write_all(t.as_bytes()).and_then(|_| o.flush()).is_err() {
                return Flow::Stop;
            }
            Flow::Continue
        },
    )?;
    Ok(EXIT_OK)
}
