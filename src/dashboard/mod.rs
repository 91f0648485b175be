//! `orchestratr dashboard` (alias `top`): a terminal UI over the daemon's API
//! (issue 11, API.md §13). A client like any other: one resumable event stream
//! (`GET /events/stream`, §5) plus the list routes, actions through the
//! ordinary routes with the user's token. Built on ratatui + crossterm (the
//! field's standard TUI pair; ratatui 0.29 keeps our MSRV 1.85) and vt100 (a
//! terminal emulator: untrusted output becomes cells, DESIGN.md §5).
//!
//! Threads: keyboard, event stream, request worker, one output stream for the
//! pane (`feed.rs`); this file owns the terminal and the redraw loop (at most
//! one frame per 33 ms, only when something changed).

mod feed;
pub mod keys;
pub mod render;
pub mod state;
pub mod term;
#[cfg(test)]
mod tests;
pub mod views;

use crate::client::Client;
use crate::paths::Paths;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};
use crossterm::event::Event;
use crossterm::{cursor, execute, terminal};
use feed::{Job, Msg};
use keys::Effect;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use state::{App, Conn, Pane, View};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Options of `orchestratr dashboard`.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Config/state directories (port and token discovery).
    pub paths: Paths,
    /// `--url`, if given.
    pub url: Option<String>,
    /// `--token`, if given.
    pub token: Option<String>,
    /// `--read-only`: hide and refuse every action.
    pub read_only: bool,
}

/// Shortest time between two frames (≈30 frames a second at most).
pub const FRAME: Duration = Duration::from_millis(33);

/// Output bytes replayed when the pane opens on a run (the rest is skipped).
const REPLAY_BYTES: u64 = 256 * 1024;

/// Puts the terminal back (raw mode off, main screen, cursor shown).
fn restore() {
    let _ = terminal::disable_raw_mode();
    let mut out = std::io::stdout();
    let _ = execute!(out, terminal::LeaveAlternateScreen, cursor::Show);
    let _ = out.flush();
}

/// Restores the terminal when dropped: on return, on error and on unwind.
struct TermGuard;
impl Drop for TermGuard {
    fn drop(&mut self) {
        restore();
    }
}

fn enter() -> std::io::Result<TermGuard> {
    terminal::enable_raw_mode()?;
    let guard = TermGuard;
    execute!(
        std::io::stdout(),
        terminal::EnterAlternateScreen,
        cursor::Hide
    )?;
    Ok(guard)
}

/// Run the dashboard until the person quits. Returns the CLI exit code
/// (0; 3 when no daemon can be found; 1 when the terminal cannot be used).
pub fn run(opts: Opts) -> u8 {
    let client = match Client::discover(&opts.paths, opts.url.as_deref(), opts.token.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("orchestratr: {e}");
            return e.exit_code();
        }
    };
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        prev(info);
    }));
    let guard = match enter() {
        Ok(g) => g,
        Err(e) => {
            restore();
            eprintln!("orchestratr: cannot use this terminal: {e}");
            return 1;
        }
    };
    let code = match main_loop(client, &opts, color) {
        Ok(()) => 0,
        Err(e) => {
            drop(guard);
            eprintln!("orchestratr: dashboard: {e}");
            return 1;
        }
    };
    drop(guard);
    code
}

struct Loop {
    client: Client,
    paths: Paths,
    tx: Sender<Msg>,
    jobs: Sender<Job>,
    generation: Arc<AtomicU64>,
    paused: Arc<AtomicBool>,
    idle: Arc<AtomicBool>,
    app_log_for: Option<String>,
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("dashboard-{name}"))
        .spawn(f)
        .map(|_| ())
}

fn main_loop(client: Client, opts: &Opts, color: bool) -> std::io::Result<()> {
    let (tx, rx): (Sender<Msg>, Receiver<Msg>) = unbounded();
    let (jobs, job_rx) = unbounded();
    let paused = Arc::new(AtomicBool::new(false));
    let idle = Arc::new(AtomicBool::new(false));
    {
        let (c, p, t) = (client.clone(), opts.paths.clone(), tx.clone());
        spawn("worker", move || feed::worker(c, p, job_rx, t))?;
        let (c, p, t) = (client.clone(), opts.paths.clone(), tx.clone());
        spawn("events", move || feed::events(c, p, t))?;
        let (t, pa, id) = (tx.clone(), paused.clone(), idle.clone());
        spawn("input", move || feed::input(t, pa, id))?;
        // SIGTERM/SIGHUP (a closed ssh session) and SIGINT end the loop like
        // `q`, so the guard restores the terminal; an error only means a
        // handler is already set in this process.
        let t = tx.clone();
        let _ = ctrlc::set_handler(move || {
            let _ = t.send(Msg::Quit);
        });
    }
    let mut lp = Loop {
        client: client.clone(),
        paths: opts.paths.clone(),
        tx,
        jobs,
        generation: Arc::new(AtomicU64::new(0)),
        paused,
        idle,
        app_log_for: None,
    };
    let mut app = App::new(&client.base, opts.read_only, color);
    lp.send(&mut app, Job::Refresh);
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    terminal.clear()?;
    let mut last_draw = Instant::now() - FRAME;
    loop {
        let wait = if app.dirty {
            FRAME.saturating_sub(last_draw.elapsed())
        } else {
            Duration::from_secs(1)
        };
        match rx.recv_timeout(wait) {
            Ok(m) => {
                let mut quit = lp.handle(&mut app, m, &mut terminal)?;
                // Apply everything already queued before drawing once.
                while !quit && let Ok(m) = rx.try_recv() {
                    quit = lp.handle(&mut app, m, &mut terminal)?;
                }
                if quit {
                    return Ok(());
                }
                lp.sync_pane(&mut app);
            }
            Err(RecvTimeoutError::Timeout) => {
                // Messages expire on the bottom line.
                if app
                    .message
                    .as_ref()
                    .is_some_and(|(_, at)| at.elapsed() > Duration::from_secs(8))
                {
                    app.message = None;
                    app.dirty = true;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        if app.dirty && last_draw.elapsed() >= FRAME {
            terminal.draw(|f| render::draw(f, &mut app))?;
            app.dirty = false;
            last_draw = Instant::now();
        }
    }
}

type Term = Terminal<CrosstermBackend<std::io::Stdout>>;

impl Loop {
    /// Queue a job; a re-read of every list starts the event journal.
    fn send(&self, app: &mut App, j: Job) {
        if matches!(j, Job::Refresh) {
            app.refreshes += 1;
            if app.journal.is_none() {
                app.journal = Some(Vec::new());
            }
        }
        let _ = self.jobs.send(j);
    }

    /// Apply one message; `Ok(true)` to quit.
    fn handle(&mut self, app: &mut App, m: Msg, term: &mut Term) -> std::io::Result<bool> {
        match m {
            Msg::Input(Event::Key(k)) => {
                for e in keys::key(app, k) {
                    match e {
                        Effect::Quit => return Ok(true),
                        Effect::Job(j) => self.send(app, j),
                        Effect::Attach(id) => self.attach(app, &id, term)?,
                    }
                }
            }
            Msg::Input(Event::Resize(..)) => {
                term.autoresize()?;
                app.dirty = true;
            }
            Msg::Input(_) => {}
            Msg::Quit => return Ok(true),
            Msg::Agent(v) => {
                if let Some(a) = app
                    .agents
                    .iter_mut()
                    .flatten()
                    .find(|a| a["session_id"] == v["session_id"])
                {
                    *a = v;
                    app.dirty = true;
                }
            }
            Msg::RefreshFailed(why) => {
                app.replay_journal();
                app.say(why);
            }
            Msg::Conn(c) => {
                if c == Conn::Live {
                    // A restarted daemon numbers events afresh and events may
                    // have been missed: read the lists again.
                    self.send(app, Job::Refresh);
                }
                app.conn = c;
                app.dirty = true;
            }
            Msg::Event(ev) => {
                if let Some(what) = app.apply_event(&ev) {
                    let _ = self.jobs.send(Job::Reread(what));
                }
                // Memory and CPU come with one agent, not the list.
                if ev["type"].as_str().is_some_and(|t| t.starts_with("agent."))
                    && app.view == View::Agents
                    && let Some(id) = app.selected_id()
                {
                    let _ = self.jobs.send(Job::Agent(id));
                }
            }
            Msg::Lists(l) => {
                app.apps = l.apps;
                app.executions = l.executions;
                app.approvals = l.approvals;
                app.agents = l.agents;
                app.tasks = l.tasks;
                app.daemon_started = l.started;
                app.replay_journal();
                app.dirty = true;
            }
            Msg::List(what, l) => {
                match what {
                    "agents" => {
                        // The list leaves out memory and CPU: keep what
                        // `GET /agents/{id}` told us.
                        let mut l = l;
                        if let (Some(new), Some(old)) = (l.as_mut(), app.agents.as_ref()) {
                            for a in new.iter_mut().filter(|a| a["memory_mb"].is_null()) {
                                if let Some(o) =
                                    old.iter().find(|o| o["session_id"] == a["session_id"])
                                {
                                    a["memory_mb"] = o["memory_mb"].clone();
                                    a["cpu_percent"] = o["cpu_percent"].clone();
                                }
                            }
                        }
                        app.agents = l;
                    }
                    "approvals" => app.approvals = l.unwrap_or_default(),
                    _ => app.apps = l.unwrap_or_default(),
                }
                app.dirty = true;
            }
            Msg::Output {
                generation,
                text,
                offset,
            } => {
                if let Some(p) = app.pane.as_mut().filter(|p| p.generation == generation) {
                    p.screen.feed(&text);
                    p.screen.offset = offset;
                    app.dirty = true;
                }
            }
            Msg::OutputEnd(generation, why) => {
                if let Some(p) = app.pane.as_mut().filter(|p| p.generation == generation) {
                    p.ended = true;
                    if let Some(w) = why {
                        p.screen.feed(&format!("\r\n[{w}]\r\n"));
                    }
                    app.dirty = true;
                }
            }
            Msg::Done(text, forbidden) => {
                if forbidden {
                    app.read_only = true;
                }
                app.say(text);
            }
            Msg::Standing(a) => {
                if let Some(x) = app.approvals.iter_mut().find(|x| x["id"] == a["id"]) {
                    *x = a;
                }
                app.dirty = true;
            }
            Msg::AppLog(name, text) => {
                app.app_log = text.map(|t| (name, t));
                app.dirty = true;
            }
        }
        Ok(false)
    }

    /// Point the pane at the selected run or agent (a new output stream when it
    /// changed), and ask for the selected app's log.
    fn sync_pane(&mut self, app: &mut App) {
        if app.view == View::Apps {
            let name = app.selected_id();
            if name.is_some() && name != self.app_log_for {
                self.app_log_for = name.clone();
                if let Some(n) = name {
                    let _ = self.jobs.send(Job::AppLog(n));
                }
            }
            return;
        }
        let (kind, crlf) = match app.view {
            View::Executions => ("executions", true),
            View::Agents => ("agents", false),
            _ => return,
        };
        let Some(id) = app.selected_id() else { return };
        if app.pane.as_ref().is_some_and(|p| p.target == id) {
            return;
        }
        let size = app
            .selected_value()
            .and_then(|v| v["output_bytes"].as_u64())
            .unwrap_or(0);
        let start = size.saturating_sub(REPLAY_BYTES);
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let mut screen = term::Screen::new(20, 80, crlf);
        screen.offset = start;
        if start > 0 {
            screen.feed(&format!("[{start} earlier bytes skipped]\r\n"));
        }
        app.pane = Some(Pane {
            target: id.clone(),
            screen,
            scroll: 0,
            ended: false,
            generation,
        });
        app.dirty = true;
        if kind == "agents" {
            let _ = self.jobs.send(Job::Agent(id.clone()));
        }
        let (c, p, t, g) = (
            self.client.clone(),
            self.paths.clone(),
            self.tx.clone(),
            self.generation.clone(),
        );
        let path = format!("/{kind}/{id}/stream");
        let _ = spawn("output", move || {
            feed::output(c, p, path, start, generation, g, t)
        });
    }

    /// Hand the real terminal to the command of `GET /agents/{id}/attach`, then
    /// take it back (the keyboard thread is paused meanwhile).
    fn attach(&mut self, app: &mut App, id: &str, term: &mut Term) -> std::io::Result<()> {
        let cmd = match self
            .client
            .get(&format!("/agents/{id}/attach"), &self.paths)
        {
            Ok(v) => v["command"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
            Err(e) => {
                app.say(format!("attach failed: {e}"));
                return Ok(());
            }
        };
        let Some((prog, args)) = cmd.split_first() else {
            app.say("attach: the daemon gave no command");
            return Ok(());
        };
        self.idle.store(false, Ordering::SeqCst);
        self.paused.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.idle.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        restore();
        let status = std::process::Command::new(prog)
            .args(args)
            .env_remove("TMUX")
            .env_remove("TMUX_PANE")
            .status();
        terminal::enable_raw_mode()?;
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )?;
        term.clear()?;
        self.paused.store(false, Ordering::SeqCst);
        match status {
            Ok(s) if s.success() => app.say(format!("detached from {id}")),
            Ok(s) => app.say(format!("attach ended: {s}")),
            Err(e) => app.say(format!("attach: cannot run {prog}: {e}")),
        }
        Ok(())
    }
}
