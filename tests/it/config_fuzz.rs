//! The config with extreme numbers (issue 13 parts 4 and 6, API.md §9 "bounded
//! state"): every numeric key × any number, float or string never panics; a
//! value is accepted exactly when it is an integer inside the key's documented
//! range, otherwise it is an error at the value's line naming the range. And
//! the real daemon meets each extreme value with a config error, not a crash:
//! exit 2 at start-up, `config.invalid` on reload while `/health` and the
//! event stream keep working.

use crate::common;

use common::*;
use orchestratr::config::ranges::{RANGES, Range};
use orchestratr::config::{self, ConfigError};
use proptest::prelude::*;
use std::fs;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(20);

/// A `config.yml` setting `r`'s key to `value`, and the line of the value.
fn yaml_for(r: &Range, value: &str) -> (String, u64) {
    let last = r.key.rsplit('.').next().unwrap_or(r.key);
    if let Some(k) = r.key.strip_prefix("retention.") {
        (format!("retention:\n  {k}: {value}\n"), 2)
    } else if let Some(k) = r.key.strip_prefix("apps[].") {
        (
            format!("apps:\n  - name: a\n    command: x\n    {k}: {value}\n"),
            4,
        )
    } else if r.key.starts_with("tasks[].") {
        (
            format!("tasks:\n  - name: t\n    command: x\n    {last}: {value}\n"),
            4,
        )
    } else if r.key.starts_with("agents.") {
        (
            format!("agents:\n  c:\n    delegate: [\"c\", \"{{prompt}}\"]\n    {last}: {value}\n"),
            4,
        )
    } else if r.key.starts_with("pools.") {
        (format!("pools:\n  p:\n    {last}: {value}\n"), 3)
    } else {
        (format!("{}: {value}\n", r.key), 1)
    }
}

/// Numbers as YAML text, with the integer they denote when they are one.
fn number() -> impl Strategy<Value = (String, Option<i128>)> {
    prop_oneof![
        any::<u64>().prop_map(|v| (v.to_string(), Some(i128::from(v)))),
        any::<i64>().prop_map(|v| (v.to_string(), Some(i128::from(v)))),
        (0u64..2_000_000).prop_map(|v| (v.to_string(), Some(i128::from(v)))),
        any::<u128>().prop_map(|v| (v.to_string(), i128::try_from(v).ok())),
        prop::sample::select(vec![
            0i128,
            -1,
            i128::from(u64::MAX),
            i128::from(u64::MAX) + 1,
            i128::from(i64::MAX),
            i128::from(i64::MIN),
            1 << 62,
            1_000_000_000_000,
        ])
        .prop_map(|v| (v.to_string(), Some(v))),
        any::<f64>().prop_map(|f| (format!("{f:e}"), None)),
        prop::sample::select(vec![
            "1e308", "-1e308", "1e999", ".inf", "-.inf", ".nan", "0.5", "1.0", "'7'", "\"\"",
            "null", "~", "true", "[]", "{}", "[1]", "{a: 1}",
        ])
        .prop_map(|s| (s.to_string(), None)),
        // YAML 1.2 hex and octal integers are integers too.
        prop::sample::select(vec![("0x10", 16i128), ("0o7", 7), ("0x0", 0), ("-0x1", -1)])
            .prop_map(|(s, v)| (s.to_string(), Some(v))),
        "[a-z0-9 ]{0,64}".prop_map(|s| (format!("\"{s}\""), None)),
    ]
}

fn in_range(r: &Range, v: Option<i128>) -> bool {
    v.is_some_and(|v| v >= i128::from(r.min) && v <= i128::from(r.max))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn numeric_keys_accept_exactly_their_range(
        idx in 0..RANGES.len(),
        (text, value) in number(),
    ) {
        let r = &RANGES[idx];
        let (yaml, line) = yaml_for(r, &text);
        let dir = tempfile::tempdir().expect("tmp");
        fs::write(dir.path().join("config.yml"), &yaml).expect("write");
        let res = config::load(dir.path());
        // `null`/`~` mean "not set": the default applies.
        let unset = text == "null" || text == "~";
        if unset || in_range(r, value) {
            prop_assert!(res.is_ok(), "{} = {text}: {res:?}", r.key);
        } else {
            match res {
                Err(ConfigError::Invalid(d)) => {
                    prop_assert_eq!(d.len(), 1, "{:?}", d);
                    prop_assert_eq!(d[0].line, line, "{:?}", d);
                    let allowed = format!("allowed {}..={}", r.min, r.max);
                    prop_assert!(d[0].message.contains(&allowed), "{} = {text}: {:?}", r.key, d);
                }
                other => prop_assert!(false, "{} = {text}: expected invalid, got {other:?}", r.key),
            }
        }
    }

    #[test]
    fn random_configs_with_extreme_numbers_never_panic(
        picks in prop::collection::vec((0..RANGES.len(), number()), 1..8),
        filler in prop::collection::vec(0usize..200_000, 0..3),
    ) {
        // Several keys at once (later duplicates of a key are YAML errors, also
        // fine), plus long string values.
        let mut top = String::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut expect_ok = true;
        for (i, (text, v)) in &picks {
            let r = &RANGES[*i];
            if r.key.contains('.') || r.key.contains('[') || !seen.insert(r.key) {
                continue;
            }
            expect_ok &= in_range(r, *v) || text == "null" || text == "~";
            top.push_str(&yaml_for(r, text).0);
        }
        for (n, len) in filler.iter().enumerate() {
            top.push_str(&format!("extra_{n}: \"{}\"\n", "x".repeat(*len)));
        }
        let dir = tempfile::tempdir().expect("tmp");
        fs::write(dir.path().join("config.yml"), &top).expect("write");
        let res = config::load(dir.path());
        if expect_ok {
            prop_assert!(res.is_ok(), "{res:?}");
        } else {
            prop_assert!(matches!(res, Err(ConfigError::Invalid(_))), "{res:?}");
        }
        let report = config::check(dir.path());
        prop_assert_eq!(report.is_valid(), res.is_ok());
    }
}

/// The values of the bug reports and the classic extremes.
const EXTREME: &[&str] = &[
    "sse_queue_capacity: 1000000000000\n",
    "sse_queue_capacity: 4611686018427387904\n",
    "sse_max_streams: 18446744073709551615\n",
    "event_buffer: 9223372036854775807\n",
    "event_buffer_bytes: 1e308\n",
    "sse_heartbeat_ms: 0\n",
    "shutdown_timeout_ms: -1\n",
    "retention:\n  output_bytes: 18446744073709551616\n",
    "pools:\n  default:\n    max_concurrent: 4611686018427387904\n",
    "tasks:\n  - name: t\n    command: x\n    timeout_ms: 18446744073709551615\n",
    "apps:\n  - name: a\n    command: x\n    stop_timeout_ms: 18446744073709551615\n",
];

#[test]
fn each_extreme_value_stops_start_up_with_exit_2() {
    for yaml in EXTREME {
        let dirs = Dirs::new();
        dirs.write("config.yml", yaml);
        let (mut child, _out, err) = dirs.spawn_serve(&[]);
        let st = wait_child(&mut child, DEADLINE);
        let stderr = fs::read_to_string(&err).unwrap_or_default();
        assert_eq!(st.code(), Some(2), "{yaml}: stderr:\n{stderr}");
        assert!(
            stderr.contains("config.yml:") && stderr.contains("allowed "),
            "{yaml}: file:line:column and the range in:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn each_extreme_value_on_reload_is_config_invalid_and_the_daemon_serves_on() {
    let d = Daemon::start("apps:\n  - name: keep\n    command: \"sleep 30\"\n");
    for yaml in EXTREME {
        d.dirs.write("config.yml", yaml);
        let r = d.request("POST", "/reload", &[], b"");
        assert_eq!(r.status, 422, "{yaml}: {}", r.text());
        let v = assert_error(&r, 422, "invalid_config");
        assert!(v.to_string().contains("allowed "), "{yaml}: {v}");
        assert_eq!(d.app_names(), ["keep"], "previous registry kept");
    }
    // The watcher reports the last one too, and everything still answers.
    d.wait_event(DEADLINE, "type=config.invalid", |_| true);
    let (st, h) = d.get_json("/health");
    assert_eq!(st, 200, "{h}");
    let mut s = SseClient::connect(d.port, "/events/stream?type=test.*", &[]);
    let id = d.publish("test.ping", "fuzz", serde_json::json!({}));
    let f = s.expect_event(DEADLINE);
    assert_eq!(f.id_u64(), Some(id));
}
