//! Executor configuration files: every bad key or value is an error that names the key; every
//! example config parses and yields block scripts; `strand run --config` runs a workflow on
//! blocks submitted by the strategy, and ends with the executor's error when every block fails.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use strand::block::BlockId;
use strand::executor::config::{Config, ConfigError};
use strand::executor::script::block_script;

fn parse(body: &str) -> Result<Config, ConfigError> {
    Config::parse(body, "bad.toml")
}

/// Each case: an executor table (after `label = "x"`), the key the error must name, and a
/// piece of the message (the accepted values or the rule).
const BAD: &[(&str, &str, &str)] = &[
    ("provider = \"sge\"", "provider", "is not one of local, slurm, pbs"),
    ("launch = \"srun\"", "provider", "provider is missing"),
    ("provider = \"slurm\"\nlaunch = \"qrsh\"", "launch", "is not one of srun, aprun, mpiexec, mpirun, simple"),
    ("provider = \"local\"\nlaunch = \"srun\"\nsteps_per_block = 2", "steps_per_block", "already one job step"),
    ("provider = \"local\"\nlaunch = \"aprun\"", "launch", "needs provider pbs or slurm"),
    ("provider = \"slurm\"\nnodes_per_block = 0", "nodes_per_block", "at least 1"),
    ("provider = \"slurm\"\nnodes_per_block = -2", "nodes_per_block", "at least 1"),
    ("provider = \"slurm\"\nnodes_per_block = \"two\"", "nodes_per_block", "expected a whole number"),
    ("provider = \"local\"\nnodes_per_block = 2", "nodes_per_block", "must be 1"),
    ("provider = \"slurm\"\nlaunch = \"simple\"\nnodes_per_block = 2", "nodes_per_block", "must be 1"),
    ("provider = \"slurm\"\nranks_per_node = 0", "ranks_per_node", "at least 1"),
    ("provider = \"local\"\nlaunch = \"simple\"\nranks_per_node = 4", "ranks_per_node", "must be 1"),
    ("provider = \"slurm\"\npool_size = 0", "pool_size", "at least 1"),
    ("provider = \"slurm\"\nsteps_per_block = 0", "steps_per_block", "at least 1"),
    ("provider = \"pbs\"\nnodes_per_block = 4\nsteps_per_block = 2", "steps_per_block", "needs launch = \"srun\""),
    ("provider = \"slurm\"\nsteps_per_block = 2", "steps_per_block", "every step needs at least one rank"),
    ("provider = \"slurm\"\nsteps_per_block = 4000000000", "steps_per_block", "more than 10000"),
    ("provider = \"slurm\"\nmax_blocks = 0", "max_blocks", "at least 1"),
    ("provider = \"slurm\"\nmin_blocks = 3\nmax_blocks = 2", "min_blocks", "must not exceed max_blocks = 2"),
    ("provider = \"slurm\"\ninit_blocks = 5\nmax_blocks = 2", "init_blocks", "must not exceed max_blocks = 2"),
    ("provider = \"slurm\"\ninit_blocks = -1", "init_blocks", "at least 0"),
    ("provider = \"slurm\"\nparallelism = 1.5", "parallelism", "between 0 and 1"),
    ("provider = \"slurm\"\nparallelism = \"all\"", "parallelism", "expected a number"),
    ("provider = \"slurm\"\nwalltime = \"1h\"", "walltime", "\"HH:MM:SS\""),
    ("provider = \"slurm\"\nwalltime = \"01:75:00\"", "walltime", "minutes and seconds below 60"),
    ("provider = \"slurm\"\nwalltime = -5", "walltime", "\"HH:MM:SS\""),
    ("provider = \"slurm\"\nwalltime = 0", "walltime", "needs a walltime"),
    ("provider = \"slurm\"\nwalltime = [1]", "walltime", "\"HH:MM:SS\""),
    ("provider = \"slurm\"\nmax_idletime = -1", "max_idletime", "zero or more"),
    ("provider = \"slurm\"\nwalltime = 600\ndrain_margin = 600", "drain_margin", "less than the walltime"),
    ("provider = \"slurm\"\nstrategy_period = 0", "strategy_period", "more than zero"),
    ("provider = \"slurm\"\nblock_connect_timeout = 0", "block_connect_timeout", "more than zero"),
    ("provider = \"slurm\"\nworker_init = 3", "worker_init", "expected a string"),
    ("provider = \"slurm\"\nlauncher_path = \"\"", "launcher_path", "must name the strand-launcher binary"),
    (
        "provider = \"slurm\"\nlauncher = \"--prefetch 2\"",
        "launcher",
        "expected a table such as launcher = { prefetch = 2 }",
    ),
    (
        "provider = \"slurm\"\n[executor.launcher]\nblock_id = \"b\"",
        "launcher.block_id",
        "Strand sets it from the block id",
    ),
    ("provider = \"slurm\"\n[executor.launcher]\npool_size = 4", "launcher.pool_size", "Strand sets it from pool_size"),
    (
        "provider = \"slurm\"\nlauncher_args = [\"--prefetch\", \"2\"]",
        "launcher_args",
        "now the [executor.launcher] table",
    ),
    (
        "provider = \"slurm\"\n[executor.launcher]\nprefech = 2",
        "launcher.prefech",
        "accepted keys: gpus_per_node, bind",
    ),
    (
        "provider = \"slurm\"\n[executor.launcher]\nprefetch = -1",
        "launcher.prefetch",
        "expected a whole number of at least 0",
    ),
    ("provider = \"slurm\"\n[executor.launcher]\nbind = \"tight\"", "launcher.bind", "`none`, `core`, `numa`, `auto`"),
    ("provider = \"slurm\"\n[executor.launcher]\nslots_per_worker = 0", "launcher.slots_per_worker", "at least 1"),
    ("provider = \"slurm\"\n[executor.launcher]\nworker_threshold = 0", "launcher.worker_threshold", "more than zero"),
    ("provider = \"slurm\"\naddress = \"\"", "address", "IP address or a host name"),
    ("provider = \"slurm\"\nnodes_per_blok = 2", "nodes_per_blok", "accepted keys: label, provider, launch"),
    ("provider = \"slurm\"\n[executor.scheduler]\npartiton = \"a\"", "scheduler.partiton", "accepted keys: partition"),
    ("provider = \"slurm\"\n[executor.scheduler]\nexclusive = \"yes\"", "scheduler.exclusive", "expected a boolean"),
    ("provider = \"slurm\"\n[executor.scheduler]\ngpus_per_node = -1", "scheduler.gpus_per_node", "at least 0"),
    ("provider = \"slurm\"\n[executor.scheduler]\nqueue = \"q\"", "scheduler.queue", "it is for provider pbs"),
    ("provider = \"pbs\"\n[executor.scheduler]\nqos = \"debug\"", "scheduler.qos", "it is for provider slurm"),
    ("provider = \"pbs\"\n[executor.scheduler]\npartition = \"p\"", "scheduler.partition", "it is for provider slurm"),
    ("provider = \"local\"\n[executor.scheduler]\naccount = \"a\"", "scheduler.account", "slurm or pbs"),
    (
        "provider = \"pbs\"\n[executor.scheduler]\nmpi = \"pmix\"",
        "scheduler.mpi",
        "no effect with launch = \"mpiexec\"",
    ),
    ("provider = \"slurm\"\n[executor.scheduler]\nmpi = \"pm ix\"", "scheduler.mpi", "pmix, pmi2 or cray_shasta"),
    ("provider = \"slurm\"\n[executor.scheduler]\naccount = \"my project\"", "scheduler.account", "one word"),
    ("provider = \"slurm\"\n[executor.scheduler]\nextra = [\"\"]", "scheduler.extra", "one directive on one line"),
    ("provider = \"slurm\"\nlabel = \"x\"", "", "duplicate key"),
];

#[test]
fn every_bad_key_or_value_names_the_key_and_what_it_accepts() {
    let _file = crate::common::file_group(module_path!());
    let mut wrong = vec![];
    for (body, key, needle) in BAD {
        let text = format!("[[executor]]\nlabel = \"x\"\n{body}\n");
        let got = match parse(&text) {
            Ok(_) => {
                wrong.push(format!("{body:?}: accepted"));
                continue;
            }
            Err(e) => e,
        };
        let msg = got.to_string();
        let prefix = if key.is_empty() { "bad.toml: " } else { "bad.toml: executor \"x\": " };
        let named = key.is_empty() || (got.key() == Some(*key) && msg.contains(key));
        if !msg.starts_with(prefix) || !named || !msg.contains(needle) {
            wrong.push(format!("{body:?}: key {:?}, message {msg:?}; wanted key {key:?} and {needle:?}", got.key()));
        }
    }
    assert!(wrong.is_empty(), "{} of {} cases wrong:\n{}", wrong.len(), BAD.len(), wrong.join("\n"));
}

#[test]
fn file_level_problems_are_named_too() {
    let _file = crate::common::file_group(module_path!());
    let cases: &[(&str, &str)] = &[
        ("", "no [[executor]] table"),
        ("[[executors]]\nlabel = \"a\"\n", "unknown field `executors`"),
        ("[[executor]]\nlabel = \"a\"\nprovider = \"local\n", "bad.toml: 3:"),
        ("[[executor]]\nprovider = \"local\"\n", "executor #1: label is missing"),
        ("[[executor]]\nlabel = \"a b\"\nprovider = \"local\"\n", "label = \"a b\" must be"),
        (
            "[[executor]]\nlabel = \"a\"\nprovider = \"local\"\n[[executor]]\nlabel = \"a\"\nprovider = \"slurm\"\n",
            "label = \"a\" is already the label of executor #1",
        ),
    ];
    for (text, needle) in cases {
        let e = parse(text).map(|_| ()).expect_err(text);
        assert!(e.to_string().contains(needle), "{text:?}: {e}");
    }
    let c = parse("[[executor]]\nlabel = \"a\"\nprovider = \"local\"\n").expect("parses");
    let e = c.executor(Some("b")).expect_err("no such executor").to_string();
    assert_eq!(e, "bad.toml: no executor labelled \"b\"; the file has a");
    let e = Config::from_file(Path::new("/nonexistent/strand.toml")).expect_err("missing file").to_string();
    assert!(e.starts_with("/nonexistent/strand.toml: "), "{e}");
}

fn example_configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_config_parses_and_writes_block_scripts() {
    let _file = crate::common::file_group(module_path!());
    let files = example_configs();
    let names: Vec<String> =
        files.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
    for want in [
        "laptop.toml",
        "slurm-cluster.toml",
        "slurm-allocation.toml",
        "frontier.toml",
        "perlmutter.toml",
        "polaris.toml",
        "cray-xc-aprun.toml",
    ] {
        assert!(names.iter().any(|n| n == want), "examples/configs/{want} is missing: {names:?}");
    }
    let conn = Path::new("/home/u/runs/wf/connection.json");
    for f in &files {
        let c = Config::from_file(f).unwrap_or_else(|e| panic!("{e}"));
        for e in &c.executors {
            let id = BlockId(format!("{}-1", e.label));
            let s = block_script(e, conn, &id);
            let what = format!("{} executor {}", f.display(), e.label);
            assert!(s.starts_with("#!/bin/bash\n"), "{what}:\n{s}");
            assert!(s.contains(&format!("--block-id {}-1", e.label)), "{what}:\n{s}");
            assert!(s.contains(&format!("--connection {}", conn.display())), "{what}:\n{s}");
            assert!(!s.contains("set -e"), "{what}:\n{s}");
            // Every launch line starts the launcher with the launch command the config names.
            let launches: Vec<&str> =
                s.lines().filter(|l| l.contains("--block-id")).filter(|l| !l.trim_start().starts_with('#')).collect();
            assert_eq!(launches.len() as u32, e.steps_per_block, "{what}:\n{s}");
            for l in launches {
                assert!(l.contains(e.launch.name()), "{what}: {l}");
            }
            assert!(e.slots_per_block() >= 1, "{what}");
            // bash can read it.
            let check = Command::new("bash").args(["-n", "-c", &s]).output_within(Duration::from_secs(30));
            assert!(check.status.success(), "{what}: {}", String::from_utf8_lossy(&check.stderr));
        }
    }
    // The machines' particulars made it into their scripts.
    let script_of = |file: &str, label: Option<&str>| {
        let c = Config::from_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/configs").join(file))
            .unwrap_or_else(|e| panic!("{e}"));
        let e = c.executor(label).unwrap_or_else(|e| panic!("{e}")).clone();
        block_script(&e, conn, &BlockId("b-1".into()))
    };
    let frontier = script_of("frontier.toml", None);
    assert!(frontier.contains("srun --mpi=cray_shasta") && frontier.contains("module load PrgEnv-gnu"), "{frontier}");
    assert!(frontier.contains("#SBATCH --ntasks-per-node=56") && frontier.contains("#SBATCH --gpus-per-node=8"));
    let pm = script_of("perlmutter.toml", Some("perlmutter-gpu"));
    assert!(pm.contains("#SBATCH --constraint=gpu") && pm.contains("#SBATCH --qos=regular"), "{pm}");
    let polaris = script_of("polaris.toml", None);
    assert!(polaris.contains("mpiexec -n 64 -ppn 32 --hostfile \"$PBS_NODEFILE\""), "{polaris}");
    let xc = script_of("cray-xc-aprun.toml", None);
    assert!(xc.contains("aprun -n 512 -N 64"), "{xc}");
    // Job steps of strand's own allocation: whole nodes Slurm picks, the launcher's own binding.
    let steps = script_of("slurm-allocation.toml", None);
    assert!(
        steps.contains(
            "exec srun --mpi=pmix --kill-on-bad-exit=0 --exact --mem=0 --nodes=1 --ntasks=32 --ntasks-per-node=32 \
             --cpus-per-task=\"$cpt\" "
        ) && !steps.contains("--nodelist")
            && !steps.contains("--bind none"),
        "{steps}"
    );
}

/// `strand run WORKFLOW --config FILE --run-dir DIR`, bounded: (exit code, stdout, stderr).
fn strand_run(dir: &Path, workflow: &Path, config: &Path, limit: Duration) -> (Option<i32>, String, String) {
    strand_run_env(dir, workflow, config, limit, vec![])
}

/// As [`strand_run`], with more environment (a test Slurm's `PATH` and `SLURM_CONF`).
fn strand_run_env(
    dir: &Path,
    workflow: &Path,
    config: &Path,
    limit: Duration,
    env: Vec<(String, String)>,
) -> (Option<i32>, String, String) {
    let run_dir = dir.join("run");
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let mut g = Guard::spawn(
        "strand run --config",
        Command::new(bin("strand"))
            .envs(env)
            .arg("run")
            .arg(workflow)
            .arg("--config")
            .arg(config)
            .arg("--run-dir")
            .arg(&run_dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).expect("stdout file"))
            .stderr(std::fs::File::create(&err_path).expect("stderr file")),
    );
    let status = g.wait(limit);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (status.code(), read(&out_path), read(&err_path))
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("executor.toml");
    let text = format!(
        "[[executor]]\nlabel = \"laptop\"\nprovider = \"local\"\nlauncher_path = {:?}\n{body}",
        bin("strand-launcher").display().to_string()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn strand_run_with_a_config_runs_the_workflow_on_blocks_the_strategy_submits() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        "ranks_per_node = 3\ninit_blocks = 0\nmax_blocks = 1\nwalltime = 120\ndrain_margin = 10\nstrategy_period = 0.2\n",
    );
    let hello = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello.toml");
    let (code, out, err) = strand_run(dir.path(), &hello, &config, Duration::from_secs(120));
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("4 tasks: 4 done"), "{out}");
    let run_dir = dir.path().join("run");
    let blocks = std::fs::read_to_string(run_dir.join("blocks.jsonl")).unwrap_or_default();
    let submitted: Vec<&str> = blocks.lines().filter(|l| l.contains("\"event\":\"submitted\"")).collect();
    assert_eq!(submitted.len(), 1, "one block (max_blocks = 1):\n{blocks}");
    assert!(submitted[0].contains("\"block\":\"laptop-1\""), "{blocks}");
    assert!(
        blocks.lines().last().is_some_and(|l| l.contains("\"event\":\"ended\"")),
        "the run's end ended its block, and said so:\n{blocks}"
    );
    // The block's script is the executor's: mpirun, the block id, the walltime for draining.
    let script = std::fs::read_to_string(run_dir.join("laptop-1.sh")).expect("block script");
    assert!(script.contains("exec mpirun") && script.contains("-n 3"), "{script}");
    assert!(script.contains("--block-id laptop-1 --walltime 120 --drain-margin 10"), "{script}");
    // The tasks ran on the block's managers, which registered under its id.
    let ilog = std::fs::read_to_string(run_dir.join("interchange.log")).unwrap_or_default();
    assert!(
        ilog.contains("manager registered") && ilog.contains("block: laptop-1"),
        "no manager of block laptop-1:\n{ilog}"
    );
}

#[test]
fn strand_run_with_a_config_ends_with_the_executors_error_when_every_block_fails() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    // Every block's ranks exit at once: no manager ever registers.
    let config = dir.path().join("failing.toml");
    std::fs::write(
        &config,
        "[[executor]]\nlabel = \"broken\"\nprovider = \"local\"\nlauncher_path = \"/bin/false\"\n\
         ranks_per_node = 2\nmax_blocks = 2\nstrategy_period = 0.2\n",
    )
    .expect("write config");
    let hello = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello.toml");
    let (code, out, err) = strand_run(dir.path(), &hello, &config, Duration::from_secs(60));
    assert_eq!(code, Some(2), "stdout:\n{out}\nstderr:\n{err}");
    // Two or more: a failed block is replaced while fewer than max_blocks are active.
    assert!(err.contains("executor broken: all ") && err.contains("block(s) failed and none ever connected"), "{err}");
    assert!(err.contains("the block scripts and their output are in"), "{err}");
}

#[test]
fn config_conflicts_with_connection_and_workers_and_bad_files_start_nothing() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "");
    let hello = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello.toml");
    for extra in [&["--workers", "2"][..], &["--connection", "/x/connection.json"][..]] {
        let out = Command::new(bin("strand"))
            .arg("run")
            .arg(&hello)
            .arg("--config")
            .arg(&config)
            .args(extra)
            .output_within(Duration::from_secs(120));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("cannot be used with"), "{err}");
    }
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[executor]]\nlabel = \"frontier\"\nprovider = \"sge\"\n").expect("write");
    let run_dir = dir.path().join("run");
    let out = Command::new(bin("strand"))
        .arg("run")
        .arg(&hello)
        .arg("--config")
        .arg(&bad)
        .arg("--run-dir")
        .arg(&run_dir)
        .output_within(Duration::from_secs(120));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("executor \"frontier\": provider = \"sge\" is not one of local, slurm, pbs"), "{err}");
    assert!(!run_dir.exists(), "nothing started for a bad config");
}

/// The Slurm script from a config, on a real Slurm (tests/it/common/slurm.rs; skipped when Slurm is
/// not installed): a block of 2 nodes as 2 `srun --exact` job steps, one per node, each step's
/// manager registering under the block id; the workflow runs and the block is cancelled at the end.
#[test]
fn strand_run_with_a_slurm_config_runs_job_steps_on_a_real_slurm() {
    let _file = crate::common::file_group(module_path!());
    use crate::common::slurm::{LocalSlurm, SlurmOptions};
    let slurm = LocalSlurm::start_with(SlurmOptions { nodes: 2, cpus_per_node: 4 });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("slurm.toml");
    std::fs::write(
        &config,
        format!(
            "[[executor]]\nlabel = \"cluster\"\nprovider = \"slurm\"\nlauncher_path = {:?}\naddress = \"127.0.0.1\"\n\
             nodes_per_block = 2\nranks_per_node = 2\nsteps_per_block = 2\ninit_blocks = 1\nmax_blocks = 1\n\
             walltime = \"00:05:00\"\ndrain_margin = 30\nstrategy_period = 0.5\nblock_connect_timeout = 120\n",
            bin("strand-launcher").display().to_string()
        ),
    )
    .expect("write config");
    let hello = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello.toml");
    let (code, out, err) = strand_run_env(dir.path(), &hello, &config, Duration::from_secs(240), slurm.env());
    let run_dir = dir.path().join("run");
    let outputs: String = std::fs::read_dir(&run_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".out"))
        .map(|e| format!("{}:\n{}", e.path().display(), tail(&e.path())))
        .collect();
    let why = format!("stdout:\n{out}\nstderr:\n{err}\nblock output:\n{outputs}\nslurm:\n{}", slurm.logs());
    assert_eq!(code, Some(0), "{why}");
    assert!(out.contains("4 tasks: 4 done"), "{why}");
    let ilog = std::fs::read_to_string(run_dir.join("interchange.log")).unwrap_or_default();
    let registered: Vec<&str> = ilog.lines().filter(|l| l.contains("manager registered")).collect();
    assert_eq!(registered.len(), 2, "one manager per job step:\n{ilog}\n{why}");
    assert!(registered.iter().all(|l| l.contains("block: cluster-1")), "{ilog}");
    let script = std::fs::read_to_string(run_dir.join("cluster-1.sbatch")).expect("block script");
    assert_eq!(script.matches("srun --mpi=pmix --kill-on-bad-exit=0 --exact").count(), 2, "{script}");
}

/// Longest a `strand` command of these tests may take.
const LIMIT: Duration = Duration::from_secs(120);

/// `strand ARGS` (bounded): exit code, stdout, stderr.
fn strand(dir: &Path, args: &[&str], limit: Duration) -> (Option<i32>, String, String) {
    let (out_path, err_path) = (dir.join("cmd.stdout"), dir.join("cmd.stderr"));
    let mut g = Guard::spawn(
        "strand",
        Command::new(bin("strand"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).expect("stdout file"))
            .stderr(std::fs::File::create(&err_path).expect("stderr file")),
    );
    let status = g.wait(limit);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (status.code(), read(&out_path), read(&err_path))
}

/// `--config` serves `strand map` and `strand bench` as it serves `strand run`.
#[test]
fn map_and_bench_take_a_config_too() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let config =
        write_config(dir.path(), "ranks_per_node = 3\ninit_blocks = 1\nmax_blocks = 1\nstrategy_period = 0.2\n");
    let config = config.to_str().expect("utf-8 path");
    let run = dir.path().join("map-run");
    let run = run.to_str().expect("utf-8 path");
    let (code, out, err) =
        strand(dir.path(), &["map", "--config", config, "--run-dir", run, "echo m{}", ":::", "1", "2", "3"], LIMIT);
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["m1", "m2", "m3"], "stderr:\n{err}");
    let blocks = std::fs::read_to_string(Path::new(run).join("blocks.jsonl")).unwrap_or_default();
    assert!(blocks.contains("\"block\":\"laptop-1\""), "the map ran on the executor's block:\n{blocks}");

    let run = dir.path().join("bench-run");
    let run = run.to_str().expect("utf-8 path");
    let (code, out, err) =
        strand(dir.path(), &["bench", "throughput", "--tasks", "2000", "--config", config, "--run-dir", run], LIMIT);
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON line");
    assert_eq!((v["tasks"].as_u64(), v["failed"].as_u64()), (Some(2000), Some(0)), "{v}");
    assert_eq!(v["workers"].as_u64(), Some(2), "a block of 3 ranks: a manager and 2 workers: {v}");
}

#[test]
fn a_benchmark_refuses_an_executor_with_no_initial_blocks() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "init_blocks = 0\nmax_blocks = 1\n");
    let run = dir.path().join("run");
    let (code, _, err) = strand(
        dir.path(),
        &["bench", "latency", "--config", config.to_str().expect("utf-8"), "--run-dir", run.to_str().expect("utf-8")],
        LIMIT,
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("init_blocks = 0") && err.contains("warm blocks"), "{err}");
}

#[test]
fn the_toml_examples_of_docs_executors_md_parse() {
    let _file = crate::common::file_group(module_path!());
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/executors.md"))
        .expect("docs/executors.md");
    let blocks: Vec<&str> = doc.split("```toml\n").skip(1).filter_map(|b| b.split("```").next()).collect();
    assert!(blocks.len() >= 2, "{} toml blocks in docs/executors.md", blocks.len());
    for block in blocks {
        // A table of one executor is shown alone: it goes under a minimal executor.
        let text = if block.starts_with("[[executor]]") {
            block.to_string()
        } else {
            format!("[[executor]]\nlabel = \"x\"\nprovider = \"slurm\"\n{block}")
        };
        if let Err(e) = parse(&text) {
            panic!("docs/executors.md example does not parse: {e}\n{block}");
        }
    }
}
