//! `strand bench max-workers`: connect more and more workers to one interchange (the Parsl
//! paper's Table 2) until a step fails or the list ends; at each step the time until every
//! manager registered, the interchange's peak memory and the throughput of no-op tasks.
//! Real launchers (local blocks) first, as far as the machine allows, then simulated managers.

use super::results::{self, Experiment, PointResult, TaskKind};
use super::{point, progress, BenchError, Serving, Workers};
use crate::run_dir::RunDir;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

/// The steps of a max-workers run.
#[derive(Clone, Debug)]
pub struct MaxWorkersOptions {
    /// Worker ranks of real local blocks, one step each (may be empty).
    pub real: Vec<u64>,
    /// Simulated managers, one step each (may be empty).
    pub managers: Vec<u64>,
    /// Slots of each simulated manager.
    pub workers_per_manager: u64,
    /// No-op tasks at each real step.
    pub real_tasks: u64,
    /// No-op tasks at each simulated step.
    pub tasks: u64,
    /// Tries each real worker holds beyond the one it runs.
    pub prefetch: u32,
    /// The `strand-launcher` binary (default: next to `strand`).
    pub launcher: Option<PathBuf>,
    /// The output directory (absolute).
    pub out: PathBuf,
}

/// What a max-workers run did.
#[derive(serde::Serialize, serde::Deserialize, Debug)]
pub struct MaxWorkersReport {
    /// Always "max-workers".
    pub bench: String,
    /// The output directory.
    pub out: String,
    /// The most workers that registered and answered every task, real launchers.
    pub max_real_workers: u64,
    /// The same, simulated managers.
    pub max_simulated_workers: u64,
    /// Registration time at the largest simulated step, seconds.
    pub registration_s_at_max: f64,
    /// The interchange's peak memory at the largest simulated step, MiB.
    pub interchange_rss_mib_at_max: f64,
    /// The step that failed, if one did (the run stops there).
    pub stopped_by: Option<String>,
    /// Steps measured now.
    pub measured: usize,
    /// Steps found in `results.jsonl` and not measured again.
    pub resumed: usize,
    /// Plot files written.
    pub plots: Vec<String>,
}

/// Run the steps into `o.out`, skipping those already in its `results.jsonl`.
pub fn run(o: &MaxWorkersOptions) -> Result<MaxWorkersReport, BenchError> {
    crate::bench::at_least_one("--workers-per-manager", o.workers_per_manager)?;
    crate::bench::at_least_one("--tasks", o.tasks)?;
    crate::bench::at_least_one("--real-tasks", o.real_tasks)?;
    if o.real.contains(&0) || o.managers.contains(&0) || (o.real.is_empty() && o.managers.is_empty()) {
        return Err(BenchError::Invalid(
            "--real and --managers list counts of at least 1 (one of them may be empty)".into(),
        ));
    }
    std::fs::create_dir_all(&o.out).map_err(|e| BenchError::Invalid(format!("--out {}: {e}", o.out.display())))?;
    let earlier = results::read(&o.out).map_err(|e| BenchError::Invalid(e.to_string()))?;
    let done: HashSet<(bool, u64)> = earlier
        .iter()
        .filter(|p| p.experiment == Experiment::MaxWorkers && p.error.is_none())
        .map(|p| (p.simulated, p.workers))
        .collect();
    let steps: Vec<(bool, u64)> = o
        .real
        .iter()
        .map(|&w| (false, w))
        .chain(o.managers.iter().map(|&m| (true, m * o.workers_per_manager)))
        .filter(|s| !done.contains(s))
        .collect();
    let mut all = earlier;
    let bar = progress(steps.len() as u64);
    let mut stopped_by = None;
    let mut measured = 0;
    for (simulated, workers) in steps.iter().copied() {
        let source = if simulated {
            Workers::Simulated { per_manager: o.workers_per_manager }
        } else {
            Workers::Local { prefetch: o.prefetch, launcher: o.launcher.clone() }
        };
        let tasks = if simulated { o.tasks } else { o.real_tasks };
        let label = format!("{workers} {} workers", if simulated { "simulated" } else { "real" });
        bar.set_message(format!("{label}: registering"));
        let mut p = blank(&source, simulated, workers, tasks);
        let measured_step =
            step(&o.out, &source, workers, tasks, &mut p, |n| bar.set_message(format!("{label}: {n}/{tasks} tasks")));
        if let Err(e) = &measured_step {
            p.error = Some(e.to_string());
        }
        results::append(&o.out, &p).map_err(|e| BenchError::Invalid(e.to_string()))?;
        all.push(p.clone());
        measured += 1;
        bar.inc(1);
        match measured_step {
            Ok(()) => bar.suspend(|| {
                eprintln!(
                    "strand: max-workers: {label}: registered in {:.2} s, {:.0} tasks/s, interchange {:.0} MiB",
                    p.registration_s, p.tasks_per_s, p.interchange_rss_mib
                )
            }),
            Err(e) => {
                bar.suspend(|| eprintln!("strand: max-workers: {label}: stopped: {e}"));
                stopped_by = Some(format!("{label}: {e}"));
                break;
            }
        }
    }
    bar.finish_and_clear();
    results::write_csv(&o.out, &all).map_err(|e| BenchError::Invalid(e.to_string()))?;
    let plots = super::plot::draw_dir(&o.out, &[], &o.out).map_err(|e| BenchError::Invalid(e.to_string()))?;
    let good = |sim: bool| {
        all.iter().filter(move |p| {
            p.experiment == Experiment::MaxWorkers && p.simulated == sim && p.error.is_none() && p.failed == 0
        })
    };
    let top = good(true).max_by_key(|p| p.workers);
    Ok(MaxWorkersReport {
        bench: "max-workers".into(),
        out: o.out.display().to_string(),
        max_real_workers: good(false).map(|p| p.workers).max().unwrap_or(0),
        max_simulated_workers: top.map_or(0, |p| p.workers),
        registration_s_at_max: top.map_or(0.0, |p| p.registration_s),
        interchange_rss_mib_at_max: top.map_or(0.0, |p| p.interchange_rss_mib),
        stopped_by,
        measured,
        resumed: o.real.len() + o.managers.len() - steps.len(),
        plots: plots.iter().map(|p| p.display().to_string()).collect(),
    })
}

/// A step before it runs.
fn blank(source: &Workers, simulated: bool, workers: u64, tasks: u64) -> PointResult {
    let provenance = results::this_machine(if simulated { "simulated" } else { "local" }, source.prefetch());
    PointResult {
        simulated,
        nodes: u64::from(!simulated),
        managers: source.shape(workers).map_or(1, |(m, _)| m),
        ..PointResult::new(Experiment::MaxWorkers, workers, tasks, provenance)
    }
}

/// One step: start the workers, time their registration, run the tasks, stop them.
fn step(
    out: &std::path::Path,
    source: &Workers,
    workers: u64,
    tasks: u64,
    p: &mut PointResult,
    tick: impl FnMut(u64),
) -> Result<(), BenchError> {
    let kind = if matches!(source, Workers::Simulated { .. }) { "simulated" } else { "real" };
    let run_dir =
        RunDir::create(Some(&out.join("runs").join(format!("{workers}-{kind}-workers-{}", std::process::id()))))?;
    let serving = Serving::start(source, workers, run_dir)?;
    p.registration_s = serving.registration.as_secs_f64();
    let timeout = Duration::from_secs(120) + Duration::from_secs_f64(tasks as f64 * 1e-4);
    let m = point::run(
        serving.dfk(),
        &serving.ends,
        tasks,
        || point::task(TaskKind::Function, Duration::ZERO),
        timeout,
        tick,
    )
    .map_err(|e| BenchError::Stalled(e.to_string()))?;
    super::fill(p, &m, serving.rss_pid);
    Ok(())
}
