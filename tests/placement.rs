//! Rank placement through the real path: `mpirun strand-launcher --bind ...` binds each rank
//! (as the kernel reports it in /proc/PID/status), task processes inherit their worker's
//! binding, and `--bind none` leaves the ranks as mpirun started them.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use strand::dfk::{Call, Dfk, DfkConfig};

const WAIT: Duration = Duration::from_secs(60);

/// Parse a kernel CPU list (`0-3,8,10-11`).
fn parse_list(s: &str) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi): (u32, u32) = (lo.parse().expect("cpu number"), hi.parse().expect("cpu number"));
        out.extend(lo..=hi);
    }
    out
}

/// The `Cpus_allowed_list` line of a `/proc/.../status` text.
fn allowed_in(status: &str) -> Option<BTreeSet<u32>> {
    status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).map(parse_list)
}

/// The CPUs `pid` may run on.
fn allowed_of(pid: i32) -> Option<BTreeSet<u32>> {
    allowed_in(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// The cores this process may use, each as the set of its hardware threads (from sysfs).
fn my_cores() -> Vec<BTreeSet<u32>> {
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
fn rank_pids(mpirun: &Guard, n: u32) -> Vec<i32> {
    let deadline = Instant::now() + WAIT;
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
/// milliseconds after MPI_Init, which may be after the manager registered), or as they are at
/// the deadline, for the assertion to report.
fn settled_sets(pids: &[i32], settled: impl Fn(&BTreeSet<u32>) -> bool) -> Vec<BTreeSet<u32>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sets: Vec<BTreeSet<u32>> = pids.iter().map(|&p| allowed_of(p).expect("rank status")).collect();
        if sets.iter().all(&settled) || Instant::now() >= deadline {
            return sets;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What `grep Cpus_allowed_list /proc/self/status` reports when run as a task.
fn task_cpuset(dfk: &Dfk) -> BTreeSet<u32> {
    let f = dfk.submit(Call::shell("grep Cpus_allowed_list /proc/self/status").memoize(false));
    let out = f.wait_timeout(WAIT).expect("task ends in time").expect("task succeeds");
    allowed_in(&String::from_utf8_lossy(&out)).expect("a Cpus_allowed_list line")
}

#[test]
fn bind_core_puts_each_rank_on_its_own_core_and_tasks_inherit_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ix, conn) = interchange(dir.path(), &[]);
    let conn_file = dir.path().join("connection.json");
    // One pool: rank 0 manages, rank 1 works.
    let block = launcher(dir.path(), "block", 2, &conn_file, &["--bind", "core", "--pool-size", "2"]);
    wait_managers(&conn, 1, WAIT);
    let log = dir.path().join("block.log");

    let cores = my_cores();
    let pids = rank_pids(&block, 2);
    let sets = settled_sets(&pids, |s| cores.contains(s));
    for (rank, set) in sets.iter().enumerate() {
        assert!(cores.contains(set), "rank {rank} is on {set:?}, not one core of {cores:?}\n{}", tail(&log));
    }
    if cores.len() >= 2 {
        assert_ne!(sets[0], sets[1], "both ranks on the same core\n{}", tail(&log));
    } else {
        println!("note: one core here; both ranks share it, so distinct cores are not checked");
    }

    // The task runs as a child of the worker (rank 1) and inherits its binding.
    let dfk = Dfk::connect(&conn, DfkConfig::default()).expect("dfk");
    assert_eq!(task_cpuset(&dfk), sets[1], "the task does not run on its worker's core");
    // Every rank logs its placement.
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(text.matches("placement").count(), 2, "one placement line per rank expected:\n{text}");
}

#[test]
fn bind_none_leaves_ranks_and_tasks_as_mpirun_started_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ix, conn) = interchange(dir.path(), &[]);
    let conn_file = dir.path().join("connection.json");
    let block = launcher(dir.path(), "block", 2, &conn_file, &["--bind", "none", "--pool-size", "2"]);
    wait_managers(&conn, 1, WAIT);
    let log = dir.path().join("block.log");

    // mpirun runs with --bind-to none, so the ranks keep this process's set.
    let mine = allowed_of(std::process::id() as i32).expect("own status");
    for (rank, pid) in rank_pids(&block, 2).into_iter().enumerate() {
        assert_eq!(allowed_of(pid), Some(mine.clone()), "rank {rank} was bound\n{}", tail(&log));
    }
    let dfk = Dfk::connect(&conn, DfkConfig::default()).expect("dfk");
    assert_eq!(task_cpuset(&dfk), mine);
}
