//! Hook adapters that turn a coding agent's hook protocol into approvals.

pub mod claude_code;
