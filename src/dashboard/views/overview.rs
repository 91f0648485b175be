//! The overview: what needs a person first (waiting agents, pending
//! approvals), then running/queued runs per pool, failures since the daemon
//! started, apps not alive, and the latest events.

use super::super::render::paint;
use super::super::state::{App, s};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

/// Draw the overview.
pub fn draw(f: &mut Frame, area: Rect, app: &mut App) {
    let c = app.counts();
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let hot = |n: usize| {
        if n > 0 {
            paint(app, Color::Yellow, Modifier::BOLD).add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        }
    };
    let mut lines = Vec::new();
    let agents = match &app.agents {
        Some(_) => c.agents_waiting.to_string(),
        None => "-".to_string(),
    };
    lines.push(Line::from(vec![
        Span::styled(format!("{:<34}", "agents waiting for a person"), bold),
        Span::styled(agents, hot(c.agents_waiting)),
    ]));
    for a in app
        .agents_sorted()
        .iter()
        .filter(|a| a["status"] == "waiting")
        .take(3)
    {
        lines.push(Line::from(format!(
            "  {} ({}): {}",
            s(a, "session_id"),
            s(a, "agent_type"),
            s(a, "waiting_reason")
        )));
    }
    lines.push(Line::from(vec![
        Span::styled(format!("{:<34}", "pending approvals"), bold),
        Span::styled(c.approvals_pending.to_string(), hot(c.approvals_pending)),
    ]));
    for a in app
        .approvals_sorted()
        .iter()
        .filter(|a| a["status"] == "pending")
        .take(3)
    {
        lines.push(Line::from(format!(
            "  {} {} ({})",
            s(a, "id"),
            s(a, "title"),
            s(a, "source")
        )));
    }
    lines.push(Line::from(Span::styled(
        format!(
            "{:<34}{:>8} {:>8}",
            "executions per pool", "running", "queued"
        ),
        bold,
    )));
    if c.pools.values().all(|(r, q)| r + q == 0) {
        lines.push(Line::from("  (nothing running or queued)"));
    }
    for (pool, (r, q)) in c.pools.iter().filter(|(_, (r, q))| r + q > 0) {
        lines.push(Line::from(format!("  {:<32}{r:>8} {q:>8}", pool)));
    }
    lines.push(Line::from(vec![
        Span::styled(format!("{:<34}", "failed runs since daemon start"), bold),
        Span::styled(c.failed_since_start.to_string(), hot(c.failed_since_start)),
    ]));
    lines.push(Line::from(vec![
        Span::styled(format!("{:<34}", "apps not alive"), bold),
        Span::raw(format!("{} of {}", c.apps_not_alive, c.apps_total)),
    ]));
    lines.push(Line::from(vec![
        Span::styled(format!("{:<34}", "events received"), bold),
        Span::raw(app.events_seen.to_string()),
    ]));
    let used = lines.len() + 2;
    let room = (area.height as usize).saturating_sub(used + 1);
    lines.push(Line::from(Span::styled("latest events", bold)));
    let start = app.recent.len().saturating_sub(room);
    for e in &app.recent[start..] {
        lines.push(Line::from(format!("  {e}")));
    }
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::TOP).title(" overview ")),
        area,
    );
}
