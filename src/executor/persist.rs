//! The record writer and commit point: a thread that writes `execution.json`
//! files and deletes pruned execution directories, off the executor's thread.
//!
//! Invariant: nothing is visible outside the daemon before it is on disk. Every
//! effect that shows a state (an API reply, a bus event, an SSE status frame) is
//! queued here with [`Persister::after`] behind the saves that precede it, and
//! runs only once those saves are written. A `kill -9` therefore never loses an
//! execution a client was told about, nor shows `running` for one the disk
//! still has as `pending`.
//!
//! Saves are coalesced: of several saves of one record waiting in the queue only
//! the newest is written (queued → started → finished within a burst is one
//! write); the disk is then at least as new as every effect released after it.
//! Each write is a temp file + rename, so a crash never tears a record.

use super::record::{self, ExecRecord};
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use std::collections::HashMap;
use std::path::PathBuf;
use std::thread::JoinHandle;

/// An effect released once the saves queued before it are written.
pub type Effect = Box<dyn FnOnce() + Send>;

enum Msg {
    Save(Box<ExecRecord>),
    Remove(String),
    After(Effect),
    Flush(Sender<()>),
    Stop,
}

/// Handle to the record writer.
pub struct Persister {
    tx: Sender<Msg>,
    handle: Option<JoinHandle<()>>,
}

impl Persister {
    /// Start the writer for records under `root` (`<state>/executions`).
    pub fn start(root: PathBuf) -> Persister {
        let (tx, rx) = unbounded();
        let handle = std::thread::Builder::new()
            .name("exec-persist".into())
            .spawn(move || run(root, rx))
            .map_err(|e| log::error!("cannot spawn the record writer: {e}"))
            .ok();
        Persister { tx, handle }
    }

    /// Queue a save of `rec` (the newest queued save of an id wins).
    pub fn save(&self, rec: &ExecRecord) {
        let _ = self.tx.send(Msg::Save(Box::new(rec.clone())));
    }

    /// Queue the deletion of execution `id`'s directory (record and output).
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

    /// Block until everything queued before this call is written.
    pub fn flush(&self) {
        let (rtx, rrx) = bounded(1);
        if self.tx.send(Msg::Flush(rtx)).is_ok() {
            let _ = rrx.recv();
        }
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run(root: PathBuf, rx: Receiver<Msg>) {
    let mut stop = false;
    while !stop {
        let Ok(first) = rx.recv() else { break };
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let mut latest: HashMap<String, Box<ExecRecord>> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut removes: Vec<String> = Vec::new();
        let mut flushed: Vec<Sender<()>> = Vec::new();
        let mut effects: Vec<Effect> = Vec::new();
        for m in batch {
            match m {
                Msg::Save(r) => {
                    let id = r.exec.id.clone();
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
                && let Err(e) = record::save(&root, r)
            {
                log::error!("cannot save execution {id}: {e}");
            }
        }
        for id in removes {
            let _ = std::fs::remove_dir_all(record::exec_dir(&root, &id));
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
