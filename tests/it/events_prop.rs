//! Property tests for the v3 event and browser checks that take outside input
//! (API.md §9): `Origin` against `Host`, CORS origins, preflights, and the rules
//! for client-published events. Whatever the input, they answer and never panic.

use orchestratr::config::Settings;
use orchestratr::events::{
    MAX_EVENT_DATA_BYTES, RESERVED_TYPE_PREFIXES, UserEventError, serialized_len,
    validate_user_event,
};
use orchestratr::http::guards;
use proptest::prelude::*;
use serde_json::{Value, json};

proptest! {
    #[test]
    fn origin_checks_never_panic(origin in "\\PC{0,40}", host in proptest::option::of("\\PC{0,30}")) {
        let s = Settings { allowed_origins: vec!["http://a.example".into()], ..Settings::default() };
        let ok = guards::check_origin_for(Some(&origin), host.as_deref(), &s).is_ok();
        let same = guards::is_same_origin(&origin, host.as_deref());
        let listed = origin.trim().trim_end_matches('/') == "http://a.example";
        prop_assert_eq!(ok, same || listed);
        let _ = guards::cors_origin(Some(&origin), &s);
        let _ = guards::preflight("OPTIONS", Some(&origin), &s);
    }

    #[test]
    fn own_origin_is_http_plus_host(host in "[a-z0-9.-]{1,20}(:[0-9]{1,5})?") {
        let plain = format!("http://{host}");
        let upper = format!("HTTP://{}", host.to_uppercase());
        let tls = format!("https://{host}");
        let longer = format!("http://{host}x");
        prop_assert!(guards::is_same_origin(&plain, Some(&host)));
        prop_assert!(guards::is_same_origin(&upper, Some(&host)));
        prop_assert!(!guards::is_same_origin(&tls, Some(&host)));
        prop_assert!(!guards::is_same_origin(&longer, Some(&host)));
    }

    #[test]
    fn user_event_rules_hold(kind in "\\PC{0,30}", source in "\\PC{0,20}", n in 0usize..70_000) {
        let data = json!("x".repeat(n));
        let r = validate_user_event(&kind, &source, &data);
        let reserved = RESERVED_TYPE_PREFIXES.iter().any(|p| kind.to_ascii_lowercase().starts_with(p))
            || source.trim().eq_ignore_ascii_case("orchestratr");
        match r {
            Err(UserEventError::Reserved(_)) => prop_assert!(reserved),
            Err(UserEventError::TooLarge(_)) => prop_assert!(!reserved && n + 2 > MAX_EVENT_DATA_BYTES),
            Ok(()) => prop_assert!(!reserved && n + 2 <= MAX_EVENT_DATA_BYTES),
        }
    }

    #[test]
    fn serialized_len_is_exact_below_the_limit(s in "\\PC{0,200}") {
        let v: Value = json!({"s": s});
        prop_assert_eq!(serialized_len(&v, usize::MAX), serde_json::to_vec(&v).map(|b| b.len()).unwrap_or(0));
    }
}
