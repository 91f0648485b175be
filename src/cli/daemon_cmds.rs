//! `serve`, `start`, `stop`, `status`, and the app commands.

use super::{EXIT_FAIL, EXIT_NOT_RUNNING, EXIT_OK, Env, err, fail, out, out_json};
use crate::client::ClientError;
use crate::daemon::{self, RunOptions, Shutdown};
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(super) fn serve(env: &Env, port: Option<u16>) -> u8 {
    let level = std::env::var("ORCHESTRATR_LOG")
        .ok()
        .and_then(|l| crate::logging::parse_level(&l))
        .unwrap_or(log::LevelFilter::Info);
    crate::logging::init(level);
    let shutdown = Shutdown::new();
    if let Err(e) = daemon::install_signal_handler(&shutdown) {
        err(&format!("cannot install signal handlers: {e}"));
        return EXIT_FAIL;
    }
    match daemon::run(
        RunOptions {
            paths: env.paths.clone(),
            port,
        },
        shutdown,
    ) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            err(&e.to_string());
            e.exit_code()
        }
    }
}

/// `GET /health` of the discovered daemon, or the error.
fn health(env: &Env) -> Result<Value, ClientError> {
    env.client()?.get("/health", &env.paths)
}

pub(super) fn status(env: &Env, as_json: bool) -> u8 {
    match health(env) {
        Ok(h) => {
            let url = env.client().map(|c| c.base).unwrap_or_default();
            if as_json {
                out_json(&json!({"running": true, "pid": h["pid"], "port": h["port"],
                    "version": h["version"], "uptime_seconds": h["uptime_seconds"],
                    "apps": h["apps"], "url": url}));
            } else {
                out(&format!(
                    "orchestratr is running: pid {}, port {}, version {}, up {}s, {} apps",
                    h["pid"],
                    h["port"],
                    h["version"].as_str().unwrap_or("?"),
                    h["uptime_seconds"],
                    h["apps"]
                ));
            }
            EXIT_OK
        }
        Err(ClientError::NotRunning(m)) => {
            if as_json {
                out_json(&json!({"running": false, "reason": m}));
            } else {
                out("orchestratr is not running");
            }
            EXIT_NOT_RUNNING
        }
        Err(e) => fail(&e),
    }
}

fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub(super) fn start(env: &Env, port: Option<u16>, as_json: bool) -> u8 {
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
        return EXIT_OK;
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            err(&format!("cannot find my own executable: {e}"));
            return EXIT_FAIL;
        }
    };
    let paths = &env.paths;
    if let Err(e) = crate::fsutil::create_private_dir(&paths.state_dir) {
        err(&format!("cannot create {}: {e}", paths.state_dir.display()));
        return EXIT_FAIL;
    }
    let log_path = paths.log_file();
    let open_log = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
    };
    let (Ok(log_out), Ok(log_err)) = (open_log(), open_log()) else {
        err(&format!("cannot open log file {}", log_path.display()));
        return EXIT_FAIL;
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
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            err(&format!("cannot start the daemon: {e}"));
            return EXIT_FAIL;
        }
    };
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            err(&format!(
                "the daemon exited during start-up ({st}); last lines of {}:\n{}",
                log_path.display(),
                log_tail(&log_path, 10)
            ));
            return EXIT_FAIL;
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
            return EXIT_OK;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    err(&format!(
        "the daemon (pid {pid}) did not answer within 20 s; see {}",
        log_path.display()
    ));
    EXIT_FAIL
}

fn pid_alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

pub(super) fn stop(env: &Env, as_json: bool) -> u8 {
    let client = match env.client() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let pid = match client.get("/health", &env.paths) {
        Ok(h) => h["pid"].as_i64().unwrap_or(0) as i32,
        Err(e) => return fail(&e),
    };
    if let Err(e) = client.post("/shutdown", None, &env.paths) {
        return fail(&e);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while pid > 0 && pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if pid > 0 && pid_alive(pid) {
        err(&format!(
            "the daemon (pid {pid}) is still running after 60 s"
        ));
        return EXIT_FAIL;
    }
    if as_json {
        out_json(&json!({"stopped": true, "pid": pid}));
    } else {
        out(&format!("orchestratr stopped (pid {pid})"));
    }
    EXIT_OK
}

fn fmt_opt(v: &Value, suffix: &str) -> String {
    match v {
        Value::Null => "-".into(),
        Value::Number(n) => format!("{n}{suffix}"),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(super) fn apps(env: &Env, as_json: bool) -> u8 {
    let v = match env.client().and_then(|c| c.get("/apps", &env.paths)) {
        Ok(v) => v,
        Err(e) => return fail(&e),
    };
    if as_json {
        out_json(&v);
        return EXIT_OK;
    }
    let apps = v["apps"].as_array().cloned().unwrap_or_default();
    if apps.is_empty() {
        out("no apps registered (add them to config.yml or drop a manifest into apps.d/)");
        return EXIT_OK;
    }
    out(&format!(
        "{:<20} {:<9} {:>8} {:>9} {:>6}  {:<22} DESCRIPTION",
        "NAME", "STATUS", "PID", "MEM", "CPU%", "SOURCE"
    ));
    for a in apps {
        let st = &a["state"];
        let pid = if st["alive"] == Value::Bool(true) || st["alive"].is_null() {
            fmt_opt(&st["pid"], "")
        } else {
            "-".into()
        };
        out(&format!(
            "{:<20} {:<9} {:>8} {:>9} {:>6}  {:<22} {}",
            a["name"].as_str().unwrap_or("?"),
            st["status"].as_str().unwrap_or("?"),
            pid,
            fmt_opt(&st["memory_mb"], "M"),
            fmt_opt(&st["cpu_percent"], ""),
            a["source"].as_str().unwrap_or(""),
            a["description"].as_str().unwrap_or("")
        ));
    }
    EXIT_OK
}

fn app_path(name: &str, action: &str) -> String {
    let enc: String = form_urlencoded::byte_serialize(name.as_bytes()).collect();
    format!("/apps/{enc}/{action}")
}

pub(super) fn launch(env: &Env, name: &str, as_json: bool) -> u8 {
    match env
        .client()
        .and_then(|c| c.post(&app_path(name, "launch"), None, &env.paths))
    {
        Ok((_, v)) => {
            if as_json {
                out_json(&v);
            } else if v["status"] == "already_running" {
                out(&format!("{name} is already running (pid {})", v["pid"]));
            } else {
                out(&format!("launched {name} (pid {})", v["pid"]));
            }
            EXIT_OK
        }
        Err(e) => fail(&e),
    }
}

pub(super) fn stop_app(env: &Env, name: &str, as_json: bool) -> u8 {
    match env
        .client()
        .and_then(|c| c.post(&app_path(name, "stop"), None, &env.paths))
    {
        Ok((_, v)) => {
            if as_json {
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
                out(&format!("stopped {name} (pid {}, {how}{killed})", v["pid"]));
            }
            EXIT_OK
        }
        Err(e) => fail(&e),
    }
}

pub(super) fn reload(env: &Env, as_json: bool) -> u8 {
    match env
        .client()
        .and_then(|c| c.post("/reload", None, &env.paths))
    {
        Ok((_, v)) => {
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
            EXIT_OK
        }
        Err(e) => fail(&e),
    }
}
