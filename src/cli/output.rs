//! The CLI's one formatting module: aligned tables, durations, byte sizes, local
//! and relative times, and colour (only on a terminal, never with `NO_COLOR`).
//!
//! Why home-made tables rather than `comfy-table`/`tabled`: the CLI needs plain,
//! borderless, left/right aligned columns (the `ps`/`gh` look) and nothing else;
//! both crates pull in terminal back-ends or proc-macros for features unused here.
//! Width is measured with `unicode-width` (already in the tree through clap), and
//! colour goes through `anstream`, which strips styles when stdout is not a
//! terminal or `NO_COLOR` is set (the https://no-color.org convention).

use anstyle::{AnsiColor, Style};
use std::io::Write;
use std::time::{Duration, SystemTime};
use unicode_width::UnicodeWidthStr;

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Pad on the right (text).
    Left,
    /// Pad on the left (numbers).
    Right,
}

/// One cell: its text and an optional style (applied only on a colour terminal).
#[derive(Debug, Clone, Default)]
pub struct Cell {
    /// Plain text, measured for alignment.
    pub text: String,
    /// Style applied around the padded text.
    pub style: Style,
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell {
            text,
            style: Style::new(),
        }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::from(text.to_string())
    }
}

impl Cell {
    /// A cell with a style.
    pub fn styled(text: impl Into<String>, style: Style) -> Cell {
        Cell {
            text: text.into(),
            style,
        }
    }
}

/// A borderless table: a header row and aligned columns two spaces apart; the
/// last column is never padded (no trailing blanks).
#[derive(Debug, Clone, Default)]
pub struct Table {
    head: Vec<(String, Align)>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table with these `(header, alignment)` columns.
    pub fn new(head: &[(&str, Align)]) -> Table {
        Table {
            head: head.iter().map(|(h, a)| (h.to_string(), *a)).collect(),
            rows: Vec::new(),
        }
    }

    /// Add a row; missing cells are empty, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<Cell>) {
        let mut cells = cells;
        cells.resize_with(self.head.len(), Cell::default);
        self.rows.push(cells);
    }

    /// Number of rows (without the header).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// No rows?
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as lines (header first), styles rendered as ANSI escapes.
    pub fn lines(&self) -> Vec<String> {
        let mut w: Vec<usize> = self.head.iter().map(|(h, _)| h.width()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.text.width());
            }
        }
        let last = self.head.len().saturating_sub(1);
        let fmt = |cells: &[Cell]| -> String {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                let pad = w[i].saturating_sub(c.text.width());
                let (l, r) = match self.head[i].1 {
                    Align::Left if i == last => (0, 0),
                    Align::Left => (0, pad),
                    Align::Right => (pad, 0),
                };
                s.push_str(&" ".repeat(l));
                s.push_str(&format!(
                    "{}{}{}",
                    c.style.render(),
                    c.text,
                    c.style.render_reset()
                ));
                s.push_str(&" ".repeat(r));
                if i != last {
                    s.push_str("  ");
                }
            }
            s.trim_end().to_string()
        };
        let bold = Style::new().bold();
        let head: Vec<Cell> = self
            .head
            .iter()
            .map(|(h, _)| Cell::styled(h.clone(), bold))
            .collect();
        let mut out = vec![fmt(&head)];
        out.extend(self.rows.iter().map(|r| fmt(r)));
        out
    }

    /// Print to stdout; `false` when stdout closed (e.g. piped to `head`).
    pub fn print(&self) -> bool {
        self.lines().iter().all(|l| out_styled(l))
    }
}

/// Print a line that may carry ANSI styles; `anstream` strips them when stdout
/// is not a terminal or `NO_COLOR` is set. `false` when stdout is closed.
pub fn out_styled(line: &str) -> bool {
    let mut o = anstream::stdout().lock();
    writeln!(o, "{line}").and_then(|_| o.flush()).is_ok()
}

/// The style of an execution, approval or app status word.
pub fn status_style(status: &str) -> Style {
    let c = match status {
        "completed" | "approved" | "ready" | "running" => AnsiColor::Green,
        "failed" | "lost" | "denied" | "timeout" | "launch_failed" => AnsiColor::Red,
        "pending" | "launched" | "queued" => AnsiColor::Yellow,
        "cancelled" | "expired" | "stopped" => AnsiColor::BrightBlack,
        _ => return Style::new(),
    };
    Style::new().fg_color(Some(c.into()))
}

/// `850 ms`, `5.0 s`, `2 min 05 s`, `3 h 12 min`.
pub fn duration_ms(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {:02} s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{} h {:02} min", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// `512 B`, `1.5 KiB`, `12.0 MiB`, `3.2 GiB` (binary units).
pub fn bytes(n: u64) -> String {
    const K: f64 = 1024.0;
    let f = n as f64;
    if n < 1024 {
        format!("{n} B")
    } else if f < K * K {
        format!("{:.1} KiB", f / K)
    } else if f < K * K * K {
        format!("{:.1} MiB", f / (K * K))
    } else {
        format!("{:.1} GiB", f / (K * K * K))
    }
}

/// A broken-down local time (via `localtime_r(3)`), or UTC when unavailable.
struct Local {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
}

fn local(t: SystemTime) -> Local {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let tt: libc::time_t = secs as libc::time_t;
    // SAFETY: an all-zero `tm` is valid; localtime_r writes only into `tm`
    // and returns null on failure, which is checked.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&tt, &mut tm).is_null() };
    if !ok {
        // UTC fallback: days since the epoch → civil date (H. Hinnant's algorithm).
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
        return Local {
            year: y,
            month: m,
            day: d,
            hour: rem / 3600,
            min: (rem / 60) % 60,
            sec: rem % 60,
        };
    }
    Local {
        year: tm.tm_year + 1900,
        month: (tm.tm_mon + 1) as u32,
        day: tm.tm_mday as u32,
        hour: tm.tm_hour as u32,
        min: tm.tm_min as u32,
        sec: tm.tm_sec as u32,
    }
}

/// Parse an RFC 3339 time from the daemon.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
        .ok()
        .or_else(|| humantime::parse_rfc3339(s).ok())
}

/// `12:03:01` in local time.
pub fn clock(t: SystemTime) -> String {
    let l = local(t);
    format!("{:02}:{:02}:{:02}", l.hour, l.min, l.sec)
}

/// `just now`, `42 s ago`, `3 min ago`, `5 h ago` within a day, else the local
/// date and time `2026-11-25 14:03`. Future times (clock skew) count as now.
pub fn relative(t: SystemTime, now: SystemTime) -> String {
    let ago = now.duration_since(t).unwrap_or(Duration::ZERO).as_secs();
    match ago {
        0..5 => "just now".into(),
        5..60 => format!("{ago} s ago"),
        60..3600 => format!("{} min ago", ago / 60),
        3600..86_400 => format!("{} h ago", ago / 3600),
        _ => {
            let l = local(t);
            format!(
                "{}-{:02}-{:02} {:02}:{:02}",
                l.year, l.month, l.day, l.hour, l.min
            )
        }
    }
}

/// [`relative`] of an RFC 3339 string, `-` when absent, the string itself when
/// unparsable.
pub fn relative_str(s: Option<&str>) -> String {
    match s {
        None => "-".into(),
        Some(s) => parse_time(s)
            .map(|t| relative(t, SystemTime::now()))
            .unwrap_or_else(|| s.to_string()),
    }
}

/// At most `max` characters of `s`, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let t: String = s.chars().take(max.saturating_sub(1)).collect();
    format!("{t}…")
}

/// Whitespace runs (newlines included) collapsed to one space.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(5_000), "5.0 s");
        assert_eq!(duration_ms(125_000), "2 min 05 s");
        assert_eq!(duration_ms(3_600_000 * 3 + 60_000 * 12), "3 h 12 min");
        assert_eq!(bytes(10), "10 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(12 * 1024 * 1024), "12.0 MiB");
    }

    #[test]
    fn relative_times() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(relative(now, now), "just now");
        assert_eq!(relative(now - Duration::from_secs(42), now), "42 s ago");
        assert_eq!(relative(now - Duration::from_secs(180), now), "3 min ago");
        assert_eq!(relative(now - Duration::from_secs(7200), now), "2 h ago");
        assert!(relative(now - Duration::from_secs(200_000), now).contains('-'));
    }

    #[test]
    fn table_aligns_by_display_width() {
        let mut t = Table::new(&[
            ("NAME", Align::Left),
            ("N", Align::Right),
            ("X", Align::Left),
        ]);
        t.row(vec!["日本".into(), "5".into(), "a".into()]);
        t.row(vec!["abcdef".into(), "123".into(), "".into()]);
        let l: Vec<String> = t
            .lines()
            .iter()
            .map(|l| anstream::adapter::strip_str(l).to_string())
            .collect();
        assert_eq!(l[0], "NAME      N  X");
        assert_eq!(l[1], "日本      5  a");
        assert_eq!(l[2], "abcdef  123");
    }

    #[test]
    fn truncation() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(one_line("a\n  b"), "a b");
    }
}
