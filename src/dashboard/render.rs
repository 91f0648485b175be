//! The frame around every view: the tab line with the stream's state, the
//! bottom line (message, typed text or key hints), the `?` help and the task
//! picker overlays. Only cells built from sanitized text are ever drawn.

use super::keys::KEYS;
use super::state::{App, Conn, Mode, Prompt, View, s};
use super::views;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use std::time::Duration;

/// A style helper honouring `NO_COLOR`: the colour only when allowed, else
/// the modifier alone.
pub fn paint(app: &App, color: Color, fallback: Modifier) -> Style {
    if app.color {
        Style::default().fg(color)
    } else {
        Style::default().add_modifier(fallback)
    }
}

/// Style of the selected row.
pub fn selected_style() -> Style {
    Style::default().add_modifier(Modifier::REVERSED)
}

/// Draw the whole screen.
pub fn draw(f: &mut Frame, app: &mut App) {
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    tabs(f, top, app);
    match app.view {
        View::Overview => views::overview::draw(f, body, app),
        View::Approvals => views::approvals::draw(f, body, app),
        View::Executions => views::executions::draw(f, body, app),
        View::Agents => views::agents::draw(f, body, app),
        View::Apps => views::apps::draw(f, body, app),
    }
    status_line(f, bottom, app);
    match app.mode.clone() {
        Mode::Help(top) => help(f, f.area(), app, top),
        Mode::PickTask(i) => picker(f, body, app, i),
        _ => {}
    }
}

fn tabs(f: &mut Frame, area: Rect, app: &App) {
    // Only the cheap badges here; the overview computes the full counts.
    let pending = app
        .approvals
        .iter()
        .filter(|a| a["status"] == "pending")
        .count();
    let waiting = app
        .agents
        .iter()
        .flatten()
        .filter(|a| a["status"] == "waiting")
        .count();
    let conn = match &app.conn {
        Conn::Connecting => ("connecting…".to_string(), Color::Yellow),
        Conn::Live => ("● live".to_string(), Color::Green),
        Conn::Reconnecting(_) => ("reconnecting…".to_string(), Color::Red),
    };
    let [left, right] = Layout::horizontal([
        Constraint::Min(1),
        Constraint::Length(conn.0.chars().count() as u16 + 1),
    ])
    .areas(area);
    let mut spans = vec![Span::styled(
        "orchestratr ",
        Style::default().add_modifier(Modifier::BOLD),
    )];
    for v in View::ALL {
        let badge = match v {
            View::Approvals if pending > 0 => format!("({pending})"),
            View::Agents if waiting > 0 => format!("({waiting}!)"),
            _ => String::new(),
        };
        let label = format!("{}:{}{badge}", v.index() + 1, v.name());
        let style = if v == app.view {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        } else {
            Style::default()
        };
        spans.push(Span::styled(label, style));
        spans.push(Span::raw(" "));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), left);
    f.render_widget(
        Paragraph::new(Span::styled(conn.0, paint(app, conn.1, Modifier::BOLD)))
            .alignment(ratatui::layout::Alignment::Right),
        right,
    );
}

fn status_line(f: &mut Frame, area: Rect, app: &App) {
    let line = match &app.mode {
        Mode::Input(p, buf) => {
            let label = match p {
                Prompt::Comment { decision, id } => format!("{decision} {id}, comment: "),
                Prompt::TaskFilter => "filter by task: ".into(),
                Prompt::Args { task } => format!("args for {task}: "),
                Prompt::AgentInput { id } => format!("to {id} (Enter sends, Esc leaves): "),
            };
            Line::from(vec![
                Span::styled(label, Style::default().add_modifier(Modifier::BOLD)),
                Span::raw(super::term::clean(buf)),
                Span::styled("█", Style::default()),
            ])
        }
        _ => match (&app.message, &app.conn) {
            (_, Conn::Reconnecting(why)) => Line::from(Span::styled(
                format!("reconnecting… {}", super::term::clean(why)),
                paint(app, Color::Red, Modifier::BOLD),
            )),
            (Some((m, at)), _) if at.elapsed() < Duration::from_secs(8) => Line::from(m.clone()),
            _ => {
                let ro = if app.read_only { "read-only  " } else { "" };
                Line::from(format!(
                    "{ro}? help  q quit  Tab views  j/k move  {}",
                    app.url
                ))
            }
        },
    };
    f.render_widget(Paragraph::new(line), area);
}

/// The lines of the `?` help: `<key>  <action>`, grouped by view; action keys
/// left out when read-only.
pub fn help_lines(app: &App) -> Vec<String> {
    let mut out = Vec::new();
    let mut last: Option<Option<View>> = None;
    for (k, action, view, is_action) in KEYS {
        if *is_action && app.read_only {
            continue;
        }
        if last != Some(*view) {
            out.push(match view {
                None => "every view:".to_string(),
                Some(v) => format!("{}:", v.name()),
            });
            last = Some(*view);
        }
        out.push(format!("  {k:<22}{action}"));
    }
    out
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// The help takes the whole screen (one `<key>  <action>` line per key);
/// `j`/`k` scroll it when the screen is short.
fn help(f: &mut Frame, area: Rect, app: &App, top: u16) {
    let lines: Vec<Line> = help_lines(app).into_iter().map(Line::from).collect();
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines)
            .block(
                Block::default()
                    .borders(Borders::TOP)
                    .title(" keys (any key closes, j/k scroll) "),
            )
            .scroll((top, 0)),
        area,
    );
}

fn picker(f: &mut Frame, body: Rect, app: &App, sel: usize) {
    let lines: Vec<Line> = app
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let args = if t["allow_args"] == true {
                " [args]"
            } else {
                ""
            };
            let l = format!(
                "{:<20} {:<10} {}{args}",
                s(t, "name"),
                s(t, "pool"),
                s(t, "description")
            );
            if i == sel {
                Line::styled(l, selected_style())
            } else {
                Line::from(l)
            }
        })
        .collect();
    let area = centered(body, 70, lines.len() as u16 + 2);
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" run which task? (Enter runs, Esc cancels) "),
        ),
        area,
    );
}
