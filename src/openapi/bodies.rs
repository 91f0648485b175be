//! Request-body schemas of the routes merged from the v3 helpers (API.md
//! §9-§13), written by hand as JSON Schema because their handlers read the
//! body field by field (`Call::field`) with rules `schemars` attributes cannot
//! say: "exactly one of", non-whitespace strings, key patterns. Each function
//! names the handler whose checks it mirrors; keep them in step (schemathesis,
//! `scripts/test-schemathesis`, catches a drift).

use schemars::SchemaGenerator;
use serde_json::{Value, json};

/// A string that is not only whitespace (Unicode `White_Space`, as Rust's
/// `str::trim`).
const NOT_BLANK: &str =
    r"[^\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// `POST /trigger` (`http::trigger::trigger`): a non-empty `chord`.
pub fn trigger(_: &mut SchemaGenerator) -> Value {
    json!({
        "type": "object",
        "required": ["chord"],
        "properties": {
            "chord": {"type": "string", "minLength": 1,
                      "description": "the chord of an app in config.yml (trimmed)"}
        }
    })
}

/// `POST /agents/spawn` (`http::agents::spawn_request`).
pub fn spawn_agent(_: &mut SchemaGenerator) -> Value {
    json!({
        "type": "object",
        "required": ["agent_type"],
        "properties": {
            "agent_type": {"type": "string", "minLength": 1,
                           "description": "an interactive agent type from config.yml (`agents:`)"},
            "working_dir": {"type": ["string", "null"],
                            "description": "under one of `workspaces`"},
            "env": {"type": ["object", "null"],
                    "propertyNames": {"pattern": "^[^=\\u0000]+$"},
                    "additionalProperties": {"type": "string"},
                    "description": "extra environment variables"},
            "name": {"type": ["string", "null"], "description": "a display name"},
            "prompt": {"type": ["string", "null"], "description": "first input sent to the agent"},
            "size": {
                "type": ["object", "null"],
                "required": ["cols", "rows"],
                "properties": {
                    "cols": {"type": "integer", "minimum": 2, "maximum": 1000},
                    "rows": {"type": "integer", "minimum": 2, "maximum": 500}
                },
                "description": "the pane size, in character cells"
            }
        }
    })
}

/// `POST /agents/{id}/input`: exactly one of `text` (with optional `submit`,
/// default `true`) or `keys` (1-256 tmux key names); a `null` field is an
/// absent one (`Call::field`).
pub fn agent_input(_: &mut SchemaGenerator) -> Value {
    json!({
        "oneOf": [
            {
                "type": "object",
                "required": ["text"],
                "properties": {
                    "text": {"type": "string"},
                    "submit": {"type": ["boolean", "null"],
                               "description": "press Enter after the text (default true)"},
                    "keys": {"type": "null"}
                }
            },
            {
                "type": "object",
                "required": ["keys"],
                "properties": {
                    "keys": {"type": "array", "minItems": 1, "maxItems": 256,
                             "items": {"type": "string", "minLength": 1},
                             "description": "tmux key names (`Enter`, `C-c`, …)"},
                    "text": {"type": "null"}
                }
            }
        ]
    })
}

/// `POST /agents/{id}/status` (hooks).
pub fn agent_status(_: &mut SchemaGenerator) -> Value {
    json!({
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["running", "idle", "waiting"]},
            "reason": {"type": ["string", "null"]},
            "resume_id": {"type": ["string", "null"],
                          "description": "the agent CLI's own session id, for resuming"}
        }
    })
}

/// `POST /tokens` (`http::tokens::create`, `auth::tokens::Store::create`):
/// exactly one of `scopes` or `preset` (a `null` field is an absent one).
pub fn create_token(_: &mut SchemaGenerator) -> Value {
    let common = json!({
        "name": {"type": "string", "minLength": 1, "maxLength": 64,
                 "pattern": format!("^[^\\u0000-\\u001f\\u007f-\\u009f]*{NOT_BLANK}[^\\u0000-\\u001f\\u007f-\\u009f]*$"),
                 "description": "1-64 printable characters (trimmed)"},
        "expires_in_s": {"type": ["integer", "null"], "minimum": 1, "maximum": 3_153_600_000u64,
                         "description": "lifetime, seconds (at most 100 years)"},
        "allowed_ips": {"type": ["array", "null"], "items": {"type": "string"},
                        "description": "CIDRs the token may be used from"}
    });
    let with = |k: &str, v: Value, other: &str| {
        let mut props = common.clone();
        props[k] = v;
        props[other] = json!({"type": "null"});
        json!({
            "type": "object",
            "required": ["name", k],
            "properties": props
        })
    };
    json!({
        "oneOf": [
            with("scopes", json!({"type": "array", "minItems": 1,
                                  "items": {"type": "string",
                                            "enum": ["read", "execute", "approve", "agents", "admin"]}}),
                 "preset"),
            with("preset", json!({"type": "string",
                                  "enum": ["read-only", "approver", "ci", "mcp"]}),
                 "scopes")
        ]
    })
}

/// `POST /tokens/rotate`: optional `grace_s`, seconds.
pub fn rotate_token(_: &mut SchemaGenerator) -> Value {
    json!({
        "type": "object",
        "properties": {
            "grace_s": {"type": ["integer", "null"], "minimum": 0,
                        "description": "how long the old admin token stays valid, seconds"}
        }
    })
}

/// `POST /mcp`: a JSON-RPC 2.0 message or batch (MCP Streamable HTTP); the
/// request guard admits an array only on this route (`http::routes`).
pub fn mcp(_: &mut SchemaGenerator) -> Value {
    json!({
        "type": ["object", "array"],
        "description": "a JSON-RPC 2.0 request or notification, or a batch of them"
    })
}
