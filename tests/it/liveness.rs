//! Liveness and the command channel with real processes: a whole launcher killed,
//! hold / release / drain of a manager.

use crate::common::*;
use std::process::Command;
use std::time::{Duration, Instant};
use strand::client::Client;
use strand::dfk::{Call, Dfk, DfkConfig, TaskError};
use strand::task::Failure;
use strand::wire::ManagerMode;

#[test]
fn killing_a_whole_launcher_loses_nothing_and_the_other_keeps_serving() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ix, conn) = interchange(dir.path(), &["--heartbeat-period", "0.1", "--heartbeat-threshold", "1"]);
    let conn_file = dir.path().join("connection.json");
    let slots = ["--slots-per-worker", "8", "--pool-size", "3"];
    let mut doomed = launcher(dir.path(), "doomed", 3, &conn_file, &[&slots[..], &["--block-id", "doomed"]].concat());
    wait_managers(&conn, 1, Duration::from_secs(60));
    let mut survivor =
        launcher(dir.path(), "survivor", 3, &conn_file, &[&slots[..], &["--block-id", "survivor"]].concat());
    wait_managers(&conn, 2, Duration::from_secs(60));

    let runs = RunLog::new();
    let dfk = Dfk::connect(&conn, runs.config(DfkConfig::default())).expect("dfk");
    // Half the tasks may be retried (they must end done), half may not (they end done or ManagerLost).
    let futures: Vec<_> = (0..1000)
        .map(|i| dfk.submit(runs.logged(&format!("t{i}"), "sleep 0.2").retries(if i % 2 == 0 { 2 } else { 0 })))
        .collect();

    // Kill the doomed launcher once it is running tasks: mpirun and every rank, with SIGKILL.
    let deadline = Instant::now() + Duration::from_secs(60);
    while dfk.counts().done < 50 {
        assert!(Instant::now() < deadline, "no progress before the kill");
        std::thread::sleep(Duration::from_millis(10));
    }
    for pid in children_of(doomed.pid()) {
        // SAFETY: killing our own grandchildren.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    doomed.kill();

    assert_eq!(dfk.wait_all(Some(Duration::from_secs(180))), 0, "every task ended");
    let (mut done, mut lost) = (0, 0);
    for (i, f) in futures.iter().enumerate() {
        match f.peek().expect("ended") {
            Ok(_) => done += 1,
            Err(TaskError::Failed { failure: Failure::ManagerLost { block, .. }, .. }) => {
                assert_eq!(i % 2, 1, "task {i} had retries left and still ended ManagerLost");
                assert_eq!(block.0, "doomed", "only the killed block's tries are lost");
                lost += 1;
            }
            Err(e) => panic!("task {i} ended as {e}"),
        }
    }
    let c = dfk.counts();
    assert_eq!(done + lost, 1000);
    assert_eq!(c.done + c.failed, 1000, "each task ended exactly once: {c:?}");
    assert_eq!(c.stale, 0, "no second result for any try reached the DFK");
    assert!(lost + c.retried as usize > 0, "the kill cost some tries (else this test proved nothing)");
    runs.assert_each_ran_within_its_tries(futures.iter().enumerate().map(|(i, f)| (format!("t{i}"), f)));
    dfk.shutdown();

    assert!(survivor.is_running(), "the surviving launcher kept running");
    let report = Client::connect(&conn).expect("client").status(Duration::from_secs(10)).expect("status");
    assert_eq!(report.managers.len(), 1);
    assert_eq!(report.managers[0].block.0, "survivor");
}

/// `strand ARGS... --connection FILE` (hold, release, drain, shutdown).
fn strand_cli(conn_file: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin("strand"))
        .args(args)
        .arg("--connection")
        .arg(conn_file)
        .output_within(Duration::from_secs(120));
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn hold_release_and_drain_a_manager() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ix, conn) = interchange(dir.path(), &[]);
    let conn_file = dir.path().join("connection.json");
    let mut block = launcher(dir.path(), "block", 2, &conn_file, &[]);
    wait_managers(&conn, 1, Duration::from_secs(60));
    let mut client = Client::connect(&conn).expect("client");
    let id = client.status(Duration::from_secs(10)).expect("status").managers[0].id;

    let (ok, out) = strand_cli(&conn_file, &["hold", &id.to_string()]);
    assert!(ok, "{out}");
    let dfk = Dfk::connect(&conn, DfkConfig::default()).expect("dfk");
    let f = dfk.submit(Call::function("echo", b"x".to_vec()));
    // The try reaches the interchange and stays queued while the only manager is held.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = client.status(Duration::from_secs(10)).expect("status");
        if s.queued == 1 {
            assert_eq!(s.in_flight, 0);
            assert_eq!(s.managers[0].mode, ManagerMode::Held);
            break;
        }
        assert!(Instant::now() < deadline, "try never queued: {s:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!f.is_done());
    let (ok, out) = strand_cli(&conn_file, &["release", &id.to_string()]);
    assert!(ok, "{out}");
    assert_eq!(f.wait_timeout(Duration::from_secs(30)), Some(Ok(b"x".to_vec())));
    dfk.shutdown();

    let (ok, out) = strand_cli(&conn_file, &["hold", "manager-00000000000000ff"]);
    assert!(!ok && out.contains("no manager"), "{out}");
    let (ok, out) = strand_cli(&conn_file, &["hold", "not-an-id"]);
    assert!(!ok && out.contains("not a manager id"), "{out}");

    // Drain: it holds nothing, so the interchange stops it at once and every rank exits 0.
    let (ok, out) = strand_cli(&conn_file, &["drain", &id.to_string()]);
    assert!(ok, "{out}");
    let st = block.wait(Duration::from_secs(30));
    assert!(st.success(), "drained launcher exits 0: {st}\n{}", tail(&dir.path().join("block.log")));

    // Shutdown stops the interchange itself.
    let (ok, out) = strand_cli(&conn_file, &["shutdown"]);
    assert!(ok && out.contains("shutdown sent"), "{out}");
    let st = ix.wait(Duration::from_secs(30));
    assert!(st.success(), "interchange exits 0 after shutdown: {st}");
}

#[test]
fn interchange_killed_and_restarted_loses_nothing() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let hb = ["--heartbeat-period", "0.2", "--heartbeat-threshold", "5"];
    let (mut ix, conn) = interchange(dir.path(), &hb);
    let conn_file = dir.path().join("connection.json");
    let mut block = launcher(dir.path(), "block", 3, &conn_file, &["--slots-per-worker", "4"]);
    wait_managers(&conn, 1, Duration::from_secs(60));
    let runs = RunLog::new();
    let cfg = runs.config(DfkConfig { interchange_timeout: Duration::from_secs(20), ..DfkConfig::default() });
    let dfk = Dfk::connect(&conn, cfg).expect("dfk");
    let futures: Vec<_> = (0..200).map(|i| dfk.submit(runs.logged(&format!("t{i}"), "sleep 0.2"))).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while dfk.counts().done < 30 {
        assert!(Instant::now() < deadline, "no progress before the kill");
        std::thread::sleep(Duration::from_millis(10));
    }
    ix.kill();
    // Same run directory, same key and ports: launchers and the DFK reconnect by themselves.
    let log = std::fs::File::create(dir.path().join("interchange2.log")).expect("log");
    let _ix2 = Guard::spawn(
        "interchange (restarted)",
        Command::new(bin("strand"))
            .arg("interchange")
            .arg("--run-dir")
            .arg(dir.path())
            .arg("--resume")
            .args(hb)
            .stderr(log),
    );
    assert_eq!(dfk.wait_all(Some(Duration::from_secs(120))), 0, "every task ended");
    for (i, f) in futures.iter().enumerate() {
        assert_eq!(f.peek(), Some(Ok(vec![])), "task {i}");
    }
    let c = dfk.counts();
    assert_eq!((c.done, c.failed), (200, 0), "each task done exactly once: {c:?}");
    assert!(c.resubmitted > 0, "the restart cost some tries, which were sent again: {c:?}");
    runs.assert_each_ran_within_its_tries(futures.iter().enumerate().map(|(i, f)| (format!("t{i}"), f)));
    dfk.shutdown();
    assert!(block.is_running(), "the launcher survived the restart");
    let report = Client::connect(&conn).expect("client").status(Duration::from_secs(10)).expect("status");
    assert_eq!(report.managers.len(), 1, "the manager registered with the new interchange");
}

#[test]
fn frozen_manager_is_lost_then_its_late_results_are_dropped() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ix, conn) = interchange(dir.path(), &["--heartbeat-period", "0.1", "--heartbeat-threshold", "1"]);
    let conn_file = dir.path().join("connection.json");
    let block = launcher(dir.path(), "block", 2, &conn_file, &["--slots-per-worker", "4"]);
    wait_managers(&conn, 1, Duration::from_secs(60));
    let manager = rank_pid(block.pid(), 0).expect("manager rank");
    let runs = RunLog::new();
    let dfk = Dfk::connect(&conn, runs.config(DfkConfig::default())).expect("dfk");
    let futures: Vec<_> = (0..4).map(|i| dfk.submit(runs.logged(&format!("t{i}"), "sleep 2"))).collect();
    let mut client = Client::connect(&conn).expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.status(Duration::from_secs(5)).map(|s| s.in_flight).unwrap_or(0) < 4 {
        assert!(Instant::now() < deadline, "tries never reached the manager");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: signalling our own grandchild.
    unsafe { libc::kill(manager, libc::SIGSTOP) };
    for f in &futures {
        match f.wait_timeout(Duration::from_secs(30)) {
            Some(Err(TaskError::Failed { failure: Failure::ManagerLost { .. }, .. })) => {}
            other => panic!("expected ManagerLost, got {other:?}"),
        }
    }
    // SAFETY: as above.
    unsafe { libc::kill(manager, libc::SIGCONT) };
    // It comes back, finishes the sleeps, sends results nobody owns, and registers afresh.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = client.status(Duration::from_secs(5)).expect("status");
        if s.managers.len() == 1 && s.dropped.stale_results >= 4 {
            break;
        }
        assert!(Instant::now() < deadline, "manager did not come back: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = dfk.submit(Call::function("echo", b"again".to_vec()));
    assert_eq!(after.wait_timeout(Duration::from_secs(30)), Some(Ok(b"again".to_vec())));
    let c = dfk.counts();
    assert_eq!(c.stale, 0, "no second result for any try reached the DFK");
    assert_eq!((c.failed, c.done), (4, 1));
    runs.assert_each_ran_within_its_tries(futures.iter().enumerate().map(|(i, f)| (format!("t{i}"), f)));
    dfk.shutdown();
}

#[test]
fn hung_worker_is_lost_and_the_rest_of_its_pool_keeps_serving() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ix, conn) = interchange(dir.path(), &[]);
    let conn_file = dir.path().join("connection.json");
    // One pool: a manager and two workers; a worker silent for 1.5 s is lost.
    let block = launcher(
        dir.path(),
        "block",
        3,
        &conn_file,
        &["--worker-heartbeat", "0.1", "--worker-threshold", "1.5", "--prefetch", "0"],
    );
    wait_managers(&conn, 1, Duration::from_secs(60));
    let victim = rank_pid(block.pid(), 2).expect("worker rank 2");
    let dfk = Dfk::connect(&conn, DfkConfig::default()).expect("dfk");
    // Two long tasks: one lands on each worker (prefetch 0).
    let long: Vec<_> = (0..2).map(|_| dfk.submit(Call::argv(["sleep", "3"]))).collect();
    let mut client = Client::connect(&conn).expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.status(Duration::from_secs(5)).map(|s| s.in_flight).unwrap_or(0) < 2 {
        assert!(Instant::now() < deadline, "tries never reached the workers");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: signalling our own grandchild.
    unsafe { libc::kill(victim, libc::SIGSTOP) };
    let outcomes: Vec<_> = long.iter().map(|f| f.wait_timeout(Duration::from_secs(30)).expect("ended")).collect();
    let lost: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(o, Err(TaskError::Failed { failure: Failure::WorkerLost { rank: 2, .. }, .. })))
        .collect();
    assert_eq!(lost.len(), 1, "the hung worker's try failed WorkerLost, the other finished: {outcomes:?}");
    assert!(outcomes.iter().any(|o| o.is_ok()));
    // Its manager now advertises one slot, not two: the interchange stops counting the lost rank.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let slots = client.status(Duration::from_secs(5)).ok().and_then(|s| s.managers.first().map(|m| m.slots));
        if slots == Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "the manager still advertises {slots:?} slots after losing a worker");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The pool keeps serving with its other worker.
    let more: Vec<_> = (0..5).map(|i| dfk.submit(Call::function("echo", vec![i]))).collect();
    for (i, f) in more.iter().enumerate() {
        assert_eq!(f.wait_timeout(Duration::from_secs(30)), Some(Ok(vec![i as u8])));
    }
    // SAFETY: as above.
    unsafe { libc::kill(victim, libc::SIGCONT) };
    // The resumed worker ends its try and sends the result; the manager, which declared it
    // lost and failed that try already, drops it. Only after that is the check below meaningful.
    wait_for_log_line(
        &dir.path().join("block.log"),
        &["dropped stale results from a worker", "rank: 2"],
        Duration::from_secs(30),
    );
    let after = dfk.submit(Call::function("echo", b"after".to_vec()));
    assert_eq!(after.wait_timeout(Duration::from_secs(30)), Some(Ok(b"after".to_vec())));
    assert_eq!(dfk.counts().stale, 0, "the resumed worker's late result never reached the DFK");
    dfk.shutdown();
}
