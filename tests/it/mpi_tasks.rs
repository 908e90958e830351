//! MPI inside a pool, on real launchers under mpirun: registered MPI functions on communicators
//! of exactly their tries' ranks, and a real MPI program (built here with mpicc) started
//! directly and through `$STRAND_MPI_PREFIX` on one and on several ranks.

use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use strand::dfk::{Call, Dfk, DfkConfig, TaskError, TaskFuture};
use strand::task::{Failure, Resources};

const WAIT: Duration = Duration::from_secs(120);

fn ranks(k: u32) -> Resources {
    Resources { ranks: k, ..Resources::default() }
}

fn text(f: &TaskFuture) -> String {
    let out = f.wait_timeout(WAIT).expect("in time").unwrap_or_else(|e| panic!("failed: {e}"));
    String::from_utf8_lossy(&out).trim().to_string()
}

/// A pool of one manager and `workers` worker ranks serving a fresh interchange in `dir`.
fn pool(dir: &Path, workers: u32) -> (Guard, Guard, strand::connection::ConnectionInfo) {
    let (ix, conn) = interchange(dir, &[]);
    let conn_file = dir.join("connection.json");
    let size = (workers + 1).to_string();
    let block = launcher(dir, "block", workers + 1, &conn_file, &["--pool-size", &size]);
    wait_managers(&conn, 1, Duration::from_secs(60));
    (ix, block, conn)
}

fn stale_results(conn: &strand::connection::ConnectionInfo) -> u64 {
    let mut c = strand::client::Client::connect(conn).expect("client");
    c.status(Duration::from_secs(5)).expect("status").dropped.stale_results
}

#[test]
fn allreduce_on_sub_communicators_of_two_and_three_ranks_beside_serial_tries() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    // A 7-rank world: the manager and six workers.
    let (_ix, _block, conn) = pool(dir.path(), 6);
    let dfk = Dfk::connect(&conn, DfkConfig::default()).expect("dfk");
    let h = dfk.handle();
    let mut sums = vec![];
    let mut serial = vec![];
    for i in 0..200u64 {
        let k = 2 + (i % 2) as u32;
        sums.push((i, k, h.submit(Call::function("mpi_sum", i.to_string()).resources(ranks(k)))));
        serial.push((i, h.submit(Call::function("echo", i.to_string()))));
    }
    for (i, k, f) in &sums {
        // Each of k ranks adds its rank to i.
        let want = u64::from(*k) * i + u64::from(k * (k - 1) / 2);
        assert_eq!(text(f), want.to_string(), "try {i} on {k} ranks");
    }
    for (i, f) in &serial {
        assert_eq!(text(f), i.to_string());
    }
    // Rank 0's lines come from every member, in rank order.
    let hello = text(&h.submit(Call::function("mpi_hello", "").resources(ranks(3))));
    let lines: Vec<&str> = hello.lines().collect();
    assert_eq!(lines.len(), 3, "{hello}");
    for (r, l) in lines.iter().enumerate() {
        assert!(l.starts_with(&format!("hello from rank {r} of 3 on ")), "{hello}");
    }
    assert_eq!(stale_results(&conn), 0, "a result was delivered twice");
}

#[test]
fn a_member_that_panics_fails_its_try_and_the_pool_keeps_serving() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ix, _block, conn) = pool(dir.path(), 3);
    let dfk = Dfk::connect(&conn, DfkConfig::default()).expect("dfk");
    let h = dfk.handle();
    for member in [1, 0, 2] {
        let f = h.submit(Call::function("mpi_panic", member.to_string()).resources(ranks(3)));
        match f.wait_timeout(WAIT).expect("in time") {
            Err(TaskError::Failed { failure: Failure::Panic { message }, .. }) => {
                assert_eq!(message, format!("mpi_panic on rank {member} of 3"));
            }
            other => panic!("member {member}: {other:?}"),
        }
        // Every rank is back: a try on all three runs next.
        assert_eq!(text(&h.submit(Call::function("mpi_sum", "1").resources(ranks(3)))), "6");
    }
    // An error on every member (a bad argument) fails the try once.
    let bad = h.submit(Call::function("mpi_sum", "x").resources(ranks(2)));
    match bad.wait_timeout(WAIT).expect("in time") {
        Err(TaskError::Failed { failure: Failure::FunctionError { message }, .. }) => {
            assert!(message.contains("expected an integer"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // More ranks than the pool has fails at once.
    let too_wide = h.submit(Call::function("mpi_sum", "1").resources(ranks(4)));
    assert!(
        matches!(
            too_wide.wait_timeout(WAIT).expect("in time"),
            Err(TaskError::Failed { failure: Failure::Unsatisfiable { .. }, .. })
        ),
        "four ranks in a pool of three workers"
    );
    assert_eq!(text(&h.submit(Call::function("echo", "still serving"))), "still serving");
    assert_eq!(stale_results(&conn), 0, "a result was delivered twice");
}

#[test]
fn an_mpi_program_runs_directly_and_through_the_prefix_on_one_and_on_k_ranks() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let hello = dir.path().join("hello");
    let src = repo().join("examples").join("mpi").join("hello.c");
    run_ok(dir.path(), "mpicc", Command::new("mpicc").arg("-o").arg(&hello).arg(&src), Duration::from_secs(60));
    let (_ix, _block, conn) = pool(dir.path(), 3);
    let dfk = Dfk::connect(&conn, DfkConfig::default()).expect("dfk");
    let h = dfk.handle();
    let exe = hello.display().to_string();
    // Started directly, it does not inherit its worker rank's MPI identity: an MPI singleton.
    let direct = h.submit(Call::shell(exe.clone()));
    let one = h.submit(Call::shell(format!("$STRAND_MPI_PREFIX {exe}")));
    let three = h.submit(Call::shell(format!("$STRAND_MPI_PREFIX {exe}")).resources(ranks(3)));
    let told =
        h.submit(Call::shell("echo $STRAND_NUM_RANKS $STRAND_NUM_NODES $STRAND_RANKS_PER_NODE").resources(ranks(2)));
    assert!(text(&direct).starts_with("hello from rank 0 of 1 on "), "{}", text(&direct));
    assert!(text(&one).starts_with("hello from rank 0 of 1 on "), "{}", text(&one));
    let out = text(&three);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines.len(), 3, "{out}");
    for (r, l) in lines.iter().enumerate() {
        assert!(l.starts_with(&format!("hello from rank {r} of 3 on ")) && l.ends_with(" sum 6"), "{out}");
    }
    assert_eq!(text(&told), "2 1 2");
}

#[test]
fn strand_map_json_selects_mpi_functions_by_resources() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("tasks.jsonl");
    std::fs::write(
        &input,
        "{\"name\":\"two\",\"function\":\"mpi_sum\",\"args\":\"5\",\"resources\":{\"ranks\":2}}\n\
         {\"name\":\"three\",\"function\":\"mpi_sum\",\"args\":\"5\",\"resources\":{\"ranks\":3}}\n",
    )
    .expect("input");
    // The lines on stdin, as a driver writes them (run_ok gives a command no stdin of its own).
    let script = format!(
        "exec '{}' map --json --workers 3 --run-dir '{}' < '{}'",
        bin("strand").display(),
        dir.path().join("run").display(),
        input.display()
    );
    let out = run_ok(dir.path(), "strand map --json", Command::new("sh").arg("-c").arg(script), WAIT);
    let mut got: Vec<(String, String)> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            assert_eq!(v["ok"], true, "{l}");
            (v["name"].as_str().unwrap_or_default().to_string(), v["stdout"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    got.sort();
    // 2 * 5 + 1 and 3 * 5 + 3: each rank of the try's communicator added its rank.
    assert_eq!(got, [("three".to_string(), "18".to_string()), ("two".to_string(), "11".to_string())]);
}
