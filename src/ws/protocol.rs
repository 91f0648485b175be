//! The JSON messages of the WebSocket bridge (API.md §11): what a client may
//! send ([`ClientMsg`], parsed from one text frame) and the server messages
//! (built as `serde_json::Value`s, one per text frame).

use serde_json::{Value, json};

/// Orchestra error codes carried by `{"type":"error","error_code":...}`.
pub mod codes {
    /// The token is missing, unknown or lacks the scope of the message.
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// No agent session with that id.
    pub const SESSION_NOT_FOUND: &str = "SESSION_NOT_FOUND";
    /// More than [`super::super::MAX_MESSAGES_PER_MIN`] client messages in a minute.
    pub const RATE_LIMIT_EXCEEDED: &str = "RATE_LIMIT_EXCEEDED";
    /// The agent's pane is gone (input to an exited session).
    pub const AGENT_CRASHED: &str = "AGENT_CRASHED";
    /// Not JSON, unknown `type`, or a missing/mistyped field.
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    /// The outbound queue overflowed; the server closes with 1013.
    pub const LAGGED: &str = "LAGGED";
}

/// One client → server message (API.md §11).
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMsg {
    /// `{"type":"subscribe_terminal","session_id","offset"?}`: a
    /// `terminal_snapshot`, then `terminal_output` from `offset` (bytes into
    /// the session's output log; absent = from the current end).
    SubscribeTerminal {
        /// Agent session id.
        session_id: String,
        /// Resume offset, bytes.
        offset: Option<u64>,
    },
    /// `{"type":"unsubscribe_terminal","session_id"}`.
    UnsubscribeTerminal {
        /// Agent session id.
        session_id: String,
    },
    /// `{"type":"user_message","session_id","content"}`: pasted and submitted
    /// like `POST /agents/{id}/input {"text": content}` (scope `agents`).
    UserMessage {
        /// Agent session id.
        session_id: String,
        /// Text to paste.
        content: String,
    },
    /// `{"type":"ping"}` → `{"type":"pong"}`.
    Ping,
    /// `{"type":"subscribe_events","types"?:[...],"last_event_id"?}`
    /// (extension): `{"type":"event","event":{...}}` per matching bus event.
    SubscribeEvents {
        /// Comma-joined type patterns (`execution.*`); empty = all.
        types: String,
        /// Replay retained events after this id.
        last_event_id: Option<u64>,
    },
    /// `{"type":"decide_approval","id","decision","comment"?}` (extension,
    /// scope `approve`).
    DecideApproval {
        /// Approval id.
        id: String,
        /// One of the approval's options.
        decision: String,
        /// Free text.
        comment: Option<String>,
    },
}

/// Parse one text frame. Errors: a lowercase message for a `BAD_REQUEST`.
pub fn parse(text: &str) -> Result<ClientMsg, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("invalid json: {e}"))?;
    let obj = v.as_object().ok_or("message must be a json object")?;
    let s = |k: &str| -> Result<String, String> {
        obj.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("field '{k}' must be a non-empty string"))
    };
    let opt_u64 = |k: &str| -> Result<Option<u64>, String> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("field '{k}' must be a non-negative integer")),
            Some(Value::String(t)) => t
                .parse()
                .map(Some)
                .map_err(|_| format!("field '{k}' must be a non-negative integer")),
            Some(_) => Err(format!("field '{k}' must be a non-negative integer")),
        }
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("subscribe_terminal") => Ok(ClientMsg::SubscribeTerminal {
            session_id: s("session_id")?,
            offset: opt_u64("offset")?,
        }),
        Some("unsubscribe_terminal") => Ok(ClientMsg::UnsubscribeTerminal {
            session_id: s("session_id")?,
        }),
        Some("user_message") => Ok(ClientMsg::UserMessage {
            session_id: s("session_id")?,
            content: obj
                .get("content")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or("field 'content' must be a string")?,
        }),
        Some("ping") => Ok(ClientMsg::Ping),
        Some("subscribe_events") => {
            let types = match obj.get("types") {
                None | Some(Value::Null) => String::new(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|t| t.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("field 'types' must be an array of strings")?
                    .join(","),
                Some(Value::String(t)) => t.clone(),
                Some(_) => return Err("field 'types' must be an array of strings".into()),
            };
            Ok(ClientMsg::SubscribeEvents {
                types,
                last_event_id: opt_u64("last_event_id")?,
            })
        }
        Some("decide_approval") => Ok(ClientMsg::DecideApproval {
            id: s("id")?,
            decision: s("decision")?,
            comment: match obj.get("comment") {
                None | Some(Value::Null) => None,
                Some(Value::String(c)) => Some(c.clone()),
                Some(_) => return Err("field 'comment' must be a string".into()),
            },
        }),
        Some(other) => Err(format!(
            "unknown message type '{other}': expected subscribe_terminal, \
             unsubscribe_terminal, user_message, ping, subscribe_events or decide_approval"
        )),
        None => Err("field 'type' must be a string".into()),
    }
}

/// `{"type":"error","error_code","message","session_id"?}`.
pub fn error(code: &str, message: &str, session_id: Option<&str>) -> Value {
    let mut v = json!({"type": "error", "error_code": code, "message": message});
    if let Some(s) = session_id {
        v["session_id"] = json!(s);
    }
    v
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_message() {
        assert_eq!(
            parse(r#"{"type":"subscribe_terminal","session_id":"a","offset":5}"#),
            Ok(ClientMsg::SubscribeTerminal {
                session_id: "a".into(),
                offset: Some(5)
            })
        );
        assert_eq!(parse(r#"{"type":"ping"}"#), Ok(ClientMsg::Ping));
        assert_eq!(
            parse(r#"{"type":"subscribe_events","types":["execution.*","agent.status"]}"#),
            Ok(ClientMsg::SubscribeEvents {
                types: "execution.*,agent.status".into(),
                last_event_id: None
            })
        );
        assert!(parse(r#"{"type":"user_message","session_id":"a"}"#).is_err());
        assert!(parse(r#"{"type":"nope"}"#).is_err());
        assert!(parse("[1]").is_err());
        assert!(parse(r#"{"type":"subscribe_terminal","session_id":"a","offset":-1}"#).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = parse(&s);
        }
        #[test]
        fn never_panics_on_json_shapes(t in "[a-z_]{0,20}", sid in ".{0,10}", off in any::<i64>()) {
            let _ = parse(&json!({"type": t, "session_id": sid, "offset": off, "content": sid}).to_string());
        }
    }
}
