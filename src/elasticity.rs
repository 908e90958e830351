//! The elasticity experiment of the Parsl paper (HPDC'19, section 5.4), scaled down: four
//! stages of 20, 1, 20 and 1 tasks of 10 s, 10 s, 5 s and 5 s, each stage after the one
//! before, run on blocks of the local provider with a static allocation and with the
//! strategy scaling blocks in and out. Reports makespan and worker utilization.
//!
//! Both runs start from the same allocation (one block per task of the widest stage, all
//! connected before the clock starts). Utilization is task time over allocated worker time,
//! where a block is allocated from its submission (or the start of the clock) until the
//! scaler sees its job end (or the workload ends): start-up, idling and tear-down all count
//! against it.

use crate::connection::CONNECTION_FILE;
use crate::dfk::{Call, Dfk, DfkConfig, DfkError, TaskFuture};
use crate::executor::scaler::{Scaler, ScalerConfig, BLOCKS_FILE};
use crate::executor::strategy::StrategyParams;
use crate::local::{mpirun_args, LocalError, LocalInterchange, LocalOptions};
use crate::provider::local::LocalProvider;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use thiserror::Error;

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
    pub run_dir: PathBuf,
}

/// What one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct ElasticityReport {
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
}

/// Why the experiment could not run.
#[derive(Debug, Error)]
pub enum ElasticityError {
    /// The interchange did not start.
    #[error("starting the interchange: {0}")]
    Local(#[from] LocalError),
    /// The DFK could not connect.
    #[error("connecting the DFK: {0}")]
    Dfk(#[from] DfkError),
    /// Blocks did not come up or the workload did not finish in time.
    #[error("{0}")]
    Stalled(String),
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Run the four stages once.
pub fn run(opts: &ElasticityOptions) -> Result<ElasticityReport, ElasticityError> {
    let widest = STAGES.iter().map(|s| s.0).max().unwrap_or(1);
    let mut lo = LocalOptions::new(opts.run_dir.clone());
    lo.log_to_files = true;
    let ix = LocalInterchange::start(&lo)?;
    let _ = std::fs::remove_file(opts.run_dir.join(BLOCKS_FILE));
    let conn_file = opts.run_dir.join(CONNECTION_FILE);
    let launcher = lo.launcher.clone();
    let mpirun: Vec<String> = mpirun_args(1);
    // One rank per block: a pool of one runs its one task slot itself. No prefetch: a try
    // queued behind a 10 s task would wait while another block sits idle.
    let script = move |id: &crate::task::BlockId| {
        format!(
            "#!/bin/bash\nexec mpirun {} {} --connection {} --block-id {} --pool-size 1 --local-slots 1 --prefetch 0\n",
            mpirun.join(" "),
            launcher.display(),
            conn_file.display(),
            id.0
        )
    };
    // Both start from a warm allocation of `widest` blocks; the elastic run may shrink it
    // once the clock starts (until then min_blocks keeps it whole).
    let params = StrategyParams {
        label: if opts.elastic { "elastic".into() } else { "static".into() },
        init_blocks: widest,
        min_blocks: widest,
        max_blocks: widest,
        parallelism: 1.0,
        max_idletime: opts.max_idletime,
        block_connect_timeout: Duration::from_secs(60),
        slots_per_block: 1,
    };
    let scaler = Scaler::start(
        &ix.conn,
        Box::new(LocalProvider::new()),
        ScalerConfig {
            params,
            period: opts.period,
            nodes_per_block: 1,
            walltime_s: 0,
            run_dir: opts.run_dir.clone(),
            script: Box::new(script),
        },
    );
    let mut client = crate::client::Client::connect(&ix.conn)
        .map_err(|e| ElasticityError::Stalled(format!("cannot reach the interchange: {e}")))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let up = client.status(Duration::from_secs(5)).map(|s| s.managers.len()).unwrap_or(0);
        if up >= widest as usize {
            break;
        }
        if let Some(e) = scaler.state().error {
            return Err(ElasticityError::Stalled(e));
        }
        if Instant::now() > deadline {
            return Err(ElasticityError::Stalled(format!("only {up} of {widest} blocks connected within 120 s")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dfk = Dfk::connect(&ix.conn, DfkConfig::default())?;
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
    let makespan_s = start.elapsed().as_secs_f64();
    let t_end = unix_now();
    let failed = all.iter().filter(|f| !matches!(f.peek(), Some(Ok(_)))).count();
    dfk.shutdown();
    let state = scaler.stop();
    ix.stop(Duration::from_secs(10));
    if left > 0 {
        return Err(ElasticityError::Stalled(format!("{left} tasks did not finish within {limit:?}")));
    }
    let allocated_worker_s = allocated(&opts.run_dir.join(BLOCKS_FILE), t0, t_end);
    Ok(ElasticityReport {
        mode: if opts.elastic { "elastic" } else { "static" },
        makespan_s,
        task_s,
        allocated_worker_s,
        utilization: task_s / allocated_worker_s.max(f64::MIN_POSITIVE),
        blocks_submitted: state.submitted,
        failed,
    })
}

/// Worker-seconds (one worker per block) allocated within `[t0, t_end]`, from `blocks.jsonl`.
pub fn allocated(path: &std::path::Path, t0: f64, t_end: f64) -> f64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut spans: HashMap<String, (f64, f64)> = HashMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let (Some(t), Some(block), Some(event)) = (v["t"].as_f64(), v["block"].as_str(), v["event"].as_str()) else {
            continue;
        };
        match event {
            "submitted" => {
                spans.insert(block.to_string(), (t, f64::INFINITY));
            }
            "ended" => {
                if let Some(s) = spans.get_mut(block) {
                    s.1 = t;
                }
            }
            _ => {}
        }
    }
    spans.values().map(|(a, b)| (b.min(t_end) - a.max(t0)).max(0.0)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_is_clipped_to_the_workload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(BLOCKS_FILE);
        let lines = [
            r#"{"t":0.0,"block":"a","job":"1","event":"submitted"}"#,
            r#"{"t":5.0,"block":"b","job":"2","event":"submitted"}"#,
            r#"{"t":6.0,"block":"b","job":"2","event":"connected"}"#,
            r#"{"t":8.0,"block":"b","job":"2","event":"ended","detail":"cancelled"}"#,
            r#"{"t":9.0,"block":"c","job":"3","event":"submitted"}"#,
            "torn",
        ];
        std::fs::write(&p, lines.join("\n")).expect("write");
        // a: 2..10 = 8; b: 5..8 = 3; c: 9..10 = 1.
        assert!((allocated(&p, 2.0, 10.0) - 12.0).abs() < 1e-9);
    }
}
