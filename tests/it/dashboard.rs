//! `orchestratr dashboard` driven in a real terminal: tmux (`send-keys` to
//! type, `capture-pane` to read the screen) against the real daemon. Polls with
//! deadlines, never fixed sleeps. With `UPDATE_CAPTURES=1` the screens are
//! written to `docs/dashboard/*.txt` for the README.

use crate::common;

use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: the machine running the tests may be loaded.
const SCREEN: Duration = Duration::from_secs(20);

const SLOW: &str =
    "echo slow-start; i=0; while [ $i -lt 3000 ]; do echo tick-$i; i=$((i+1)); sleep 0.1; done";
const HOSTILE: &str = "before\\n\\033[2J\\033[H\\033]0;pwned\\007\\007\\033[10;40Hmoved\\033]52;c;cHduZWQ=\\007\\033[31mred\\033[0m hostile-done\\n";

fn config() -> String {
    format!(
        "tasks:\n  - name: slow\n    command: {}\n  - name: fail\n    command: {}\n  - name: hostile\n    command: {}\n  - name: greet\n    command: {}\n    allow_args: true\nshutdown_timeout_ms: 500\n",
        json!(["sh", "-c", SLOW]),
        json!(["sh", "-c", "echo failing; exit 3"]),
        json!(["printf", HOSTILE]),
        json!(["echo", "hello"]),
    )
}

/// A private tmux server running the dashboard in a 120×40 pane.
struct Tmux {
    sock: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    fn start(d: &Daemon, args: &[&str]) -> Tmux {
        Tmux::start_sized(d, args, 120, 40)
    }

    fn start_sized(d: &Daemon, args: &[&str], w: u16, h: u16) -> Tmux {
        let dir = tempfile::Builder::new()
            .prefix("orchestratr-tmux-")
            .tempdir()
            .expect("tempdir");
        let sock = dir.path().join("sock");
        let conf = dir.path().join("tmux.conf");
        std::fs::write(&conf, "set -g remain-on-exit on\nset -g status off\n").expect("conf");
        // The shell stays after the dashboard exits, so the pane is alive and
        // its modes (alternate screen, cursor) are what the dashboard left.
        let mut cmd = format!("{BIN} dashboard");
        for a in args {
            cmd.push(' ');
            cmd.push_str(a);
        }
        cmd.push_str("; echo dashboard-exit=$?; exec sleep 600");
        let env = [
            format!("ORCHESTRATR_URL={}", d.url()),
            format!("ORCHESTRATR_TOKEN={}", d.token),
            format!("ORCHESTRATR_CONFIG_DIR={}", d.cfg_dir.display()),
            format!("ORCHESTRATR_STATE_DIR={}", d.state_dir.display()),
            "TERM=xterm-256color".to_string(),
        ];
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&sock).arg("-f").arg(&conf);
        c.args([
            "new-session",
            "-d",
            "-s",
            "dash",
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
        ]);
        for e in &env {
            c.args(["-e", e]);
        }
        c.arg(&cmd).env_remove("TMUX").env_remove("TMUX_PANE");
        let st = c.status().expect("run tmux");
        assert!(st.success(), "tmux new-session failed: {st}");
        Tmux { sock, _dir: dir }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .arg("-S")
            .arg(&self.sock)
            .args(args)
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut a = vec!["send-keys", "-t", "dash"];
        a.extend_from_slice(keys);
        self.tmux(&a);
    }

    fn capture(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "dash"])
    }

    fn format(&self, f: &str) -> String {
        self.tmux(&["display-message", "-p", "-t", "dash", f])
            .trim()
            .to_string()
    }

    /// Wait until the screen satisfies `f`; panics with the screen otherwise.
    fn wait(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.capture();
            if f(&s) {
                return s;
            }
            if start.elapsed() > SCREEN {
                panic!("screen never showed {what}; last screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_text(&self, text: &str) -> String {
        self.wait(text, |s| s.contains(text))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

fn save_capture(name: &str, screen: &str) {
    if std::env::var_os("UPDATE_CAPTURES").is_none() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard");
    std::fs::create_dir_all(&dir).expect("docs/dashboard");
    let text: Vec<&str> = screen.lines().map(str::trim_end).collect();
    std::fs::write(dir.join(format!("{name}.txt")), text.join("\n") + "\n").expect("write capture");
}

fn submit(d: &Daemon, task: &str) -> String {
    let (st, v) = d.post_json_auth("/executions", &json!({"task": task}));
    assert_eq!(st, 202, "{v}");
    v["id"].as_str().expect("id").to_string()
}

fn execution(d: &Daemon, id: &str) -> Value {
    let r = d.request(
        "GET",
        &format!("/executions/{id}"),
        &[("Authorization", &d.auth_header())],
        b"",
    );
    r.json()
}

fn wait_status(d: &Daemon, id: &str, want: &str) {
    wait_for(DEADLINE, &format!("{id} {want}"), || {
        execution(d, id)["status"] == want
    });
}

fn list(d: &Daemon, path: &str, key: &str) -> Vec<Value> {
    let r = d.request("GET", path, &[("Authorization", &d.auth_header())], b"");
    r.json()[key].as_array().cloned().unwrap_or_default()
}

/// The number after `label` on the line that starts with it.
fn figure(screen: &str, label: &str) -> Option<String> {
    screen
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .and_then(|l| {
            l.trim_start()[label.len()..]
                .split_whitespace()
                .next()
                .map(str::to_string)
        })
}

#[test]
fn overview_counts_match_the_api_and_q_restores_the_terminal() {
    let d = Daemon::start(&config());
    let failed = submit(&d, "fail");
    wait_status(&d, &failed, "failed");
    let slow = submit(&d, "slow");
    wait_status(&d, &slow, "running");
    let (st, _) = d.post_json_auth(
        "/approvals",
        &json!({"title": "Ship it?", "source": "test"}),
    );
    assert_eq!(st, 201);
    let t = Tmux::start(&d, &[]);
    let screen = t.wait("the counts", |s| {
        figure(s, "pending approvals").as_deref() == Some("1")
            && figure(s, "failed runs since daemon start").as_deref() == Some("1")
    });
    // The same figures from the API.
    let pending = list(&d, "/approvals?status=pending", "approvals").len();
    let execs = list(&d, "/executions", "executions");
    let failed_n = execs.iter().filter(|e| e["status"] == "failed").count();
    let running = execs.iter().filter(|e| e["status"] == "running").count();
    assert_eq!(
        figure(&screen, "pending approvals"),
        Some(pending.to_string())
    );
    assert_eq!(
        figure(&screen, "failed runs since daemon start"),
        Some(failed_n.to_string())
    );
    assert_eq!(
        figure(&screen, "default"),
        Some(running.to_string()),
        "{screen}"
    );
    let apps = list(&d, "/apps", "apps").len();
    assert!(screen.contains(&format!("of {apps}")), "{screen}");
    assert!(screen.contains("● live"), "{screen}");
    save_capture("overview", &screen);

    // Help lists keys one per line.
    t.keys(&["?"]);
    let help = t.wait_text("keys (any key closes");
    assert!(help.contains("approve the selected approval"), "{help}");
    save_capture("help", &help);
    t.keys(&["Escape"]);
    t.wait("help closed", |s| !s.contains("keys (any key closes"));

    assert_eq!(t.format("#{alternate_on}"), "1");
    t.keys(&["q"]);
    t.wait_text("dashboard-exit=0");
    assert_eq!(
        t.format("#{alternate_on}"),
        "0",
        "alternate screen left behind"
    );
    assert_eq!(t.format("#{cursor_flag}"), "1", "cursor left hidden");
    let _ = d.post_json_auth(&format!("/executions/{slow}/cancel"), &json!({}));
}

#[test]
fn an_approval_appears_and_is_approved_on_screen() {
    let d = Daemon::start(&config());
    let t = Tmux::start(&d, &[]);
    t.keys(&["2"]);
    t.wait_text("approvals: 0");
    let mut ask = d.dirs.command();
    ask.args([
        "--url",
        &d.url(),
        "--token",
        &d.token,
        "ask",
        "--title",
        "Deploy to prod?",
        "--detail",
        "v1.2.3",
        "--source",
        "tmux-test",
    ]);
    let mut ask = ChildGuard::spawn(ask.stdout(Stdio::null()).stderr(Stdio::null()));
    let t0 = Instant::now();
    let screen = t.wait_text("Deploy to prod?");
    eprintln!("approval on screen after {:?}", t0.elapsed());
    assert!(
        screen.contains("tmux-test") && screen.contains("pending"),
        "{screen}"
    );
    save_capture("approvals", &screen);
    t.keys(&["a"]);
    let st = poll_exit(&mut ask.0, SCREEN).expect("ask returns after the approval");
    assert_eq!(st.code(), Some(0), "ask exits 0 when approved");
    let a = &list(&d, "/approvals", "approvals")[0];
    assert_eq!(a["status"], "approved");
    assert_eq!(a["decided_by"], "dashboard");
    t.wait("the decision shown", |s| {
        s.contains("approved") && s.contains("by dashboard")
    });

    // A decision made elsewhere shows at once; a late answer on screen is told who won.
    let (_, b) = d.post_json_auth("/approvals", &json!({"title": "Second?", "source": "x"}));
    let id = b["id"].as_str().expect("id").to_string();
    t.wait_text("Second?");
    let (st, _) = d.post_json_auth(
        &format!("/approvals/{id}"),
        &json!({"decision": "deny", "by": "phone"}),
    );
    assert_eq!(st, 200);
    t.wait("the other decision", |s| {
        s.contains("denied") && s.contains("by phone")
    });
    t.keys(&["g", "a"]);
    t.wait_text("already denied by phone");
}

#[test]
fn read_only_hides_and_refuses_actions() {
    let d = Daemon::start(&config());
    let (_, a) = d.post_json_auth("/approvals", &json!({"title": "Nope?", "source": "x"}));
    let t = Tmux::start(&d, &["--read-only"]);
    t.keys(&["2"]);
    t.wait_text("Nope?");
    t.keys(&["a"]);
    t.wait_text("read-only: actions are disabled");
    t.keys(&["?"]);
    let help = t.wait_text("keys (any key closes");
    assert!(!help.contains("approve the selected"), "{help}");
    let id = a["id"].as_str().expect("id");
    let now = d.request(
        "GET",
        &format!("/approvals/{id}"),
        &[("Authorization", &d.auth_header())],
        b"",
    );
    assert_eq!(now.json()["status"], "pending");
}

#[test]
fn live_output_then_cancel_and_retry_from_the_screen() {
    let d = Daemon::start(&config());
    let t = Tmux::start(&d, &[]);
    t.keys(&["3"]);
    t.wait_text("executions: 0");
    let id = submit(&d, "slow");
    // Newest first: the new run is selected and its output follows live.
    t.wait(&format!("{id} running"), |s| {
        s.contains(&id) && s.contains("running")
    });
    let screen = t.wait("ticks in the pane", |s| s.contains("tick-3"));
    assert!(screen.contains("slow-start"), "{screen}");
    let later = t.wait("more ticks, no key pressed", |s| s.contains("tick-12"));
    save_capture("executions", &later);
    t.keys(&["x"]);
    wait_status(&d, &id, "cancelled");
    t.wait("cancelled on screen", |s| s.contains("cancelled"));
    t.keys(&["R"]);
    let retry = wait_some(SCREEN, "a retry of the run", || {
        list(&d, "/executions", "executions")
            .into_iter()
            .find(|e| e["retry_of"] == id.as_str())
    });
    let rid = retry["id"].as_str().expect("id").to_string();
    t.wait_text(&rid);
    let _ = d.post_json_auth(&format!("/executions/{rid}/cancel"), &json!({}));

    // Submit from the screen: pick `greet` (allow_args) and give an argument.
    let tasks = list(&d, "/tasks", "tasks");
    let pos = tasks
        .iter()
        .position(|t| t["name"] == "greet")
        .expect("greet in /tasks");
    t.keys(&["n"]);
    t.wait_text("run which task?");
    for _ in 0..pos {
        t.keys(&["j"]);
    }
    t.keys(&["Enter"]);
    t.wait_text("args for greet");
    t.keys(&["-l", "from-the-dashboard"]);
    t.keys(&["Enter"]);
    let run = wait_some(SCREEN, "the submitted run", || {
        list(&d, "/executions?task=greet", "executions")
            .into_iter()
            .next()
    });
    assert_eq!(run["argv"], json!(["echo", "hello", "from-the-dashboard"]));
}

#[test]
fn hostile_output_cannot_corrupt_the_screen() {
    let d = Daemon::start(&config());
    let t = Tmux::start(&d, &[]);
    let title_before = t.format("#{pane_title}");
    t.keys(&["3"]);
    t.wait_text("executions: 0");
    let id = submit(&d, "hostile");
    wait_status(&d, &id, "completed");
    let screen = t.wait("the hostile output", |s| s.contains("hostile-done"));
    let lines: Vec<&str> = screen.lines().collect();
    assert!(
        lines[0].starts_with("orchestratr 1:overview"),
        "tab line intact:\n{screen}"
    );
    assert!(lines[1].contains("executions: 1"), "{screen}");
    assert!(screen.contains("? help"), "bottom line intact:\n{screen}");
    assert!(screen.contains(&id), "{screen}");
    // The cursor move stayed inside the pane: "moved" is inside its border.
    let moved = lines
        .iter()
        .find(|l| l.contains("moved"))
        .expect("moved text");
    assert!(
        moved.starts_with('│') && moved.trim_end().ends_with('│'),
        "{moved}"
    );
    let title = t.format("#{pane_title}");
    assert_ne!(title, "pwned");
    assert_eq!(title, title_before);
    save_capture("hostile", &screen);
}

#[test]
fn reconnects_after_a_daemon_restart_without_a_key() {
    let d = Daemon::start(&config());
    let port = d.port;
    let t = Tmux::start(&d, &[]);
    t.wait_text("● live");
    d.publish("test.before", "tmux-test", json!({}));
    t.wait_text("test.before");
    let dirs = d.stop_into_dirs();
    let down = t.wait_text("reconnecting…");
    save_capture("reconnecting", &down);
    let d2 = Daemon::start_in(dirs, &["--port", &port.to_string()]);
    t.wait_text("● live");
    d2.publish("test.after-restart", "tmux-test", json!({}));
    t.wait_text("test.after-restart");
}

#[test]
fn small_and_wide_terminals() {
    let d = Daemon::start(&config());
    let id = submit(&d, "fail");
    wait_status(&d, &id, "failed");
    let t = Tmux::start_sized(&d, &[], 80, 24);
    t.keys(&["3"]);
    let s = t.wait_text(&id);
    assert!(s.lines().count() <= 24);
    assert!(s.lines().next().unwrap_or("").contains("5:apps"), "{s}");
    t.tmux(&["resize-window", "-t", "dash", "-x", "200", "-y", "50"]);
    let wide = t.wait("the wide layout", |s| {
        s.lines().next().is_some_and(|l| l.trim_end().len() > 150)
    });
    assert!(wide.contains("failing"), "{wide}");
    save_capture("executions-200", &wide);

    // SIGTERM (e.g. a closed ssh session) restores the terminal too.
    let shell: u32 = t.format("#{pane_pid}").parse().expect("pane pid");
    let dash = wait_some(SCREEN, "the dashboard process", || {
        let o = Command::new("pgrep")
            .args(["-P", &shell.to_string()])
            .output()
            .ok()?;
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()?
            .parse::<i64>()
            .ok()
    });
    assert!(send_signal(dash, "TERM"));
    t.wait_text("dashboard-exit=0");
    assert_eq!(
        t.format("#{alternate_on}"),
        "0",
        "alternate screen left behind"
    );
    assert_eq!(t.format("#{cursor_flag}"), "1", "cursor left hidden");
}

#[test]
fn task_catalog_and_agent_types_routes() {
    let d = Daemon::start(&format!(
        "{}agents:\n  claude:\n    delegate: [\"echo\", \"{{prompt}}\"]\n",
        config()
    ));
    let auth = [("Authorization", d.auth_header())];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(d.get("/tasks").status, 401, "a token route");
    let r = d.request("GET", "/api/tasks", &auth, b"");
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["total"], 4);
    let greet = v["tasks"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "greet"))
        .cloned()
        .expect("greet");
    assert_eq!(
        greet,
        json!({"name":"greet","description":null,"command":["echo","hello"],"pool":"default","allow_args":true,"mcp":false})
    );
    let r = d.request("GET", "/agent-types", &auth, b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"agent_types":[{"name":"claude","interactive":null,"delegate":["echo","{prompt}"],"max_sessions":null}],"total":1})
    );
    // A ticket is still at /tasks/{id}.
    let id = submit(&d, "fail");
    let r = d.request("GET", &format!("/tasks/{id}"), &auth, b"");
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["ticket_id"], id.as_str());
}

fn agents_config(ws: &Path) -> String {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/standin_agent.py");
    format!(
        "workspaces: [\"{}\"]\nagents:\n  standin:\n    interactive: [\"python3\", \"{}\"]\n    detect: shell\n    prompt_patterns: [\"(y/n)\"]\n    idle_after_ms: 700\n    submit_delay_ms: 50\n",
        ws.display(),
        fx.display()
    )
}

/// Kills the daemon's private tmux server (the agents') when dropped.
struct AgentsTmux(PathBuf);
impl Drop for AgentsTmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.0)
            .arg("kill-server")
            .env_remove("TMUX")
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn an_agent_terminal_input_line_and_waiting_highlight() {
    let dirs = Dirs::new();
    let ws = dirs.scratch().join("ws");
    std::fs::create_dir_all(&ws).expect("ws");
    dirs.write("config.yml", &agents_config(&ws));
    let sock = dirs.state.join("agents/tmux.sock");
    let d = Daemon::start_in(dirs, &[]);
    // Declared after the daemon so it drops first, while the socket still exists.
    let _agents = AgentsTmux(sock);
    let log = ws.join("standin.txt");
    let (st, a) = d.post_json_auth(
        "/agents/spawn",
        &json!({"agent_type": "standin", "working_dir": ws, "name": "dash",
                "env": {"STANDIN_LOG": log}}),
    );
    assert_eq!(st, 201, "{a}");
    let id = a["session_id"].as_str().expect("session id").to_string();
    let t = Tmux::start(&d, &[]);
    t.keys(&["4"]);
    t.wait_text(&id);
    // The agent's own terminal, rendered in the pane.
    t.wait_text("ready>");
    t.keys(&["i"]);
    t.wait_text(&format!("to {id}"));
    t.keys(&["-l", "hello-from-dashboard"]);
    t.keys(&["Enter"]);
    wait_for(SCREEN, "the typed line to reach the agent", || {
        std::fs::read_to_string(&log).is_ok_and(|s| s.contains("hello-from-dashboard"))
    });
    t.keys(&["-l", "ask"]);
    t.keys(&["Enter"]);
    t.keys(&["Escape"]);
    let screen = t.wait("the agent waiting", |s| {
        s.contains("Proceed? (y/n)") && s.lines().any(|l| l.contains(&id) && l.contains("waiting"))
    });
    save_capture("agents", &screen);
    // Highlighted: the waiting row is drawn yellow (or bold under NO_COLOR).
    let styled = t.tmux(&["capture-pane", "-p", "-e", "-t", "dash"]);
    let row = styled
        .lines()
        .find(|l| l.contains(&id) && l.contains("waiting"))
        .expect("waiting row");
    assert!(
        row.contains("38;5;3m") || row.contains("\u{1b}[33m") || row.contains("\u{1b}[1m"),
        "{row:?}"
    );
    t.keys(&["1"]);
    let over = t.wait("the overview count", |s| {
        figure(s, "agents waiting for a person").as_deref() == Some("1")
    });
    assert!(over.contains("4:agents(1!)"), "{over}");
    let _ = d.request(
        "DELETE",
        &format!("/agents/{id}"),
        &[("Authorization", &d.auth_header())],
        b"",
    );
}
