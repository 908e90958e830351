//! Per-task resources through the real path: a pool of 3 worker ranks with 2 GPUs per node.
//! Wide tries reserve ranks and GPUs, never overlap beyond what the pool has, and tries that
//! can never fit fail at once with `Unsatisfiable`.

use crate::common::*;
use std::time::Duration;
use strand::dfk::{Call, Dfk, DfkConfig, TaskError, TaskFuture};
use strand::task::{Failure, Resources};

const WAIT: Duration = Duration::from_secs(120);

/// A command that prints `VAR_VALUE START_NS END_NS` around a short sleep.
fn timed(var: &str) -> String {
    format!("s=$(date +%s%N); sleep 0.3; echo \"${{{var}:-none}} $s $(date +%s%N)\"")
}

struct Run {
    value: String,
    start: u128,
    end: u128,
}

fn run_of(f: &TaskFuture) -> Run {
    let out = f.wait_timeout(WAIT).expect("in time").expect("succeeds");
    let text = String::from_utf8_lossy(&out).trim().to_string();
    let parts: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(parts.len(), 3, "unexpected output {text:?}");
    Run { value: parts[0].into(), start: parts[1].parse().expect("ns"), end: parts[2].parse().expect("ns") }
}

fn overlap(a: &Run, b: &Run) -> bool {
    a.start < b.end && b.start < a.end
}

#[test]
fn wide_tries_reserve_ranks_and_gpus() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ix, conn) = interchange(dir.path(), &[]);
    let conn_file = dir.path().join("connection.json");
    // One pool: a manager and 3 worker ranks; GPU ids 0 and 1 on the node.
    let _block = launcher(dir.path(), "block", 4, &conn_file, &["--gpus-per-node", "2", "--prefetch", "0"]);
    wait_managers(&conn, 1, Duration::from_secs(60));
    let dfk = Dfk::connect(&conn, DfkConfig::default()).expect("dfk");
    let h = dfk.handle();
    let res = |cores, gpus, ranks| Resources { cores, gpus, ranks };

    // A wide try waits for its reserved ranks to finish the plain tries they hold.
    let started = dir.path().join("started");
    std::fs::create_dir(&started).expect("mkdir");
    let busy: Vec<TaskFuture> = (0..3)
        .map(|i| h.submit(Call::shell(format!("touch {}/{i}; {}", started.display(), timed("STRAND_CORES")))))
        .collect();
    let deadline = std::time::Instant::now() + WAIT;
    while std::fs::read_dir(&started).map(|d| d.count()).unwrap_or(0) < 3 {
        assert!(std::time::Instant::now() < deadline, "plain tries did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    let after_busy = run_of(&h.submit(Call::shell(timed("STRAND_CORES")).resources(res(2, 0, 1))));
    let busy_runs: Vec<Run> = busy.iter().map(run_of).collect();
    let ended_before = busy_runs.iter().filter(|b| b.end <= after_busy.start).count();
    assert!(ended_before >= 2, "a 2-core try started while {} of its ranks were busy", 3 - ended_before);

    // Two cores each on a pool of three ranks: never two at once.
    let two_core: Vec<TaskFuture> =
        (0..3).map(|_| h.submit(Call::shell(timed("STRAND_CORES")).resources(res(2, 0, 1)))).collect();
    // One GPU each with two GPUs on the node: never two on the same GPU at once.
    let one_gpu: Vec<TaskFuture> =
        (0..4).map(|_| h.submit(Call::shell(timed("CUDA_VISIBLE_DEVICES")).resources(res(1, 1, 1)))).collect();
    // An MPI app of three ranks learns one host per rank.
    let mpi = h.submit(Call::shell("echo $STRAND_RANKS $STRAND_HOSTS").resources(res(1, 0, 3)));
    // More than the pool can ever give.
    let too_wide = h.submit(Call::shell("true").resources(res(4, 0, 1)));
    let too_many_gpus = h.submit(Call::shell("true").resources(res(1, 3, 1)));
    // Plain tries still flow around the wide ones.
    let plain: Vec<TaskFuture> = (0..20).map(|i| h.submit(Call::shell(format!("echo {i}")))).collect();

    let runs: Vec<Run> = two_core.iter().map(run_of).collect();
    for r in &runs {
        assert_eq!(r.value, "2", "STRAND_CORES");
    }
    for (i, a) in runs.iter().enumerate() {
        for b in &runs[i + 1..] {
            assert!(!overlap(a, b), "two 2-core tries ran at once on 3 ranks");
        }
    }
    let gpu_runs: Vec<Run> = one_gpu.iter().map(run_of).collect();
    for (i, a) in gpu_runs.iter().enumerate() {
        assert!(a.value == "0" || a.value == "1", "CUDA_VISIBLE_DEVICES = {:?}", a.value);
        for b in &gpu_runs[i + 1..] {
            assert!(!(a.value == b.value && overlap(a, b)), "GPU {} given to two tries at once", a.value);
        }
    }
    let out = mpi.wait_timeout(WAIT).expect("in time").expect("mpi app runs");
    let text = String::from_utf8_lossy(&out).trim().to_string();
    let (ranks, hosts) = text.split_once(' ').expect("two fields");
    assert_eq!(ranks, "3");
    assert_eq!(hosts.split(',').count(), 3, "{hosts}");
    for f in [&too_wide, &too_many_gpus] {
        match f.wait_timeout(WAIT).expect("in time") {
            Err(TaskError::Failed { failure: Failure::Unsatisfiable { .. }, .. }) => {}
            other => panic!("expected Unsatisfiable, got {other:?}"),
        }
    }
    for (i, f) in plain.iter().enumerate() {
        let out = f.wait_timeout(WAIT).expect("in time").expect("plain runs");
        assert_eq!(String::from_utf8_lossy(&out).trim(), i.to_string());
    }
    assert_eq!(dfk.wait_all(Some(Duration::from_secs(30))), 0);
    dfk.shutdown();
}
