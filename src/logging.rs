//! The daemon's log: a minimal `log` facade backend writing
//! `<RFC 3339 time> <LEVEL> <message>` lines to stderr (captured by systemd,
//! launchd, or `<state>/orchestratr.log` for `orchestratr start`).

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }
    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // tiny_http logs every accept error at error level; keep only warnings and up from it.
        if record.target().starts_with("tiny_http") && record.level() > Level::Warn {
            return;
        }
        eprintln!(
            "{} {:5} {}",
            crate::time::now_rfc3339(),
            record.level(),
            record.args()
        );
    }
    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// Install the stderr logger (idempotent; later calls only change the level).
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Parse a config `log_level` (`error|warn|info|debug|trace`, case-insensitive).
/// Returns `None` for anything else.
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    match s.to_ascii_lowercase().as_str() {
        "error" => Some(LevelFilter::Error),
        "warn" | "warning" => Some(LevelFilter::Warn),
        "info" => Some(LevelFilter::Info),
        "debug" => Some(LevelFilter::Debug),
        "trace" => Some(LevelFilter::Trace),
        _ => None,
    }
}
