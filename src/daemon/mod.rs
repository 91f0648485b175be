//! Daemon wiring and lifecycle: directories, the PID-file lock, first-start files
//! (default config, token), actor start-up, the HTTP listener and its port file,
//! the watcher, and graceful shutdown in a fixed order.
//!
//! Shutdown order (invariant): publish `daemon.stopping` → stop the watcher → drain
//! the executor (new runs 503, running ones get `shutdown_timeout_ms`, then are
//! killed) → stop the HTTP workers (listener closed) → stop executor, approvals,
//! registry and tracker → stop the bus (streams end) → join → remove the port file
//! → release and remove the PID file.

use crate::config::{self, ConfigError};
use crate::events::{Bus, NewEvent};
use crate::http::Ctx;
use crate::http::server::{self, HttpServer};
use crate::paths::Paths;
use crate::registry::Registry;
use crossbeam_channel::{Receiver, Sender, select, unbounded};
use nix::fcntl::{Flock, FlockArg};
use serde_json::json;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU16;
use std::time::{Duration, Instant};

/// Options of [`run`].
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Config and state dirs.
    pub paths: Paths,
    /// `--port`, overriding config `api_port` (`0` = any free port).
    pub port: Option<u16>,
}

/// A graceful-shutdown channel: any clone can trigger it (signal handler,
/// `POST /shutdown`, a test), [`run`] waits on it.
#[derive(Clone)]
pub struct Shutdown {
    tx: Sender<&'static str>,
    rx: Receiver<&'static str>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A new, untriggered channel.
    pub fn new() -> Self {
        let (tx, rx) = unbounded();
        Shutdown { tx, rx }
    }
    /// Ask the daemon to stop; `reason` is logged.
    pub fn trigger(&self, reason: &'static str) {
        let _ = self.tx.send(reason);
    }
}

/// Errors that end the daemon. [`DaemonError::exit_code`] gives the process exit code.
#[derive(Debug)]
pub enum DaemonError {
    /// Another daemon holds the PID-file lock.
    AlreadyRunning {
        /// PID written in the PID file (0 if unreadable).
        pid: u32,
        /// Port from the port file, if any.
        port: Option<u16>,
    },
    /// `config.yml` is invalid at start-up (exit code 2).
    Config(ConfigError),
    /// The token file exists but is not 64 hex characters (exit code 2).
    BadToken(PathBuf),
    /// A file or directory operation failed.
    Io {
        /// What we were doing.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Binding the listener failed.
    Bind(u16, io::Error),
    /// The listener died and could not be re-bound.
    ListenerDied(String),
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonError::AlreadyRunning { pid, port } => match port {
                Some(p) => write!(
                    f,
                    "already running (pid {pid}, port {p}); stop it with `orchestratr stop`"
                ),
                None => write!(
                    f,
                    "already running (pid {pid}); stop it with `orchestratr stop`"
                ),
            },
            DaemonError::Config(e) => write!(f, "{e}"),
            DaemonError::BadToken(p) => write!(
                f,
                "token file {} does not hold 64 hex characters; delete it to have a new one generated",
                p.display()
            ),
            DaemonError::Io { what, path, source } => {
                write!(f, "cannot {what} {}: {source}", path.display())
            }
            DaemonError::Bind(p, e) => write!(f, "cannot listen on 127.0.0.1:{p}: {e}"),
            DaemonError::ListenerDied(e) => {
                write!(f, "http listener died and could not be re-bound: {e}")
            }
        }
    }
}

impl std::error::Error for DaemonError {}

impl DaemonError {
    /// Process exit code: 2 for configuration problems, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::Config(_) | DaemonError::BadToken(_) => 2,
            _ => 1,
        }
    }
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DaemonError + 'a {
    move |source| DaemonError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Read the port file: `Some(port)` if it holds a decimal port.
pub fn read_port_file(path: &Path) -> Option<u16> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// How long start-up waits for the PID-file lock when the PID it names is gone.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// The PID-file lock (API.md §1): an exclusive `flock` held for the daemon's
/// lifetime. The lock, not the PID's liveness, decides; a file left by `kill -9`
/// is recovered because the kernel released its lock.
pub struct PidLock {
    file: Flock<File>,
    path: PathBuf,
}

impl PidLock {
    /// Take the lock and write our PID.
    ///
    /// Errors: [`DaemonError::AlreadyRunning`] when another process holds it;
    /// [`DaemonError::Io`] on file errors.
    pub fn acquire(path: &Path, port_file: &Path) -> Result<PidLock, DaemonError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err("open pid file", path))?;
        // A daemon killed with `kill -9` while forking a child leaves that
        // child holding the lock until it execs (a few ms): when the PID in the
        // file is gone, wait up to LOCK_GRACE for the lock instead of failing.
        let deadline = std::time::Instant::now() + LOCK_GRACE;
        let mut file = file;
        let mut lock = loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(l) => break l,
                Err((mut f, _errno)) => {
                    let mut s = String::new();
                    let _ = f.rewind();
                    let _ = f.read_to_string(&mut s);
                    let pid: u32 = s.trim().parse().unwrap_or(0);
                    let holder_alive = pid != 0 && crate::proc::pid_alive(pid);
                    if holder_alive || std::time::Instant::now() >= deadline {
                        return Err(DaemonError::AlreadyRunning {
                            pid,
                            port: read_port_file(port_file),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    file = f;
                }
            }
        };
        let mut old = String::new();
        let _ = lock.read_to_string(&mut old);
        if let Ok(stale) = old.trim().parse::<u32>() {
            log::info!(
                "removed stale pid file {} (pid {stale} is gone)",
                path.display()
            );
        }
        lock.set_len(0).map_err(io_err("truncate pid file", path))?;
        lock.rewind().map_err(io_err("rewind pid file", path))?;
        writeln!(lock, "{}", std::process::id()).map_err(io_err("write pid file", path))?;
        lock.sync_all().map_err(io_err("sync pid file", path))?;
        Ok(PidLock {
            file: lock,
            path: path.to_path_buf(),
        })
    }

    /// Remove the file, then release the lock.
    pub fn release(self) {
        let _ = fs::remove_file(&self.path);
        drop(self.file);
    }
}

/// Read the token file, or create it (32 random bytes as 64 lowercase hex chars,
/// mode 0600) if absent. A group/world-readable file is narrowed to 0600.
///
/// Errors: [`DaemonError::BadToken`] for a malformed file; [`DaemonError::Io`].
pub fn ensure_token(path: &Path) -> Result<String, DaemonError> {
    match fs::read_to_string(path) {
        Ok(s) => {
            let t = s.trim().to_string();
            if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(DaemonError::BadToken(path.to_path_buf()));
            }
            if let Ok(meta) = fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                log::warn!(
                    "token file {} was readable by others; setting mode 0600",
                    path.display()
                );
                let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
            }
            Ok(t)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| DaemonError::Io {
                what: "generate a token for",
                path: path.to_path_buf(),
                source: io::Error::other(e.to_string()),
            })?;
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            crate::fsutil::write_atomic(path, format!("{token}\n").as_bytes(), 0o600)
                .map_err(io_err("write token file", path))?;
            log::info!("created a new API token in {}", path.display());
            Ok(token)
        }
        Err(e) => Err(io_err("read token file", path)(e)),
    }
}

/// Run the daemon in the calling thread until `shutdown` is triggered or the
/// listener dies for good. Returns `Ok(())` after a clean shutdown (port file
/// removed, PID file released).
///
/// Errors: see [`DaemonError`]; nothing is left listening on error.
pub fn run(opts: RunOptions, shutdown: Shutdown) -> Result<(), DaemonError> {
    let started = Instant::now();
    server::raise_fd_limit();
    let paths = &opts.paths;
    crate::fsutil::create_private_dir(&paths.config_dir)
        .map_err(io_err("create config dir", &paths.config_dir))?;
    crate::fsutil::create_private_dir(&paths.state_dir)
        .map_err(io_err("create state dir", &paths.state_dir))?;
    let lock = PidLock::acquire(&paths.pid_file(), &paths.port_file())?;
    let result = run_locked(&opts, &shutdown, started);
    lock.release();
    result
}

fn run_locked(opts: &RunOptions, shutdown: &Shutdown, started: Instant) -> Result<(), DaemonError> {
    let paths = &opts.paths;
    if config::write_default_if_missing(&paths.config_dir)
        .map_err(io_err("write default config", &paths.config_file()))?
    {
        log::info!(
            "first start: wrote a commented default config to {}",
            paths.config_file().display()
        );
    }
    let cfg = config::load(&paths.config_dir).map_err(DaemonError::Config)?;
    if std::env::var_os("ORCHESTRATR_LOG").is_none() {
        log::set_max_level(cfg.settings.log_level);
    }
    for w in &cfg.warnings {
        log::warn!("{w}");
    }
    let token = ensure_token(&paths.token_file())?;
    let port = opts.port.unwrap_or(cfg.settings.api_port);

    let audit_path = paths.state_dir.join(crate::audit::FILE);
    let audit =
        crate::audit::AuditLog::open(&paths.state_dir, cfg.settings.security.audit_max_bytes)
            .map_err(io_err("open audit log", &audit_path))?;
    let (bus, bus_thread) = Bus::start(cfg.settings.event_buffer, cfg.settings.event_buffer_bytes);
    let security =
        crate::http::tokens::Security::start(&paths.config_dir, &token, audit, bus.clone());
    let settings_retention_approvals = cfg.settings.retention.approvals;
    let app_count = cfg.apps.len();
    let shutdown_grace = Duration::from_millis(cfg.exec.shutdown_timeout_ms);
    let (executor, executor_thread) = crate::executor::Executor::start(
        &paths.state_dir,
        cfg.exec.clone(),
        cfg.settings.retention.clone(),
        bus.clone(),
    );
    let (approvals, approvals_thread) = crate::approvals::Approvals::start(
        &paths.state_dir,
        bus.clone(),
        settings_retention_approvals,
    );
    let (agents, agents_thread) = crate::agents::Agents::start(
        &paths.state_dir,
        cfg.exec.clone(),
        bus.clone(),
        approvals.clone(),
    );
    crate::executor::live::resume(&executor, &agents);
    let agents_for_reload = agents.clone();
    let mcp_state = crate::mcp::McpState::new(cfg.exec.clone());
    let (exec_for_reload, approvals_for_reload) = (executor.clone(), approvals.clone());
    let mcp_for_reload = mcp_state.clone();
    let (registry, actor_threads) = Registry::start(
        cfg,
        paths.config_dir.clone(),
        paths.state_dir.clone(),
        bus.clone(),
        Box::new(move |c| {
            exec_for_reload.reconfigure(c.exec.clone(), c.settings.retention.clone());
            approvals_for_reload.set_retention(c.settings.retention.approvals);
            agents_for_reload.reconfigure(c.exec.clone());
            mcp_for_reload.set_exec(c.exec.clone());
        }),
    );
    let mut actor_threads = actor_threads;
    actor_threads.push(approvals_thread);
    actor_threads.push(executor_thread);
    actor_threads.push(agents_thread);
    let stop_actors = |registry: &Registry, bus: &Bus| {
        agents.shutdown();
        executor.stop();
        approvals.shutdown();
        registry.shutdown();
        bus.stop();
    };

    let (listener, fell_back) = match server::bind(port) {
        Ok(x) => x,
        Err(e) => {
            stop_actors(&registry, &bus);
            return Err(DaemonError::Bind(port, e));
        }
    };
    let bound = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    if fell_back {
        log::warn!("port {port} is taken; listening on {bound} instead (see the port file)");
    }
    let notify_state = crate::notify::NotifyState::default();
    if let Err(e) = crate::notify::worker::start(crate::notify::worker::Deps {
        bus: bus.clone(),
        registry: registry.clone(),
        approvals: approvals.clone(),
        state: notify_state.clone(),
        base_url: format!("http://127.0.0.1:{bound}"),
    }) {
        log::warn!("cannot start the notifier: {e}; notifications are off");
    }
    let ctx = Arc::new(Ctx {
        registry: registry.clone(),
        bus: bus.clone(),
        token,
        started,
        port: AtomicU16::new(bound),
        pid: std::process::id(),
        config_dir: paths.config_dir.clone(),
        state_dir: paths.state_dir.clone(),
        streams: Default::default(),
        shutdown: shutdown.tx.clone(),
        approvals: approvals.clone(),
        executor: executor.clone(),
        agents: agents.clone(),
        security,
        mcp: mcp_state,
        notify: notify_state.clone(),
    });
    let (dead_tx, dead_rx) = unbounded::<String>();
    let mut http = match HttpServer::start(listener, ctx.clone(), dead_tx.clone()) {
        Ok(h) => h,
        Err(e) => {
            stop_actors(&registry, &bus);
            return Err(DaemonError::ListenerDied(e));
        }
    };
    let port_file = paths.port_file();
    if let Err(e) = crate::fsutil::write_atomic(&port_file, format!("{bound}\n").as_bytes(), 0o644)
    {
        http.stop();
        stop_actors(&registry, &bus);
        return Err(io_err("write port file", &port_file)(e));
    }
    log::info!(
        "orchestratr {} listening on 127.0.0.1:{bound} (pid {}, {app_count} apps, config {})",
        crate::VERSION,
        std::process::id(),
        paths.config_dir.display()
    );
    // systemd Type=notify: ready once listening AND the port file is written.
    // A no-op without $NOTIFY_SOCKET (sd_notify(3)).
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    bus.emit(NewEvent::daemon(
        "daemon.started",
        None,
        json!({"pid": std::process::id(), "port": bound, "version": crate::VERSION}),
    ));
    let watcher = match crate::watcher::ConfigWatcher::start(&paths.config_dir, registry.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            log::warn!("{e}; hot reload is off (POST /reload still works)");
            None
        }
    };

    let mut refused = 0u32;
    loop {
        let dead: Option<String> = select! {
            recv(shutdown.rx) -> reason => {
                log::info!("shutting down ({})", reason.unwrap_or("signal"));
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
                break;
            }
            recv(dead_rx) -> err => Some(err.unwrap_or_default()),
            default(Duration::from_millis(LISTENER_PROBE_MS)) => {
                // Watchdog: any way the accept loop can die (even a panic inside
                // tiny_http) shows as "connection refused" on our own port.
                if listener_refuses(bound) {
                    refused += 1;
                } else {
                    refused = 0;
                }
                (refused >= 2).then(|| "the port refuses connections".to_string())
            }
        };
        let Some(err) = dead else { continue };
        refused = 0;
        log::error!("http listener died ({err}); re-binding 127.0.0.1:{bound}");
        http.stop();
        match rebind(bound, ctx.clone(), dead_tx.clone()) {
            Ok(h) => {
                http = h;
                log::info!("re-bound 127.0.0.1:{bound}");
            }
            Err(e) => {
                // Never stay up deaf: stop everything and exit non-zero.
                log::error!("{e}");
                drop(watcher);
                stop_actors(&registry, &bus);
                join_all(bus_thread, actor_threads);
                remove_port_file_if_ours(&port_file, bound);
                return Err(DaemonError::ListenerDied(e));
            }
        }
    }
    bus.emit(NewEvent::daemon(
        "daemon.stopping",
        None,
        json!({"pid": std::process::id()}),
    ));
    drop(watcher);
    // Running executions get shutdown_timeout_ms while the API still answers
    // (new executions get 503), then SIGTERM/SIGKILL (API.md §7 "Shutdown").
    executor.drain(shutdown_grace);
    http.stop();
    stop_actors(&registry, &bus);
    join_all(bus_thread, actor_threads);
    // Streams write their last frames (daemon.stopping) and end once the bus
    // stopped; give them a moment before the process exits under them.
    let streams_end = Instant::now() + Duration::from_secs(2);
    while ctx.streams.open() > 0 && Instant::now() < streams_end {
        std::thread::sleep(Duration::from_millis(10));
    }
    remove_port_file_if_ours(&port_file, bound);
    log::info!("stopped");
    Ok(())
}

/// How often the daemon checks that its own port still accepts connections.
pub const LISTENER_PROBE_MS: u64 = 2000;

/// `true` when connecting to our own port is refused (the listener is gone).
/// Other failures (e.g. EMFILE on our side, a timeout under load) are not counted.
fn listener_refuses(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        Ok(_) => false,
        Err(e) => e.kind() == io::ErrorKind::ConnectionRefused,
    }
}

fn rebind(port: u16, ctx: Arc<Ctx>, dead: Sender<String>) -> Result<HttpServer, String> {
    let mut last = String::new();
    for _ in 0..20 {
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => return HttpServer::start(l, ctx, dead),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("cannot re-bind 127.0.0.1:{port}: {last}"))
}

fn join_all(bus_thread: std::thread::JoinHandle<()>, actors: Vec<std::thread::JoinHandle<()>>) {
    for t in actors {
        let _ = t.join();
    }
    let _ = bus_thread.join();
}

fn remove_port_file_if_ours(path: &Path, port: u16) {
    if read_port_file(path) == Some(port) {
        let _ = fs::remove_file(path);
    }
}

/// Install SIGINT/SIGTERM/SIGHUP handling that triggers `shutdown` (via `ctrlc`
/// with its `termination` feature). Call once per process.
///
/// Errors: `ctrlc`'s message if a handler is already installed.
pub fn install_signal_handler(shutdown: &Shutdown) -> Result<(), String> {
    let s = shutdown.clone();
    ctrlc::set_handler(move || s.trigger("signal")).map_err(|e| e.to_string())
}

/// Used by tests and `status`: the port the daemon listens on, if it is running.
pub fn running_port(paths: &Paths) -> Option<u16> {
    read_port_file(&paths.port_file())
}
