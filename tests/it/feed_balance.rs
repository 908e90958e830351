//! A manager spreads tries over its idle workers before it fills any prefetch slot: two tasks
//! that reach an idle pool together run on two workers at once, not one after the other.

use crate::common::*;
use std::time::Duration;
use strand::dfk::{Call, Dfk, DfkConfig, TaskFuture};

#[test]
fn tries_that_arrive_together_run_on_different_idle_workers() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ix, conn) = interchange(dir.path(), &[]);
    let conn_file = dir.path().join(strand::run_dir::CONNECTION_FILE);
    // One manager and two workers, each allowed one prefetched try beyond the one it runs.
    let _block = launcher(dir.path(), "block", 3, &conn_file, &["--pool-size", "3", "--prefetch", "1"]);
    wait_managers(&conn, 1, Duration::from_secs(60));
    let dfk = Dfk::connect(&conn, DfkConfig::default()).expect("dfk");
    for round in 0..5 {
        let pair: Vec<TaskFuture> = (0..2)
            .map(|i| dfk.submit(Call::shell(format!("sleep 0.2; echo {round}-{i} $STRAND_SLOT")).memoize(false)))
            .collect();
        let ranks: Vec<String> = pair
            .iter()
            .map(|f| {
                let out = f.wait_timeout(Duration::from_secs(60)).expect("ended in time").expect("succeeded");
                String::from_utf8_lossy(&out).split_whitespace().nth(1).unwrap_or("").to_string()
            })
            .collect();
        assert_ne!(ranks[0], ranks[1], "round {round}: both tries ran in slot {}", ranks[0]);
    }
    dfk.shutdown();
}
