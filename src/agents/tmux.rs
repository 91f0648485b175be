//! The private tmux server of agent sessions (API.md §10, DESIGN.md §5).
//!
//! Every command runs `tmux -S <state>/agents/tmux.sock -f <state>/agents/tmux.conf`
//! with `TMUX`/`TMUX_PANE` removed from its environment, so neither the user's
//! server nor their tmux.conf is ever touched. Sessions and panes are targeted
//! by id (`$N`, `%N`). Text is pasted with `load-buffer -` + `paste-buffer -p -d`
//! (never interpreted by a shell or by tmux key parsing).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Oldest supported tmux (major, minor).
pub const MIN_VERSION: (u32, u32) = (3, 2);

/// The server's own config: never the user's.
pub const CONF: &str = "\
# written by orchestratr; its private tmux server reads only this file
set -g remain-on-exit on
set -g history-limit 50000
set -g status off
set -g exit-empty on
set -g default-terminal tmux-256color
set -s escape-time 10
";

/// A tmux failure.
#[derive(Debug, Clone)]
pub enum TmuxError {
    /// tmux missing or older than [`MIN_VERSION`]: the version found (or `none`).
    Unsupported(String),
    /// A tmux command failed: what, and its stderr.
    Failed(String),
}

impl std::fmt::Display for TmuxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TmuxError::Unsupported(v) => write!(f, "tmux >= 3.2 is required (found: {v})"),
            TmuxError::Failed(m) => write!(f, "tmux: {m}"),
        }
    }
}

/// One pane as listed by `list-panes -a`.
#[derive(Debug, Clone, PartialEq)]
pub struct PaneInfo {
    /// `$N`.
    pub session_id: String,
    /// The session's `@orchestratr_id` tag ("" when untagged).
    pub tag: String,
    /// `%N`.
    pub pane_id: String,
    /// PID of the pane's first process (our `agent-exec` wrapper).
    pub pid: u32,
    /// `#{pane_dead}`.
    pub dead: bool,
}

/// Handle on the private server (cheap to clone).
#[derive(Debug, Clone)]
pub struct Tmux {
    /// The server socket.
    pub socket: PathBuf,
    conf: PathBuf,
    program: String,
}

/// Parse `tmux -V` output (`tmux 3.3a`, `tmux next-3.4`, `tmux master`) into
/// (major, minor); `master` counts as new enough.
pub fn parse_version(s: &str) -> Option<(u32, u32)> {
    let v = s.trim().strip_prefix("tmux ")?.trim();
    if v == "master" {
        return Some((99, 0));
    }
    let v = v.strip_prefix("next-").unwrap_or(v);
    let (maj, rest) = v.split_once('.')?;
    let minor: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((maj.parse().ok()?, minor.parse().ok()?))
}

impl Tmux {
    /// The server of state dir `<state>/agents` (`dir`); writes its config file.
    pub fn new(dir: &Path) -> Tmux {
        let conf = dir.join("tmux.conf");
        let _ = crate::fsutil::write_atomic_nosync(&conf, CONF.as_bytes(), 0o600);
        Tmux {
            socket: dir.join("tmux.sock"),
            conf,
            program: std::env::var("ORCHESTRATR_TMUX").unwrap_or_else(|_| "tmux".into()),
        }
    }

    /// The argv a person runs to attach to `target`.
    pub fn attach_argv(&self, target: &str) -> Vec<String> {
        vec![
            self.program.clone(),
            "-S".into(),
            self.socket.display().to_string(),
            "attach".into(),
            "-t".into(),
            target.into(),
        ]
    }

    /// Check the version. Errors: [`TmuxError::Unsupported`] with the version found.
    pub fn check_version(&self) -> Result<String, TmuxError> {
        let out = Command::new(&self.program)
            .arg("-V")
            .env_remove("TMUX")
            .env_remove("TMUX_PANE")
            .output()
            .map_err(|_| TmuxError::Unsupported("none".into()))?;
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        match parse_version(&s) {
            Some(v) if v >= MIN_VERSION => Ok(s),
            _ => Err(TmuxError::Unsupported(if s.is_empty() {
                "none".into()
            } else {
                s
            })),
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.arg("-S")
            .arg(&self.socket)
            .arg("-f")
            .arg(&self.conf)
            .env_remove("TMUX")
            .env_remove("TMUX_PANE")
            .stdin(Stdio::null());
        c
    }

    /// Run a tmux command; its stdout. Errors: [`TmuxError::Failed`] with stderr.
    pub fn run(&self, args: &[&str]) -> Result<String, TmuxError> {
        self.run_cmd(self.command(), args, None)
    }

    fn run_cmd(
        &self,
        mut c: Command,
        args: &[&str],
        input: Option<&[u8]>,
    ) -> Result<String, TmuxError> {
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        if input.is_some() {
            c.stdin(Stdio::piped());
        }
        let mut child = c
            .spawn()
            .map_err(|e| TmuxError::Failed(format!("cannot run tmux: {e}")))?;
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            let _ = stdin.write_all(data);
        }
        let out = child
            .wait_with_output()
            .map_err(|e| TmuxError::Failed(format!("tmux: {e}")))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(TmuxError::Failed(format!(
                "{} failed: {}",
                args.first().copied().unwrap_or(""),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Is the server up (answers `list-sessions`)?
    pub fn server_running(&self) -> bool {
        self.socket.exists() && self.run(&["list-sessions", "-F", "#{session_id}"]).is_ok()
    }

    /// Create a detached session `name` of `cols`x`rows` in `cwd` running `argv`,
    /// tagged `@orchestratr_id = name`. Returns `(session_id, pane_id, pane_pid)`.
    /// When the daemon runs under systemd and no server is up yet, the server is
    /// started inside its own `systemd-run --user --scope` so that restarting
    /// the daemon's unit does not kill it.
    pub fn new_session(
        &self,
        name: &str,
        cwd: &Path,
        cols: u16,
        rows: u16,
        argv: &[String],
    ) -> Result<(String, String, u32), TmuxError> {
        let (x, y) = (cols.to_string(), rows.to_string());
        let cwd_s = cwd.display().to_string();
        let mut args: Vec<&str> = vec![
            "new-session",
            "-d",
            "-P",
            "-F",
            "#{session_id}\t#{pane_id}\t#{pane_pid}",
            "-s",
            name,
            "-x",
            &x,
            "-y",
            &y,
            "-c",
            &cwd_s,
            "--",
        ];
        args.extend(argv.iter().map(String::as_str));
        let out = if under_systemd() && !self.server_running() {
            let mut c = Command::new("systemd-run");
            c.args(["--user", "--scope", "--quiet", "--collect", "--"])
                .arg(&self.program)
                .arg("-S")
                .arg(&self.socket)
                .arg("-f")
                .arg(&self.conf)
                .env_remove("TMUX")
                .env_remove("TMUX_PANE")
                .stdin(Stdio::null());
            // No user manager reachable (no lingering, no session bus): run
            // it plainly rather than not at all.
            match self.run_cmd(c, &args, None) {
                Ok(o) => o,
                Err(e) => {
                    log::warn!(
                        "systemd-run --user --scope failed ({e}); starting tmux without a scope"
                    );
                    self.run(&args)?
                }
            }
        } else {
            self.run(&args)?
        };
        let mut it = out.trim().split('\t');
        let (Some(s), Some(p), Some(pid)) = (it.next(), it.next(), it.next()) else {
            return Err(TmuxError::Failed(format!(
                "new-session printed '{}'",
                out.trim()
            )));
        };
        let pid = pid.parse().unwrap_or(0);
        self.run(&["set-option", "-t", s, "@orchestratr_id", name])?;
        Ok((s.to_string(), p.to_string(), pid))
    }

    /// Start copying every byte the pane writes into `log` (appending).
    pub fn pipe_pane(&self, pane: &str, log: &Path) -> Result<(), TmuxError> {
        let q = shell_quote(&log.display().to_string());
        self.run(&["pipe-pane", "-O", "-t", pane, &format!("exec cat >> {q}")])
            .map(|_| ())
    }

    /// Every pane of the server: an empty list when no server runs, `None`
    /// when tmux failed otherwise (then nothing can be concluded).
    pub fn list_panes(&self) -> Option<Vec<PaneInfo>> {
        if !self.socket.exists() {
            return Some(Vec::new());
        }
        let out = match self.run(&[
            "list-panes",
            "-a",
            "-F",
            "#{session_id}\t#{@orchestratr_id}\t#{pane_id}\t#{pane_pid}\t#{pane_dead}",
        ]) {
            Ok(o) => o,
            Err(TmuxError::Failed(m))
                if m.contains("no server running") || m.contains("error connecting to") =>
            {
                return Some(Vec::new());
            }
            Err(e) => {
                log::warn!("cannot list tmux panes: {e}");
                return None;
            }
        };
        Some(
            out.lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split('\t').collect();
                    (f.len() == 5).then(|| PaneInfo {
                        session_id: f[0].into(),
                        tag: f[1].into(),
                        pane_id: f[2].into(),
                        pid: f[3].parse().unwrap_or(0),
                        dead: f[4] == "1",
                    })
                })
                .collect(),
        )
    }

    /// Is `pane` alive (exists and its process has not exited)?
    pub fn pane_alive(&self, pane: &str) -> bool {
        self.run(&["display-message", "-p", "-t", pane, "#{pane_dead}"])
            .map(|s| s.trim() == "0")
            .unwrap_or(false)
    }

    /// Paste `text` literally into `pane` (bracketed paste if the app asked for it).
    pub fn paste(&self, pane: &str, text: &str) -> Result<(), TmuxError> {
        let buf = format!("orchestratr-{}", pane.trim_start_matches('%'));
        self.run_cmd(
            self.command(),
            &["load-buffer", "-b", &buf, "-"],
            Some(text.as_bytes()),
        )?;
        self.run(&["paste-buffer", "-p", "-d", "-b", &buf, "-t", pane])
            .map(|_| ())
    }

    /// Send tmux key names (`Enter`, `C-c`, `Up`) to `pane`.
    pub fn send_keys(&self, pane: &str, keys: &[String]) -> Result<(), TmuxError> {
        let mut args = vec!["send-keys", "-t", pane];
        args.extend(keys.iter().map(String::as_str));
        self.run(&args).map(|_| ())
    }

    /// The visible text only (one tmux call; what the status engine needs).
    pub fn capture_text(&self, pane: &str) -> Result<String, TmuxError> {
        self.run(&["capture-pane", "-p", "-J", "-t", pane])
    }

    /// The visible screen: `(text, cols, rows, cursor_x, cursor_y)`.
    pub fn capture(&self, pane: &str) -> Result<(String, u32, u32, u32, u32), TmuxError> {
        let text = self.run(&["capture-pane", "-p", "-J", "-t", pane])?;
        let dims = self.run(&[
            "display-message",
            "-p",
            "-t",
            pane,
            "#{pane_width} #{pane_height} #{cursor_x} #{cursor_y}",
        ])?;
        let n: Vec<u32> = dims
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let g = |i: usize| n.get(i).copied().unwrap_or(0);
        Ok((text, g(0), g(1), g(2), g(3)))
    }

    /// Kill a session (by id).
    pub fn kill_session(&self, session: &str) -> Result<(), TmuxError> {
        self.run(&["kill-session", "-t", session]).map(|_| ())
    }

    /// Kill the whole server (tests, never the daemon).
    pub fn kill_server(&self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Does the daemon run under systemd (a unit's `INVOCATION_ID` or
/// `NOTIFY_SOCKET`) with `systemd-run` available?
pub fn under_systemd() -> bool {
    (std::env::var_os("INVOCATION_ID").is_some() || std::env::var_os("NOTIFY_SOCKET").is_some())
        && std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("systemd-run").is_file()))
}

/// Quote for `/bin/sh` (single quotes).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("tmux 3.3a"), Some((3, 3)));
        assert_eq!(parse_version("tmux 2.7"), Some((2, 7)));
        assert_eq!(parse_version("tmux next-3.4"), Some((3, 4)));
        assert_eq!(parse_version("tmux master"), Some((99, 0)));
        assert_eq!(parse_version("garbage"), None);
        assert!(parse_version("tmux 3.2").unwrap() >= MIN_VERSION);
    }

    proptest::proptest! {
        #[test]
        fn version_parsing_never_panics(s in "(tmux )?[a-z0-9.-]{0,12}") {
            let _ = parse_version(&s);
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
    }
}
