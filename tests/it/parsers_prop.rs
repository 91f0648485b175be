//! Property tests for the parsers that take outside input: config files, request
//! bodies, request targets and query strings, event filters, Host headers and SSE
//! frames. Whatever the input, they answer (a value or a clear error) and never
//! panic; errors point at a position inside the input.

use orchestratr::config::{self, ConfigError};
use orchestratr::events::EventFilter;
use orchestratr::http::{guards, router};
use proptest::prelude::*;

/// Pieces of config-like YAML, so generated files are often almost valid.
fn yaml_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("apps:\n".to_string()),
        Just("  - name: a\n".to_string()),
        Just("    command: \"sleep 1\"\n".to_string()),
        Just("    ready_timeout_ms: 0\n".to_string()),
        Just("    environment: wsl:x\n".to_string()),
        Just("tasks:\n  - name: t\n    command: [\"true\"]\n".to_string()),
        Just("pools: {p: {max_concurrent: 0}}\n".to_string()),
        Just("agents:\n  a: {delegate: [\"x\"]}\n".to_string()),
        Just("api_port: 70000\n".to_string()),
        Just("event_buffer: 5\n".to_string()),
        Just("auth: maybe\n".to_string()),
        Just("leader_key: x\n".to_string()),
        Just("&a [*a]\n".to_string()),
        Just("<<: *b\n".to_string()),
        "[ -~\t\n]{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn config_loading_never_panics(pieces in prop::collection::vec(yaml_piece(), 0..12), dropin in "[ -~\n]{0,80}") {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("config.yml"), pieces.concat()).expect("write");
        std::fs::create_dir_all(dir.path().join("apps.d")).expect("mkdir");
        std::fs::write(dir.path().join("apps.d/x.yml"), dropin).expect("write");
        match config::load(dir.path()) {
            Ok(c) => {
                for a in c.apps.values() {
                    prop_assert!(config::valid_app_name(&a.name));
                }
            }
            Err(ConfigError::Invalid(d)) => {
                prop_assert!(!d.is_empty());
                let lines = pieces.concat().lines().count() as u64 + 1;
                for x in d {
                    prop_assert!(x.line <= lines, "{x} beyond the file");
                    prop_assert!(!x.message.is_empty());
                }
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    #[test]
    fn json_bodies_parse_or_name_a_position(body in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Err(e) = guards::parse_json(&body) {
            prop_assert_eq!(e.status, 400);
            prop_assert!(e.message.starts_with("malformed json at line"), "{}", e.message);
        }
    }

    #[test]
    fn json_like_bodies_parse_or_name_a_position(body in r#"[{}\[\]":,0-9a-z \n\\]{0,60}"#) {
        if let Err(e) = guards::parse_json(body.as_bytes()) {
            prop_assert_eq!(e.status, 400);
            let d = e.details.expect("details");
            prop_assert!(d["line"].as_u64().is_some() && d["column"].as_u64().is_some());
        }
    }

    #[test]
    fn request_targets_route_without_panicking(method in "(GET|POST|PUT|DELETE|[A-Z]{0,6})", url in "(/api)?(/[a-z{}%?&=.]{0,12}){0,5}(\\?[ -~]{0,30})?") {
        match router::route(&method, &url) {
            router::RouteMatch::MethodNotAllowed(allow) => prop_assert!(!allow.is_empty()),
            router::RouteMatch::Found(_, _, params) => {
                for p in params {
                    prop_assert!(!p.is_empty() && !p.contains('/'));
                }
            }
            router::RouteMatch::NotFound => {}
        }
    }

    #[test]
    fn event_filters_and_hosts_never_panic(types in "[ -~]{0,40}", host in "[ -~]{0,40}") {
        let f = EventFilter::new(Some(&types), Some(&host), None);
        let _ = format!("{f:?}");
        let h = guards::host_part(&host);
        prop_assert!(h.len() <= host.len());
        let _ = guards::check_host(Some(&host), &config::Settings::default());
    }

    #[test]
    fn sse_frames_parse_without_panicking(text in "[ -~\n:]{0,300}") {
        let mut r: &[u8] = text.as_bytes();
        let mut n = 0;
        while let Ok(Some(_)) = orchestratr::client::next_frame(&mut r) {
            n += 1;
            prop_assert!(n <= text.len());
        }
    }
}
