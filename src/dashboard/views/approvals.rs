//! Approvals (API.md §8): pending ones on top with title, source and time
//! left; the selected one's detail below. Decided ones show who decided.

use super::super::state::{App, s};
use super::table;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Wrap};
use std::time::SystemTime;

fn left(expires: &str, now: SystemTime) -> String {
    match humantime::parse_rfc3339(expires) {
        Ok(t) => match t.duration_since(now) {
            Ok(d) => {
                let s = d.as_secs();
                if s >= 3600 {
                    format!("{}h{:02}m", s / 3600, (s / 60) % 60)
                } else {
                    format!("{}m{:02}s", s / 60, s % 60)
                }
            }
            Err(_) => "due".into(),
        },
        Err(_) => "-".into(),
    }
}

/// Draw the approvals view.
pub fn draw(f: &mut Frame, area: Rect, app: &mut App) {
    let now = app.now();
    let list = app.approvals_sorted();
    let rows: Vec<Row> = list
        .iter()
        .map(|a| {
            let pending = a["status"] == "pending";
            let when = if pending {
                left(&s(a, "expires_at"), now)
            } else {
                let by = s(a, "decided_by");
                if by.is_empty() {
                    "-".into()
                } else {
                    format!("by {by}")
                }
            };
            Row::new(vec![
                Cell::from(s(a, "status")),
                Cell::from(s(a, "title")),
                Cell::from(s(a, "source")),
                Cell::from(when),
                Cell::from(s(a, "id")),
            ])
        })
        .collect();
    let sel = app.selected();
    let detail = list.get(sel).map(|a| {
        let mut t = format!(
            "{}\n{}",
            s(a, "title"),
            clean_multiline(a["detail"].as_str().unwrap_or(""))
        );
        if a["status"] != "pending" {
            t.push_str(&format!(
                "\n{} ({}) by {} at {}; comment: {}",
                s(a, "status"),
                s(a, "decision"),
                s(a, "decided_by"),
                s(a, "decided_at"),
                s(a, "comment")
            ));
        } else {
            t.push_str(&format!(
                "\noptions: {}  default: {}",
                s(a, "options"),
                s(a, "default")
            ));
        }
        t
    });
    let title = format!(" approvals: {} ", list.len());
    drop(list);
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area);
    table(
        f,
        top,
        &["STATUS", "TITLE", "SOURCE", "LEFT", "ID"],
        rows,
        &[
            Constraint::Length(9),
            Constraint::Min(20),
            Constraint::Length(14),
            Constraint::Length(12),
            Constraint::Length(18),
        ],
        sel,
        title,
    );
    f.render_widget(
        Paragraph::new(detail.unwrap_or_default())
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::TOP).title(" detail ")),
        bottom,
    );
}

/// Like [`super::super::term::clean`] but keeps line breaks.
pub fn clean_multiline(t: &str) -> String {
    t.lines()
        .map(super::super::term::clean)
        .collect::<Vec<_>>()
        .join("\n")
}
