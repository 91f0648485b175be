//! Timestamps: RFC 3339, UTC, millisecond precision (API.md §2), via `humantime`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now as RFC 3339 UTC with milliseconds, e.g. `2026-01-10T12:00:00.123Z`.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// `t` as RFC 3339 UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Milliseconds since the Unix epoch (0 for a clock before 1970).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn rfc3339_has_millis_and_z() {
        let s = rfc3339(UNIX_EPOCH + Duration::from_millis(1_768_046_400_123));
        assert_eq!(s, "2026-01-10T12:00:00.123Z");
    }
}
