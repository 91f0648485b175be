//! Keys: one table ([`KEYS`]) that the `?` help prints, and [`key`], which turns
//! a key press into state changes and [`Effect`]s for the event loop.

use super::feed::Job;
use super::state::{App, Mode, Prompt, STATUS_FILTERS, View, is_final, s};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use serde_json::json;

/// What the event loop does after a key.
pub enum Effect {
    /// Leave the dashboard.
    Quit,
    /// Hand a job to the request thread.
    Job(Job),
    /// Suspend the screen and run `tmux attach` for agent `id`.
    Attach(String),
}

/// `(keys, action, view or None for every view, is an action that changes something)`.
pub const KEYS: &[(&str, &str, Option<View>, bool)] = &[
    ("?", "show or hide this help", None, false),
    ("q", "quit", None, false),
    (
        "Ctrl-c",
        "quit (in the agent input line: send Ctrl-C to the agent)",
        None,
        false,
    ),
    ("Tab / l / Right", "next view", None, false),
    ("Shift-Tab / h / Left", "previous view", None, false),
    (
        "1 2 3 4 5",
        "overview, approvals, executions, agents, apps",
        None,
        false,
    ),
    ("j / Down", "select next row", None, false),
    ("k / Up", "select previous row", None, false),
    ("g / Home", "select first row", None, false),
    ("G / End", "select last row", None, false),
    ("r", "re-read every list from the daemon", None, false),
    (
        "Esc",
        "close help, cancel typing (in help, j/k scroll)",
        None,
        false,
    ),
    (
        "a",
        "approve the selected approval",
        Some(View::Approvals),
        true,
    ),
    (
        "d",
        "deny the selected approval",
        Some(View::Approvals),
        true,
    ),
    ("A", "approve with a comment", Some(View::Approvals), true),
    ("D", "deny with a comment", Some(View::Approvals), true),
    (
        "n",
        "submit a run of a registered task",
        Some(View::Executions),
        true,
    ),
    ("x", "cancel the selected run", Some(View::Executions), true),
    ("R", "retry the selected run", Some(View::Executions), true),
    (
        "s",
        "cycle the status filter",
        Some(View::Executions),
        false,
    ),
    (
        "/",
        "filter by task name (empty: no filter)",
        Some(View::Executions),
        false,
    ),
    (
        "J / PgDn",
        "scroll the output pane down",
        Some(View::Executions),
        false,
    ),
    (
        "K / PgUp",
        "scroll the output pane up",
        Some(View::Executions),
        false,
    ),
    (
        "f",
        "follow the end of the output",
        Some(View::Executions),
        false,
    ),
    (
        "i",
        "type a line to the selected agent (Enter sends)",
        Some(View::Agents),
        true,
    ),
    (
        "C",
        "send Ctrl-C to the selected agent",
        Some(View::Agents),
        true,
    ),
    ("x", "kill the selected agent", Some(View::Agents), true),
    (
        "t",
        "attach: hand the terminal to tmux, come back on detach",
        Some(View::Agents),
        true,
    ),
    (
        "J / K",
        "scroll the agent's terminal",
        Some(View::Agents),
        false,
    ),
    ("L", "launch the selected app", Some(View::Apps), true),
    ("S", "stop the selected app", Some(View::Apps), true),
];

fn act(method: &'static str, path: String, body: Option<serde_json::Value>, what: &str) -> Effect {
    Effect::Job(Job::Act(method, path, body, what.to_string()))
}

/// Handle one key press.
pub fn key(app: &mut App, k: KeyEvent) -> Vec<Effect> {
    if k.kind == KeyEventKind::Release {
        return Vec::new();
    }
    app.dirty = true;
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    match app.mode.clone() {
        Mode::Help(top) => {
            match k.code {
                KeyCode::Char('q') if !ctrl => return vec![Effect::Quit],
                KeyCode::Char('c') if ctrl => return vec![Effect::Quit],
                KeyCode::Char('j') | KeyCode::Down => app.mode = Mode::Help(top.saturating_add(1)),
                KeyCode::Char('k') | KeyCode::Up => app.mode = Mode::Help(top.saturating_sub(1)),
                _ => app.mode = Mode::Normal,
            }
            Vec::new()
        }
        Mode::PickTask(i) => pick_task(app, i, k),
        Mode::Input(prompt, buf) => input(app, prompt, buf, k),
        Mode::Normal => normal(app, k, ctrl),
    }
}

fn pick_task(app: &mut App, i: usize, k: KeyEvent) -> Vec<Effect> {
    let n = app.tasks.len();
    match k.code {
        KeyCode::Esc | KeyCode::Char('q') => app.mode = Mode::Normal,
        KeyCode::Down | KeyCode::Char('j') => {
            app.mode = Mode::PickTask((i + 1).min(n.saturating_sub(1)))
        }
        KeyCode::Up | KeyCode::Char('k') => app.mode = Mode::PickTask(i.saturating_sub(1)),
        KeyCode::Enter => {
            let Some(t) = app.tasks.get(i) else {
                app.mode = Mode::Normal;
                return Vec::new();
            };
            let name = s(t, "name");
            if t["allow_args"] == true {
                app.mode = Mode::Input(Prompt::Args { task: name }, String::new());
            } else {
                app.mode = Mode::Normal;
                return vec![submit(&name, Vec::new())];
            }
        }
        _ => {}
    }
    Vec::new()
}

fn submit(task: &str, args: Vec<String>) -> Effect {
    act(
        "POST",
        "/executions".into(),
        Some(json!({"task": task, "args": args})),
        &format!("submitted {task}"),
    )
}

fn input(app: &mut App, prompt: Prompt, mut buf: String, k: KeyEvent) -> Vec<Effect> {
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    let agent = match &prompt {
        Prompt::AgentInput { id } => Some(id.clone()),
        _ => None,
    };
    let keys = |name: &str, id: &str| {
        act(
            "POST",
            format!("/agents/{id}/input"),
            Some(json!({"keys": [name]})),
            &format!("sent {name}"),
        )
    };
    match k.code {
        KeyCode::Esc => {
            app.mode = Mode::Normal;
            return Vec::new();
        }
        KeyCode::Char('c') if ctrl => {
            return match agent {
                Some(id) => vec![keys("C-c", &id)],
                None => {
                    app.mode = Mode::Normal;
                    Vec::new()
                }
            };
        }
        KeyCode::Tab if agent.is_some() => {
            return agent.map(|id| keys("Tab", &id)).into_iter().collect();
        }
        KeyCode::Up if agent.is_some() && buf.is_empty() => {
            return agent.map(|id| keys("Up", &id)).into_iter().collect();
        }
        KeyCode::Down if agent.is_some() && buf.is_empty() => {
            return agent.map(|id| keys("Down", &id)).into_iter().collect();
        }
        KeyCode::Backspace => {
            buf.pop();
        }
        KeyCode::Char(c) if !ctrl => buf.push(c),
        KeyCode::Enter => return finish_input(app, prompt, buf),
        _ => {}
    }
    app.mode = Mode::Input(prompt, buf);
    Vec::new()
}

fn finish_input(app: &mut App, prompt: Prompt, buf: String) -> Vec<Effect> {
    app.mode = Mode::Normal;
    match prompt {
        Prompt::Comment { id, decision } => vec![decide(&id, &decision, Some(buf))],
        Prompt::TaskFilter => {
            app.task_filter = Some(buf.trim().to_string()).filter(|t| !t.is_empty());
            app.sel[View::Executions.index()] = 0;
            Vec::new()
        }
        Prompt::Args { task } => vec![submit(
            &task,
            buf.split_whitespace().map(str::to_string).collect(),
        )],
        Prompt::AgentInput { id } => {
            // Stay in the input line: a conversation is several lines.
            app.mode = Mode::Input(Prompt::AgentInput { id: id.clone() }, String::new());
            if buf.is_empty() {
                vec![act(
                    "POST",
                    format!("/agents/{id}/input"),
                    Some(json!({"keys": ["Enter"]})),
                    "sent Enter",
                )]
            } else {
                vec![act(
                    "POST",
                    format!("/agents/{id}/input"),
                    Some(json!({"text": buf, "submit": true})),
                    "sent",
                )]
            }
        }
    }
}

fn decide(id: &str, decision: &str, comment: Option<String>) -> Effect {
    let mut body = json!({"decision": decision, "by": "dashboard"});
    if let Some(c) = comment.filter(|c| !c.is_empty()) {
        body["comment"] = json!(c);
    }
    let done = if decision == "approve" {
        "approved"
    } else {
        "denied"
    };
    act(
        "POST",
        format!("/approvals/{id}"),
        Some(body),
        &format!("{done} {id}"),
    )
}

fn switch(app: &mut App, d: isize) {
    let n = View::ALL.len() as isize;
    let i = (app.view.index() as isize + d).rem_euclid(n);
    app.view = View::ALL[i as usize];
}

fn scroll(app: &mut App, d: isize) {
    if let Some(p) = app.pane.as_mut() {
        let v = (p.scroll as isize + d).max(0) as usize;
        p.scroll = p.screen.set_scroll(v);
    }
}

fn normal(app: &mut App, k: KeyEvent, ctrl: bool) -> Vec<Effect> {
    if ctrl {
        return match k.code {
            KeyCode::Char('c') => vec![Effect::Quit],
            KeyCode::Char('d') => {
                scroll(app, -10);
                Vec::new()
            }
            KeyCode::Char('u') => {
                scroll(app, 10);
                Vec::new()
            }
            _ => Vec::new(),
        };
    }
    match k.code {
        KeyCode::Char('q') => return vec![Effect::Quit],
        KeyCode::Char('?') => app.mode = Mode::Help(0),
        KeyCode::Tab | KeyCode::Char('l') | KeyCode::Right => switch(app, 1),
        KeyCode::BackTab | KeyCode::Char('h') | KeyCode::Left => switch(app, -1),
        KeyCode::Char(c @ '1'..='5') => app.view = View::ALL[(c as usize) - ('1' as usize)],
        KeyCode::Char('j') | KeyCode::Down => app.move_sel(1),
        KeyCode::Char('k') | KeyCode::Up => app.move_sel(-1),
        KeyCode::Char('g') | KeyCode::Home => app.move_sel(-(1 << 30)),
        KeyCode::Char('G') | KeyCode::End => app.move_sel(1 << 30),
        KeyCode::Char('r') => return vec![Effect::Job(Job::Refresh)],
        KeyCode::Char('J') | KeyCode::PageDown => scroll(app, -10),
        KeyCode::Char('K') | KeyCode::PageUp => scroll(app, 10),
        KeyCode::Char('f') => scroll(app, -(1 << 30)),
        KeyCode::Char('s') if app.view == View::Executions => {
            let i = STATUS_FILTERS
                .iter()
                .position(|f| *f == app.status_filter)
                .unwrap_or(0);
            app.status_filter = STATUS_FILTERS[(i + 1) % STATUS_FILTERS.len()];
            app.sel[View::Executions.index()] = 0;
        }
        KeyCode::Char('/') if app.view == View::Executions => {
            app.mode = Mode::Input(
                Prompt::TaskFilter,
                app.task_filter.clone().unwrap_or_default(),
            );
        }
        KeyCode::Char(c) => return view_action(app, c),
        _ => {}
    }
    Vec::new()
}

fn view_action(app: &mut App, c: char) -> Vec<Effect> {
    let is_action = KEYS.iter().any(|(k, _, v, a)| {
        *a && *v == Some(app.view) && k.split(" / ").any(|x| x == c.to_string())
    });
    if !is_action {
        return Vec::new();
    }
    if app.read_only {
        app.say("read-only: actions are disabled");
        return Vec::new();
    }
    let Some(id) = app.selected_id() else {
        if app.view == View::Executions && c == 'n' {
            return open_picker(app);
        }
        app.say("nothing selected");
        return Vec::new();
    };
    let sel = app.selected_value().cloned().unwrap_or_default();
    match (app.view, c) {
        (View::Approvals, 'a' | 'd' | 'A' | 'D') => {
            if sel["status"] != "pending" {
                app.say(format!(
                    "{id} is already {} by {}",
                    s(&sel, "status"),
                    s(&sel, "decided_by")
                ));
                return Vec::new();
            }
            let decision = if c.eq_ignore_ascii_case(&'a') {
                "approve"
            } else {
                "deny"
            };
            if c.is_ascii_uppercase() {
                app.mode = Mode::Input(
                    Prompt::Comment {
                        id,
                        decision: decision.into(),
                    },
                    String::new(),
                );
                return Vec::new();
            }
            vec![decide(&id, decision, None)]
        }
        (View::Executions, 'n') => open_picker(app),
        (View::Executions, 'x') => {
            if is_final(sel["status"].as_str().unwrap_or("")) {
                app.say(format!("{id} already finished ({})", s(&sel, "status")));
                return Vec::new();
            }
            vec![act(
                "POST",
                format!("/executions/{id}/cancel"),
                None,
                &format!("cancelled {id}"),
            )]
        }
        (View::Executions, 'R') => vec![act(
            "POST",
            format!("/executions/{id}/retry"),
            None,
            "retried",
        )],
        (View::Agents, 'i') => {
            app.mode = Mode::Input(Prompt::AgentInput { id }, String::new());
            Vec::new()
        }
        (View::Agents, 'C') => vec![act(
            "POST",
            format!("/agents/{id}/input"),
            Some(json!({"keys": ["C-c"]})),
            "sent C-c",
        )],
        (View::Agents, 'x') => vec![act(
            "DELETE",
            format!("/agents/{id}"),
            None,
            &format!("killed {id}"),
        )],
        (View::Agents, 't') => vec![Effect::Attach(id)],
        (View::Apps, 'L') => vec![act(
            "POST",
            format!("/apps/{id}/launch"),
            None,
            &format!("launched {id}"),
        )],
        (View::Apps, 'S') => vec![act(
            "POST",
            format!("/apps/{id}/stop"),
            None,
            &format!("stopped {id}"),
        )],
        _ => Vec::new(),
    }
}

fn open_picker(app: &mut App) -> Vec<Effect> {
    if app.tasks.is_empty() {
        app.say("no registered tasks (GET /tasks is empty)");
    } else {
        app.mode = Mode::PickTask(0);
    }
    Vec::new()
}
