//! A driver killed with tries still queued: the interchange drops them after the client
//! timeout instead of running work nobody will read.

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn queued(conn: &strand::connection::ConnectionInfo) -> u64 {
    let mut c = strand::client::Client::connect(conn).expect("client");
    c.status(Duration::from_secs(5)).map(|s| s.queued).unwrap_or(u64::MAX)
}

#[test]
fn a_dead_drivers_queued_tries_are_dropped_after_the_client_timeout() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ix, conn) = interchange(dir.path(), &["--client-timeout", "2", "--heartbeat-period", "0.2"]);
    let conn_file = dir.path().join("connection.json");
    // No launcher: the try stays queued. Everything the driver sends comes after this instant,
    // so the interchange may drop its try no sooner than the client timeout after it.
    let spawned = Instant::now();
    let mut driver = Guard::spawn(
        "strand submit",
        Command::new(bin("strand"))
            .args(["submit", "--connection"])
            .arg(&conn_file)
            .args(["--", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while queued(&conn) != 1 {
        assert!(Instant::now() < deadline, "the try was never queued");
        std::thread::sleep(Duration::from_millis(20));
    }
    driver.kill();
    let killed = Instant::now();
    while queued(&conn) != 0 {
        assert!(killed.elapsed() < Duration::from_secs(20), "the dead driver's try is still queued");
        std::thread::sleep(Duration::from_millis(50));
    }
    let after_start = spawned.elapsed();
    assert!(
        after_start >= Duration::from_secs(2),
        "dropped {after_start:?} after the driver started: before the 2 s client timeout"
    );
    let log = std::fs::read_to_string(dir.path().join("interchange.log")).unwrap_or_default();
    assert!(log.contains("client gone"), "{log}");
}
