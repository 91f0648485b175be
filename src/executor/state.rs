//! Scheduling state of the executor (API.md §7 pools): one FIFO queue per pool,
//! the runs holding a slot, and each pool's recent starts for
//! `starts_per_minute`. Pure state transitions over ids and `Instant`s, no
//! processes, no I/O, so they are unit-tested in memory (below).
//!
//! A run holds a slot of its pool from [`Scheduler::next_start`] until
//! [`Scheduler::release`] — while its `git status` snapshot is taken, while it
//! runs, and until its exit is recorded.

use crate::config::PoolSpec;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The `starts_per_minute` window.
pub const START_WINDOW: Duration = Duration::from_secs(60);

/// Why a run cannot be queued in its pool.
#[derive(Debug, Clone, PartialEq)]
pub struct Full {
    /// Suggested `Retry-After`, seconds: 60 under a `starts_per_minute` limit, else 5.
    pub retry_after_s: u64,
}

/// What the scheduler says about one pool.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Start this run now (its slot and start are already counted).
    Start(String),
    /// Nothing to start now; wake at this instant (a `starts_per_minute`
    /// window ends) or, with `None`, on the next change.
    Wait(Option<Instant>),
}

/// Queues, slots and start windows of every pool.
#[derive(Debug, Default)]
pub struct Scheduler {
    queues: BTreeMap<String, VecDeque<String>>,
    /// Run id → its pool, for every run holding a slot.
    holding: HashMap<String, String>,
    starts: HashMap<String, VecDeque<Instant>>,
}

impl Scheduler {
    /// Runs of `pool` holding a slot.
    pub fn running_in(&self, pool: &str) -> usize {
        self.holding.values().filter(|p| *p == pool).count()
    }

    /// Runs waiting in `pool`'s queue.
    pub fn queued(&self, pool: &str) -> usize {
        self.queues.get(pool).map_or(0, VecDeque::len)
    }

    /// 1-based position of `id` in `pool`'s queue.
    pub fn position(&self, pool: &str, id: &str) -> Option<usize> {
        self.queues
            .get(pool)
            .and_then(|q| q.iter().position(|x| x == id))
            .map(|p| p + 1)
    }

    /// Pools with a queue (possibly empty), in name order.
    pub fn pools(&self) -> Vec<String> {
        self.queues.keys().cloned().collect()
    }

    fn starts_in_window(&self, pool: &str, now: Instant) -> usize {
        self.starts.get(pool).map_or(0, |st| {
            st.iter()
                .filter(|t| now.duration_since(**t) < START_WINDOW)
                .count()
        })
    }

    /// Would a run submitted to `pool` start immediately (empty queue, a free
    /// slot, no `starts_per_minute` limit reached)?
    pub fn can_start_now(&self, pool: &str, spec: &PoolSpec, now: Instant) -> bool {
        let spm_ok = spec
            .starts_per_minute
            .is_none_or(|spm| self.starts_in_window(pool, now) < spm as usize);
        self.queued(pool) == 0 && self.running_in(pool) < spec.max_concurrent && spm_ok
    }

    /// May one more run join `pool`? A full queue (`max_queued`) still admits a
    /// run that would start at once.
    ///
    /// Errors: [`Full`] with the suggested retry delay.
    pub fn admit(&self, pool: &str, spec: &PoolSpec, now: Instant) -> Result<(), Full> {
        if self.queued(pool) >= spec.max_queued && !self.can_start_now(pool, spec, now) {
            return Err(Full {
                retry_after_s: if spec.starts_per_minute.is_some() {
                    60
                } else {
                    5
                },
            });
        }
        Ok(())
    }

    /// Append `id` to `pool`'s queue.
    pub fn enqueue(&mut self, pool: &str, id: &str) {
        self.queues
            .entry(pool.to_string())
            .or_default()
            .push_back(id.to_string());
    }

    /// Put `id` back at the head of `pool`'s queue and free its slot (a run
    /// that could not start after all, e.g. a drain began meanwhile).
    pub fn requeue_front(&mut self, pool: &str, id: &str) {
        self.holding.remove(id);
        self.queues
            .entry(pool.to_string())
            .or_default()
            .push_front(id.to_string());
    }

    /// Take `id` out of `pool`'s queue; `true` if it was there.
    pub fn dequeue(&mut self, pool: &str, id: &str) -> bool {
        let Some(q) = self.queues.get_mut(pool) else {
            return false;
        };
        let before = q.len();
        q.retain(|x| x != id);
        q.len() != before
    }

    /// The next run of `pool` to start now, FIFO, if a slot is free and the
    /// `starts_per_minute` window allows; the run then holds a slot and its
    /// start is counted.
    pub fn next_start(&mut self, pool: &str, spec: &PoolSpec, now: Instant) -> Next {
        if self.queued(pool) == 0 || self.running_in(pool) >= spec.max_concurrent {
            return Next::Wait(None);
        }
        if let Some(spm) = spec.starts_per_minute {
            let starts = self.starts.entry(pool.to_string()).or_default();
            while starts
                .front()
                .is_some_and(|t| now.duration_since(*t) >= START_WINDOW)
            {
                starts.pop_front();
            }
            if starts.len() >= spm as usize {
                return Next::Wait(starts.front().map(|first| *first + START_WINDOW));
            }
            starts.push_back(now);
        }
        match self.queues.get_mut(pool).and_then(VecDeque::pop_front) {
            Some(id) => {
                self.holding.insert(id.clone(), pool.to_string());
                Next::Start(id)
            }
            None => Next::Wait(None),
        }
    }

    /// `id` no longer holds a slot (it ended, or never started).
    pub fn release(&mut self, id: &str) {
        self.holding.remove(id);
    }

    /// Does any run hold a slot?
    pub fn any_holding(&self) -> bool {
        !self.holding.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(max_concurrent: usize, max_queued: usize, spm: Option<u32>) -> PoolSpec {
        PoolSpec {
            max_concurrent,
            max_queued,
            starts_per_minute: spm,
        }
    }

    fn start_all(s: &mut Scheduler, p: &str, spec: &PoolSpec, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        while let Next::Start(id) = s.next_start(p, spec, now) {
            out.push(id);
        }
        out
    }

    #[test]
    fn fifo_per_pool_and_pools_apart() {
        let mut s = Scheduler::default();
        let spec = pool(1, 10, None);
        for id in ["a1", "a2", "a3"] {
            s.enqueue("a", id);
        }
        s.enqueue("b", "b1");
        assert_eq!(s.position("a", "a3"), Some(3));
        let now = Instant::now();
        assert_eq!(start_all(&mut s, "a", &spec, now), vec!["a1"]);
        assert_eq!(start_all(&mut s, "b", &spec, now), vec!["b1"]);
        s.release("a1");
        assert_eq!(start_all(&mut s, "a", &spec, now), vec!["a2"]);
        assert_eq!(s.position("a", "a3"), Some(1));
        assert!(s.dequeue("a", "a3"));
        assert!(!s.dequeue("a", "a3"));
        s.release("a2");
        assert_eq!(start_all(&mut s, "a", &spec, now), Vec::<String>::new());
    }

    #[test]
    fn max_concurrent_caps_the_slots() {
        let mut s = Scheduler::default();
        let spec = pool(2, 10, None);
        for i in 0..5 {
            s.enqueue("p", &format!("r{i}"));
        }
        let now = Instant::now();
        assert_eq!(start_all(&mut s, "p", &spec, now), vec!["r0", "r1"]);
        assert_eq!(s.running_in("p"), 2);
        assert_eq!(s.queued("p"), 3);
        s.release("r0");
        assert_eq!(start_all(&mut s, "p", &spec, now), vec!["r2"]);
        s.requeue_front("p", "r2");
        assert_eq!(s.position("p", "r2"), Some(1));
        assert_eq!(s.running_in("p"), 1);
    }

    #[test]
    fn max_queued_refuses_unless_it_would_start_now() {
        let mut s = Scheduler::default();
        let spec = pool(1, 0, None);
        let now = Instant::now();
        assert_eq!(
            s.admit("p", &spec, now),
            Ok(()),
            "free slot: starts at once"
        );
        s.enqueue("p", "r0");
        assert_eq!(start_all(&mut s, "p", &spec, now), vec!["r0"]);
        assert_eq!(s.admit("p", &spec, now), Err(Full { retry_after_s: 5 }));
        let spec = pool(1, 1, None);
        assert_eq!(s.admit("p", &spec, now), Ok(()));
        s.enqueue("p", "r1");
        assert_eq!(s.admit("p", &spec, now), Err(Full { retry_after_s: 5 }));
    }

    #[test]
    fn starts_per_minute_window_slides() {
        let mut s = Scheduler::default();
        let spec = pool(10, 10, Some(2));
        for i in 0..4 {
            s.enqueue("p", &format!("r{i}"));
        }
        let t0 = Instant::now();
        assert_eq!(start_all(&mut s, "p", &spec, t0), vec!["r0", "r1"]);
        assert_eq!(
            s.next_start("p", &spec, t0 + Duration::from_secs(30)),
            Next::Wait(Some(t0 + START_WINDOW))
        );
        assert!(!s.can_start_now("q", &pool(10, 0, Some(0)), t0));
        assert_eq!(
            s.admit("p", &pool(10, 2, Some(2)), t0),
            Err(Full { retry_after_s: 60 })
        );
        let later = t0 + START_WINDOW;
        assert_eq!(start_all(&mut s, "p", &spec, later), vec!["r2", "r3"]);
        assert_eq!(s.running_in("p"), 4);
    }
}
