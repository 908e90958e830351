//! A worker that stops receiving must not block its manager: tries too large for MPI's eager
//! protocol wait for the receiver, so the manager sends without blocking and moves on.

use crate::common::*;
use std::time::{Duration, Instant};
use strand::client::Client;
use strand::dfk::{Call, Dfk, DfkConfig, TaskError};
use strand::task::Failure;

#[test]
fn a_large_try_sent_to_a_hung_worker_does_not_block_the_manager() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ix, conn) = interchange(dir.path(), &[]);
    let conn_file = dir.path().join("connection.json");
    // A manager and two workers, each with room for one try beyond the one it runs.
    let block = launcher(
        dir.path(),
        "block",
        3,
        &conn_file,
        &["--worker-heartbeat", "0.1", "--worker-threshold", "1.5", "--prefetch", "1"],
    );
    wait_managers(&conn, 1, Duration::from_secs(60));
    let victim = rank_pid(block.pid(), 2).expect("worker rank 2");
    let dfk = Dfk::connect(&conn, DfkConfig::default()).expect("dfk");
    let long: Vec<_> = (0..2).map(|_| dfk.submit(Call::argv(["sleep", "2"]))).collect();
    let mut client = Client::connect(&conn).expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.status(Duration::from_secs(5)).map(|s| s.in_flight).unwrap_or(0) < 2 {
        assert!(Instant::now() < deadline, "tries never reached the workers");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: signalling our own grandchild.
    unsafe { libc::kill(victim, libc::SIGSTOP) };
    // 64 KiB per try: far past the shared-memory eager limit (4 KiB), so a blocking send to the
    // stopped rank would wait for it forever.
    let pad = "x".repeat(64 * 1024);
    let big: Vec<_> = (0..6).map(|i| dfk.submit(Call::shell(format!("echo {i} # {pad}")))).collect();
    for (i, f) in big.iter().enumerate() {
        match f.wait_timeout(Duration::from_secs(30)).expect("every big try ends: the manager was not blocked") {
            Ok(out) => assert_eq!(String::from_utf8_lossy(&out).trim(), i.to_string()),
            Err(TaskError::Failed { failure: Failure::WorkerLost { rank: 2, .. }, .. }) => {}
            Err(e) => panic!("unexpected failure: {e}"),
        }
    }
    assert!(big.iter().any(|f| matches!(f.peek(), Some(Ok(_)))), "the other worker ran big tries");
    // The stopped rank had room for one try beyond its running one, so a 64 KiB try was sent
    // to it (and failed with it): without that, nothing here tested a send to a hung rank.
    let sent_to_hung = big
        .iter()
        .filter(|f| {
            matches!(f.peek(), Some(Err(TaskError::Failed { failure: Failure::WorkerLost { rank: 2, .. }, .. })))
        })
        .count();
    assert!(
        sent_to_hung >= 1,
        "no big try went to the stopped rank: {:?}",
        big.iter().map(|f| f.peek()).collect::<Vec<_>>()
    );
    for f in &long {
        assert!(f.wait_timeout(Duration::from_secs(30)).is_some());
    }
    // SAFETY: as above.
    unsafe { libc::kill(victim, libc::SIGCONT) };
    // Resumed, it takes the pending sends, runs them and answers; its manager drops those
    // late results, since their tries already failed as WorkerLost.
    wait_for_log_line(
        &dir.path().join("block.log"),
        &["dropped stale results from a worker", "rank: 2"],
        Duration::from_secs(30),
    );
    let after = dfk.submit(Call::function("echo", b"after".to_vec()));
    assert_eq!(after.wait_timeout(Duration::from_secs(30)), Some(Ok(b"after".to_vec())));
    assert_eq!(dfk.counts().stale, 0, "no late result reached the DFK");
    dfk.shutdown();
}
