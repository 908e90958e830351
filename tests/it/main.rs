//! The integration tests, one module per area, in one test binary (one link instead of one
//! per file). They start real processes (interchanges, launchers under `mpirun`, a Slurm on
//! loopback), so the tests of one module run beside each other but never beside another
//! module's: each takes its module's turn first ([`common::file_group`]).

mod common;

mod bench_cli;
mod bench_load;
mod big_outputs;
mod driver_death;
mod elasticity;
mod examples;
mod executor_config;
mod failure_matrix;
mod feed_balance;
mod function_links;
mod fuzz_replay;
mod gnu_parallel;
mod hostile;
mod hung_worker_sends;
mod liveness;
mod map;
mod monitoring;
mod mpi_tasks;
mod parsl_programs;
mod placement;
mod resources;
mod resume;
mod scaling;
mod slurm;
mod top;
mod whole_path;
mod wide_affinity;
mod workflow_cli;

#[test]
fn every_test_takes_its_modules_turn() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let mut missing = vec![];
    for entry in std::fs::read_dir(&dir).expect("tests/it") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("main.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("test source");
        let tests = text.matches("#[test]").count();
        let turns = text.matches("crate::common::file_group(module_path!())").count();
        if tests != turns {
            missing.push(format!("{}: {tests} tests, {turns} take a turn", path.display()));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn modules_never_run_beside_each_other() {
    use std::sync::mpsc;
    use std::time::Duration;
    let alpha = common::file_group("it::alpha");
    let (tx, rx) = mpsc::channel();
    let beta = std::thread::spawn(move || {
        let _beta = common::file_group("it::beta");
        let _ = tx.send(());
    });
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "beta ran beside alpha");
    // Another test of alpha's module joins its turn at once.
    let alpha_too = common::file_group("it::alpha::nested");
    drop(alpha);
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "beta ran beside alpha's other test");
    drop(alpha_too);
    rx.recv_timeout(Duration::from_secs(30)).expect("beta got its turn once alpha's tests ended");
    beta.join().expect("beta");
}
