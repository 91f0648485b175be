//! The record writer and commit point, shared by executions and approvals: a
//! thread that writes records and deletes pruned ones, off the owning actor's
//! thread.
//!
//! Invariant: nothing is visible outside the daemon before it is on disk. Every
//! effect that shows a state (an API reply, a bus event, an SSE status frame, a
//! long-poll answer) is queued here with [`RecordWriter::after`] behind the
//! saves that precede it, and runs only once those saves are written. A
//! `kill -9` therefore never loses a record a client was told about, nor shows
//! a state the disk does not have yet.
//!
//! Saves are coalesced: of several saves of one record waiting in the queue only
//! the newest is written (queued → started → finished within a burst is one
//! write); the disk is then at least as new as every effect released after it.
//! Where and how a record is written is the [`Store`]'s business (executions:
//! `executor/persist.rs`, approvals: `approvals/store.rs`); each writes a temp
//! file + rename, so a crash never tears a record.

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use std::collections::HashMap;
use std::thread::JoinHandle;

/// An effect released once the saves queued before it are written.
pub type Effect = Box<dyn FnOnce() + Send>;

/// Where records of one kind live on disk.
pub trait Store: Send + 'static {
    /// The record type (cloned into the writer's queue on each save).
    type Record: Clone + Send + 'static;
    /// The record's id: saves of one id coalesce; `remove(id)` drops it.
    fn id(rec: &Self::Record) -> &str;
    /// Write `rec` atomically. Errors are logged by the writer, naming the id.
    fn save(&self, rec: &Self::Record) -> std::io::Result<()>;
    /// Delete everything stored for `id` (a missing record is not an error).
    fn remove(&self, id: &str);
}

enum Msg<R> {
    Save(Box<R>),
    Remove(String),
    After(Effect),
    Flush(Sender<()>),
    Stop,
}

/// Handle to one record writer thread. Dropping it stops the thread after
/// everything queued is written.
pub struct RecordWriter<S: Store> {
    tx: Sender<Msg<S::Record>>,
    handle: Option<JoinHandle<()>>,
}

impl<S: Store> RecordWriter<S> {
    /// Start the writer thread `name` over `store`. If the thread cannot be
    /// spawned, the error is logged and saves are dropped; effects still run.
    pub fn start(name: &str, store: S) -> RecordWriter<S> {
        let (tx, rx) = unbounded();
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(store, rx))
            .map_err(|e| log::error!("cannot spawn the record writer {name}: {e}"))
            .ok();
        RecordWriter { tx, handle }
    }

    /// Queue a save of `rec` (the newest queued save of an id wins).
    pub fn save(&self, rec: &S::Record) {
        let _ = self.tx.send(Msg::Save(Box::new(rec.clone())));
    }

    /// Queue the deletion of record `id`.
    pub fn remove(&self, id: &str) {
        let _ = self.tx.send(Msg::Remove(id.to_string()));
    }

    /// Run `f` once every save queued before it is on disk (see the module docs).
    /// If the writer thread is gone, `f` runs at once.
    pub fn after(&self, f: impl FnOnce() + Send + 'static) {
        if let Err(crossbeam_channel::SendError(Msg::After(f))) =
            self.tx.send(Msg::After(Box::new(f)))
        {
            f();
        }
    }

    /// Block until everything queued before this call is written and its
    /// effects have run.
    pub fn flush(&self) {
        let (rtx, rrx) = bounded(1);
        if self.tx.send(Msg::Flush(rtx)).is_ok() {
            let _ = rrx.recv();
        }
    }
}

impl<S: Store> Drop for RecordWriter<S> {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run<S: Store>(store: S, rx: Receiver<Msg<S::Record>>) {
    let mut stop = false;
    while !stop {
        let Ok(first) = rx.recv() else { break };
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let mut latest: HashMap<String, Box<S::Record>> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut removes: Vec<String> = Vec::new();
        let mut flushed: Vec<Sender<()>> = Vec::new();
        let mut effects: Vec<Effect> = Vec::new();
        for m in batch {
            match m {
                Msg::Save(r) => {
                    let id = S::id(&r).to_string();
                    if latest.insert(id.clone(), r).is_none() {
                        order.push(id);
                    }
                }
                Msg::Remove(id) => {
                    latest.remove(&id);
                    removes.push(id);
                }
                Msg::After(f) => effects.push(f),
                Msg::Flush(t) => flushed.push(t),
                Msg::Stop => stop = true,
            }
        }
        for id in order {
            if let Some(r) = latest.get(&id)
                && let Err(e) = store.save(r)
            {
                log::error!("cannot save record {id}: {e}");
            }
        }
        for id in removes {
            store.remove(&id);
        }
        // Effects only after the writes: they may show any state saved above.
        for f in effects {
            f();
        }
        for t in flushed {
            let _ = t.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone)]
    struct Log(Arc<Mutex<Vec<String>>>);

    impl Store for Log {
        type Record = (String, u32);
        fn id(rec: &Self::Record) -> &str {
            &rec.0
        }
        fn save(&self, rec: &Self::Record) -> std::io::Result<()> {
            if let Ok(mut l) = self.0.lock() {
                l.push(format!("save {} {}", rec.0, rec.1));
            }
            Ok(())
        }
        fn remove(&self, id: &str) {
            if let Ok(mut l) = self.0.lock() {
                l.push(format!("remove {id}"));
            }
        }
    }

    #[test]
    fn effects_run_after_the_saves_before_them() {
        let log = Log(Arc::new(Mutex::new(Vec::new())));
        let w = RecordWriter::start("test-writer", log.clone());
        w.save(&("a".into(), 1));
        let l2 = log.clone();
        w.after(move || {
            if let Ok(mut l) = l2.0.lock() {
                l.push("effect".into());
            }
        });
        w.flush();
        w.remove("a");
        drop(w);
        let got = log.0.lock().map(|l| l.clone()).unwrap_or_default();
        let effect = got.iter().position(|x| x == "effect");
        let saved = got.iter().position(|x| x.starts_with("save a"));
        assert!(saved.is_some() && effect > saved, "{got:?}");
        assert_eq!(got.last().map(String::as_str), Some("remove a"));
    }
}
