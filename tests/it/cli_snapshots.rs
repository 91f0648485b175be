//! Snapshot tests (insta) of what a person sees, on a fixed daemon state: a
//! fixed config, two finished runs. Ids, clock times, relative times, durations
//! and temp paths are redacted, and runs of spaces collapsed (column widths
//! depend on the redacted values; alignment itself is unit-tested in
//! `src/cli/output.rs`), so the snapshots hold on a loaded machine.
//!
//! Update after an intended change: `INSTA_UPDATE=always cargo test --test
//! cli_snapshots` (or `cargo insta review`), then commit `tests/snapshots/`.

use crate::common;

use common::*;

const CFG: &str = r#"
apps:
  - name: alpha
    command: "sleep 300"
    description: "the first app"
  - name: beta
    command: "sleep 300"
tasks:
  - name: ok
    command: ["echo", "fine"]
  - name: three
    command: ["sh", "-c", "echo bad; exit 3"]
"#;

fn cli(d: &Daemon, args: &[&str]) -> String {
    let o = d.cli_env(args, &[("NO_COLOR", "1")]);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", describe(&o));
    stdout_str(&o)
}

fn settings(d: &Daemon) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    let tmp = d.dirs.scratch().display().to_string();
    s.add_filter(&regex_escape(&tmp), "[TMP]");
    s.add_filter(r"exec-[0-9a-f]{12}", "exec-[ID]");
    s.add_filter(r"#\d+ ", "#[N] ");
    s.add_filter(r"\b\d\d:\d\d:\d\d\b", "[TIME]");
    s.add_filter(r"just now|\d+ s ago|\d+ min ago|\d+ h ago", "[AGO]");
    s.add_filter(r"\b\d+(\.\d)? (ms|s)\b", "[DUR]");
    s.add_filter(r"queue position \d+", "queue position [N]");
    s.add_filter(r"pid \d+", "pid [PID]");
    s.add_filter(r" {2,}", "  ");
    s
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

#[test]
fn what_a_person_sees() {
    let d = Daemon::start(CFG);
    for (task, code) in [("ok", 0), ("three", 3)] {
        let o = d.cli(&["run", task, "--follow"]);
        assert_eq!(o.status.code(), Some(code), "{}", describe(&o));
    }
    let s = settings(&d);
    s.bind(|| {
        insta::assert_snapshot!("app_list", cli(&d, &["app", "list"]));
        insta::assert_snapshot!("exec_list", cli(&d, &["exec", "list"]));
        insta::assert_snapshot!(
            "events_executions",
            cli(&d, &["events", "--type", "execution.*"])
        );
        insta::assert_snapshot!("help", cli(&d, &["--help"]));
        insta::assert_snapshot!("help_short", cli(&d, &["-h"]));
    });
}
