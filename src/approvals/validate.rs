//! Checks of a creation request (API.md §8), approval ids, and the
//! millisecond timestamps approvals carry.

use super::{ApprovalError, DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS, NewApproval, STANDARD_OPTIONS};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Truncate `t` to whole milliseconds (what the RFC 3339 strings carry).
pub(super) fn trunc_ms(t: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(crate::time::unix_ms(t))
}

pub(super) fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(s).ok()
}

/// A new random id, `appr-` + 12 hex chars.
pub(super) fn new_id() -> Result<String, ApprovalError> {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b)
        .map_err(|e| ApprovalError::Internal(format!("cannot get random bytes for an id: {e}")))?;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!("appr-{hex}"))
}

/// Is `id` shaped like one of ours (`appr-` + 12 lowercase hex)? Anything else
/// is never a file name we read or write.
pub fn valid_id(id: &str) -> bool {
    id.strip_prefix("appr-").is_some_and(|h| {
        h.len() == 12
            && h.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    })
}

/// Check a creation request against API.md §8 and fill in defaults:
/// `(options, default, timeout_ms)`.
///
/// Errors: `Invalid` naming the offending field and value.
pub fn validate(req: &NewApproval) -> Result<(Vec<String>, String, u64), ApprovalError> {
    let bad = |m: String| Err(ApprovalError::Invalid(m));
    if req.title.trim().is_empty() {
        return bad("field 'title' must be a non-empty string".into());
    }
    let options: Vec<String> = match &req.options {
        None => STANDARD_OPTIONS.iter().map(|s| s.to_string()).collect(),
        Some(o) => o.clone(),
    };
    if options.is_empty() {
        return bad("field 'options' must not be empty".into());
    }
    for (i, o) in options.iter().enumerate() {
        if o.is_empty() {
            return bad(format!("field 'options' has an empty string at index {i}"));
        }
        if options[..i].contains(o) {
            return bad(format!("field 'options' lists '{o}' more than once"));
        }
    }
    let default = match &req.default {
        Some(d) if options.contains(d) => d.clone(),
        Some(d) => {
            return bad(format!(
                "field 'default' is '{d}', which is not one of the options: {}",
                options.join(", ")
            ));
        }
        None if options.iter().any(|o| o == "deny") => "deny".to_string(),
        None => options[0].clone(),
    };
    let timeout_ms = req.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if timeout_ms == 0 || timeout_ms > MAX_TIMEOUT_MS {
        return bad(format!(
            "field 'timeout_ms' must be from 1 to {MAX_TIMEOUT_MS} (7 days), not {timeout_ms}"
        ));
    }
    Ok((options, default, timeout_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approvals::Status;

    fn req(title: &str) -> NewApproval {
        NewApproval {
            title: title.into(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_and_validation() {
        let (o, d, t) = validate(&req("x")).expect("valid");
        assert_eq!(o, vec!["approve", "deny"]);
        assert_eq!(d, "deny");
        assert_eq!(t, DEFAULT_TIMEOUT_MS);
        let mut r = req("x");
        r.options = Some(vec!["a".into(), "b".into()]);
        assert_eq!(validate(&r).expect("valid").1, "a");
        r.default = Some("c".into());
        assert!(validate(&r).is_err());
        r.default = None;
        r.options = Some(vec!["a".into(), "a".into()]);
        assert!(validate(&r).is_err());
        r.options = Some(vec![]);
        assert!(validate(&r).is_err());
        let mut r = req("x");
        r.timeout_ms = Some(0);
        assert!(validate(&r).is_err());
        r.timeout_ms = Some(MAX_TIMEOUT_MS + 1);
        assert!(validate(&r).is_err());
        assert!(validate(&req("  ")).is_err());
    }

    #[test]
    fn ids_are_random_and_well_formed() {
        let a = new_id().expect("id");
        let b = new_id().expect("id");
        assert!(valid_id(&a) && valid_id(&b), "{a} {b}");
        assert_ne!(a, b);
        assert!(!valid_id("appr-../../etc"));
    }

    #[test]
    fn timestamps_round_trip() {
        let t = trunc_ms(SystemTime::now());
        assert_eq!(parse_time(&crate::time::rfc3339(t)), Some(t));
    }

    #[test]
    fn status_of_decision() {
        assert_eq!(Status::of_decision("approve"), Status::Approved);
        assert_eq!(Status::of_decision("deny"), Status::Denied);
        assert_eq!(Status::of_decision("later"), Status::Decided);
        assert_eq!(Status::parse("expired"), Some(Status::Expired));
        assert_eq!(Status::parse("Expired"), None);
    }
}
