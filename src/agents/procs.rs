//! The process tree of a pane: listing (from /proc), signalling, and its
//! memory and CPU (sysinfo).

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// `(pid, ppid, pgid)` of every process, from `/proc/<pid>/stat`.
fn table() -> Vec<(u32, u32, u32)> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((pid, f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?))
        })
        .collect()
}

/// `root`, its descendants, and every member of its process group.
pub fn tree(root: u32) -> BTreeSet<u32> {
    let t = table();
    let mut kids: HashMap<u32, Vec<u32>> = HashMap::new();
    for (p, pp, _) in &t {
        kids.entry(*pp).or_default().push(*p);
    }
    let exists: BTreeSet<u32> = t.iter().map(|(p, _, _)| *p).collect();
    let mut out = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        if out.insert(p)
            && let Some(k) = kids.get(&p)
        {
            stack.extend(k.iter().copied());
        }
    }
    out.extend(t.iter().filter(|(_, _, g)| *g == root).map(|(p, _, _)| *p));
    out.retain(|p| exists.contains(p));
    out
}

/// SIGTERM the tree of `root`, wait up to `grace` for it to be gone, then
/// SIGKILL what is left (re-listing, so late forks are caught too).
pub fn terminate_tree(root: u32, grace: Duration) {
    if root == 0 {
        return;
    }
    let signal_all = |sig: Signal| {
        let pids = tree(root);
        for p in &pids {
            let _ = kill(Pid::from_raw(*p as i32), sig);
        }
        pids
    };
    // A stopped process does not act on SIGTERM; wake it up.
    let _ = signal_all(Signal::SIGTERM);
    let _ = signal_all(Signal::SIGCONT);
    let end = Instant::now() + grace;
    while Instant::now() < end {
        if tree(root).is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..3 {
        if signal_all(Signal::SIGKILL).is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Resident MiB and CPU percent summed over the tree of `root`.
pub fn usage(sys: &mut sysinfo::System, root: u32) -> (f64, f64) {
    let pids: Vec<sysinfo::Pid> = tree(root).into_iter().map(sysinfo::Pid::from_u32).collect();
    sys.refresh_processes(sysinfo::ProcessesToUpdate::Some(&pids), true);
    let mut mem = 0u64;
    let mut cpu = 0f32;
    for p in &pids {
        if let Some(pr) = sys.process(*p) {
            mem += pr.memory();
            cpu += pr.cpu_usage();
        }
    }
    (
        (mem as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0,
        (f64::from(cpu) * 10.0).round() / 10.0,
    )
}
