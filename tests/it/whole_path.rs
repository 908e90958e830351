//! The whole path with real processes: interchange, `mpirun strand-launcher`, DFK.

use crate::common::*;
use std::collections::HashMap;
use std::time::Duration;
use strand::dfk::{Call, Dfk, DfkConfig, TaskError, TaskFuture};
use strand::task::Failure;

/// What each kind of task must end as.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    CommandOk,
    Exit3,
    Signal,
    Timeout,
    FunctionOk,
    Panic,
}

fn call(kind: Kind, i: usize) -> Call {
    match kind {
        Kind::CommandOk => Call::argv(["echo", &format!("ok-{i}")]),
        Kind::Exit3 => Call::shell("echo failing >&2; exit 3"),
        Kind::Signal => Call::shell("kill -9 $$"),
        Kind::Timeout => Call::argv(["sleep", "30"]).walltime(Duration::from_millis(100)),
        Kind::FunctionOk => Call::function("echo", format!("fn-{i}").into_bytes()),
        Kind::Panic => Call::function("panic", b"deliberate".to_vec()),
    }
}

fn check(kind: Kind, i: usize, f: &TaskFuture) {
    let got = f.peek().unwrap_or_else(|| panic!("task {i} ({kind:?}) has no outcome"));
    match (kind, &got) {
        (Kind::CommandOk, Ok(out)) => assert_eq!(out, format!("ok-{i}\n").as_bytes()),
        (Kind::FunctionOk, Ok(out)) => assert_eq!(out, format!("fn-{i}").as_bytes()),
        (Kind::Exit3, Err(TaskError::Failed { failure: Failure::ExitCode { code: 3, stderr, .. }, .. })) => {
            assert!(stderr.contains("failing"), "stderr tail kept: {stderr:?}")
        }
        (Kind::Signal, Err(TaskError::Failed { failure: Failure::Signal { signal: 9, .. }, .. })) => {}
        (Kind::Timeout, Err(TaskError::Failed { failure: Failure::Timeout { walltime_ms: 100 }, .. })) => {}
        (Kind::Panic, Err(TaskError::Failed { failure: Failure::Panic { message }, .. })) => {
            assert!(message.contains("deliberate"))
        }
        _ => panic!("task {i} ({kind:?}) ended as {got:?}"),
    }
}

#[test]
fn mixed_tasks_through_three_pools_each_end_exactly_once() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ix, conn) = interchange(dir.path(), &[]);
    let conn_file = dir.path().join("connection.json");
    // 7 ranks in pools of 3: pools of 3, 3 and 1 (a manager that runs tasks itself).
    let mut block = launcher(dir.path(), "block", 7, &conn_file, &["--pool-size", "3"]);
    wait_managers(&conn, 3, Duration::from_secs(60));

    let dfk = Dfk::connect(&conn, DfkConfig::default()).expect("dfk");
    let kinds = [Kind::CommandOk, Kind::Exit3, Kind::Signal, Kind::Timeout, Kind::FunctionOk, Kind::Panic];
    let tasks: Vec<(Kind, TaskFuture)> = (0..2000)
        .map(|i| {
            // Mostly cheap tasks; every 20th is one of the slow failure kinds.
            let kind =
                if i % 20 == 0 { kinds[(i / 20) % kinds.len()] } else { [Kind::CommandOk, Kind::FunctionOk][i % 2] };
            (kind, dfk.submit(call(kind, i)))
        })
        .collect();
    let left = dfk.wait_all(Some(Duration::from_secs(300)));
    assert_eq!(left, 0, "{left} tasks never ended; block log:\n{}", tail(&dir.path().join("block.log")));
    let mut by_kind: HashMap<String, usize> = HashMap::new();
    for (i, (kind, f)) in tasks.iter().enumerate() {
        check(*kind, i, f);
        *by_kind.entry(format!("{kind:?}")).or_default() += 1;
    }
    let counts = dfk.counts();
    assert_eq!(counts.submitted, 2000);
    assert_eq!(counts.done + counts.failed, 2000, "every task ended once: {counts:?}");
    assert_eq!(counts.stale, 0, "no duplicate results reached the DFK");
    // Each manager's host is learned from the interchange after its first result (the
    // joblog's Host): all three pools here.
    let managers: std::collections::BTreeSet<_> =
        tasks.iter().map(|(_, f)| f.ran().manager).filter(|m| m.0 != 0).collect();
    assert_eq!(managers.len(), 3, "every pool ran tasks: {managers:?}");
    let hosts = dfk.manager_hosts();
    let by = std::time::Instant::now() + Duration::from_secs(10);
    while managers.iter().any(|m| hosts.get(*m).is_none()) && std::time::Instant::now() < by {
        std::thread::sleep(Duration::from_millis(10));
    }
    for m in &managers {
        assert_eq!(hosts.get(*m), Some(strand::host::hostname()), "manager {m:?}");
    }
    dfk.shutdown();

    // Stop: the interchange tells every manager to stop; every rank exits 0.
    let mut c = strand::client::Client::connect(&conn).expect("client");
    c.send(&strand::wire::ClientMsg::Shutdown).expect("send shutdown");
    assert!(ix.wait(Duration::from_secs(30)).success());
    let st = block.wait(Duration::from_secs(60));
    assert!(st.success(), "mpirun exited with {st}; log:\n{}", tail(&dir.path().join("block.log")));
}

#[test]
fn launcher_stops_cleanly_on_sigterm_and_when_the_interchange_is_gone() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ix, conn) = interchange(dir.path(), &["--heartbeat-period", "0.1", "--heartbeat-threshold", "0.5"]);
    let conn_file = dir.path().join("connection.json");
    let mut a = launcher(dir.path(), "a", 3, &conn_file, &[]);
    let mut b = launcher(dir.path(), "b", 2, &conn_file, &[]);
    wait_managers(&conn, 2, Duration::from_secs(60));

    // SIGTERM to every rank, as a batch system does at the end of a step: all ranks exit 0,
    // so mpirun does too. (mpirun itself exits 1 when *it* is signalled, whatever its ranks do.)
    let ranks = children_of(a.pid());
    assert_eq!(ranks.len(), 3, "three launcher ranks under mpirun");
    for r in ranks {
        // SAFETY: signalling our own grandchildren.
        unsafe { libc::kill(r, libc::SIGTERM) };
    }
    let st = a.wait(Duration::from_secs(30));
    assert!(st.success(), "SIGTERM: mpirun exited with {st}; log:\n{}", tail(&dir.path().join("a.log")));

    // The interchange vanishes without a word: the pool notices the silence and stops by itself.
    ix.kill();
    let st = b.wait(Duration::from_secs(30));
    assert!(st.success(), "interchange gone: mpirun exited with {st}; log:\n{}", tail(&dir.path().join("b.log")));
}
