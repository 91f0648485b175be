//! MCP over `POST /mcp`, the plain tools API, and notifications, against the
//! real daemon binary (the MCP Python SDK suites are in tests/python).

use crate::common;

use common::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

const CONFIG: &str = r#"
tasks:
  - name: echo
    mcp: true
    command: ["printf", "%s|", "{text}", "{n}"]
    inputs:
      text: {type: string, required: true}
      n: {type: integer}
  - name: fail
    mcp: true
    command: "echo boom; exit 3"
  - name: plain
    command: ["true"]
"#;

fn mcp(d: &Daemon, body: &Value) -> Resp {
    d.post_json_resp("/mcp", body, true)
}

#[test]
fn initialize_list_call_batch_and_notifications() {
    let d = Daemon::start(CONFIG);
    let r = mcp(
        &d,
        &json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2031-01-01"}}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"]["protocolVersion"], "2025-11-25");
    let r = mcp(
        &d,
        &json!({"jsonrpc":"2.0","id":"x","method":"initialize","params":{"protocolVersion":"2025-03-26"}}),
    );
    assert_eq!(r.json()["result"]["protocolVersion"], "2025-03-26");

    let tools = mcp(&d, &json!({"jsonrpc":"2.0","id":2,"method":"tools/list"})).json();
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"echo") && names.contains(&"run_task"));
    assert!(!names.contains(&"plain"));

    let text = "$(id) `x` 'q' ; | & *";
    let r = mcp(
        &d,
        &json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":text,"n":7}}}),
    )
    .json();
    assert_eq!(r["result"]["isError"], false, "{r}");
    assert_eq!(
        r["result"]["structuredContent"]["output_tail"],
        format!("{text}|7|")
    );

    let r = mcp(
        &d,
        &json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"fail"}}),
    )
    .json();
    assert_eq!(r["result"]["isError"], true);
    assert_eq!(r["result"]["structuredContent"]["exit_code"], 3);

    let r = mcp(
        &d,
        &json!([
            {"jsonrpc":"2.0","id":5,"method":"ping"},
            {"jsonrpc":"2.0","method":"notifications/initialized"},
            {"jsonrpc":"2.0","id":6,"method":"nope"}
        ]),
    )
    .json();
    let arr = r.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[1]["error"]["code"], -32601);

    let r = mcp(
        &d,
        &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    );
    assert_eq!(r.status, 202);
    assert!(r.body.is_empty());

    let a = d.auth_header();
    let r = d.request("GET", "/mcp", &[("Authorization", a.as_str())], b"");
    assert_eq!(r.status, 405);
    let r = d.post_json_resp(
        "/mcp",
        &json!({"jsonrpc":"2.0","id":1,"method":"ping"}),
        false,
    );
    assert_eq!(r.status, 401);
}

#[test]
fn plain_tools_routes() {
    let d = Daemon::start(CONFIG);
    let a = d.auth_header();
    let r = d.request("GET", "/api/tools", &[("Authorization", a.as_str())], b"");
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["total"], v["tools"].as_array().unwrap().len());
    let (st, v) = d.post_json_auth("/tools/echo", &json!({"text": "hi"}));
    assert_eq!(st, 200);
    assert_eq!(v["result"]["output_tail"], "hi||");
    let r = d.post_json_resp("/tools/echo", &json!({"n": 1}), true);
    assert_error(&r, 400, "bad_request");
    let r = d.post_json_resp("/tools/nope", &json!({}), true);
    assert_error(&r, 404, "not_found");
}

/// A one-shot HTTP receiver: answers 200 to each request and sends
/// `(request head, body)` on the channel.
fn receiver() -> (u16, mpsc::Receiver<(String, String)>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut head = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if tx
                .send((head, String::from_utf8_lossy(&body).into_owned()))
                .is_err()
            {
                return;
            }
        }
    });
    (port, rx)
}

#[test]
fn ntfy_notification_of_a_failed_run() {
    let (port, rx) = receiver();
    let d = Daemon::start(&format!(
        "{CONFIG}notify:\n  - url: http://127.0.0.1:{port}/topic\n    events: [\"execution.finished:failed\"]\n"
    ));
    let (st, _) = d.post_json_auth("/executions", &json!({"task": "plain"}));
    assert_eq!(st, 202);
    let (st, ex) = d.post_json_auth("/executions", &json!({"task": "fail"}));
    assert_eq!(st, 202);
    let (head, body) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a delivery");
    let h = head.to_ascii_lowercase();
    assert!(h.starts_with("post /topic "), "{head}");
    assert!(h.contains("title: fail failed"), "{head}");
    assert!(h.contains("priority: 4"), "{head}");
    assert!(
        head.contains(&format!(
            "/executions/{}/output",
            ex["id"].as_str().unwrap()
        )),
        "{head}"
    );
    assert!(body.contains("exit code 3"), "{body}");
    let (_, health) = d.get_json("/health");
    assert_eq!(health["notify_dropped"], 0);
}

#[test]
fn bad_inputs_and_notify_entries_are_config_errors() {
    for (yml, needle) in [
        (
            "tasks:\n  - name: t\n    mcp: true\n    command: [\"echo\", \"{nope}\"]\n",
            "names no declared input",
        ),
        (
            "tasks:\n  - name: t\n    command: [\"echo\"]\n    inputs:\n      a: {type: string}\n",
            "input 'a' is not used",
        ),
        (
            "tasks:\n  - name: t\n    command: [\"echo\", \"{a}\"]\n    inputs:\n      a: {type: strng}\n",
            "unknown type 'strng'",
        ),
        (
            "notify:\n  - url: ftp://x\n    format: xml\n",
            "must start with http",
        ),
    ] {
        let dirs = Dirs::new();
        dirs.write("config.yml", yml);
        match Daemon::try_start_in(dirs, &[]) {
            Ok(_) => panic!("{yml}: the daemon started"),
            Err(log) => assert!(log.contains(needle), "{yml}: {log}"),
        }
    }
}
