//! Blocks on a real Slurm started on this machine (tests/it/common/slurm.rs): `sbatch` of
//! `job-scripts/slurm.sbatch`, `scancel` of a busy block, job steps as fault domains, and the
//! Slurm provider against real `sbatch`/`squeue`/`sacct`/`scancel`.
//!
//! The tests print "SKIPPED" and pass only when Slurm is not installed; `scripts/setup.sh`
//! installs it. The last test parses outputs captured from the real Slurm 22.05 and needs none.
//!
//! One file (about 700 lines) on purpose: its tests start Slurm one at a time on the same
//! ports (`LocalSlurm` holds a lock), and they share the job-script and block helpers below.

use crate::common::slurm::{wait_until, LocalSlurm, SlurmOptions};
use crate::common::*;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use strand::client::Client;
use strand::connection::ConnectionInfo;
use strand::dfk::{retry_on, Call, Dfk, DfkConfig, RetryHandler, TaskFuture};
use strand::provider::slurm::{parse_sbatch, parse_squeue, SlurmProvider};
use strand::provider::{BlockRequest, JobId, JobState, Provider};
use strand::run_dir::CONNECTION_FILE;
use strand::task::Failure;
use strand::wire::StatusReport;

/// Longest wait for a block to start and register its managers.
const START: Duration = Duration::from_secs(90);
/// Longest wait for a workload to finish.
const WORK: Duration = Duration::from_secs(180);

/// A test Slurm, an interchange on loopback and a run directory the blocks can read.
struct Cluster {
    // Dropped first: kills the jobs before the interchange goes.
    slurm: LocalSlurm,
    _ix: Guard,
    conn: ConnectionInfo,
    run: tempfile::TempDir,
}

impl Cluster {
    fn start(opts: SlurmOptions) -> Cluster {
        let slurm = LocalSlurm::start_with(opts);
        let run = tempfile::tempdir().expect("run dir");
        // Short heartbeats so a lost manager is noticed within seconds.
        let (ix, conn) = interchange(run.path(), &["--heartbeat-period", "0.2", "--heartbeat-threshold", "3"]);
        Cluster { slurm, _ix: ix, conn, run }
    }

    fn conn_file(&self) -> PathBuf {
        self.run.path().join(CONNECTION_FILE)
    }

    fn out_file(&self, job: &str) -> PathBuf {
        self.run.path().join(format!("block-{job}.out"))
    }

    /// `sbatch job-scripts/slurm.sbatch CONNECTION LAUNCHER_ARGS` with `STRAND_STEPS_PER_BLOCK=steps`.
    fn block(&self, sbatch_opts: &[&str], steps: u32, launcher_args: &[&str]) -> String {
        let export =
            format!("--export=ALL,STRAND_LAUNCHER={},STRAND_STEPS_PER_BLOCK={steps}", bin("strand-launcher").display());
        let output = format!("--output={}", self.run.path().join("block-%j.out").display());
        let script = repo().join("job-scripts/slurm.sbatch");
        let conn = self.conn_file();
        let mut args = vec![export.as_str(), output.as_str()];
        args.extend_from_slice(sbatch_opts);
        args.push(script.to_str().expect("utf-8 path"));
        args.push(conn.to_str().expect("utf-8 path"));
        args.extend_from_slice(launcher_args);
        self.slurm.sbatch(&args)
    }

    fn status(&self) -> StatusReport {
        Client::connect(&self.conn).expect("client").status(Duration::from_secs(10)).expect("status")
    }

    /// Managers registered per block id.
    fn managers_by_block(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for s in self.status().managers {
            *m.entry(s.block.0).or_insert(0) += 1;
        }
        m
    }

    /// Wait until the interchange has exactly these managers per block (bounded; fails at once
    /// if a block it waits for has ended).
    fn wait_blocks(&self, want: &[(&str, usize)], timeout: Duration) {
        let want: HashMap<String, usize> = want.iter().map(|(b, n)| (b.to_string(), *n)).collect();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let got = self.managers_by_block();
            if got == want {
                return;
            }
            for (job, _) in want.iter().filter(|(j, n)| **n > got.get(*j).copied().unwrap_or(0)) {
                let state = self.slurm.job_state(job);
                let alive = matches!(state.as_deref(), Some("PENDING" | "CONFIGURING" | "RUNNING"));
                assert!(alive, "block {job} is {state:?}; managers per block {got:?}\n{}", self.diagnostics());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "managers per block: want {want:?}, got {got:?} after {timeout:?}\n{}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Block outputs, the interchange log and the daemons' logs.
    fn diagnostics(&self) -> String {
        let mut s = String::new();
        for e in std::fs::read_dir(self.run.path()).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".out") || name.ends_with(".log") {
                s += &format!("--- {name}\n{}\n", tail(&e.path()));
            }
        }
        s + &self.slurm.logs()
    }

    /// (job step id, node list) of the job's steps, from `squeue -s`.
    fn steps_with_nodes(&self, job: &str) -> Vec<(String, String)> {
        let out = self.slurm.ok("squeue", &["-h", "-s", "-o", "%i %N", "-j", job]);
        out.lines()
            .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.trim().to_string(), b.trim().to_string())))
            .collect()
    }

    /// Wait until the job runs these numbered (srun) steps, besides its batch step.
    fn wait_srun_steps(&self, job: &str, n: usize) {
        let what = format!("{n} srun steps of job {job}");
        wait_until(&what, START, || {
            self.slurm.steps(job).iter().filter(|s| !s.ends_with(".batch") && !s.ends_with(".extern")).count() == n
        });
    }
}

/// Tries that died of SIGTERM or SIGKILL (counted by `infra_retries`, across the tests of this process).
static SIGTERMED: AtomicUsize = AtomicUsize::new(0);

/// The retry policy of these tests: lost managers and workers (as `retry_on(&[])`), and a
/// command killed by SIGTERM or SIGKILL. Slurm signals every process of a step it ends (scancel,
/// a failed node, a cancelled step), tasks included, SIGKILL after `KillWait`, and a task can die
/// of it before its launcher has stopped and handed its tries back as lost; its try then fails
/// as `Signal 15` (or 9: seen once in 2026-12-02's suite, on a failed node). Such tries are
/// counted and printed; once the launcher reports them as lost, drop these cases.
fn infra_retries() -> RetryHandler {
    let infra = retry_on(&[]);
    Arc::new(move |f: &Failure| match f {
        Failure::Signal { signal: 15 | 9, .. } => {
            SIGTERMED.fetch_add(1, Ordering::Relaxed);
            1
        }
        other => infra(other),
    })
}

/// `n` tasks that sleep and print their index, retried only when infrastructure fails.
/// Each records in `runs` that it ran.
fn sleepers(dfk: &Dfk, runs: &RunLog, n: usize, sleep: &str) -> Vec<TaskFuture> {
    (0..n)
        .map(|i| {
            let call = runs.logged(&format!("t{i}"), &format!("sleep {sleep}; echo {i}"));
            dfk.submit(call.retries(3).retry_handler(infra_retries()))
        })
        .collect()
}

/// Every task ended exactly once, successfully, with its own output, ran no more often than it
/// was tried, and no stale result got through.
fn check_each_once(
    dfk: &Dfk,
    runs: &RunLog,
    futures: &[TaskFuture],
    ends: &crossbeam_channel::Receiver<strand::task::TaskId>,
) {
    runs.assert_each_ran_within_its_tries(futures.iter().enumerate().map(|(i, f)| (format!("t{i}"), f)));
    for (i, f) in futures.iter().enumerate() {
        match f.peek() {
            Some(Ok(out)) => assert_eq!(String::from_utf8_lossy(&out).trim(), i.to_string(), "task {i}'s output"),
            other => panic!("task {i} ended as {other:?}"),
        }
    }
    let mut times: HashMap<strand::task::TaskId, usize> = HashMap::new();
    while let Ok(id) = ends.try_recv() {
        *times.entry(id).or_insert(0) += 1;
    }
    assert_eq!(times.len(), futures.len(), "every task ended");
    assert!(times.values().all(|&n| n == 1), "a task ended twice: {times:?}");
    let c = dfk.counts();
    assert_eq!((c.done, c.failed), (futures.len() as u64, 0), "{c:?}");
    assert_eq!(c.stale, 0, "no second result for any try reached the DFK: {c:?}");
    let sigterms = SIGTERMED.swap(0, Ordering::Relaxed);
    eprintln!(
        "{} tries retried, {sigterms} of them killed by Slurm's SIGTERM or SIGKILL before their launcher stopped",
        c.retried
    );
}

/// Wait until `block`'s managers hold tries and the DFK has finished `done` tasks.
fn wait_busy(c: &Cluster, dfk: &Dfk, block: &str, done: u64) {
    let what = format!("block {block} to hold tries after {done} tasks are done");
    wait_until(&what, START, || {
        dfk.counts().done >= done && c.status().managers.iter().any(|m| m.block.0 == block && m.in_flight > 0)
    });
}

#[test]
fn sbatch_block_runs_the_launcher_through_srun_and_serves_tasks() {
    let _file = crate::common::file_group(module_path!());
    let c = Cluster::start(SlurmOptions::default());
    let job = c.block(&["--job-name=strand-serve", "--ntasks=3"], 1, &["--pool-size", "3"]);
    c.slurm.wait_state(&job, "RUNNING", START);
    c.wait_blocks(&[(&job, 1)], START);
    let step = format!("{job}.0");
    assert!(c.slurm.steps(&job).contains(&step), "the launcher runs as srun step {step}: {:?}", c.slurm.steps(&job));
    let m = &c.status().managers[0];
    assert_eq!((m.slots, m.host.as_str()), (2, c.slurm.nodes()[0].as_str()), "one manager feeding 2 workers");

    // Tasks through the CLI ...
    let out_path = c.run.path().join("map.out");
    let mut map = Guard::spawn(
        "strand map",
        Command::new(bin("strand"))
            .arg("map")
            .arg("--connection")
            .arg(c.conn_file())
            .arg("echo task-{}")
            .arg(":::")
            .args((1..=40).map(|i| i.to_string()))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).expect("map output"))
            .stderr(std::fs::File::create(c.run.path().join("map.log")).expect("map log")),
    );
    assert!(map.wait(WORK).success(), "strand map failed\n{}", c.diagnostics());
    let got: BTreeSet<String> =
        std::fs::read_to_string(&out_path).expect("map output").lines().map(String::from).collect();
    let want: BTreeSet<String> = (1..=40).map(|i| format!("task-{i}")).collect();
    assert_eq!(got, want);

    // ... and through the DFK: functions registered in the launcher, and commands.
    let dfk = Dfk::connect(&c.conn, DfkConfig::default()).expect("dfk");
    let echo = dfk.submit(Call::function("echo", b"from-slurm".to_vec()));
    let env = dfk.submit(Call::shell("echo $SLURM_JOB_ID"));
    assert_eq!(dfk.wait_all(Some(WORK)), 0);
    assert_eq!(echo.peek().expect("ended").expect("echo ok"), b"from-slurm");
    let env = env.peek().expect("ended").expect("env ok");
    assert_eq!(String::from_utf8_lossy(&env).trim(), job, "tasks run inside the Slurm job");
    dfk.shutdown();

    // scancel: the launcher stops on SIGTERM and says goodbye; the job ends as cancelled.
    c.slurm.ok("scancel", &[&job]);
    c.slurm.wait_state(&job, "CANCELLED", START);
    c.wait_blocks(&[], START);
}

#[test]
fn scancel_of_a_busy_block_loses_nothing() {
    let _file = crate::common::file_group(module_path!());
    let c = Cluster::start(SlurmOptions::default());
    let launcher = ["--pool-size", "2", "--slots-per-worker", "4"];
    let doomed = c.block(&["--job-name=strand-doomed", "--ntasks=2"], 1, &launcher);
    let survivor = c.block(&["--job-name=strand-survivor", "--ntasks=2"], 1, &launcher);
    c.wait_blocks(&[(&doomed, 1), (&survivor, 1)], START);

    let runs = RunLog::new();
    let dfk = Dfk::connect(&c.conn, runs.config(DfkConfig::default())).expect("dfk");
    let ends = dfk.ends();
    let futures = sleepers(&dfk, &runs, 150, "0.2");
    wait_busy(&c, &dfk, &doomed, 10);
    c.slurm.ok("scancel", &[&doomed]);

    assert_eq!(dfk.wait_all(Some(WORK)), 0, "every task ended\n{}", c.diagnostics());
    check_each_once(&dfk, &runs, &futures, &ends);
    assert!(dfk.counts().retried > 0, "the scancel cost some tries (else this test proved nothing)");
    dfk.shutdown();
    c.slurm.wait_state(&doomed, "CANCELLED", START);
    assert_eq!(c.slurm.job_state(&survivor).as_deref(), Some("RUNNING"));
    c.wait_blocks(&[(&survivor, 1)], START);
}

#[test]
fn a_killed_job_step_leaves_the_other_step_of_its_block_serving() {
    let _file = crate::common::file_group(module_path!());
    // One node: the block's 4 tasks are split into two steps of 2 (one pool each).
    let c = Cluster::start(SlurmOptions::default());
    let job = c.block(&["--job-name=strand-steps", "--ntasks=4"], 2, &["--pool-size", "2", "--slots-per-worker", "4"]);
    c.wait_blocks(&[(&job, 2)], START);
    c.wait_srun_steps(&job, 2);

    let runs = RunLog::new();
    let dfk = Dfk::connect(&c.conn, runs.config(DfkConfig::default())).expect("dfk");
    let ends = dfk.ends();
    let futures = sleepers(&dfk, &runs, 120, "0.2");
    wait_until("both steps to hold tries", START, || {
        let s = c.status();
        s.managers.len() == 2 && s.managers.iter().all(|m| m.in_flight > 0) && dfk.counts().done >= 10
    });
    // SIGKILL the worker rank of one step, as a crashed process or node would.
    let step_ids: Vec<String> = c.steps_with_nodes(&job).into_iter().map(|(s, _)| s).collect();
    let victim_step = step_ids.iter().find(|s| !s.ends_with(".batch")).expect("a numbered step").clone();
    let step_no = victim_step.rsplit('.').next().expect("step number").to_string();
    let victim = launcher_rank(&job, &step_no, 1).unwrap_or_else(|| panic!("no rank 1 of step {victim_step}"));
    // SAFETY: killing a launcher rank this test started through Slurm.
    unsafe { libc::kill(victim, libc::SIGKILL) };

    // The MPI runtime (PMIx) ends that step; the other step and the job go on.
    wait_until(&format!("step {victim_step} to end"), START, || !c.slurm.steps(&job).contains(&victim_step));
    c.wait_blocks(&[(&job, 1)], START);
    assert_eq!(dfk.wait_all(Some(WORK)), 0, "every task ended\n{}", c.diagnostics());
    check_each_once(&dfk, &runs, &futures, &ends);
    assert!(dfk.counts().retried > 0, "the kill cost some tries (else this test proved nothing)");
    dfk.shutdown();
    assert_eq!(c.slurm.job_state(&job).as_deref(), Some("RUNNING"), "the job outlived its step");
    let steps = c.slurm.steps(&job);
    assert_eq!(steps.len(), 2, "the batch step and the surviving step: {steps:?}");
    c.wait_blocks(&[(&job, 1)], START);
    let out = std::fs::read_to_string(c.out_file(&job)).expect("block output");
    assert!(out.contains("the other steps go on"), "the script reported the dead step:\n{out}");
}

#[test]
fn a_failed_node_costs_only_its_job_step_with_no_kill() {
    let _file = crate::common::file_group(module_path!());
    // Two nodes: the block's steps run on disjoint nodes. A control block submitted with
    // --no-kill=off (overriding the template's #SBATCH --no-kill) shows what the option buys.
    let c = Cluster::start(SlurmOptions { nodes: 2, cpus_per_node: 8 });
    let launcher = ["--pool-size", "2", "--slots-per-worker", "4"];
    let per_node = ["--nodes=2", "--ntasks-per-node=2"];
    let kept = c.block(&[&per_node[..], &["--job-name=strand-kept"]].concat(), 2, &launcher);
    let control = c.block(
        &[&per_node[..], &["--job-name=strand-control", "--no-kill=off", "--no-requeue"]].concat(),
        2,
        &launcher,
    );
    c.wait_blocks(&[(&kept, 2), (&control, 2)], START);
    c.wait_srun_steps(&kept, 2);
    let nodes = c.slurm.nodes().to_vec();
    let mut placed: Vec<String> = c.steps_with_nodes(&kept).into_iter().map(|(_, n)| n).collect();
    placed.sort();
    let mut want = vec![nodes[0].clone(), nodes[0].clone(), nodes[1].clone()];
    want.sort();
    assert_eq!(placed, want, "one step per node, plus the batch step on the first");

    let runs = RunLog::new();
    let dfk = Dfk::connect(&c.conn, runs.config(DfkConfig::default())).expect("dfk");
    let ends = dfk.ends();
    let futures = sleepers(&dfk, &runs, 160, "0.2");
    wait_busy(&c, &dfk, &kept, 10);
    let reason = "reason=strand test: simulated node failure";
    c.slurm.ok("scontrol", &["update", &format!("nodename={}", nodes[1]), "state=down", reason]);

    // The control job ends with the node; the kept job loses only its step on that node.
    c.slurm.wait_state(&control, "NODE_FAIL", START);
    let control_id = JobId(control.clone());
    assert_eq!(
        c.slurm.provider().status(std::slice::from_ref(&control_id)).expect("status")[&control_id],
        JobState::Failed
    );
    wait_until("the kept job's step on the failed node to end", START, || {
        c.steps_with_nodes(&kept).iter().all(|(_, n)| n != &nodes[1])
    });
    assert_eq!(c.slurm.job_state(&kept).as_deref(), Some("RUNNING"), "--no-kill kept the job");
    c.wait_blocks(&[(&kept, 1)], START);
    assert_eq!(dfk.wait_all(Some(WORK)), 0, "every task ended\n{}", c.diagnostics());
    check_each_once(&dfk, &runs, &futures, &ends);
    assert!(dfk.counts().retried > 0, "the node failure cost some tries (else this test proved nothing)");
    dfk.shutdown();
    let steps = c.steps_with_nodes(&kept);
    assert_eq!(steps.len(), 2, "the batch step and the step on {}: {steps:?}", nodes[0]);
    assert!(steps.iter().all(|(_, n)| n == &nodes[0]), "{steps:?}");
}

#[test]
fn slurm_provider_submits_polls_and_cancels_real_blocks() {
    let _file = crate::common::file_group(module_path!());
    let c = Cluster::start(SlurmOptions::default());
    let mut p = c.slurm.provider();
    assert!(p.status(&[]).expect("status of nothing").is_empty());

    // No accounting here: sacct fails, so every state below came through the squeue fallback.
    let sacct = c.slurm.run("sacct", &["-X", "-n", "-P", "-j", "1", "--format=JobID,State"]);
    assert!(!sacct.success() && sacct.stderr.contains("accounting storage is disabled"), "{sacct:?}");

    let script = format!(
        "#!/bin/bash\n\
         #SBATCH --job-name=strand-provider\n\
         #SBATCH --ntasks=2\n\
         #SBATCH --no-kill\n\
         #SBATCH --output={out}\n\
         export STRAND_LAUNCHER={launcher}\n\
         exec bash {script} {conn} --pool-size 2\n",
        out = c.run.path().join("block-%j.out").display(),
        launcher = bin("strand-launcher").display(),
        script = repo().join("job-scripts/slurm.sbatch").display(),
        conn = c.conn_file().display(),
    );
    let req = |name: &str, script: String| BlockRequest {
        name: name.into(),
        script,
        nodes: 1,
        walltime_s: 600,
        run_dir: c.run.path().to_path_buf(),
    };
    let id = p.submit(&req("provider-block", script)).expect("submit");
    assert!(id.0.bytes().all(|b| b.is_ascii_digit()), "{id:?}");
    wait_state(&mut p, &id, JobState::Running);
    c.wait_blocks(&[(&id.0, 1)], START);

    // An id Slurm never issued (FirstJobId is above it) is missing, alone or among known ones.
    let unknown = JobId("1".into());
    let m = p.status(&[id.clone(), unknown.clone()]).expect("status");
    assert_eq!((&m[&id], &m[&unknown]), (&JobState::Running, &JobState::Missing));
    assert_eq!(p.status(std::slice::from_ref(&unknown)).expect("status")[&unknown], JobState::Missing);

    // A block that exits on its own completes.
    let quick =
        p.submit(&req("provider-quick", "#!/bin/bash\n#SBATCH --output=/dev/null\ntrue\n".into())).expect("submit");
    wait_state(&mut p, &quick, JobState::Completed);

    p.cancel(std::slice::from_ref(&id)).expect("cancel");
    wait_state(&mut p, &id, JobState::Cancelled);
    p.cancel(std::slice::from_ref(&id)).expect("cancelling a finished job again is not an error");
    c.wait_blocks(&[], START);
}

/// Poll the provider until `job` is in `state`.
fn wait_state(p: &mut SlurmProvider, job: &JobId, state: JobState) {
    wait_until(&format!("job {} to be {state:?}", job.0), START, || {
        p.status(std::slice::from_ref(job)).ok().and_then(|m| m.get(job).cloned()) == Some(state.clone())
    });
}

/// The pid of `strand-launcher` rank `rank` of step `step` of `job` (from their environment).
fn launcher_rank(job: &str, step: &str, rank: u32) -> Option<i32> {
    let want = [format!("SLURM_JOB_ID={job}"), format!("SLURM_STEP_ID={step}"), format!("SLURM_PROCID={rank}")];
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        if comm.trim() != "strand-launcher" {
            return None;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        let vars: Vec<&[u8]> = env.split(|b| *b == 0).collect();
        want.iter().all(|w| vars.contains(&w.as_bytes())).then_some(pid)
    })
}

/// A script in `dir` that prints `fixture` to stdout or stderr and exits with `code`.
fn fake(dir: &Path, name: &str, fixture: &Path, to_stderr: bool, code: i32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let redirect = if to_stderr { " >&2" } else { "" };
    std::fs::write(&path, format!("#!/bin/sh\ncat '{}'{redirect}\nexit {code}\n", fixture.display())).expect("fake");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.to_string_lossy().into_owned()
}

/// Outputs captured from a real Slurm 22.05 (tests/fixtures/provider/*_real.txt) parse as the
/// provider expects, and its sacct-to-squeue fallback works on them; needs no Slurm.
#[test]
fn real_slurm_outputs_parse() {
    let _file = crate::common::file_group(module_path!());
    let dir = repo().join("tests/fixtures/provider");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        parse_sbatch("sbatch --parsable", &read("sbatch_parsable_real.txt")).expect("sbatch"),
        JobId("5000".into())
    );

    let want = [
        ("5000", JobState::Completed),
        ("5001", JobState::Failed),
        ("5002", JobState::Cancelled),
        ("5003", JobState::Timeout),
        ("5004", JobState::Running),
        ("5005", JobState::Held),
        ("5006", JobState::Pending),
        ("5007", JobState::Pending),
        ("5008", JobState::Pending),
    ];
    let parsed = parse_squeue("squeue", &read("squeue_real.txt")).expect("squeue");
    assert_eq!(parsed.len(), want.len());
    for (id, state) in &want {
        assert_eq!(parsed.get(&JobId(id.to_string())), Some(state), "job {id}");
    }

    // The provider: sacct fails as it does without accounting, squeue answers.
    let bin = tempfile::tempdir().expect("tempdir");
    let mut p = SlurmProvider {
        sbatch: fake(bin.path(), "sbatch", &dir.join("sbatch_parsable_real.txt"), false, 0),
        squeue: fake(bin.path(), "squeue", &dir.join("squeue_real.txt"), false, 0),
        sacct: fake(bin.path(), "sacct", &dir.join("sacct_disabled_real.txt"), true, 1),
        scancel: fake(bin.path(), "scancel", &dir.join("scancel_v_invalid_real.txt"), true, 0),
        timeout: Duration::from_secs(10),
    };
    let mut jobs: Vec<JobId> = want.iter().map(|(id, _)| JobId(id.to_string())).collect();
    jobs.push(JobId("4999".into()));
    let m = p.status(&jobs).expect("status through the squeue fallback");
    for (id, state) in &want {
        assert_eq!(m[&JobId(id.to_string())], *state, "job {id}");
    }
    assert_eq!(m[&JobId("4999".into())], JobState::Missing);
    // squeue -j with only unknown ids fails; every id is then missing.
    p.squeue = fake(bin.path(), "squeue-invalid", &dir.join("squeue_invalid_real.txt"), true, 1);
    assert!(p.status(&jobs).expect("status").values().all(|s| *s == JobState::Missing));
    // scancel of a job Slurm no longer knows: 22.05 exits 0 and says so only with -v (or
    // SCANCEL_VERBOSE set), as captured: not an error.
    p.cancel(&[JobId("999".into())]).expect("cancelling an unknown job");
}

#[test]
fn cray_ex_script_runs_one_step_per_node() {
    let _file = crate::common::file_group(module_path!());
    // Off a Cray there is no Cray PMI for Open MPI, so STRAND_SRUN_MPI=pmix replaces the
    // script's cray_shasta: this checks its steps and options under a real srun.
    let c = Cluster::start(SlurmOptions { nodes: 2, cpus_per_node: 8 });
    let export = format!(
        "--export=ALL,STRAND_LAUNCHER={},STRAND_STEPS_PER_BLOCK=2,STRAND_SRUN_MPI=pmix",
        bin("strand-launcher").display()
    );
    let output = format!("--output={}", c.run.path().join("block-%j.out").display());
    let script = repo().join("cray/ex-srun.sbatch");
    let conn = c.conn_file();
    let job = c.slurm.sbatch(&[
        &export,
        &output,
        "--nodes=2",
        script.to_str().expect("utf-8"),
        conn.to_str().expect("utf-8"),
    ]);
    c.wait_blocks(&[(&job, 2)], START);
    c.wait_srun_steps(&job, 2);
    let nodes: BTreeSet<String> = c.steps_with_nodes(&job).into_iter().map(|(_, n)| n).collect();
    assert_eq!(nodes, c.slurm.nodes().iter().cloned().collect(), "one step on each node (and the batch step)");
    let runs = RunLog::new();
    let dfk = Dfk::connect(&c.conn, runs.config(DfkConfig::default())).expect("dfk");
    let ends = dfk.ends();
    let futures = sleepers(&dfk, &runs, 20, "0");
    assert_eq!(dfk.wait_all(Some(WORK)), 0, "every task ended\n{}", c.diagnostics());
    check_each_once(&dfk, &runs, &futures, &ends);
}

/// The strategy against real Slurm blocks: under 500 queued `sleep 0.5` tasks it scales 0 -> 3
/// blocks (`max_blocks`), `squeue` shows the three jobs running, and after the queue empties
/// the blocks are held and gone within `max_idletime` + one period, their jobs ending by
/// themselves (no `scancel`), which `squeue` agrees with.
#[test]
fn strategy_scales_slurm_blocks_out_to_max_and_back() {
    let _file = crate::common::file_group(module_path!());
    use strand::executor::scaler::ScalerConfig;
    use strand::executor::strategy::StrategyParams;
    use strand::executor::Executor;
    use strand::run_dir::{RunDir, BLOCKS_FILE};
    const PERIOD: Duration = Duration::from_millis(500);
    const IDLE: Duration = Duration::from_secs(2);
    let c = Cluster::start(SlurmOptions::default());
    let out = c.run.path().join("block-%j.out");
    let (launcher, script, conn) = (bin("strand-launcher"), repo().join("job-scripts/slurm.sbatch"), c.conn_file());
    // One rank per block running 8 sleeps at once: 3 blocks bring 24 slots.
    let block_script = move |id: &strand::block::BlockId| {
        format!(
            "#!/bin/bash\n#SBATCH --job-name=strand-{id}\n#SBATCH --ntasks=1\n#SBATCH --output={out}\n\
             export STRAND_LAUNCHER={launcher} STRAND_BLOCK_ID={id}\n\
             exec bash {script} {conn} --pool-size 1 --local-slots 8 --prefetch 0\n",
            id = id.0,
            out = out.display(),
            launcher = launcher.display(),
            script = script.display(),
            conn = conn.display(),
        )
    };
    let params = StrategyParams {
        init_blocks: 0,
        min_blocks: 0,
        max_blocks: 3,
        parallelism: 1.0,
        max_idletime: IDLE,
        block_connect_timeout: START,
        period: PERIOD,
    };
    let run_dir = RunDir::create(Some(c.run.path())).expect("run dir");
    let exe = Executor::attach_scaled(
        run_dir.clone(),
        &c.conn,
        Box::new(c.slurm.provider()),
        ScalerConfig {
            label: "slurm".into(),
            slots_per_block: 8,
            params,
            nodes_per_block: 1,
            walltime_s: 600,
            run_dir,
            script: Box::new(block_script),
        },
    );
    let scaler = exe.scaler().expect("a scaled executor has a scaler");
    let our_jobs = || -> Vec<(String, String)> {
        let out = c.slurm.ok("squeue", &["-h", "-o", "%i %T %j"]);
        out.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 3 && f[2].starts_with("strand-")).then(|| (f[0].to_string(), f[1].to_string()))
            })
            .collect()
    };
    let runs = RunLog::new();
    let dfk = Dfk::connect(&c.conn, runs.config(DfkConfig::default())).expect("dfk");
    let tasks: Vec<TaskFuture> =
        (0..500).map(|i| dfk.submit(runs.logged(&format!("t{i}"), "sleep 0.5").memoize(false))).collect();
    let mut most_running = 0;
    let mut blocks_seen = BTreeSet::new();
    let deadline = std::time::Instant::now() + WORK;
    while dfk.monitor().snapshot().pending > 0 {
        assert!(std::time::Instant::now() < deadline, "500 tasks did not finish\n{}", c.diagnostics());
        assert!(scaler.state().error.is_none(), "{:?}\n{}", scaler.state().error, c.diagnostics());
        blocks_seen.extend(c.status().managers.into_iter().map(|m| m.block.0));
        let running = our_jobs().iter().filter(|(_, s)| s == "RUNNING").count();
        most_running = most_running.max(running);
        std::thread::sleep(Duration::from_millis(250));
    }
    let emptied = std::time::Instant::now();
    for f in &tasks {
        assert!(matches!(f.peek(), Some(Ok(_))), "a task failed: {:?}", f.peek());
    }
    assert_eq!(blocks_seen.len(), 3, "blocks that registered: {blocks_seen:?}");
    assert_eq!(most_running, 3, "squeue showed at most {most_running} running blocks");
    assert_eq!(scaler.state().submitted, 3, "never more than max_blocks");
    runs.assert_each_ran_within_its_tries(tasks.iter().enumerate().map(|(i, f)| (format!("t{i}"), f)));

    while scaler.state().active_blocks > 0 {
        assert!(emptied.elapsed() < IDLE + PERIOD + SCALE_IN_SLACK, "still {:?}", scaler.state());
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("scaled in {:?} after the queue emptied", emptied.elapsed());
    wait_until("the held blocks' jobs to end", START, || scaler.state().live_blocks == 0);
    let left = our_jobs();
    assert!(left.is_empty(), "squeue still lists {left:?}");
    dfk.shutdown();
    exe.stop();
    let log = std::fs::read_to_string(c.run.path().join(BLOCKS_FILE)).expect("blocks.jsonl");
    for event in ["submitted", "connected", "hold", "ended"] {
        assert_eq!(log.matches(&format!("\"event\":\"{event}\"")).count(), 3, "{event} x3 in\n{log}");
    }
    assert!(!log.contains("\"event\":\"cancel\""), "the blocks ended by themselves, no scancel:\n{log}");
    use strand::block::BlockEventKind::*;
    assert_block_event_order(&c.run.path().join(BLOCKS_FILE), &[Submitted, Connected, Hold, Ended]);
}

/// MPI tasks in a block on two Slurm nodes: `$STRAND_MPI_PREFIX` is an `srun` job step inside
/// the block's allocation, on the node of the try's reserved ranks, and a real MPI program (built
/// here with mpicc) runs as one job of two ranks there; started directly, it is a singleton.
///
/// The block runs one launcher step per node (one pool each): a step spanning two simulated
/// nodes of one machine fails in Open MPI's `MPI_Init` (both "nodes" are the same host), so a
/// try's ranks are on one node here; the prefix for several nodes is checked in
/// launcher/src/task_mpi.rs.
#[test]
fn mpi_tasks_run_as_srun_steps_inside_their_block() {
    let _file = crate::common::file_group(module_path!());
    let c = Cluster::start(SlurmOptions { nodes: 2, cpus_per_node: 8 });
    let hello = c.run.path().join("hello");
    let src = repo().join("examples").join("mpi").join("hello.c");
    run_ok(c.run.path(), "mpicc", Command::new("mpicc").arg("-o").arg(&hello).arg(&src), Duration::from_secs(60));
    // Two steps (0 and 1), one per node, each one pool: a manager and two workers.
    let job = c.block(&["--nodes=2", "--ntasks=6", "--ntasks-per-node=3"], 2, &["--pool-size", "3"]);
    c.wait_blocks(&[(&job, 2)], START);
    let dfk = Dfk::connect(&c.conn, DfkConfig::default()).expect("dfk");
    let two = strand::task::Resources { ranks: 2, ..Default::default() };
    let exe = hello.display().to_string();
    let where_: Vec<TaskFuture> = (0..4)
        .map(|_| {
            dfk.submit(
                Call::shell("$STRAND_MPI_PREFIX sh -c 'echo $SLURMD_NODENAME $SLURM_STEP_ID'; echo $STRAND_MPI_PREFIX")
                    .resources(two),
            )
        })
        .collect();
    let mpi: Vec<TaskFuture> =
        (0..4).map(|_| dfk.submit(Call::shell(format!("$STRAND_MPI_PREFIX {exe}")).resources(two))).collect();
    let direct = dfk.submit(Call::shell(exe));
    assert_eq!(dfk.wait_all(Some(WORK)), 0, "every task ended\n{}", c.diagnostics());
    let text = |f: &TaskFuture| {
        String::from_utf8_lossy(&f.peek().expect("ended").unwrap_or_else(|e| panic!("{e}\n{}", c.diagnostics())))
            .into_owned()
    };
    let nodes: BTreeSet<String> = c.slurm.nodes().iter().cloned().collect();
    for f in &where_ {
        let out = text(f);
        let mut lines: Vec<&str> = out.lines().collect();
        let prefix = lines.pop().unwrap_or_default();
        assert!(prefix.starts_with("srun --ntasks=2 --nodes=1 --nodelist=vm"), "{out}");
        assert!(prefix.ends_with(" --overlap --kill-on-bad-exit=1"), "{out}");
        assert_eq!(lines.len(), 2, "{out}");
        for l in &lines {
            let (node, step) = l.split_once(' ').unwrap_or_default();
            assert!(nodes.contains(node), "{node} is not a node of the cluster: {out}");
            assert!(prefix.contains(&format!("--nodelist={node} ")), "ran on the node it named: {out}");
            let step: u32 = step.trim().parse().unwrap_or(0);
            assert!(step >= 2, "a step of its own, not the launchers' steps 0 and 1: {out}");
        }
    }
    for f in &mpi {
        let out = text(f);
        let mut lines: Vec<&str> = out.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines.len(), 2, "{out}");
        for (r, l) in lines.iter().enumerate() {
            assert!(l.starts_with(&format!("hello from rank {r} of 2 on ")) && l.ends_with(" sum 3"), "{out}");
        }
    }
    assert!(text(&direct).starts_with("hello from rank 0 of 1 on "), "{}", text(&direct));
    dfk.shutdown();
}
