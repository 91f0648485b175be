//! `daemon start|stop|status|serve|reload` (and their shortcuts).

use super::{CliError, EXIT_NOT_RUNNING, EXIT_OK, Env, Outcome, err, out, out_json};
use crate::client::ClientError;
use crate::daemon::{self, RunOptions, Shutdown};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Long help of `serve`.
pub const SERVE_LONG_ABOUT: &str = "Run the daemon in the foreground until SIGINT, SIGTERM or POST /shutdown.\n\n\
On first start it writes a commented default config.yml and a 0600 token file.\n\
Logs go to stderr. Under systemd (Type=notify) it reports READY=1 once listening\n\
and the port file is written. Exits 0 after a clean shutdown, 1 if it cannot run\n\
(e.g. another daemon holds the PID file), 2 if config.yml is invalid.";

/// `orchestratr daemon …`
#[derive(Debug, Subcommand)]
pub enum DaemonCmd {
    /// Start the daemon in the background and wait until it answers.
    #[command(
        long_about = "Start `orchestratr serve` detached from the terminal, logging to\n\
        <state>/orchestratr.log; wait until it answers /health, then print its PID and\n\
        port. Does nothing (exit 0) if a daemon is already running. Exits 2 when\n\
        config.yml is invalid, like `serve`."
    )]
    Start(StartArgs),
    /// Stop the running daemon gracefully and wait until it has exited.
    Stop(StopArgs),
    /// Is the daemon running? Exit 0 if yes, 3 if not.
    Status(JsonArgs),
    /// Run the daemon in the foreground (for systemd, launchd, or a terminal).
    #[command(long_about = SERVE_LONG_ABOUT)]
    Serve(ServeArgs),
    /// Re-read config.yml and apps.d/ now (the daemon also does it on every save).
    Reload(JsonArgs),
}

/// `--json` alone.
#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `daemon serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port on 127.0.0.1 (0 = any free port); overrides config api_port.
    #[arg(long)]
    pub port: Option<u16>,
}

/// `daemon start`
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long)]
    pub port: Option<u16>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `daemon stop`
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// (Not accepted: apps are stopped with `orchestratr app stop NAME`.)
    #[arg(hide = true)]
    pub app: Option<String>,
}

/// Run one `daemon` subcommand.
pub fn dispatch(env: &Env, c: DaemonCmd) -> Outcome {
    match c {
        DaemonCmd::Start(a) => start(env, &a),
        DaemonCmd::Stop(a) => stop(env, &a),
        DaemonCmd::Status(a) => status(env, a.json),
        DaemonCmd::Serve(a) => serve(env, a.port),
        DaemonCmd::Reload(a) => reload(env, a.json),
    }
}

pub(super) fn serve(env: &Env, port: Option<u16>) -> Outcome {
    let level = std::env::var("ORCHESTRATR_LOG")
        .ok()
        .and_then(|l| crate::logging::parse_level(&l))
        .unwrap_or(log::LevelFilter::Info);
    crate::logging::init(level);
    let shutdown = Shutdown::new();
    if let Err(e) = daemon::install_signal_handler(&shutdown) {
        return Err(CliError::failed(format!(
            "cannot install signal handlers: {e}"
        )));
    }
    match daemon::run(
        RunOptions {
            paths: env.paths.clone(),
            port,
        },
        shutdown,
    ) {
        Ok(()) => Ok(EXIT_OK),
        Err(e) => {
            // The daemon's own error type carries its exit code (2 = config).
            err(&e.to_string());
            Ok(e.exit_code())
        }
    }
}

/// `GET /health` of the discovered daemon, or the error.
fn health(env: &Env) -> Result<Value, ClientError> {
    env.client()?.get("/health", &env.paths)
}

pub(super) fn status(env: &Env, as_json: bool) -> Outcome {
    match health(env) {
        Ok(h) => {
            let url = env.client().map(|c| c.base).unwrap_or_default();
            if as_json {
                out_json(&json!({"running": true, "pid": h["pid"], "port": h["port"],
                    "version": h["version"], "uptime_seconds": h["uptime_seconds"],
                    "apps": h["apps"], "url": url}));
            } else {
                let up = h["uptime_seconds"].as_u64().unwrap_or(0);
                out(&format!(
                    "orchestratr is running: pid {}, port {}, version {}, up {}, {} apps",
                    h["pid"],
                    h["port"],
                    h["version"].as_str().unwrap_or("?"),
                    humantime::format_duration(Duration::from_secs(up)),
                    h["apps"]
                ));
            }
            Ok(EXIT_OK)
        }
        Err(ClientError::NotRunning(m)) => {
            if as_json {
                out_json(&json!({"running": false, "reason": m}));
            } else {
                out("orchestratr is not running");
            }
            Ok(EXIT_NOT_RUNNING)
        }
        Err(e) => Err(e.into()),
    }
}

fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub(super) fn start(env: &Env, a: &StartArgs) -> Outcome {
    let (port, as_json) = (a.port, a.json);
    if let Ok(h) = health(env) {
        if as_json {
            out_json(
                &json!({"running": true, "already_running": true, "pid": h["pid"], "port": h["port"]}),
            );
        } else {
            out(&format!(
                "orchestratr is already running (pid {}, port {})",
                h["pid"], h["port"]
            ));
        }
        return Ok(EXIT_OK);
    }
    let exe = std::env::current_exe()
        .map_err(|e| CliError::failed(format!("cannot find my own executable: {e}")))?;
    let paths = &env.paths;
    crate::fsutil::create_private_dir(&paths.state_dir).map_err(|e| {
        CliError::failed(format!("cannot create {}: {e}", paths.state_dir.display()))
    })?;
    let log_path = paths.log_file();
    let open_log = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
    };
    let (Ok(log_out), Ok(log_err)) = (open_log(), open_log()) else {
        return Err(CliError::failed(format!(
            "cannot open log file {}",
            log_path.display()
        )));
    };
    let mut cmd = Command::new(exe);
    cmd.arg("serve");
    if let Some(p) = port {
        cmd.arg("--port").arg(p.to_string());
    }
    cmd.env("ORCHESTRATR_CONFIG_DIR", &paths.config_dir)
        .env("ORCHESTRATR_STATE_DIR", &paths.state_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_out))
        .stderr(Stdio::from(log_err));
    // SAFETY: setsid is async-signal-safe; it detaches the daemon from the
    // terminal's session so closing the terminal does not send it SIGHUP.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| CliError::failed(format!("cannot start the daemon: {e}")))?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            let msg = format!(
                "the daemon exited during start-up ({st}); last lines of {}:\n{}",
                log_path.display(),
                log_tail(&log_path, 10)
            );
            // Same exit codes as `serve`: 2 for an invalid config.
            return Err(if st.code() == Some(2) {
                CliError::Config(msg, Vec::new())
            } else {
                CliError::failed(msg)
            });
        }
        if let Ok(h) = health(env)
            && h["pid"].as_u64() == Some(u64::from(pid))
        {
            if as_json {
                out_json(&json!({"running": true, "pid": pid, "port": h["port"],
                    "log": log_path.display().to_string()}));
            } else {
                out(&format!(
                    "orchestratr started: pid {pid}, port {}, log {}",
                    h["port"],
                    log_path.display()
                ));
            }
            return Ok(EXIT_OK);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(CliError::failed(format!(
        "the daemon (pid {pid}) did not answer within 20 s; see {}",
        log_path.display()
    )))
}

fn pid_alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

pub(super) fn stop(env: &Env, a: &StopArgs) -> Outcome {
    if let Some(app) = &a.app {
        return Err(CliError::Usage(format!(
            "`stop` stops the daemon and takes no app name; to stop the app, run `orchestratr app stop {app}`"
        )));
    }
    let as_json = a.json;
    let client = env.client()?;
    let h = client.get("/health", &env.paths)?;
    let pid = h["pid"].as_i64().unwrap_or(0) as i32;
    client.post("/shutdown", None, &env.paths)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while pid > 0 && pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if pid > 0 && pid_alive(pid) {
        return Err(CliError::failed(format!(
            "the daemon (pid {pid}) is still running after 60 s"
        )));
    }
    if as_json {
        out_json(&json!({"stopped": true, "pid": pid}));
    } else {
        out(&format!("orchestratr stopped (pid {pid})"));
    }
    Ok(EXIT_OK)
}

pub(super) fn reload(env: &Env, as_json: bool) -> Outcome {
    let (_, v) = env.client()?.post("/reload", None, &env.paths)?;
    if as_json {
        out_json(&v);
    } else {
        let list = |k: &str| {
            let xs: Vec<String> = v[k]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if xs.is_empty() {
                "-".to_string()
            } else {
                xs.join(", ")
            }
        };
        out(&format!(
            "reloaded: {} apps (added: {}; removed: {}; changed: {})",
            v["total"],
            list("added"),
            list("removed"),
            list("changed")
        ));
        for w in v["warnings"].as_array().into_iter().flatten() {
            err(&format!("warning: {}", w.as_str().unwrap_or("")));
        }
    }
    Ok(EXIT_OK)
}
