//! The Parsl profiling study's programs through the real path: double, increment, fib via joins.

use crate::common::*;
use std::time::Duration;
use strand::bench::programs::{double, fib, increment};
use strand::dfk::{Call, Dfk, DfkConfig, TaskError};

fn text(b: Vec<u8>) -> String {
    String::from_utf8_lossy(&b).trim().to_string()
}

#[test]
fn double_increment_and_fib_through_joins() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ix, conn) = interchange(dir.path(), &[]);
    let _block = launcher(dir.path(), "block", 3, &dir.path().join("connection.json"), &[]);
    wait_managers(&conn, 1, Duration::from_secs(60));
    let dfk = Dfk::connect(&conn, DfkConfig::default()).expect("dfk");
    let h = dfk.handle();

    let d = double(&h, 100);
    for (i, f) in d.iter().enumerate() {
        assert_eq!(text(f.wait_timeout(Duration::from_secs(120)).expect("in time").expect("ok")), (2 * i).to_string());
    }
    let inc = increment(&h, 50).wait_timeout(Duration::from_secs(120)).expect("in time").expect("ok");
    assert_eq!(text(inc), "50");
    let f = fib(&h, 15).wait_timeout(Duration::from_secs(300)).expect("in time").expect("ok");
    assert_eq!(text(f), "610");

    // A join body that panics fails its task; a failing task inside a join fails the join.
    let boom = h.submit(Call::join(|_| panic!("join body broke")));
    assert!(matches!(boom.wait_timeout(Duration::from_secs(30)), Some(Err(TaskError::Failed { .. }))));
    let h2 = h.clone();
    let inner_fail = h.submit(Call::join(move |_| h2.submit(Call::shell("exit 5"))));
    assert!(inner_fail.wait_timeout(Duration::from_secs(30)).expect("in time").is_err());
    assert_eq!(dfk.wait_all(Some(Duration::from_secs(30))), 0);
    dfk.shutdown();
}
