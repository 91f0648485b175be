//! The agents part of the MCP built-ins (`list_agents`, `agent_screen`,
//! `send_to_agent`, API.md §13) over the agents actor: the same calls and the
//! same error codes as `GET /agents`, `GET /agents/{id}/screen` and
//! `POST /agents/{id}/input` (API.md §10).

use super::agents::agent_error;
use crate::agents::Agents;
use crate::mcp::tools::AgentsApi;
use serde_json::{Value, json};

/// [`AgentsApi`] backed by the agents actor.
pub struct AgentsBackend(pub Agents);

/// `(code, message)` of an agent error, as the HTTP layer maps it.
fn err(e: crate::agents::AgentError) -> (String, String) {
    let h = agent_error(e);
    (h.code.to_string(), h.message)
}

impl AgentsApi for AgentsBackend {
    fn list(&self) -> Result<Value, (String, String)> {
        let agents = self.0.list(None, None);
        Ok(json!({"total": agents.len(), "agents": agents}))
    }

    fn screen(&self, session_id: &str) -> Result<Value, (String, String)> {
        let (text, cols, rows, x, y) = self.0.screen(session_id).map_err(err)?;
        Ok(json!({"text": text, "cols": cols, "rows": rows, "cursor": {"x": x, "y": y}}))
    }

    fn send(&self, session_id: &str, text: &str, submit: bool) -> Result<Value, (String, String)> {
        self.0.input_text(session_id, text, submit).map_err(err)?;
        Ok(json!({"status": "sent"}))
    }
}
