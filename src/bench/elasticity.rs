//! The elasticity experiment of the Parsl paper (HPDC'19, section 5.4), scaled down: four
//! stages of 20, 1, 20 and 1 tasks of 10 s, 10 s, 5 s and 5 s, each stage after the one
//! before, run on blocks of the local provider with a static allocation and with the
//! strategy scaling blocks in and out. Reports makespan, worker utilization and, for the
//! elastic run, how long after the last result the strategy held every block.
//!
//! Both runs start from the same allocation (one block per task of the widest stage, all
//! connected before the clock starts). Utilization is task time over allocated worker time,
//! where a block is allocated from its submission (or the start of the clock) until the
//! scaler sees its job end (or the workload ends): start-up, idling and tear-down all count
//! against it.

use super::BenchError;
use crate::block::{allocated_block_seconds, read_events, unix_now, BlockId};
use crate::dfk::{Call, Dfk, DfkConfig, TaskFuture};
use crate::executor::local_block::{mpirun_args, LocalBlockOptions};
use crate::executor::scaler::{Scaler, ScalerConfig};
use crate::executor::strategy::StrategyParams;
use crate::executor::Executor;
use crate::interchange::process::InterchangeOptions;
use crate::launcher_options::LauncherOptions;
use crate::provider::local::LocalProvider;
use crate::run_dir::{RunDir, BLOCKS_FILE};
use serde::Serialize;
use std::time::{Duration, Instant};

/// The stages: (tasks, seconds each).
pub const STAGES: [(u32, f64); 4] = [(20, 10.0), (1, 10.0), (20, 5.0), (1, 5.0)];

/// How to run the experiment.
#[derive(Clone, Debug)]
pub struct ElasticityOptions {
    /// Scale blocks with the strategy (true) or hold a static allocation (false).
    pub elastic: bool,
    /// Multiplies every task's duration (1.0 = the paper's scaled-down 10 s / 5 s).
    pub time_scale: f64,
    /// Seconds between strategy rounds.
    pub period: Duration,
    /// A block idle this long is scaled in.
    pub max_idletime: Duration,
    /// Run directory (interchange, block scripts and output, `blocks.jsonl`).
    pub run_dir: RunDir,
}

/// What one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct ElasticityReport {
    /// Always "elasticity".
    pub bench: &'static str,
    /// "static" or "elastic".
    pub mode: &'static str,
    /// Wall time from the first submission to the last result.
    pub makespan_s: f64,
    /// Sum of the tasks' durations.
    pub task_s: f64,
    /// Worker-seconds allocated while the workload ran.
    pub allocated_worker_s: f64,
    /// `task_s / allocated_worker_s`.
    pub utilization: f64,
    /// Blocks submitted, the initial ones included.
    pub blocks_submitted: usize,
    /// Tasks that did not succeed (must be 0).
    pub failed: usize,
    /// Elastic runs: seconds from the last result until the strategy held every block (its
    /// scale-in latency once the workload is over); `None` for the static run.
    pub scale_in_s: Option<f64>,
    /// What the strategy promises for it: `--max-idletime` plus one `--period`.
    pub scale_in_bound_s: f64,
}

/// Run the four stages once.
pub fn run(opts: &ElasticityOptions) -> Result<ElasticityReport, BenchError> {
    for (name, v) in [
        ("--time-scale", opts.time_scale),
        ("--period", opts.period.as_secs_f64()),
        ("--max-idletime", opts.max_idletime.as_secs_f64()),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err(BenchError::Invalid(format!("{name} must be a positive number, got {v}")));
        }
    }
    let widest = STAGES.iter().map(|s| s.0).max().unwrap_or(1);
    let run_dir = &opts.run_dir;
    let _ = std::fs::remove_file(run_dir.file(BLOCKS_FILE));
    let conn_file = run_dir.connection_file();
    let launcher = LocalBlockOptions::default().launcher;
    let mpirun: Vec<String> = mpirun_args(1);
    // One rank per block: a pool of one runs its one task slot itself. No prefetch: a try
    // queued behind a 10 s task would wait while another block sits idle.
    let options =
        LauncherOptions { pool_size: Some(1), local_slots: Some(1), prefetch: Some(0), ..LauncherOptions::default() }
            .to_args()
            .join(" ");
    let script = move |id: &BlockId| {
        format!(
            "#!/bin/bash\nexec mpirun {} {} --connection {} --block-id {} {options}\n",
            mpirun.join(" "),
            launcher.display(),
            conn_file.display(),
            id.0
        )
    };
    // Both start from a warm allocation of `widest` blocks; the elastic run may shrink it
    // once the clock starts (until then min_blocks keeps it whole).
    let params = StrategyParams {
        init_blocks: widest,
        min_blocks: widest,
        max_blocks: widest,
        parallelism: 1.0,
        max_idletime: opts.max_idletime,
        block_connect_timeout: Duration::from_secs(60),
        period: opts.period,
    };
    let cfg = ScalerConfig {
        label: if opts.elastic { "elastic".into() } else { "static".into() },
        slots_per_block: 1,
        params,
        nodes_per_block: 1,
        walltime_s: 0,
        run_dir: run_dir.clone(),
        script: Box::new(script),
    };
    let exe = Executor::scaled(run_dir.clone(), &InterchangeOptions::local(), Box::new(LocalProvider::new()), cfg)?;
    let scaler = exe.scaler().ok_or_else(|| BenchError::Stalled("no scaler".into()))?;
    let up = exe.wait_for_managers(widest as usize, Duration::from_secs(120))?;
    if up < widest as usize {
        return Err(BenchError::Stalled(format!("only {up} of {widest} blocks connected within 120 s")));
    }
    let dfk = Dfk::connect(exe.connection(), DfkConfig::default())?;
    if opts.elastic {
        scaler.set_limits(0, widest);
    }
    let t0 = unix_now();
    let start = Instant::now();
    let mut previous: Vec<TaskFuture> = vec![];
    let mut all = vec![];
    let mut task_s = 0.0;
    for (n, secs) in STAGES {
        let secs = secs * opts.time_scale;
        task_s += n as f64 * secs;
        let stage: Vec<TaskFuture> = (0..n)
            .map(|_| {
                let mut call = Call::shell(format!("sleep {secs:.3}")).memoize(false);
                for p in &previous {
                    call = call.after(p);
                }
                dfk.submit(call)
            })
            .collect();
        all.extend(stage.iter().cloned());
        previous = stage;
    }
    let limit = Duration::from_secs_f64(120.0 + 4.0 * task_s);
    let left = dfk.wait_all(Some(limit));
    let ended = Instant::now();
    let makespan_s = (ended - start).as_secs_f64();
    let t_end = unix_now();
    let failed = all.iter().filter(|f| !matches!(f.peek(), Some(Ok(_)))).count();
    let scale_in_bound = opts.max_idletime + opts.period;
    // The queue is empty, so every block is idle from here and the strategy must hold them all
    // within the bound (a failure to is returned after the tear-down below).
    let scale_in =
        if opts.elastic && left == 0 { scale_in_after(scaler, ended, scale_in_bound).map(Some) } else { Ok(None) };
    dfk.shutdown();
    let submitted = scaler.state().submitted;
    exe.stop();
    if left > 0 {
        return Err(BenchError::Stalled(format!("{left} tasks did not finish within {limit:?}")));
    }
    let scale_in_s = scale_in?;
    // One worker per block.
    let events = read_events(&run_dir.file(BLOCKS_FILE)).unwrap_or_default();
    let allocated_worker_s = allocated_block_seconds(&events, t0, t_end);
    Ok(ElasticityReport {
        bench: "elasticity",
        mode: if opts.elastic { "elastic" } else { "static" },
        makespan_s,
        task_s,
        allocated_worker_s,
        utilization: task_s / allocated_worker_s.max(f64::MIN_POSITIVE),
        blocks_submitted: submitted,
        failed,
        scale_in_s,
        scale_in_bound_s: scale_in_bound.as_secs_f64(),
    })
}

/// How long past the strategy's bound a scale-in is waited for before the benchmark fails.
const SCALE_IN_GIVE_UP: Duration = Duration::from_secs(30);

/// Seconds from `since` until the scaler held every block, waiting at most `bound` plus
/// [`SCALE_IN_GIVE_UP`].
fn scale_in_after(scaler: &Scaler, since: Instant, bound: Duration) -> Result<f64, BenchError> {
    let give_up = since + bound + SCALE_IN_GIVE_UP;
    while scaler.state().active_blocks > 0 {
        if Instant::now() >= give_up {
            return Err(BenchError::Stalled(format!(
                "blocks were still active {:.1} s after the last result (the strategy's bound is {:.1} s)",
                (bound + SCALE_IN_GIVE_UP).as_secs_f64(),
                bound.as_secs_f64()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(since.elapsed().as_secs_f64())
}
