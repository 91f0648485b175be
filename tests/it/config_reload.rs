//! Config loading, drop-ins, merge rules and hot reload (API.md §6).

use crate::common;

use std::fs;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Hot reload should apply within ~1 s; we only assert it happens within a
/// generous deadline (never assert speed).
const RELOAD_DEADLINE: Duration = Duration::from_secs(10);

const ESPANSR: &str = r#"name: espansr
command: "sleep 30"
description: "Espanso template manager"
chord: e
ready_cmd: "true"
leader_key: x
"#;

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn warnings_text(v: &Value) -> String {
    v["warnings"].to_string()
}

#[test]
fn dropin_appears_and_disappears_live() {
    let dirs = Dirs::new();
    dirs.write("config.yml", "apps: []\n");
    fs::create_dir_all(dirs.cfg.join("apps.d")).unwrap();
    let d = Daemon::start_in(dirs, &[]);
    assert!(d.app_names().is_empty());

    d.dirs.write("apps.d/espansr.yml", ESPANSR);
    wait_for(RELOAD_DEADLINE, "espansr in GET /apps", || {
        d.app_names().contains(&"espansr".to_string())
    });
    let (st, a) = d.get_json("/apps/espansr");
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["command"], "sleep 30");
    assert_eq!(a["description"], "Espanso template manager");
    assert_eq!(a["chord"], "e");
    assert_eq!(a["ready_cmd"], "true");
    assert_eq!(a["source"], "apps.d/espansr.yml", "{a}");

    let ev = d.wait_event(RELOAD_DEADLINE, "type=registry.reloaded", |e| {
        str_list(&e["data"]["added"]).contains(&"espansr".to_string())
    });
    assert_eq!(ev["data"]["added"], serde_json::json!(["espansr"]), "{ev}");
    assert!(
        ev["data"]["removed"].is_array() && ev["data"]["changed"].is_array(),
        "{ev}"
    );
    // the unknown key is a warning, never an error
    assert!(
        ev["data"]["warnings"].to_string().contains("leader_key"),
        "warning names the unknown key: {ev}"
    );

    // removing the file removes the app
    fs::remove_file(d.dirs.cfg.join("apps.d/espansr.yml")).unwrap();
    wait_for(RELOAD_DEADLINE, "espansr gone from GET /apps", || {
        !d.app_names().contains(&"espansr".to_string())
    });
    d.wait_event(RELOAD_DEADLINE, "type=registry.reloaded", |e| {
        str_list(&e["data"]["removed"]).contains(&"espansr".to_string())
    });
}

#[test]
fn dropin_dir_created_after_start() {
    // apps.d does not exist when the daemon starts (espansr creates it later)
    let d = Daemon::start("apps: []\n");
    d.dirs.write("apps.d/espansr.yml", ESPANSR);
    wait_for(
        RELOAD_DEADLINE,
        "espansr in GET /apps after apps.d was created",
        || d.app_names().contains(&"espansr".to_string()),
    );
}

#[test]
fn hot_reload_by_rename_save() {
    let d = Daemon::start("apps:\n  - name: a\n    command: \"sleep 1\"\n");
    assert_eq!(d.app_names(), ["a"]);

    d.dirs.write_by_rename(
        "config.yml",
        "apps:\n  - name: a\n    command: \"sleep 1\"\n  - name: b\n    command: \"sleep 2\"\n",
    );
    wait_for(RELOAD_DEADLINE, "b added by rename-save", || {
        d.app_names() == ["a", "b"]
    });
    d.wait_event(RELOAD_DEADLINE, "type=registry.reloaded", |e| {
        str_list(&e["data"]["added"]) == ["b"]
    });

    // a second rename-save still works (the watch survived the first rename)
    d.dirs.write_by_rename(
        "config.yml",
        "apps:\n  - name: a\n    command: \"sleep 1\"\n    description: changed\n",
    );
    wait_for(RELOAD_DEADLINE, "b removed, a changed", || {
        d.app_names() == ["a"] && d.get_json("/apps/a").1["description"] == "changed"
    });
    d.wait_event(RELOAD_DEADLINE, "type=registry.reloaded", |e| {
        str_list(&e["data"]["removed"]) == ["b"] && str_list(&e["data"]["changed"]) == ["a"]
    });
    // the temp file itself never became a registry source
    assert!(!d.dirs.cfg.join("config.yml.tmp").exists());
}

const GOOD: &str = "apps:\n  - name: keep\n    command: \"sleep 1\"\n";
/// Type error on line 5 (ready_timeout_ms is not a number).
const BAD_TYPE: &str = "api_port: 9876\napps:\n  - name: good\n    command: \"sleep 1\"\n    ready_timeout_ms: notanumber\n";

fn assert_invalid_config_details(v: &Value, line: Option<u64>) {
    assert_eq!(v["code"], "invalid_config", "{v}");
    let details = v["details"]
        .as_array()
        .unwrap_or_else(|| panic!("details array: {v}"));
    assert!(!details.is_empty(), "{v}");
    let d0 = &details[0];
    assert!(
        d0["file"]
            .as_str()
            .is_some_and(|f| f.contains("config.yml")),
        "{v}"
    );
    assert!(d0["line"].as_u64().is_some_and(|l| l >= 1), "{v}");
    assert!(d0["column"].as_u64().is_some_and(|c| c >= 1), "{v}");
    assert!(d0["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    if let Some(l) = line {
        assert_eq!(
            d0["line"].as_u64(),
            Some(l),
            "error points at the faulty line: {v}"
        );
    }
}

#[test]
fn invalid_config_on_reload_keeps_registry() {
    let d = Daemon::start(GOOD);
    let before = d
        .events("limit=1000")
        .last()
        .map(|e| e["id"].as_u64().unwrap())
        .unwrap_or(0);

    d.dirs.write_by_rename("config.yml", BAD_TYPE);
    let ev = d.wait_event(
        RELOAD_DEADLINE,
        &format!("type=config.invalid&since={before}"),
        |_| true,
    );
    assert!(
        ev["data"]["errors"]
            .as_array()
            .is_some_and(|e| !e.is_empty()),
        "config.invalid carries errors: {ev}"
    );
    // the old registry is kept
    assert_eq!(d.app_names(), ["keep"]);

    let r = d.request("POST", "/reload", &[], b"");
    assert_eq!(r.status, 422, "{}", r.text());
    let v = assert_error(&r, 422, "invalid_config");
    assert_invalid_config_details(&v, Some(5));
    assert_eq!(d.app_names(), ["keep"]);

    // a YAML syntax error behaves the same
    d.dirs.write("config.yml", "apps:\n  - name: [unclosed\n");
    let r = d.request("POST", "/api/reload", &[], b"");
    let v = assert_error(&r, 422, "invalid_config");
    assert_invalid_config_details(&v, None);
    // semantic errors: missing command, bad name
    for bad in [
        "apps:\n  - name: nocmd\n",
        "apps:\n  - name: \"bad name!\"\n    command: x\n",
        "apps:\n  - command: x\n",
        "auth: sometimes\n",
    ] {
        d.dirs.write("config.yml", bad);
        let r = d.request("POST", "/reload", &[], b"");
        assert_error(&r, 422, "invalid_config");
        assert_eq!(d.app_names(), ["keep"], "after {bad:?}");
    }

    // fixing it recovers
    d.dirs.write(
        "config.yml",
        "apps:\n  - name: fixed\n    command: \"sleep 1\"\n",
    );
    let (st, v) = d.post("/reload");
    assert_eq!(st, 200, "{v}");
    wait_for(RELOAD_DEADLINE, "fixed config applied", || {
        d.app_names() == ["fixed"]
    });
}

#[test]
fn broken_dropin_is_skipped_with_warning() {
    let d = Daemon::start_with(
        GOOD,
        &[
            ("apps.d/good.yml", "name: gooddrop\ncommand: \"sleep 1\"\n"),
            ("apps.d/broken.yml", "name: [broken\ncommand: : :\n"),
        ],
        &[],
    );
    assert_eq!(d.app_names(), ["gooddrop", "keep"]);
    let (st, v) = d.post("/reload");
    assert_eq!(st, 200, "{v}");
    let w = warnings_text(&v);
    assert!(
        w.contains("broken.yml"),
        "warning names the broken file: {v}"
    );

    // a drop-in broken while running is skipped too; the rest stays
    d.dirs
        .write("apps.d/later.yml", "name: later\ncommand: \"sleep 1\"\n");
    wait_for(RELOAD_DEADLINE, "later loaded", || {
        d.app_names() == ["gooddrop", "keep", "later"]
    });
    d.dirs
        .write("apps.d/later.yml", "name: later\ncommand: [oops\n");
    d.wait_event(RELOAD_DEADLINE, "type=registry.reloaded", |e| {
        e["data"]["warnings"].to_string().contains("later.yml")
    });
    let (_, v) = d.post("/reload");
    assert!(warnings_text(&v).contains("later.yml"), "{v}");
    assert!(d.app_names().contains(&"gooddrop".to_string()));
    assert!(d.app_names().contains(&"keep".to_string()));
}

#[test]
fn config_entry_wins_over_dropin() {
    let d = Daemon::start_with(
        "apps:\n  - name: dup\n    command: \"sleep 1\"\n    description: from config\n",
        &[(
            "apps.d/dup.yml",
            "name: dup\ncommand: \"sleep 2\"\ndescription: from dropin\n",
        )],
        &[],
    );
    let (st, a) = d.get_json("/apps/dup");
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["description"], "from config");
    assert_eq!(a["command"], "sleep 1");
    assert!(a["source"].as_str().unwrap().contains("config.yml"), "{a}");
    let (_, v) = d.post("/reload");
    assert_eq!(v["total"], 1, "{v}");
    let w = warnings_text(&v);
    assert!(
        w.contains("dup"),
        "a warning about the shadowed drop-in: {v}"
    );
}

#[test]
fn duplicate_dropins_are_both_rejected() {
    let d = Daemon::start_with(
        "apps:\n  - name: other\n    command: \"sleep 1\"\n",
        &[
            ("apps.d/one.yml", "name: twin\ncommand: \"sleep 1\"\n"),
            ("apps.d/two.yaml", "name: twin\ncommand: \"sleep 2\"\n"),
        ],
        &[],
    );
    assert_eq!(d.app_names(), ["other"]);
    let r = d.get("/apps/twin");
    assert_error(&r, 404, "not_found");
    let (_, v) = d.post("/reload");
    let w = warnings_text(&v);
    assert!(
        w.contains("one.yml") && w.contains("two.yaml"),
        "warning names both files: {v}"
    );
}

#[test]
fn editor_temporaries_are_ignored() {
    let d = Daemon::start_with(
        "apps: []\n",
        &[
            ("apps.d/.hidden.yml", "name: hidden\ncommand: x\n"),
            ("apps.d/x.yml~", "name: tilde\ncommand: x\n"),
            ("apps.d/x.yml.swp", "name: swp\ncommand: x\n"),
            ("apps.d/x.yml.tmp", "name: tmp\ncommand: x\n"),
            ("apps.d/notes.txt", "name: txt\ncommand: x\n"),
            ("apps.d/real.yaml", "name: real\ncommand: x\n"),
        ],
        &[],
    );
    assert_eq!(d.app_names(), ["real"]);
}

#[test]
fn unknown_keys_warn_but_load() {
    let d = Daemon::start(
        "leader_key: x\nchord_timeout_ms: 500\napps:\n  - name: a\n    command: \"sleep 1\"\n    hotkey: ctrl+a\n",
    );
    assert_eq!(d.app_names(), ["a"]);
    let (st, v) = d.post("/reload");
    assert_eq!(st, 200, "{v}");
    let w = warnings_text(&v);
    assert!(w.contains("leader_key"), "{v}");
    assert!(w.contains("hotkey"), "{v}");
}

#[test]
fn empty_or_comment_only_config_is_valid() {
    let d = Daemon::start("# nothing here\n");
    assert!(d.app_names().is_empty());
    d.dirs.write("config.yml", "");
    let (st, v) = d.post("/reload");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["total"], 0);
}

#[test]
fn first_start_writes_commented_default_config() {
    let dirs = Dirs::new_missing();
    assert!(!dirs.config_path().exists());
    let d = Daemon::start_in(dirs, &[]);
    let p = d.dirs.config_path();
    assert!(p.exists(), "default config.yml written");
    let text = fs::read_to_string(&p).unwrap();
    assert!(
        text.lines().any(|l| l.trim_start().starts_with('#')),
        "default config is commented:\n{text}"
    );
    let (st, v) = d.post("/reload");
    assert_eq!(st, 200, "the default config is valid: {v}");
    // token file: 64 lowercase hex chars, mode 0600
    let tok = fs::read_to_string(d.dirs.token_file()).unwrap();
    let t = tok.trim_end_matches('\n');
    assert_eq!(t.len(), 64, "{tok:?}");
    assert!(
        t.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "{tok:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(d.dirs.token_file())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "token file mode {mode:o}");
}

#[test]
fn invalid_config_at_startup_exits_2() {
    let dirs = Dirs::new();
    // type error on line 3
    dirs.write(
        "config.yml",
        "apps:\n  - name: a\n    command: [\"not\", \"a\", \"string\"\n",
    );
    let (mut child, out, err) = dirs.spawn_serve(&[]);
    let st = wait_child(&mut child, DEADLINE);
    let stderr = fs::read_to_string(&err).unwrap_or_default();
    let stdout = fs::read_to_string(&out).unwrap_or_default();
    assert_eq!(
        st.code(),
        Some(2),
        "exit code; stderr:\n{stderr}\nstdout:\n{stdout}"
    );
    assert!(
        !dirs.port_file().exists(),
        "no port file for a daemon that never ran"
    );

    let dirs2 = Dirs::new();
    dirs2.write("config.yml", BAD_TYPE);
    let (mut child, _out, err) = dirs2.spawn_serve(&[]);
    let st = wait_child(&mut child, DEADLINE);
    let stderr = fs::read_to_string(&err).unwrap_or_default();
    assert_eq!(st.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("config.yml:5:"),
        "message names file:line:column:\n{stderr}"
    );
}

#[test]
fn api_port_change_on_reload_is_a_warning() {
    let d = Daemon::start(GOOD);
    d.dirs.write("config.yml", &format!("api_port: 1\n{GOOD}"));
    let (st, v) = d.post("/reload");
    assert_eq!(st, 200, "{v}");
    assert!(warnings_text(&v).contains("api_port"), "{v}");
    // still serving on the same port
    assert_eq!(d.get("/health").status, 200);
    assert_eq!(d.dirs.read_port(), Some(d.port));
}
