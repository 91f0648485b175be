//! Agents (API.md §10): status with its source and waiting reason (waiting
//! ones first and highlighted), memory/CPU, and the selected agent's live
//! terminal with its colours (an emulated screen, see `term.rs`).

use super::super::render::paint;
use super::super::state::{App, s};
use super::{pane, table};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row};

/// Draw the agents view.
pub fn draw(f: &mut Frame, area: Rect, app: &mut App) {
    if app.agents.is_none() {
        f.render_widget(
            Paragraph::new("this daemon has no agents API (GET /agents answered 404)")
                .block(Block::default().borders(Borders::TOP).title(" agents ")),
            area,
        );
        return;
    }
    let waiting = paint(app, Color::Yellow, Modifier::BOLD).add_modifier(Modifier::BOLD);
    let list = app.agents_sorted();
    let rows: Vec<Row> = list
        .iter()
        .map(|a| {
            let row = Row::new(vec![
                Cell::from(s(a, "session_id")),
                Cell::from(s(a, "agent_type")),
                Cell::from(s(a, "status")),
                Cell::from(s(a, "status_source")),
                Cell::from(s(a, "waiting_reason")),
                Cell::from(
                    a["memory_mb"]
                        .as_f64()
                        .map(|m| format!("{m:.1}M"))
                        .unwrap_or("-".into()),
                ),
                Cell::from(
                    a["cpu_percent"]
                        .as_f64()
                        .map(|c| format!("{c:.1}%"))
                        .unwrap_or("-".into()),
                ),
            ]);
            if a["status"] == "waiting" {
                row.style(waiting)
            } else {
                row
            }
        })
        .collect();
    let n = list.len();
    drop(list);
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(35), Constraint::Percentage(65)]).areas(area);
    table(
        f,
        top,
        &[
            "SESSION",
            "TYPE",
            "STATUS",
            "SOURCE",
            "WAITING FOR",
            "MEM",
            "CPU",
        ],
        rows,
        &[
            Constraint::Length(27),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Min(8),
            Constraint::Length(7),
            Constraint::Length(6),
        ],
        app.selected(),
        format!(" agents: {n} "),
    );
    let title = match &app.pane {
        Some(p) => format!(
            " terminal {} (i: type, t: attach) ",
            super::super::term::clean(&p.target)
        ),
        None => " terminal ".into(),
    };
    pane(f, bottom, app, title);
}
