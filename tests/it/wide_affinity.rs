//! Wide tries run on the cores they reserved: under `--bind core` each worker rank is bound to
//! one core, and a `cores = 2` try runs on the union of its two ranks' cores (`STRAND_CPUS`,
//! applied by the worker), not confined to its leader's one core; plain tries keep their
//! worker's core. Checked as the kernel reports it in the task's /proc/self/status.

use crate::common::cpus::*;
use crate::common::*;
use std::collections::BTreeSet;
use std::time::Duration;
use strand::dfk::{Call, Dfk, DfkConfig};
use strand::task::Resources;

const WAIT: Duration = Duration::from_secs(60);

/// What the task runs: its CPU list, and what it was told (for the failure message).
const SHOW_CPUS: &str = "grep Cpus_allowed_list /proc/self/status; echo \"STRAND_CPUS=${STRAND_CPUS:-unset}\"";

/// The CPU set a task reports, and its whole output.
fn seen(out: Vec<u8>) -> (BTreeSet<u32>, String) {
    let text = String::from_utf8_lossy(&out).into_owned();
    (allowed_in(&text).unwrap_or_else(|| panic!("no Cpus_allowed_list line in {text:?}")), text)
}

#[test]
fn a_wide_try_runs_on_the_cores_of_all_its_ranks() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ix, conn) = interchange(dir.path(), &[]);
    let conn_file = dir.path().join("connection.json");
    // One pool: rank 0 manages, ranks 1 and 2 work. Under --bind core, node rank i is on core
    // i modulo the cores: on two cores, rank 1 on core 1 and rank 2 on core 0.
    let block = launcher(dir.path(), "block", 3, &conn_file, &["--bind", "core", "--pool-size", "3"]);
    wait_managers(&conn, 1, WAIT);
    let log = dir.path().join("block.log");
    let cores = my_cores();
    let sets = settled_sets(&rank_pids(&block, 3, WAIT), |s| cores.contains(s));
    for (rank, set) in sets.iter().enumerate() {
        assert!(cores.contains(set), "rank {rank} is on {set:?}, not one core of {cores:?}\n{}", tail(&log));
    }
    let dfk = Dfk::connect(&conn, DfkConfig::default()).expect("dfk");

    // Plain tries, two at once (the sleep keeps the first busy, so the second goes to the other
    // worker): each runs on its worker's core alone. By the time they ran, both workers have
    // sent their heartbeats, so the manager knows their cpusets before the wide try arrives.
    let plain: Vec<_> =
        (0..2).map(|_| dfk.submit(Call::shell(format!("sleep 0.3; {SHOW_CPUS}")).memoize(false))).collect();
    for f in &plain {
        let (set, text) = seen(f.wait_timeout(WAIT).expect("plain task ends in time").expect("plain task succeeds"));
        assert!(set == sets[1] || set == sets[2], "a plain task ran on {set:?}, not its worker's core:\n{text}");
    }

    // Two cores reserve both workers: the command runs on both their cores.
    let wide = Call::shell(SHOW_CPUS).resources(Resources { cores: 2, ..Resources::default() }).memoize(false);
    let out = dfk.submit(wide).wait_timeout(WAIT).expect("wide task ends in time").expect("wide task succeeds");
    let (set, text) = seen(out);
    let union: BTreeSet<u32> = sets[1].union(&sets[2]).copied().collect();
    // Not skipped on a one-core machine: the test needs two cores to mean anything, and says so.
    assert!(
        cores.len() >= 2,
        "this test needs two cores (a wide try over two workers' cores); this machine has {cores:?}"
    );
    assert_ne!(sets[1], sets[2], "both workers on one core of {cores:?}\n{}", tail(&log));
    assert_eq!(set, union, "the 2-core task did not run on both its ranks' cores:\n{text}\n{}", tail(&log));
    if cores == [BTreeSet::from([0]), BTreeSet::from([1])] {
        // The machine this was written on: two single-thread cores, 0 and 1.
        assert!(text.contains("Cpus_allowed_list:\t0-1\n"), "{text}");
    }
}
