//! One file per view; each draws from [`super::state::App`] only.

pub mod agents;
pub mod approvals;
pub mod apps;
pub mod executions;
pub mod overview;

use super::render::selected_style;
use super::state::{App, Pane};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState};

/// A table with a bold header and the selected row reversed.
pub fn table(
    f: &mut Frame,
    area: Rect,
    header: &[&str],
    rows: Vec<Row<'static>>,
    widths: &[Constraint],
    selected: usize,
    title: String,
) {
    let empty = rows.is_empty();
    let t = Table::new(rows, widths.to_vec())
        .header(Row::new(header.to_vec()).style(Style::default().add_modifier(Modifier::BOLD)))
        .row_highlight_style(selected_style())
        .block(Block::default().borders(Borders::TOP).title(title));
    let mut st = TableState::default().with_selected(if empty { None } else { Some(selected) });
    f.render_stateful_widget(t, area, &mut st);
}

/// Draw the output pane inside a bordered block titled `title`, resizing the
/// emulated screen to the inner area first.
pub fn pane(f: &mut Frame, area: Rect, app: &mut App, title: String) {
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(area);
    let color = app.color;
    let lines = match app.pane.as_mut() {
        Some(Pane { screen, scroll, .. }) => {
            screen.resize(inner.height, inner.width);
            *scroll = screen.set_scroll(*scroll);
            screen.lines(color)
        }
        None => Vec::new(),
    };
    f.render_widget(Paragraph::new(lines).block(block), area);
}

/// Human bytes: `512B`, `1.2K`, `3.4M`.
pub fn bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n}B"),
        1024..1_048_576 => format!("{:.1}K", n as f64 / 1024.0),
        _ => format!("{:.1}M", n as f64 / 1_048_576.0),
    }
}

/// `HH:MM:SS` of an RFC 3339 time, or `-`.
pub fn clock(t: &str) -> String {
    t.get(11..19).unwrap_or("-").to_string()
}

/// A duration in ms as `850ms`, `12.3s`, `4m05s`.
pub fn dur_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}
