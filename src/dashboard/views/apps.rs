//! Apps (API.md §4): state, PID, memory, CPU; the selected app's log when the
//! daemon serves `GET /apps/{name}/output` (hidden otherwise).

use super::super::state::{App, s};
use super::table;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row};

/// Draw the apps view.
pub fn draw(f: &mut Frame, area: Rect, app: &mut App) {
    let rows: Vec<Row> = app
        .apps
        .iter()
        .map(|a| {
            let st = &a["state"];
            let alive = match st["alive"].as_bool() {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            };
            Row::new(vec![
                Cell::from(s(a, "name")),
                Cell::from(s(st, "status")),
                Cell::from(alive),
                Cell::from(s(st, "pid")),
                Cell::from(
                    st["memory_mb"]
                        .as_f64()
                        .map(|m| format!("{m:.1}M"))
                        .unwrap_or("-".into()),
                ),
                Cell::from(
                    st["cpu_percent"]
                        .as_f64()
                        .map(|c| format!("{c:.1}%"))
                        .unwrap_or("-".into()),
                ),
                Cell::from(s(a, "description")),
            ])
        })
        .collect();
    let sel = app.selected();
    let sel_name = app.apps.get(sel).map(|a| s(a, "name"));
    let log = app
        .app_log
        .as_ref()
        .filter(|(n, _)| Some(n) == sel_name.as_ref())
        .map(|(_, t)| t.clone());
    let (top, bottom) = match log {
        Some(_) => {
            let [t, b] = Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(area);
            (t, Some(b))
        }
        None => (area, None),
    };
    table(
        f,
        top,
        &[
            "NAME",
            "STATUS",
            "ALIVE",
            "PID",
            "MEM",
            "CPU",
            "DESCRIPTION",
        ],
        rows,
        &[
            Constraint::Length(16),
            Constraint::Length(9),
            Constraint::Length(6),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Min(10),
        ],
        sel,
        format!(" apps: {} ", app.apps.len()),
    );
    if let (Some(b), Some(text)) = (bottom, log) {
        let h = b.height.saturating_sub(2) as usize;
        let all: Vec<&str> = text.lines().collect();
        let lines: Vec<Line> = all[all.len().saturating_sub(h)..]
            .iter()
            .map(|l| Line::from(super::super::term::clean(l)))
            .collect();
        f.render_widget(
            Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" log ")),
            b,
        );
    }
}
