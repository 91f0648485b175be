//! Unit tests of the bounds of the config (API.md §9 "bounded state"): numeric
//! ranges, the 4 MiB file cap, duplicate chords, `check`, and the examples of
//! the default config.

use super::ranges::{Num, RANGES, Range};
use super::*;
use std::fs;

fn dir_with(main: &str, dropins: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    fs::write(d.path().join("config.yml"), main).expect("write");
    fs::create_dir_all(d.path().join("apps.d")).expect("mkdir");
    for (n, t) in dropins {
        fs::write(d.path().join("apps.d").join(n), t).expect("write");
    }
    d
}

/// A `config.yml` setting the key of `r` to `value`, and the 1-based line of
/// the value.
pub(super) fn yaml_for(r: &Range, value: &str) -> (String, u64) {
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

#[test]
fn ranges_table_matches_docs() {
    let docs = include_str!("../../docs/api.md");
    for r in RANGES {
        let row = format!("| `{}` | {} | {} | {} |", r.key, r.min, r.max, r.unit);
        assert!(docs.contains(&row), "docs/api.md lacks the row {row}");
    }
}

#[test]
fn defaults_are_within_their_ranges() {
    let s = Settings::default();
    let p = PoolSpec::default();
    let e = ExecConfig::default();
    let r = Retention::default();
    let checks: [(&Range, u64); 13] = [
        (&ranges::API_PORT, u64::from(s.api_port)),
        (&ranges::EVENT_BUFFER, s.event_buffer as u64),
        (&ranges::EVENT_BUFFER_BYTES, s.event_buffer_bytes as u64),
        (&ranges::SSE_HEARTBEAT_MS, s.sse_heartbeat_ms),
        (&ranges::SSE_MAX_STREAMS, s.sse_max_streams as u64),
        (&ranges::SSE_QUEUE_CAPACITY, s.sse_queue_capacity as u64),
        (&ranges::RETENTION_EXECUTIONS, r.executions as u64),
        (&ranges::RETENTION_OUTPUT_BYTES, r.output_bytes),
        (&ranges::RETENTION_APPROVALS, r.approvals as u64),
        (&ranges::SHUTDOWN_TIMEOUT_MS, e.shutdown_timeout_ms),
        (&ranges::STOP_TIMEOUT_MS, 5000),
        (&ranges::POOL_MAX_CONCURRENT, p.max_concurrent as u64),
        (&ranges::POOL_MAX_QUEUED, p.max_queued as u64),
    ];
    for (r, v) in checks {
        assert!(r.accept(&Num::Int(i128::from(v))).is_some(), "{}", r.key);
    }
    assert_eq!(s.event_buffer_bytes, 32 * 1024 * 1024);
}

/// Values no key accepts, as YAML text.
const EXTREMES: &[&str] = &[
    "-1",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "4611686018427387904",
    "340282366920938463463374607431768211456",
    "1e308",
    "-1e308",
    ".inf",
    ".nan",
    "1.5",
    "'12'",
    "true",
    "[1, 2]",
    "{a: 1}",
];

#[test]
fn extreme_values_are_errors_at_the_value_with_the_range() {
    for r in RANGES {
        for v in EXTREMES {
            let (yaml, line) = yaml_for(r, v);
            let d = dir_with(&yaml, &[]);
            let diags = match load(d.path()) {
                Err(ConfigError::Invalid(x)) => x,
                other => panic!("{} = {v}: expected invalid, got {other:?}", r.key),
            };
            assert_eq!(diags.len(), 1, "{} = {v}: {diags:?}", r.key);
            let m = &diags[0];
            assert_eq!(m.line, line, "{} = {v}: {m:?}", r.key);
            assert!(m.column > 0, "{m:?}");
            let allowed = format!("allowed {}..={}", r.min, r.max);
            assert!(m.message.contains(&allowed), "{} = {v}: {m:?}", r.key);
        }
        // Just outside, both ends (when representable), and both bounds.
        let mut outside = vec![r.max as i128 + 1];
        if r.min > 0 {
            outside.push(r.min as i128 - 1);
        }
        for v in outside {
            let (yaml, _) = yaml_for(r, &v.to_string());
            let d = dir_with(&yaml, &[]);
            assert!(load(d.path()).is_err(), "{} = {v} accepted", r.key);
        }
        for v in [r.min, r.max] {
            let (yaml, _) = yaml_for(r, &v.to_string());
            let d = dir_with(&yaml, &[]);
            let c = load(d.path());
            assert!(c.is_ok(), "{} = {v} refused: {c:?}", r.key);
        }
    }
}

#[test]
fn sse_queue_capacity_of_the_report_is_refused() {
    for v in ["1000000000000", "4611686018427387904"] {
        let d = dir_with(&format!("sse_queue_capacity: {v}\n"), &[]);
        let Err(ConfigError::Invalid(diags)) = load(d.path()) else {
            panic!("{v} accepted")
        };
        assert_eq!(
            diags[0].message,
            format!("sse_queue_capacity {v} is out of range: allowed 1..=16384 (events)")
        );
        assert_eq!((diags[0].line, diags[0].column), (1, 21));
    }
}

#[test]
fn dropin_out_of_range_is_skipped_with_position() {
    let d = dir_with(
        "apps: []\n",
        &[("x.yml", "name: x\ncommand: y\nstop_timeout_ms: -5\n")],
    );
    let c = load(d.path()).expect("main file valid");
    assert!(c.apps.is_empty());
    assert_eq!(c.skipped.len(), 1);
    assert_eq!(c.skipped[0].line, 3);
    let w = c.warnings.join("\n");
    assert!(
        w.contains("stop_timeout_ms -5 is out of range: allowed 0..=3600000"),
        "{w}"
    );
}

#[test]
fn files_over_4_mib_are_refused_before_reading() {
    // A 10 MB string value in config.yml.
    let big = format!("apps: []\nx: \"{}\"\n", "a".repeat(10_000_000));
    let d = dir_with(&big, &[]);
    let Err(ConfigError::Invalid(diags)) = load(d.path()) else {
        panic!("oversized config accepted")
    };
    assert!(
        diags[0].message.contains("over the 4194304-byte"),
        "{diags:?}"
    );
    assert!(diags[0].file.ends_with("config.yml"));

    // The same in a drop-in: skipped with a warning, the rest loads.
    let dropin = format!("name: big\ncommand: \"{}\"\n", "b".repeat(5_000_000));
    let d = dir_with(
        "apps: []\n",
        &[("big.yml", &dropin), ("ok.yml", "name: ok\ncommand: x\n")],
    );
    let c = load(d.path()).expect("valid");
    assert!(c.apps.contains_key("ok") && !c.apps.contains_key("big"));
    assert!(
        c.warnings.join("\n").contains("big.yml"),
        "{:?}",
        c.warnings
    );

    // Exactly 4 MiB is fine.
    let mut exact = String::from("apps: []\n");
    while exact.len() + 81 <= MAX_FILE_BYTES as usize {
        exact.push_str(&format!("#{}\n", "c".repeat(79)));
    }
    exact.push_str(&"#".repeat(MAX_FILE_BYTES as usize - exact.len() - 1));
    exact.push('\n');
    assert_eq!(exact.len() as u64, MAX_FILE_BYTES);
    let d = dir_with(&exact, &[]);
    assert!(load(d.path()).is_ok());
}

#[test]
fn duplicate_chords_warn_naming_both_apps() {
    let d = dir_with(
        "apps:\n  - name: a\n    command: x\n    chord: e\n  - name: c\n    command: x\n    chord: f\n",
        &[("b.yml", "name: b\ncommand: y\nchord: \" e \"\n")],
    );
    let c = load(d.path()).expect("valid");
    assert_eq!(c.apps.len(), 3);
    let w: Vec<&String> = c.warnings.iter().filter(|w| w.contains("chord")).collect();
    assert_eq!(w.len(), 1, "{:?}", c.warnings);
    assert!(
        w[0].contains("'a' (config.yml)") && w[0].contains("'b' (apps.d/b.yml)"),
        "{}",
        w[0]
    );
    assert!(w[0].contains("chord 'e'"), "{}", w[0]);
}

#[test]
fn unknown_key_warning_suggests_the_close_key() {
    let d = dir_with(
        "sse_queue_capcity: 5\npools:\n  p:\n    max_concurent: 2\n",
        &[("x.yml", "name: x\ncomand: y\ncommand: z\n")],
    );
    let c = load(d.path()).expect("valid");
    let w = c.warnings.join("\n");
    assert!(w.contains("did you mean 'sse_queue_capacity'?"), "{w}");
    assert!(w.contains("did you mean 'max_concurrent'?"), "{w}");
    assert!(w.contains("did you mean 'command'?"), "{w}");
}

#[test]
fn check_reports_errors_and_warnings_without_a_daemon() {
    let d = dir_with("apps:\n  - name: a\n    command: x\n    colr: red\n", &[]);
    let r = check(d.path());
    assert!(r.is_valid(), "{r:?}");
    assert_eq!(r.apps, 1);
    assert!(r.warnings[0].contains("did you mean 'color'?") || r.warnings[0].contains("colr"));

    let d = dir_with(
        "sse_heartbeat_ms: 1\napps:\n  - name: 'bad name'\n    command: x\n",
        &[("b.yml", "name: b\n")],
    );
    let r = check(d.path());
    assert!(!r.is_valid());
    assert_eq!(r.errors.len(), 2, "{r:?}");
    assert!(r.errors.iter().all(|e| e.line > 0 && e.column > 0), "{r:?}");
    assert!(r.errors.iter().all(|e| e.file.ends_with("config.yml")));

    // A broken drop-in is an error of the check, not a warning.
    let d = dir_with("apps: []\n", &[("b.yml", "name: b\n")]);
    let r = check(d.path());
    assert_eq!(r.errors.len(), 1, "{r:?}");
    assert!(r.errors[0].file.ends_with("b.yml"));
    assert!(r.errors[0].line > 0);
    assert!(r.warnings.is_empty(), "{r:?}");

    // A missing directory is the embedded default: valid.
    let r = check(&d.path().join("nope"));
    assert!(r.is_valid(), "{r:?}");
}

/// Keys of API.md §10 the agents part of the config may not parse yet: in the
/// default file's agent example, an unknown-key warning for them is tolerated.
const AGENT_V3_KEYS: &[&str] = &[
    "interactive",
    "resume",
    "detect",
    "prompt_patterns",
    "busy_patterns",
    "idle_after_ms",
    "submit_delay_ms",
    "max_sessions",
];

/// The default config with every example block uncommented: a block starts at
/// a `# <key>:` line for a top-level key and runs over the `#  `-indented
/// lines after it; each loses its leading `# `.
pub(super) fn default_with_examples() -> String {
    let blocks = ["apps:", "pools:", "tasks:", "workspaces:", "agents:"];
    let mut out = String::new();
    let mut inside = false;
    for line in DEFAULT_CONFIG.lines() {
        let rest = line.strip_prefix("# ");
        inside = match rest {
            Some(r) if blocks.contains(&r.trim_end()) => true,
            Some(r) => inside && r.starts_with(' '),
            None => false,
        };
        match rest {
            Some(r) if inside => out.push_str(r),
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[test]
fn default_config_examples_work_when_uncommented() {
    let text = default_with_examples();
    let d = dir_with(&text, &[]);
    let c = load(d.path()).unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
    assert_eq!(c.apps.len(), 1, "{text}");
    assert!(c.apps.contains_key("espansr"));
    assert_eq!(c.exec.tasks.len(), 2);
    assert_eq!(c.exec.tasks["test"].pool, "builds");
    assert!(c.exec.pools.contains_key("builds") && c.exec.pools.contains_key("agents"));
    assert_eq!(c.exec.agents["claude"].pool, "agents");
    assert_eq!(c.exec.workspaces, ["~/code"]);
    for w in &c.warnings {
        assert!(
            AGENT_V3_KEYS
                .iter()
                .any(|k| w.contains(&format!("'agents.claude.{k}'"))),
            "unexpected warning: {w}"
        );
    }
    // Still valid and empty as shipped.
    let d = dir_with(DEFAULT_CONFIG, &[]);
    let c = load(d.path()).expect("valid");
    assert!(c.apps.is_empty() && c.exec.tasks.is_empty() && c.warnings.is_empty());
}
