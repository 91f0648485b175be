//! Each view rendered from a fixed state with ratatui's `TestBackend`,
//! snapshotted with insta (`tests/snapshots/`), at 80×24 and 200×30.

use super::render;
use super::state::{App, Conn, Mode, Pane, View};
use super::term::Screen;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::{Value, json};
use std::time::{Duration, UNIX_EPOCH};

fn fixed() -> App {
    let mut app = App::new("http://127.0.0.1:9876", false, true);
    app.conn = Conn::Live;
    app.frozen_now = Some(UNIX_EPOCH + Duration::from_secs(1_780_000_000));
    app.daemon_started = Some(UNIX_EPOCH + Duration::from_secs(1_779_990_000));
    app.apps = vec![
        json!({"name":"espansr","description":"Espanso template manager",
               "state":{"status":"ready","alive":true,"pid":4321,"memory_mb":41.2,"cpu_percent":0.4}}),
        json!({"name":"notes","description":"notes\u{1b}[2J app",
               "state":{"status":"stopped","alive":false,"pid":null,"memory_mb":null,"cpu_percent":null}}),
    ];
    let ex = |id: &str, task: &str, status: &str, pool: &str, out: u64| -> Value {
        json!({"id":id,"task":task,"status":status,"pool":pool,"created_at":"2026-05-28T20:26:40.000Z",
               "finished_at": if status == "failed" {json!("2026-05-28T20:27:00.000Z")} else {Value::Null},
               "duration_ms": if status == "running" {Value::Null} else {json!(1234)},"output_bytes":out})
    };
    app.executions = vec![
        ex("exec-00000000000a", "test", "running", "default", 2048),
        ex("exec-00000000000b", "build", "pending", "default", 0),
        ex("exec-00000000000c", "lint", "failed", "ci", 3_500_000),
        ex("exec-00000000000d", "test", "completed", "default", 512),
    ];
    app.approvals = vec![
        json!({"id":"appr-1","status":"pending","title":"Run rm -rf build?","detail":"in ~/code/app\nsecond line",
               "source":"claude-code","options":["approve","deny"],"default":"deny",
               "created_at":"2026-05-28T20:26:00.000Z","expires_at":"2026-05-28T20:36:40.000Z"}),
        json!({"id":"appr-0","status":"approved","title":"Deploy?","source":"ci","decision":"approve",
               "decided_by":"phone","created_at":"2026-05-28T20:20:00.000Z"}),
    ];
    app.agents = Some(vec![
        json!({"session_id":"sess-claude-a1b2c3d4","agent_type":"claude","status":"running",
               "status_source":"hook","waiting_reason":null,"memory_mb":210.0,"cpu_percent":3.5}),
        json!({"session_id":"sess-codex-99999999","agent_type":"codex","status":"waiting",
               "status_source":"screen","waiting_reason":"permission prompt","memory_mb":120.5,"cpu_percent":0.0}),
    ]);
    app.tasks = vec![json!({"name":"test","pool":"default","allow_args":true,"description":null})];
    app.recent = vec![
        "#41 execution.started orchestratr".into(),
        "#42 approval.requested claude-code".into(),
    ];
    app.events_seen = 42;
    app
}

fn render(app: &mut App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test backend");
    t.draw(|f| render::draw(f, app)).expect("draw");
    format!("{}", t.backend())
}

fn snap(name: &str, text: String) {
    insta::with_settings!({prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!(name, text);
    });
}

fn pane(app: &mut App, target: &str, text: &str, crlf: bool) {
    let mut screen = Screen::new(10, 60, crlf);
    screen.feed(text);
    app.pane = Some(Pane {
        target: target.into(),
        screen,
        scroll: 0,
        ended: false,
        generation: 1,
    });
}

#[test]
fn overview_80x24() {
    let mut app = fixed();
    snap("dashboard_overview_80x24", render(&mut app, 80, 24));
    let c = app.counts();
    assert_eq!(
        (
            c.agents_waiting,
            c.approvals_pending,
            c.failed_since_start,
            c.apps_not_alive
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(c.pools.get("default"), Some(&(1, 1)));
}

#[test]
fn approvals_80x24() {
    let mut app = fixed();
    app.view = View::Approvals;
    snap("dashboard_approvals_80x24", render(&mut app, 80, 24));
}

#[test]
fn executions_with_hostile_output_80x24() {
    let mut app = fixed();
    app.view = View::Executions;
    pane(
        &mut app,
        "exec-00000000000a",
        "compiling\n\x1b[2J\x1b[H\x1b]0;pwned\x07\x07\x1b[31mred\x1b[0m ok\n",
        true,
    );
    let text = render(&mut app, 80, 24);
    assert!(!text.contains('\u{1b}'));
    snap("dashboard_executions_80x24", text);
}

#[test]
fn executions_200_columns() {
    let mut app = fixed();
    app.view = View::Executions;
    pane(&mut app, "exec-00000000000a", "line 1\nline 2\n", true);
    snap("dashboard_executions_200x30", render(&mut app, 200, 30));
}

#[test]
fn agents_waiting_first_80x24() {
    let mut app = fixed();
    app.view = View::Agents;
    pane(
        &mut app,
        "sess-codex-99999999",
        "\x1b[1;32m>\x1b[0m Allow edit? [y/n]\r\n",
        false,
    );
    let text = render(&mut app, 80, 24);
    let waiting = text.find("sess-codex").expect("waiting agent shown");
    let running = text.find("sess-claude").expect("running agent shown");
    assert!(waiting < running, "waiting agents come first");
    snap("dashboard_agents_80x24", text);
}

#[test]
fn agents_absent() {
    let mut app = fixed();
    app.agents = None;
    app.view = View::Agents;
    snap("dashboard_agents_absent_80x24", render(&mut app, 80, 24));
}

#[test]
fn apps_80x24() {
    let mut app = fixed();
    app.view = View::Apps;
    app.app_log = Some(("espansr".into(), "started\nready\n".into()));
    snap("dashboard_apps_80x24", render(&mut app, 80, 24));
}

#[test]
fn help_lists_every_key_and_hides_actions_when_read_only() {
    let mut app = fixed();
    app.mode = Mode::Help(0);
    snap("dashboard_help_100x45", render(&mut app, 100, 45));
    let all = render::help_lines(&app);
    assert!(
        all.iter()
            .any(|l| l.contains("approve the selected approval"))
    );
    app.read_only = true;
    let ro = render::help_lines(&app);
    assert!(
        !ro.iter()
            .any(|l| l.contains("approve the selected approval"))
    );
    assert!(ro.iter().any(|l| l.trim_start().starts_with("q ")));
}

#[test]
fn reconnecting_is_visible() {
    let mut app = fixed();
    app.conn = Conn::Reconnecting("no daemon answers".into());
    let text = render(&mut app, 80, 24);
    assert!(text.contains("reconnecting…"));
}

#[test]
fn no_color_draws_no_colours() {
    let mut app = fixed();
    app.color = false;
    app.view = View::Agents;
    pane(&mut app, "sess-codex-99999999", "\x1b[31mred\x1b[0m", false);
    let mut t = Terminal::new(TestBackend::new(80, 24)).expect("backend");
    t.draw(|f| render::draw(f, &mut app)).expect("draw");
    for c in t.backend().buffer().content() {
        assert_eq!(c.fg, ratatui::style::Color::Reset, "{c:?}");
        assert_eq!(c.bg, ratatui::style::Color::Reset, "{c:?}");
    }
}

#[test]
fn events_update_lists() {
    let mut app = fixed();
    let ev = json!({"id":43,"type":"approval.decided","source":"orchestratr",
                    "data":{"id":"appr-1","status":"denied","decided_by":"phone","title":"Run rm -rf build?"}});
    assert_eq!(app.apply_event(&ev), None);
    assert_eq!(app.counts().approvals_pending, 0);
    let ev = json!({"id":44,"type":"execution.queued","source":"orchestratr",
                    "data":{"id":"exec-00000000000e","task":"x","status":"pending","pool":"p"}});
    app.apply_event(&ev);
    assert_eq!(app.executions[0]["id"], "exec-00000000000e");
    assert_eq!(
        app.apply_event(&json!({"id":45,"type":"app.ready","data":{}})),
        Some("apps")
    );
}

#[test]
fn a_stale_snapshot_never_hides_a_newer_event() {
    let mut app = fixed();
    app.executions.clear();
    app.refreshes = 2;
    app.journal = Some(Vec::new());
    let ev = json!({"id":50,"type":"execution.started","source":"orchestratr",
                    "data":{"id":"exec-00000000000f","task":"t","status":"running","pool":"default"}});
    app.apply_event(&ev);
    // The first answer, then a second one read before the event: both stale.
    for _ in 0..2 {
        app.executions.clear();
        app.replay_journal();
        assert_eq!(app.executions.len(), 1);
        assert_eq!(app.executions[0]["status"], "running");
    }
    assert!(
        app.journal.is_none(),
        "journal dropped once every answer came"
    );
}
