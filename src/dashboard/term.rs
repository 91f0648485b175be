//! Untrusted text made safe for the dashboard's own terminal (DESIGN.md §5,
//! "Terminal output in a TUI"): execution and agent output is parsed by a
//! vt100 emulator ([`vt100`]) into cells, and only those cells are drawn, so
//! clear-screen, cursor moves, OSC titles/clipboard and bells never reach the
//! real terminal. Every other string from the daemon goes through [`clean`].

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

/// `s` with every control character (C0, DEL, C1) replaced by `�`-free
/// visible stand-ins: `\t` becomes a space, others become `?`.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => ' ',
            c if c.is_control() => '?',
            c => c,
        })
        .collect()
}

/// A terminal emulator fed with one run's (or agent's) output.
pub struct Screen {
    parser: vt100::Parser,
    /// Bytes fed so far (the stream offset reached), bytes.
    pub offset: u64,
    /// Whether a bare `\n` is turned into `\r\n` (output of a pipe, not a tty).
    crlf: bool,
    last_cr: bool,
}

/// Lines of scrollback kept per pane.
pub const SCROLLBACK: usize = 5000;

impl Screen {
    /// An emulator of `rows`×`cols`; `crlf` for pipe output (executions).
    pub fn new(rows: u16, cols: u16, crlf: bool) -> Screen {
        Screen {
            parser: vt100::Parser::new(rows.max(1), cols.max(1), SCROLLBACK),
            offset: 0,
            crlf,
            last_cr: false,
        }
    }

    /// Feed `text` (a chunk of output).
    pub fn feed(&mut self, text: &str) {
        if !self.crlf {
            self.parser.process(text.as_bytes());
            return;
        }
        let mut buf = Vec::with_capacity(text.len() + 16);
        for b in text.bytes() {
            if b == b'\n' && !self.last_cr {
                buf.push(b'\r');
            }
            self.last_cr = b == b'\r';
            buf.push(b);
        }
        self.parser.process(&buf);
    }

    /// Resize the emulated screen to `rows`×`cols` (no-op when equal).
    pub fn resize(&mut self, rows: u16, cols: u16) {
        let (r, c) = self.parser.screen().size();
        if (r, c) != (rows.max(1), cols.max(1)) {
            self.parser.set_size(rows.max(1), cols.max(1));
        }
    }

    /// Scroll `rows` back from the live bottom (0 = follow); clamped by the
    /// emulator to the scrollback held. Returns the effective value.
    pub fn set_scroll(&mut self, rows: usize) -> usize {
        self.parser.set_scrollback(rows);
        self.parser.screen().scrollback()
    }

    /// The visible cells as styled lines; colours only when `color`.
    pub fn lines(&self, color: bool) -> Vec<Line<'static>> {
        let screen = self.parser.screen();
        let (rows, cols) = screen.size();
        let mut out = Vec::with_capacity(rows as usize);
        for r in 0..rows {
            let mut spans: Vec<Span<'static>> = Vec::new();
            let mut cur = String::new();
            let mut cur_style = Style::default();
            for c in 0..cols {
                let Some(cell) = screen.cell(r, c) else {
                    continue;
                };
                if cell.is_wide_continuation() {
                    continue;
                }
                let style = cell_style(cell, color);
                let text = if cell.has_contents() {
                    clean(&cell.contents())
                } else {
                    " ".to_string()
                };
                if style != cur_style && !cur.is_empty() {
                    spans.push(Span::styled(std::mem::take(&mut cur), cur_style));
                }
                cur_style = style;
                cur.push_str(&text);
            }
            let trimmed = cur.trim_end();
            if !trimmed.is_empty() || cur_style != Style::default() {
                let keep = if cur_style == Style::default() {
                    trimmed.to_string()
                } else {
                    cur
                };
                spans.push(Span::styled(keep, cur_style));
            }
            out.push(Line::from(spans));
        }
        out
    }

    /// The visible text, rows joined by `\n` (tests).
    pub fn text(&self) -> String {
        self.parser.screen().contents()
    }
}

fn vt_color(c: vt100::Color) -> Option<Color> {
    match c {
        vt100::Color::Default => None,
        vt100::Color::Idx(i) => Some(Color::Indexed(i)),
        vt100::Color::Rgb(r, g, b) => Some(Color::Rgb(r, g, b)),
    }
}

fn cell_style(cell: &vt100::Cell, color: bool) -> Style {
    let mut s = Style::default();
    if color {
        if let Some(c) = vt_color(cell.fgcolor()) {
            s = s.fg(c);
        }
        if let Some(c) = vt_color(cell.bgcolor()) {
            s = s.bg(c);
        }
    }
    let mut m = Modifier::empty();
    if cell.bold() {
        m |= Modifier::BOLD;
    }
    if cell.italic() {
        m |= Modifier::ITALIC;
    }
    if cell.underline() {
        m |= Modifier::UNDERLINED;
    }
    if cell.inverse() {
        m |= Modifier::REVERSED;
    }
    s.add_modifier(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_become_cells_not_terminal_commands() {
        let mut s = Screen::new(5, 20, true);
        s.feed("before\n\x1b[2J\x1b[H\x1b]0;pwned\x07\x07after\x1b[31mred\x1b[0m\n");
        let text = s.text();
        assert!(text.contains("afterred"), "{text:?}");
        for l in s.lines(true) {
            for sp in l.spans {
                assert!(
                    !sp.content.chars().any(char::is_control),
                    "{:?}",
                    sp.content
                );
            }
        }
    }

    #[test]
    fn bare_newlines_return_the_carriage() {
        let mut s = Screen::new(3, 10, true);
        s.feed("ab\ncd\r\nef");
        assert_eq!(s.text(), "ab\ncd\nef");
    }

    proptest! {
        #[test]
        fn any_bytes_render_without_control_chars(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut s = Screen::new(6, 12, true);
            s.feed(&String::from_utf8_lossy(&data));
            for l in s.lines(true) {
                for sp in l.spans {
                    prop_assert!(!sp.content.chars().any(char::is_control));
                }
            }
            prop_assert!(!clean(&String::from_utf8_lossy(&data)).chars().any(char::is_control));
        }
    }
}
