//! Unit tests for config validation messages (file, line, column, wording).

use super::*;
use std::fs;

fn dir_with(main: Option<&str>, dropins: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    if let Some(m) = main {
        fs::write(d.path().join("config.yml"), m).expect("write");
    }
    fs::create_dir_all(d.path().join("apps.d")).expect("mkdir");
    for (n, t) in dropins {
        fs::write(d.path().join("apps.d").join(n), t).expect("write");
    }
    d
}

fn invalid(main: &str) -> Vec<Diagnostic> {
    let d = dir_with(Some(main), &[]);
    match load(d.path()) {
        Err(ConfigError::Invalid(v)) => v,
        other => panic!("expected invalid, got {other:?}"),
    }
}

#[test]
fn default_config_is_valid_and_empty() {
    let d = dir_with(Some(DEFAULT_CONFIG), &[]);
    let c = load(d.path()).expect("valid");
    assert!(c.apps.is_empty());
    assert_eq!(c.settings, Settings::default());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn missing_config_is_the_default() {
    let d = dir_with(None, &[]);
    let c = load(d.path()).expect("valid");
    assert!(c.apps.is_empty());
}

#[test]
fn empty_and_comment_only_files_are_valid() {
    for t in ["", "# nothing\n", "\n\n"] {
        let d = dir_with(Some(t), &[]);
        assert!(load(d.path()).is_ok(), "{t:?}");
    }
}

#[test]
fn syntax_error_has_line_and_column() {
    let v = invalid("apps:\n  - name: [broken\n");
    assert_eq!(v.len(), 1);
    assert!(v[0].file.ends_with("config.yml"));
    assert!(v[0].line >= 2, "{:?}", v[0]);
    assert!(v[0].column > 0);
}

#[test]
fn type_error_names_the_position() {
    let v = invalid("api_port: lots\n");
    assert_eq!((v[0].line, v[0].column), (1, 11));
    assert!(
        v[0].message
            .contains("api_port 'lots' is not an integer: allowed 0..=65535"),
        "{}",
        v[0].message
    );
}

#[test]
fn missing_command_is_reported_at_the_entry() {
    let v = invalid("apps:\n  - name: x\n");
    assert!(
        v[0].message.contains("missing field 'command'"),
        "{}",
        v[0].message
    );
    assert_eq!(v[0].line, 2);
}

#[test]
fn bad_name_and_environment_are_all_reported() {
    let v = invalid(
        "apps:\n  - name: \"-bad\"\n    command: x\n  - name: ok\n    command: y\n    environment: docker\n",
    );
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v[0].message.contains("invalid app name '-bad'"));
    assert_eq!((v[0].line, v[0].column), (2, 11));
    assert!(v[1].message.contains("invalid environment 'docker'"));
    assert_eq!(v[1].line, 6);
    let shown = v[0].to_string();
    assert!(
        shown.contains("config.yml:2:11: invalid app name"),
        "{shown}"
    );
}

#[test]
fn duplicate_names_in_main_file_are_an_error() {
    let v = invalid("apps:\n  - name: a\n    command: x\n  - name: a\n    command: y\n");
    assert!(
        v[0].message
            .contains("duplicate app name 'a' (first at line 2)"),
        "{v:?}"
    );
    assert_eq!(v[0].line, 4);
}

#[test]
fn settings_are_validated() {
    let v = invalid("log_level: loud\nauth: maybe\nevent_buffer: 5\nsse_heartbeat_ms: 10\n");
    assert_eq!(v.len(), 4, "{v:?}");
    assert!(v[0].message.contains("log_level 'loud'"));
    assert!(v[1].message.contains("auth 'maybe'"));
    assert!(
        v[2].message
            .contains("event_buffer 5 is out of range: allowed 10000..=1000000"),
        "{}",
        v[2].message
    );
    assert_eq!((v[2].line, v[2].column), (3, 15), "{:?}", v[2]);
    assert!(v[3].message.contains("sse_heartbeat_ms"));
}

#[test]
fn unknown_keys_are_warnings() {
    let d = dir_with(
        Some(
            "leader_key: ctrl+space\nchord_timeout_ms: 2000\napps:\n  - name: a\n    command: x\n    colour: red\n",
        ),
        &[],
    );
    let c = load(d.path()).expect("valid");
    assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("unknown key 'leader_key' ignored"));
    assert!(
        c.warnings[2].contains("unknown key 'apps[0].colour' ignored"),
        "{:?}",
        c.warnings
    );
}

#[test]
fn espansr_dropin_loads_with_defaults() {
    let d = dir_with(
        Some(DEFAULT_CONFIG),
        &[(
            "espansr.yml",
            "name: espansr\ncommand: \"espansr gui\"\ndescription: \"Espanso template manager\"\nenvironment: native\nchord: \"e\"\nready_cmd: \"espansr status --json\"\nready_timeout_ms: 3000\n",
        )],
    );
    let c = load(d.path()).expect("valid");
    let a = &c.apps["espansr"];
    assert_eq!(a.source, "apps.d/espansr.yml");
    assert_eq!(a.ready_timeout_ms, 3000);
    assert_eq!(a.stop_timeout_ms, 5000);
    assert!(!a.detached);
}

#[test]
fn broken_dropin_is_skipped_with_position() {
    let d = dir_with(
        None,
        &[
            ("good.yml", "name: good\ncommand: x\n"),
            ("bad.yml", "name: bad\ncommand: [\n"),
        ],
    );
    let c = load(d.path()).expect("valid");
    assert!(c.apps.contains_key("good"));
    assert!(!c.apps.contains_key("bad"));
    let w = c.warnings.join("\n");
    assert!(w.contains("bad.yml:"), "{w}");
    assert!(w.contains("drop-in skipped"), "{w}");
}

#[test]
fn main_config_wins_over_dropin() {
    let d = dir_with(
        Some("apps:\n  - name: a\n    command: from-main\n"),
        &[("a.yml", "name: a\ncommand: from-dropin\n")],
    );
    let c = load(d.path()).expect("valid");
    assert_eq!(c.apps["a"].command, "from-main");
    assert!(
        c.warnings[0].contains("shadowed by config.yml"),
        "{:?}",
        c.warnings
    );
}

#[test]
fn two_dropins_with_one_name_are_both_rejected() {
    let d = dir_with(
        None,
        &[
            ("x1.yml", "name: x\ncommand: a\n"),
            ("x2.yml", "name: x\ncommand: b\n"),
        ],
    );
    let c = load(d.path()).expect("valid");
    assert!(!c.apps.contains_key("x"));
    let w = c.warnings.join("\n");
    assert!(w.contains("apps.d/x1.yml, apps.d/x2.yml"), "{w}");
}

#[test]
fn editor_temporaries_are_ignored() {
    for n in [".x.yml.swp", ".hidden.yml", "x.yml~", "notes.txt", "#x.yml"] {
        assert!(!is_dropin_name(n), "{n}");
    }
    assert!(is_dropin_name("x.yaml"));
}

#[test]
fn fingerprint_changes_with_content() {
    let d = dir_with(Some("apps: []\n"), &[]);
    let a = load(d.path()).expect("valid").fingerprint;
    let b = load(d.path()).expect("valid").fingerprint;
    assert_eq!(a, b);
    fs::write(d.path().join("apps.d/n.yml"), "name: n\ncommand: x\n").expect("write");
    let c = load(d.path()).expect("valid").fingerprint;
    assert_ne!(a, c);
}

#[test]
fn names_follow_the_pattern() {
    assert!(valid_app_name("espansr"));
    assert!(valid_app_name("a.b_c-9"));
    assert!(!valid_app_name(""));
    assert!(!valid_app_name("_x"));
    assert!(!valid_app_name("a b"));
    assert!(!valid_app_name(&"a".repeat(65)));
}

#[test]
fn exec_config_parses_tasks_pools_agents() {
    let d = dir_with(
        Some(
            "tasks:\n  - name: test\n    command: [\"cargo\", \"test\"]\n    pool: ci\n    timeout_ms: 1000\n  - name: sh\n    command: \"echo hi\"\n    allow_args: true\npools:\n  ci: {max_concurrent: 1, max_queued: 5, starts_per_minute: 10}\nagents:\n  claude:\n    delegate: [\"claude\", \"-p\", \"{prompt}\"]\nworkspaces: [\"~/code\"]\nshutdown_timeout_ms: 5000\n",
        ),
        &[],
    );
    let c = load(d.path()).expect("valid");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let t = &c.exec.tasks["test"];
    assert_eq!(
        t.command,
        CommandSpec::Argv(vec!["cargo".into(), "test".into()])
    );
    assert_eq!((t.pool.as_str(), t.timeout_ms), ("ci", Some(1000)));
    assert_eq!(
        c.exec.tasks["sh"].command.argv(&["a b".into()]),
        vec!["/bin/sh", "-c", "echo hi", "sh", "a b"]
    );
    assert_eq!(c.exec.pools["ci"].starts_per_minute, Some(10));
    assert!(c.exec.pools.contains_key("default"));
    assert_eq!(c.exec.agents["claude"].pool, "default");
    assert_eq!(c.exec.shutdown_timeout_ms, 5000);
}

#[test]
fn exec_config_errors_have_positions() {
    let v = invalid(
        "tasks:\n  - name: t\n    command: x\n    pool: nope\nagents:\n  a:\n    delegate: [\"x\"]\n",
    );
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v[0].message.contains("unknown pool 'nope'"), "{v:?}");
    assert_eq!(v[0].line, 4);
    assert!(v[1].message.contains("must contain {prompt}"), "{v:?}");
}
