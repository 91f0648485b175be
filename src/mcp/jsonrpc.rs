//! JSON-RPC 2.0 framing (<https://www.jsonrpc.org/specification>) as MCP uses
//! it: requests, notifications, responses, batches, and the standard error
//! codes. Pure functions over `serde_json::Value`; no I/O.

use serde_json::{Value, json};

/// Invalid JSON was received (§5.1).
pub const PARSE_ERROR: i64 = -32700;
/// The JSON sent is not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// Internal error.
pub const INTERNAL_ERROR: i64 = -32603;

/// One incoming JSON-RPC message, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A call that wants an answer.
    Request {
        /// The request id (string or number), echoed in the answer.
        id: Value,
        /// Method name.
        method: String,
        /// `params` (object or array), `Null` when absent.
        params: Value,
    },
    /// A call without an id: never answered.
    Notification {
        /// Method name.
        method: String,
        /// `params`, `Null` when absent.
        params: Value,
    },
    /// A response sent by the client (to a server request); ignored here.
    Response,
    /// Not a valid message; answered with this error (id `null` if unknown).
    Invalid {
        /// The id, when one could be read.
        id: Value,
        /// Why it is invalid.
        message: String,
    },
}

/// Classify one message of a single or batch body.
pub fn classify(v: &Value) -> Message {
    let Some(o) = v.as_object() else {
        return Message::Invalid {
            id: Value::Null,
            message: "a JSON-RPC message must be an object".into(),
        };
    };
    let id = o.get("id").cloned();
    if o.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Message::Invalid {
            id: id.unwrap_or(Value::Null),
            message: "field 'jsonrpc' must be \"2.0\"".into(),
        };
    }
    let valid_id = |i: &Value| i.is_string() || i.is_number() || i.is_null();
    match o.get("method") {
        Some(Value::String(m)) => {
            let params = o.get("params").cloned().unwrap_or(Value::Null);
            if !(params.is_null() || params.is_object() || params.is_array()) {
                return Message::Invalid {
                    id: id.unwrap_or(Value::Null),
                    message: "field 'params' must be an object or an array".into(),
                };
            }
            match id {
                None => Message::Notification {
                    method: m.clone(),
                    params,
                },
                Some(i) if valid_id(&i) => Message::Request {
                    id: i,
                    method: m.clone(),
                    params,
                },
                Some(_) => Message::Invalid {
                    id: Value::Null,
                    message: "field 'id' must be a string or a number".into(),
                },
            }
        }
        Some(_) => Message::Invalid {
            id: id.unwrap_or(Value::Null),
            message: "field 'method' must be a string".into(),
        },
        None if o.contains_key("result") || o.contains_key("error") => Message::Response,
        None => Message::Invalid {
            id: id.unwrap_or(Value::Null),
            message: "missing field 'method'".into(),
        },
    }
}

/// A success response.
pub fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// An error response.
pub fn error(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// A notification the server sends (e.g. `notifications/progress`).
pub fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn classifies_each_kind() {
        assert!(matches!(
            classify(&json!({"jsonrpc":"2.0","id":1,"method":"ping"})),
            Message::Request { .. }
        ));
        assert!(matches!(
            classify(&json!({"jsonrpc":"2.0","method":"notifications/initialized"})),
            Message::Notification { .. }
        ));
        assert_eq!(
            classify(&json!({"jsonrpc":"2.0","id":1,"result":{}})),
            Message::Response
        );
        assert!(matches!(
            classify(&json!({"jsonrpc":"1.0","id":1,"method":"x"})),
            Message::Invalid { .. }
        ));
        assert!(matches!(
            classify(&json!({"jsonrpc":"2.0","id":{},"method":"x"})),
            Message::Invalid { .. }
        ));
        assert!(matches!(
            classify(&json!({"jsonrpc":"2.0","id":1,"method":"x","params":3})),
            Message::Invalid { .. }
        ));
    }

    proptest! {
        #[test]
        fn classify_never_panics(s in ".{0,200}") {
            if let Ok(v) = serde_json::from_str::<Value>(&s) {
                let _ = classify(&v);
            }
        }
    }
}
