//! Executions (API.md §7): the CLI's table (id, task, status, pool, times,
//! output size) with status/task filters, and the selected run's live output
//! in a pane (an emulated terminal, see `term.rs`).

use super::super::render::paint;
use super::super::state::{App, s};
use super::{bytes, clock, dur_ms, pane, table};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier};
use ratatui::widgets::{Cell, Row};

fn status_color(st: &str) -> Color {
    match st {
        "running" | "starting" => Color::Cyan,
        "completed" => Color::Green,
        "pending" => Color::Yellow,
        _ => Color::Red,
    }
}

/// Output size: the record's, or what the pane has streamed of it when more
/// (records are only rewritten on status changes).
fn out_bytes(app: &App, e: &serde_json::Value) -> u64 {
    let rec = e["output_bytes"].as_u64().unwrap_or(0);
    match &app.pane {
        Some(p) if e["id"].as_str() == Some(p.target.as_str()) => rec.max(p.screen.offset),
        _ => rec,
    }
}

/// Draw the executions view.
pub fn draw(f: &mut Frame, area: Rect, app: &mut App) {
    let shown = app.executions_shown();
    let total = shown.len();
    let rows: Vec<Row> = shown
        .iter()
        .map(|e| {
            let st = s(e, "status");
            let dur = e["duration_ms"]
                .as_u64()
                .map(dur_ms)
                .unwrap_or_else(|| "-".into());
            Row::new(vec![
                Cell::from(s(e, "id")),
                Cell::from(s(e, "task")),
                Cell::from(st.clone()).style(paint(app, status_color(&st), Modifier::empty())),
                Cell::from(s(e, "pool")),
                Cell::from(clock(&s(e, "created_at"))),
                Cell::from(dur),
                Cell::from(bytes(out_bytes(app, e))),
            ])
        })
        .collect();
    drop(shown);
    let mut title = format!(" executions: {total}");
    if let Some(st) = app.status_filter {
        title.push_str(&format!("  status={st}"));
    }
    if let Some(t) = &app.task_filter {
        title.push_str(&format!("  task~{}", super::super::term::clean(t)));
    }
    title.push(' ');
    let wide = area.width >= 160;
    let [top, bottom] = if wide {
        Layout::horizontal([Constraint::Length(84), Constraint::Min(20)]).areas(area)
    } else {
        Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(area)
    };
    let sel = app.selected();
    table(
        f,
        top,
        &["ID", "TASK", "STATUS", "POOL", "CREATED", "TIME", "OUTPUT"],
        rows,
        &[
            Constraint::Length(17),
            Constraint::Min(8),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(7),
        ],
        sel,
        title,
    );
    let ptitle = match &app.pane {
        Some(p) => {
            let follow = if p.scroll == 0 {
                "following".to_string()
            } else {
                format!("scrolled back {}", p.scroll)
            };
            let end = if p.ended { ", ended" } else { "" };
            format!(
                " output {} ({follow}{end}) ",
                super::super::term::clean(&p.target)
            )
        }
        None => " output ".to_string(),
    };
    pane(f, bottom, app, ptitle);
}
