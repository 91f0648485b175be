//! Token scopes and presets (API.md §12).

use serde::{Deserialize, Serialize};
use std::fmt;

/// One permission a token may carry (API.md §12 "Scopes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// `GET` of everything that needs a token.
    Read,
    /// Executions, delegate, trigger, launch/stop apps.
    Execute,
    /// Create and decide approvals.
    Approve,
    /// Agents: spawn, input, kill.
    Agents,
    /// Tokens, audit, shutdown.
    Admin,
}

/// Every scope, in a stable order (the admin token holds all of them).
pub const ALL: [Scope; 5] = [
    Scope::Read,
    Scope::Execute,
    Scope::Approve,
    Scope::Agents,
    Scope::Admin,
];

impl Scope {
    /// The wire name (`read`, `execute`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Execute => "execute",
            Scope::Approve => "approve",
            Scope::Agents => "agents",
            Scope::Admin => "admin",
        }
    }

    /// Parse a wire name. Errors: a lowercase message naming the value.
    pub fn parse(s: &str) -> Result<Scope, String> {
        ALL.iter()
            .copied()
            .find(|x| x.as_str() == s.trim())
            .ok_or_else(|| {
                format!("unknown scope '{s}': expected read, execute, approve, agents or admin")
            })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scopes of a preset (API.md §12): `read-only`, `approver` (read + approve,
/// for a phone), `ci` (read + execute), `mcp` (read + execute + agents + approve).
///
/// Errors: a lowercase message naming the unknown preset.
pub fn preset(name: &str) -> Result<Vec<Scope>, String> {
    use Scope::*;
    match name.trim() {
        "read-only" => Ok(vec![Read]),
        "approver" => Ok(vec![Read, Approve]),
        "ci" => Ok(vec![Read, Execute]),
        "mcp" => Ok(vec![Read, Execute, Agents, Approve]),
        other => Err(format!(
            "unknown preset '{other}': expected read-only, approver, ci or mcp"
        )),
    }
}

/// Sort and deduplicate a scope list.
pub fn normalize(mut v: Vec<Scope>) -> Vec<Scope> {
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_names() {
        assert_eq!(preset("approver"), Ok(vec![Scope::Read, Scope::Approve]));
        assert_eq!(preset("ci"), Ok(vec![Scope::Read, Scope::Execute]));
        assert_eq!(preset("mcp").map(|v| v.len()), Ok(4));
        assert_eq!(preset("read-only"), Ok(vec![Scope::Read]));
        assert!(preset("root").is_err());
        for s in ALL {
            assert_eq!(Scope::parse(s.as_str()), Ok(s));
        }
        assert!(Scope::parse("Admin").is_err());
    }
}
