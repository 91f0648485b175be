//! The approvals actor (API.md §8): create, list, long-poll wait, atomic decide,
//! expiry applying the default, persistence under `<state>/approvals/`.
//!
//! SCAFFOLD: to be implemented (issue 4).

use crate::events::Bus;
use std::path::Path;
use std::thread::JoinHandle;

/// Handle to the approvals actor. Cheap to clone.
#[derive(Clone)]
pub struct Approvals {}

impl Approvals {
    /// Start the actor; approvals persist under `<state_dir>/approvals/`; at most
    /// `retention` decided approvals are kept.
    pub fn start(_state_dir: &Path, _bus: Bus, _retention: usize) -> (Approvals, JoinHandle<()>) {
        (Approvals {}, std::thread::spawn(|| {}))
    }

    /// Stop the actor (pending long polls are answered with the current state).
    pub fn shutdown(&self) {}
}
