//! The dashboard's state: the lists read from the daemon, kept current by the
//! event stream (API.md §5), and what the person is looking at. Pure data: no
//! I/O here, so every view renders from a fixed [`App`] in unit tests.

use super::term::{Screen, clean};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

/// The views, in `Tab` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Counts at a glance.
    Overview,
    /// Pending approvals first.
    Approvals,
    /// The executions table and the selected run's output.
    Executions,
    /// Interactive agents and the selected agent's terminal.
    Agents,
    /// Registered apps.
    Apps,
}

impl View {
    /// Every view in `Tab` order.
    pub const ALL: [View; 5] = [
        View::Overview,
        View::Approvals,
        View::Executions,
        View::Agents,
        View::Apps,
    ];
    /// Position in [`View::ALL`].
    pub fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }
    /// Lowercase name shown on the tab line.
    pub fn name(self) -> &'static str {
        match self {
            View::Overview => "overview",
            View::Approvals => "approvals",
            View::Executions => "executions",
            View::Agents => "agents",
            View::Apps => "apps",
        }
    }
}

/// The event stream's connection, shown on the top line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conn {
    /// Not connected yet.
    Connecting,
    /// Receiving events.
    Live,
    /// Dropped; retrying (the reason).
    Reconnecting(String),
}

/// What a line of typed text is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Comment of a decision (`approve`/`deny`) on approval `id`.
    Comment {
        /// Approval id.
        id: String,
        /// `approve` or `deny`.
        decision: String,
    },
    /// Filter of the executions table by task name.
    TaskFilter,
    /// Extra argv of a submit of `task` (split on whitespace).
    Args {
        /// Task name.
        task: String,
    },
    /// Text to type into agent `id`.
    AgentInput {
        /// Agent session id.
        id: String,
    },
}

/// Modal state of the keyboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Keys are commands.
    Normal,
    /// The `?` help, scrolled down this many lines.
    Help(u16),
    /// Picking a task to submit (index into `tasks`).
    PickTask(usize),
    /// Typing a line.
    Input(Prompt, String),
}

/// The output pane: which run or agent it follows and its emulated screen.
pub struct Pane {
    /// Execution or agent id.
    pub target: String,
    /// The emulator holding the output.
    pub screen: Screen,
    /// Rows scrolled back from the bottom (0 = following the end).
    pub scroll: usize,
    /// The stream said `end` (the run finished).
    pub ended: bool,
    /// Generation of the stream thread feeding it.
    pub generation: u64,
}

/// Everything the views draw.
pub struct App {
    /// Daemon URL (top line).
    pub url: String,
    /// Current view.
    pub view: View,
    /// Keyboard mode.
    pub mode: Mode,
    /// Event stream state.
    pub conn: Conn,
    /// Actions hidden and refused (`--read-only`, or a token answered 403).
    pub read_only: bool,
    /// Colours allowed (`NO_COLOR` unset).
    pub color: bool,
    /// `GET /apps` items.
    pub apps: Vec<Value>,
    /// `GET /executions` items, newest first.
    pub executions: Vec<Value>,
    /// `GET /approvals` items.
    pub approvals: Vec<Value>,
    /// `GET /agents` items; `None` when the daemon has no agents API.
    pub agents: Option<Vec<Value>>,
    /// `GET /tasks` items.
    pub tasks: Vec<Value>,
    /// The daemon's start, from `/health` `uptime_seconds`.
    pub daemon_started: Option<SystemTime>,
    /// Selected row per view (index of [`View::ALL`]).
    pub sel: [usize; 5],
    /// Executions status filter.
    pub status_filter: Option<&'static str>,
    /// Executions task filter.
    pub task_filter: Option<String>,
    /// The last events seen, newest last (type, source, id), sanitized.
    pub recent: Vec<String>,
    /// Events received since start.
    pub events_seen: u64,
    /// One-line message (action results, errors) and when it was set.
    pub message: Option<(String, Instant)>,
    /// The output pane (executions or agents view).
    pub pane: Option<Pane>,
    /// Log of the selected app (`GET /apps/{name}/output`), when the daemon has it.
    pub app_log: Option<(String, String)>,
    /// Redraw needed.
    pub dirty: bool,
    /// A fixed "now" for rendering (snapshot tests); `None` = the clock.
    pub frozen_now: Option<SystemTime>,
    /// Events applied since a re-read of every list was asked for; replayed
    /// over the lists when they arrive, so an older snapshot never hides a
    /// newer event.
    pub journal: Option<Vec<Value>>,
    /// Re-reads of every list asked for and not answered yet.
    pub refreshes: usize,
}

/// Statuses the `s` key cycles through.
pub const STATUS_FILTERS: [Option<&str>; 8] = [
    None,
    Some("pending"),
    Some("running"),
    Some("completed"),
    Some("failed"),
    Some("cancelled"),
    Some("timeout"),
    Some("lost"),
];

/// `v[k]` as a sanitized string (`""` when absent or null; numbers printed).
pub fn s(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::Null => String::new(),
        Value::String(x) => clean(x),
        other => clean(&other.to_string()),
    }
}

/// Whether an execution status is final.
pub fn is_final(status: &str) -> bool {
    matches!(
        status,
        "completed" | "failed" | "timeout" | "cancelled" | "lost"
    )
}

impl App {
    /// A fresh state for `url`.
    pub fn new(url: &str, read_only: bool, color: bool) -> App {
        App {
            url: clean(url),
            view: View::Overview,
            mode: Mode::Normal,
            conn: Conn::Connecting,
            read_only,
            color,
            apps: Vec::new(),
            executions: Vec::new(),
            approvals: Vec::new(),
            agents: None,
            tasks: Vec::new(),
            daemon_started: None,
            sel: [0; 5],
            status_filter: None,
            task_filter: None,
            recent: Vec::new(),
            events_seen: 0,
            message: None,
            pane: None,
            app_log: None,
            dirty: true,
            frozen_now: None,
            journal: None,
            refreshes: 0,
        }
    }

    /// Show `msg` on the bottom line.
    pub fn say(&mut self, msg: impl Into<String>) {
        self.message = Some((clean(&msg.into()), Instant::now()));
        self.dirty = true;
    }

    /// "Now" for rendering times.
    pub fn now(&self) -> SystemTime {
        self.frozen_now.unwrap_or_else(SystemTime::now)
    }

    /// Approvals sorted pending first, then newest first.
    pub fn approvals_sorted(&self) -> Vec<&Value> {
        let mut v: Vec<&Value> = self.approvals.iter().collect();
        v.sort_by(|a, b| {
            let pa = a["status"] != "pending";
            let pb = b["status"] != "pending";
            pa.cmp(&pb)
                .then_with(|| s(b, "created_at").cmp(&s(a, "created_at")))
        });
        v
    }

    /// Executions passing the filters, newest first.
    pub fn executions_shown(&self) -> Vec<&Value> {
        self.executions
            .iter()
            .filter(|e| self.status_filter.is_none_or(|f| e["status"] == f))
            .filter(|e| {
                self.task_filter
                    .as_deref()
                    .is_none_or(|t| s(e, "task").contains(t))
            })
            .collect()
    }

    /// Agents, waiting ones first.
    pub fn agents_sorted(&self) -> Vec<&Value> {
        let mut v: Vec<&Value> = self.agents.iter().flatten().collect();
        v.sort_by_key(|a| a["status"] != "waiting");
        v
    }

    /// Number of rows of the current view's list.
    pub fn rows(&self) -> usize {
        match self.view {
            View::Overview => 0,
            View::Approvals => self.approvals.len(),
            View::Executions => self.executions_shown().len(),
            View::Agents => self.agents.as_ref().map_or(0, Vec::len),
            View::Apps => self.apps.len(),
        }
    }

    /// Selected row of the current view, clamped.
    pub fn selected(&self) -> usize {
        self.sel[self.view.index()].min(self.rows().saturating_sub(1))
    }

    /// Move the selection by `d` rows (clamped).
    pub fn move_sel(&mut self, d: isize) {
        let n = self.rows();
        let i = self.view.index();
        let cur = self.selected() as isize;
        self.sel[i] = (cur + d).clamp(0, n.saturating_sub(1) as isize) as usize;
        self.dirty = true;
    }

    /// The id of the selected item of the current view (`id`, `session_id` or `name`).
    pub fn selected_id(&self) -> Option<String> {
        let i = self.selected();
        let v = match self.view {
            View::Overview => return None,
            View::Approvals => self.approvals_sorted().get(i).copied()?,
            View::Executions => self.executions_shown().get(i).copied()?,
            View::Agents => self.agents_sorted().get(i).copied()?,
            View::Apps => self.apps.get(i)?,
        };
        ["id", "session_id", "name"]
            .iter()
            .map(|k| v[*k].as_str().unwrap_or(""))
            .find(|x| !x.is_empty())
            .map(str::to_string)
    }

    /// The selected execution or agent, as a value.
    pub fn selected_value(&self) -> Option<&Value> {
        let i = self.selected();
        match self.view {
            View::Executions => self.executions_shown().get(i).copied(),
            View::Agents => self.agents_sorted().get(i).copied(),
            View::Approvals => self.approvals_sorted().get(i).copied(),
            View::Apps => self.apps.get(i),
            View::Overview => None,
        }
    }

    /// Merge `item`'s fields into the entry of `list` with the same key `k`, or
    /// insert it first. Returns `false` when it was new (events may carry only
    /// part of an object, e.g. approvals leave out title and detail).
    fn upsert(list: &mut Vec<Value>, k: &str, item: &Value) -> bool {
        let Some(id) = item[k].as_str() else {
            return true;
        };
        if let Some(x) = list.iter_mut().find(|x| x[k].as_str() == Some(id)) {
            if let (Some(dst), Some(src)) = (x.as_object_mut(), item.as_object()) {
                for (key, v) in src {
                    dst.insert(key.clone(), v.clone());
                }
            }
            true
        } else {
            list.insert(0, item.clone());
            false
        }
    }

    /// Apply one event of the stream (API.md §5). Returns what must be re-read
    /// from the daemon, if anything (`apps`, `agents`, `approvals`).
    pub fn apply_event(&mut self, ev: &Value) -> Option<&'static str> {
        self.events_seen += 1;
        if let Some(j) = self.journal.as_mut() {
            j.push(ev.clone());
        }
        let ty = ev["type"].as_str().unwrap_or("");
        self.recent.push(format!(
            "#{} {} {}",
            s(ev, "id"),
            clean(ty),
            s(ev, "source")
        ));
        if self.recent.len() > 50 {
            self.recent.remove(0);
        }
        self.merge_event(ev)
    }

    /// Replay the journal over freshly read lists (see [`App::journal`]); it is
    /// kept until every re-read asked for has been answered, since a later
    /// answer may hold a snapshot older than events already shown.
    pub fn replay_journal(&mut self) {
        self.refreshes = self.refreshes.saturating_sub(1);
        let journal = if self.refreshes == 0 {
            self.journal.take().unwrap_or_default()
        } else {
            self.journal.clone().unwrap_or_default()
        };
        for ev in journal {
            self.merge_event(&ev);
        }
    }

    fn merge_event(&mut self, ev: &Value) -> Option<&'static str> {
        let ty = ev["type"].as_str().unwrap_or("");
        self.dirty = true;
        let data = &ev["data"];
        if ty.starts_with("execution.") {
            Self::upsert(&mut self.executions, "id", data);
            None
        } else if ty.starts_with("approval.") {
            if Self::upsert(&mut self.approvals, "id", data) {
                None
            } else {
                Some("approvals")
            }
        } else if ty.starts_with("app.") || ty == "registry.reloaded" {
            Some("apps")
        } else if ty.starts_with("agent.") {
            if let (Some(list), Some(id)) = (self.agents.as_mut(), data["session_id"].as_str())
                && let Some(a) = list.iter_mut().find(|a| a["session_id"] == id)
                && ty == "agent.status"
            {
                for k in ["status", "status_source", "waiting_reason"] {
                    if !data[k].is_null() {
                        a[k] = data[k].clone();
                    }
                }
                return None;
            }
            Some("agents")
        } else {
            None
        }
    }

    /// Counts of the overview, computed from the lists.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for a in self.agents.iter().flatten() {
            if a["status"] == "waiting" {
                c.agents_waiting += 1;
            }
        }
        c.approvals_pending = self
            .approvals
            .iter()
            .filter(|a| a["status"] == "pending")
            .count();
        for e in &self.executions {
            let pool = s(e, "pool");
            let st = e["status"].as_str().unwrap_or("");
            let entry = c.pools.entry(pool).or_insert((0, 0));
            match st {
                "running" | "starting" => entry.0 += 1,
                "pending" => entry.1 += 1,
                _ => {}
            }
            if matches!(st, "failed" | "timeout" | "lost") && self.after_start(e) {
                c.failed_since_start += 1;
            }
        }
        c.apps_not_alive = self
            .apps
            .iter()
            .filter(|a| a["state"]["alive"] != true)
            .count();
        c.apps_total = self.apps.len();
        c
    }

    fn after_start(&self, e: &Value) -> bool {
        let Some(start) = self.daemon_started else {
            return true;
        };
        let t = e["finished_at"]
            .as_str()
            .or_else(|| e["created_at"].as_str())
            .unwrap_or("");
        match humantime::parse_rfc3339(t) {
            // Record times have sub-second precision; the start is rounded to seconds.
            Ok(at) => at + std::time::Duration::from_secs(1) >= start,
            Err(_) => true,
        }
    }
}

/// The overview's figures.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Agents with status `waiting`.
    pub agents_waiting: usize,
    /// Approvals with status `pending`.
    pub approvals_pending: usize,
    /// Pool → (running, queued).
    pub pools: BTreeMap<String, (usize, usize)>,
    /// Executions failed, timed out or lost since the daemon started.
    pub failed_since_start: usize,
    /// Apps whose `state.alive` is not true.
    pub apps_not_alive: usize,
    /// Registered apps.
    pub apps_total: usize,
}
