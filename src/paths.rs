//! Where orchestratr keeps its files (API.md §1 "Config dir" / "State dir").

use std::path::PathBuf;

/// Environment variable overriding the config dir.
pub const CONFIG_DIR_ENV: &str = "ORCHESTRATR_CONFIG_DIR";
/// Environment variable overriding the state dir.
pub const STATE_DIR_ENV: &str = "ORCHESTRATR_STATE_DIR";

/// The config dir `<cfg>`: `$ORCHESTRATR_CONFIG_DIR` if set and non-empty, else the
/// platform config dir + `orchestratr` (Linux: `$XDG_CONFIG_HOME/orchestratr`, default
/// `~/.config/orchestratr`). Falls back to `./orchestratr-config` when the platform
/// has no home directory at all.
pub fn config_dir() -> PathBuf {
    match std::env::var_os(CONFIG_DIR_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => dirs::config_dir()
            .map(|d| d.join("orchestratr"))
            .unwrap_or_else(|| PathBuf::from("orchestratr-config")),
    }
}

/// The state dir `<state>`: `$ORCHESTRATR_STATE_DIR` if set and non-empty, else the
/// platform state dir + `orchestratr` (Linux: `~/.local/state/orchestratr`; platforms
/// without a state dir use the local data dir).
pub fn state_dir() -> PathBuf {
    match std::env::var_os(STATE_DIR_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => dirs::state_dir()
            .or_else(dirs::data_local_dir)
            .map(|d| d.join("orchestratr"))
            .unwrap_or_else(|| PathBuf::from("orchestratr-state")),
    }
}

/// The resolved locations of every file the daemon and the CLI share.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `<cfg>`: config.yml, apps.d/, port, token.
    pub config_dir: PathBuf,
    /// `<state>`: pid file, log file, later execution records.
    pub state_dir: PathBuf,
}

impl Paths {
    /// Resolve both dirs from the environment ([`config_dir`], [`state_dir`]).
    pub fn from_env() -> Self {
        Paths {
            config_dir: config_dir(),
            state_dir: state_dir(),
        }
    }
    /// `<cfg>/config.yml`.
    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join("config.yml")
    }
    /// `<cfg>/apps.d`, the drop-in manifests directory.
    pub fn apps_dir(&self) -> PathBuf {
        self.config_dir.join("apps.d")
    }
    /// `<cfg>/port`, the discovery file (decimal port + newline).
    pub fn port_file(&self) -> PathBuf {
        self.config_dir.join("port")
    }
    /// `<cfg>/token`, the bearer token (64 hex chars, mode 0600).
    pub fn token_file(&self) -> PathBuf {
        self.config_dir.join("token")
    }
    /// `<state>/orchestratr.pid`, the single-instance lock.
    pub fn pid_file(&self) -> PathBuf {
        self.state_dir.join("orchestratr.pid")
    }
    /// `<state>/orchestratr.log`, the log of a daemon started by `orchestratr start`.
    pub fn log_file(&self) -> PathBuf {
        self.state_dir.join("orchestratr.log")
    }
}
