//! CPU sets as the kernel reports them (`/proc/PID/status`, sysfs), for the placement tests.

use super::{rank_pid, Guard};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Parse a kernel CPU list (`0-3,8,10-11`).
pub fn parse_list(s: &str) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi): (u32, u32) = (lo.parse().expect("cpu number"), hi.parse().expect("cpu number"));
        out.extend(lo..=hi);
    }
    out
}

/// The `Cpus_allowed_list` line of a `/proc/.../status` text.
pub fn allowed_in(status: &str) -> Option<BTreeSet<u32>> {
    status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).map(parse_list)
}

/// The CPUs `pid` may run on.
pub fn allowed_of(pid: i32) -> Option<BTreeSet<u32>> {
    allowed_in(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// The cores this process may use, each as the set of its hardware threads (from sysfs).
pub fn my_cores() -> Vec<BTreeSet<u32>> {
    let mine = allowed_of(std::process::id() as i32).expect("own status");
    let mut cores: Vec<BTreeSet<u32>> = vec![];
    for cpu in &mine {
        let path = format!("/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list");
        let siblings = std::fs::read_to_string(&path).map(|s| parse_list(&s)).unwrap_or_else(|_| [*cpu].into());
        let core: BTreeSet<u32> = siblings.intersection(&mine).copied().collect();
        if !cores.contains(&core) {
            cores.push(core);
        }
    }
    cores
}

/// The pids of world ranks 0..n under `mpirun` (bounded wait: mpirun starts them at once).
pub fn rank_pids(mpirun: &Guard, n: u32, timeout: Duration) -> Vec<i32> {
    let deadline = Instant::now() + timeout;
    (0..n)
        .map(|r| loop {
            if let Some(p) = rank_pid(mpirun.pid(), r) {
                break p;
            }
            assert!(Instant::now() < deadline, "rank {r} not found under mpirun");
            std::thread::sleep(Duration::from_millis(20));
        })
        .collect()
}

/// Each rank's CPU set once every one of them satisfies `settled` (a rank binds itself a few
/// milliseconds after MPI_Init, which may be after the manager registered), or as they are
/// after 10 s, for the assertions to report.
pub fn settled_sets(pids: &[i32], settled: impl Fn(&BTreeSet<u32>) -> bool) -> Vec<BTreeSet<u32>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sets: Vec<BTreeSet<u32>> = pids.iter().map(|&p| allowed_of(p).expect("rank status")).collect();
        if sets.iter().all(&settled) || Instant::now() >= deadline {
            return sets;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
