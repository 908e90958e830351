//! Every example the README and docs show runs here at its own size, with its defaults:
//! each workflow in `examples/` on the local default, the laptop executor configuration,
//! the `parsl_programs` example binary, and `job-scripts/local.sh` as a block by hand.

use crate::common::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn example(name: &str) -> PathBuf {
    repo().join("examples").join(name)
}

/// The summary line of `strand run`: every task done, none failed or left.
fn assert_all_done(out: &str, tasks: usize) {
    let want =
        format!("{tasks} tasks: {tasks} done (0 skipped: completed in an earlier run), 0 failed, 0 not finished");
    assert!(out.lines().any(|l| l == want), "want {want:?} in\n{out}");
}

#[test]
fn every_example_workflow_runs_on_the_local_default() {
    let _file = crate::common::file_group(module_path!());
    let cwd = tempfile::tempdir().expect("cwd");
    for (file, tasks) in [("hello.toml", 4), ("diamond.toml", 4), ("sweep.toml", 10), ("mpi.toml", 6)] {
        let out = run_ok(
            cwd.path(),
            file,
            Command::new(bin("strand")).arg("run").arg(example(file)).args(["--workers", "2"]),
            Duration::from_secs(120),
        );
        assert_all_done(&out, tasks);
    }
    let runs = std::fs::read_dir(cwd.path().join("runs")).expect("default run directories").count();
    assert_eq!(runs, 4, "one default run directory each, under the current directory");
}

#[test]
fn the_laptop_configuration_runs_hello() {
    let _file = crate::common::file_group(module_path!());
    let cwd = tempfile::tempdir().expect("cwd");
    let out = run_ok(
        cwd.path(),
        "laptop",
        Command::new(bin("strand"))
            .arg("run")
            .arg(example("hello.toml"))
            .arg("--config")
            .arg(example("configs/laptop.toml")),
        Duration::from_secs(120),
    );
    assert_all_done(&out, 4);
}

#[test]
fn the_parsl_programs_example_runs_to_the_end() {
    let _file = crate::common::file_group(module_path!());
    // cargo builds examples beside the binaries (target/<profile>/examples/).
    let exe = bin("strand").parent().expect("target dir").join("examples").join("parsl_programs");
    assert!(exe.is_file(), "{} not built (cargo test builds examples)", exe.display());
    let cwd = tempfile::tempdir().expect("cwd");
    let out = run_ok(cwd.path(), "parsl_programs", &mut Command::new(&exe), Duration::from_secs(300));
    assert!(out.contains("double: 100 tasks in") && out.contains("last = 198"), "{out}");
    assert!(out.contains("result = 100"), "{out}");
    assert!(out.contains("fib(15) = 610"), "{out}");
}

#[test]
fn job_scripts_local_sh_starts_a_block_that_serves_and_stops() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ix, conn) = interchange(dir.path(), &[]);
    let conn_file = dir.path().join("connection.json");
    let mut block = Guard::spawn(
        "job-scripts/local.sh",
        Command::new("bash")
            .arg(repo().join("job-scripts/local.sh"))
            .arg(&conn_file)
            .arg("2")
            .env("STRAND_LAUNCHER", bin("strand-launcher"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("local.log")).expect("log")),
    );
    wait_managers(&conn, 1, Duration::from_secs(60));
    let out = run_ok(
        dir.path(),
        "submit",
        Command::new(bin("strand")).arg("submit").arg("--connection").arg(&conn_file).args(["--", "echo", "hi"]),
        Duration::from_secs(60),
    );
    assert_eq!(out, "hi\n");
    run_ok(
        dir.path(),
        "shutdown",
        Command::new(bin("strand")).arg("shutdown").arg("--connection").arg(&conn_file),
        Duration::from_secs(30),
    );
    let st = block.wait(Duration::from_secs(30));
    assert!(st.success(), "the block ends with the interchange: {st}\n{}", tail(&dir.path().join("local.log")));
}
