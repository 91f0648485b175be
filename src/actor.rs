//! The request/reply helper every actor handle uses (registry, tracker, executor,
//! approvals): send a command carrying a one-shot reply channel, block for the
//! answer.
//!
//! An actor is one thread owning its state and a `crossbeam_channel` of commands;
//! its handle is a cheap-to-clone `Sender`. Commands that need an answer carry a
//! `Sender<T>` of capacity 1 the actor replies on.

use crossbeam_channel::{Sender, bounded};

/// Send the command `make(reply)` to the actor behind `tx` and wait for its reply.
///
/// Returns `None` when the actor is gone (its receiver dropped before the send,
/// or the reply sender dropped without an answer) — callers map that to their
/// layer's `Closed` error.
pub fn call<C, T>(tx: &Sender<C>, make: impl FnOnce(Sender<T>) -> C) -> Option<T> {
    let (rtx, rrx) = bounded(1);
    tx.send(make(rtx)).ok()?;
    rrx.recv().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::unbounded;

    #[test]
    fn replies_and_reports_a_gone_actor() {
        let (tx, rx) = unbounded::<(u32, Sender<u32>)>();
        let h = std::thread::spawn(move || {
            if let Ok((n, reply)) = rx.recv() {
                let _ = reply.send(n + 1);
            }
            // The second command is dropped unanswered: the actor is gone.
        });
        assert_eq!(call(&tx, |r| (41, r)), Some(42));
        let _ = h.join();
        assert_eq!(call(&tx, |r| (1, r)), None);
    }
}
