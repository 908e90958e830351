//! `strand bench monitoring`: W1 (no-op tasks, all submitted at once) with the run database and
//! without, on the same blocks, alternating, so the cost of monitoring is measured side by side.

use super::{noop, BenchError};
use crate::dfk::{Dfk, DfkConfig, MonitoringConfig, TaskFuture};
use crate::executor::Executor;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Throughput with and without the run database, and what the database costs on disk.
#[derive(Serialize, Debug)]
pub struct MonitoringCost {
    /// Always "monitoring".
    pub bench: &'static str,
    /// Tasks per run.
    pub tasks: u64,
    /// Worker slots.
    pub workers: u32,
    /// Runs of each kind (alternating, the unmonitored first).
    pub reps: u32,
    /// Median tasks per second without the database, until the DFK has shut down.
    pub off_tasks_per_s: f64,
    /// Median tasks per second with it, until the DFK has shut down: the database's last
    /// commit counts against monitoring.
    pub on_tasks_per_s: f64,
    /// `on / off` (the goal is at least 0.9).
    pub ratio: f64,
    /// Median tasks per second without the database, until every result was in.
    pub off_results_per_s: f64,
    /// Median tasks per second with it, until every result was in: what a driver waiting on
    /// its futures sees.
    pub on_results_per_s: f64,
    /// `on_results_per_s / off_results_per_s`.
    pub results_ratio: f64,
    /// Bytes of the last monitored run's database (with its WAL) per task.
    pub db_bytes_per_task: f64,
    /// Tasks the last monitored run's database holds (every task, warm-up included).
    pub db_tasks: u64,
    /// Tries it holds.
    pub db_tries: u64,
    /// Seconds `strand report`'s loading and drawing took on that database.
    pub report_s: f64,
    /// The last monitored run's database.
    pub db: String,
    /// Tasks that did not succeed (should be 0).
    pub failed: u64,
}

const WARM_UP: u64 = 100;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// One run's rates: until the DFK shut down, and until the last result.
struct Rates {
    to_end: f64,
    to_results: f64,
}

/// One run of `n` no-ops on a fresh DFK: its rates and failures.
fn one(exe: &Executor, n: u64, monitoring: Option<MonitoringConfig>) -> Result<(Rates, u64), BenchError> {
    let dfk = Dfk::connect(exe.connection(), DfkConfig { monitoring, ..DfkConfig::default() })?;
    for f in (0..WARM_UP).map(|_| dfk.submit(noop())).collect::<Vec<_>>() {
        let _ = f.wait();
    }
    let start = Instant::now();
    let futures: Vec<TaskFuture> = (0..n).map(|_| dfk.submit(noop())).collect();
    dfk.wait_all(None);
    let results_in = start.elapsed().as_secs_f64();
    let failed = futures.iter().filter(|f| !matches!(f.peek(), Some(Ok(_)))).count() as u64;
    // Until the database is written: the writer's last commit counts against monitoring.
    if let Some(e) = dfk.shutdown() {
        return Err(BenchError::Stalled(format!("the run database could not be written: {e}")));
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok((Rates { to_end: n as f64 / seconds, to_results: n as f64 / results_in }, failed))
}

/// Run W1 `reps` times each way on `exe`; databases go to its run directory.
pub fn run(exe: &Executor, n: u64, reps: u32) -> Result<MonitoringCost, BenchError> {
    let (mut off, mut on, mut failed) = (Vec::new(), Vec::new(), 0);
    let mut db = exe.run_dir().file("bench-monitoring-1.db");
    for rep in 1..=reps {
        let (rates, f) = one(exe, n, None)?;
        off.push(rates);
        failed += f;
        db = exe.run_dir().file(&format!("bench-monitoring-{rep}.db"));
        for stale in [db.clone(), db.with_extension("db-wal"), db.with_extension("db-shm")] {
            let _ = std::fs::remove_file(stale);
        }
        let cfg = MonitoringConfig {
            db: db.clone(),
            blocks: None,
            command: "strand bench monitoring".into(),
            poll: Duration::from_secs(1),
        };
        let (rates, f) = one(exe, n, Some(cfg))?;
        on.push(rates);
        failed += f;
    }
    let bytes: u64 = [db.clone(), db.with_extension("db-wal")]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let begun = Instant::now();
    let report = crate::monitoring::report::Report::load(&db, None)
        .map_err(|e| BenchError::Stalled(format!("reading the run database back: {e}")))?;
    let _page = crate::monitoring::report::html::render(&report);
    let report_s = begun.elapsed().as_secs_f64();
    let to_end = |v: &[Rates]| median(v.iter().map(|r| r.to_end).collect());
    let to_results = |v: &[Rates]| median(v.iter().map(|r| r.to_results).collect());
    let (off_tasks_per_s, on_tasks_per_s) = (to_end(&off), to_end(&on));
    let (off_results_per_s, on_results_per_s) = (to_results(&off), to_results(&on));
    Ok(MonitoringCost {
        bench: "monitoring",
        tasks: n,
        workers: exe.slots(),
        reps,
        off_tasks_per_s,
        on_tasks_per_s,
        ratio: on_tasks_per_s / off_tasks_per_s,
        off_results_per_s,
        on_results_per_s,
        results_ratio: on_results_per_s / off_results_per_s,
        db_bytes_per_task: bytes as f64 / (n + WARM_UP) as f64,
        db_tasks: report.summary.tasks,
        db_tries: report.summary.tries,
        report_s,
        db: db.display().to_string(),
        failed,
    })
}
