//! Rank placement through the real path: `mpirun strand-launcher --bind ...` binds each rank
//! (as the kernel reports it in /proc/PID/status), task processes inherit their worker's
//! binding, and `--bind none` leaves the ranks as mpirun started them.

use crate::common::cpus::*;
use crate::common::*;
use std::collections::BTreeSet;
use std::time::Duration;
use strand::dfk::{Call, Dfk, DfkConfig};

const WAIT: Duration = Duration::from_secs(60);

/// What `grep Cpus_allowed_list /proc/self/status` reports when run as a task.
fn task_cpuset(dfk: &Dfk) -> BTreeSet<u32> {
    let f = dfk.submit(Call::shell("grep Cpus_allowed_list /proc/self/status").memoize(false));
    let out = f.wait_timeout(WAIT).expect("task ends in time").expect("task succeeds");
    allowed_in(&String::from_utf8_lossy(&out)).expect("a Cpus_allowed_list line")
}

#[test]
fn bind_core_puts_each_rank_on_its_own_core_and_tasks_inherit_it() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ix, conn) = interchange(dir.path(), &[]);
    let conn_file = dir.path().join("connection.json");
    // One pool: rank 0 manages, rank 1 works.
    let block = launcher(dir.path(), "block", 2, &conn_file, &["--bind", "core", "--pool-size", "2"]);
    wait_managers(&conn, 1, WAIT);
    let log = dir.path().join("block.log");

    let cores = my_cores();
    let pids = rank_pids(&block, 2, WAIT);
    let sets = settled_sets(&pids, |s| cores.contains(s));
    for (rank, set) in sets.iter().enumerate() {
        assert!(cores.contains(set), "rank {rank} is on {set:?}, not one core of {cores:?}\n{}", tail(&log));
    }
    // Not skipped on a one-core machine: placing ranks apart needs two cores, and the test says so.
    assert!(
        cores.len() >= 2,
        "this test needs two cores to check that ranks are placed apart; this machine has {cores:?}"
    );
    assert_ne!(sets[0], sets[1], "both ranks on the same core\n{}", tail(&log));

    // The task runs as a child of the worker (rank 1) and inherits its binding.
    let dfk = Dfk::connect(&conn, DfkConfig::default()).expect("dfk");
    assert_eq!(task_cpuset(&dfk), sets[1], "the task does not run on its worker's core");
    // Every rank logs its placement.
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(text.matches("placement").count(), 2, "one placement line per rank expected:\n{text}");
}

#[test]
fn bind_none_leaves_ranks_and_tasks_as_mpirun_started_them() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ix, conn) = interchange(dir.path(), &[]);
    let conn_file = dir.path().join("connection.json");
    let block = launcher(dir.path(), "block", 2, &conn_file, &["--bind", "none", "--pool-size", "2"]);
    wait_managers(&conn, 1, WAIT);
    let log = dir.path().join("block.log");

    // mpirun runs with --bind-to none, so the ranks keep this process's set.
    let mine = allowed_of(std::process::id() as i32).expect("own status");
    for (rank, pid) in rank_pids(&block, 2, WAIT).into_iter().enumerate() {
        assert_eq!(allowed_of(pid), Some(mine.clone()), "rank {rank} was bound\n{}", tail(&log));
    }
    let dfk = Dfk::connect(&conn, DfkConfig::default()).expect("dfk");
    assert_eq!(task_cpuset(&dfk), mine);
}
