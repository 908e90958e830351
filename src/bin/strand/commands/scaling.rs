//! The scaling-run kinds of `strand bench` (`strong`, `weak`, `max-workers`, `plot`): their
//! arguments and how they call `strand::bench::scaling`. See docs/scaling.md.

use anyhow::{bail, Result};
use std::path::PathBuf;
use std::time::Duration;
use strand::bench::scaling::max_workers::{self, MaxWorkersOptions};
use strand::bench::scaling::results::{Experiment, TaskKind};
use strand::bench::scaling::{self, parse_duration, plot, SweepOptions, Workers};
use strand::executor::config::Config;

/// What strong and weak sweeps share.
#[derive(clap::Args)]
pub struct SweepArgs {
    /// Worker counts, one point each [default: 1, 2, 4, ... up to this machine's cores].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    workers: Vec<u64>,
    /// Task durations, one series each: 0 (no-op), 250us, 10ms, 1.5s, 2m
    /// [default: 0,10ms,100ms for strong, 10ms,100ms for weak].
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_duration)]
    durations: Vec<Duration>,
    /// Repetitions of each point (plots show the median with min-max bars).
    #[arg(long, default_value_t = 1)]
    reps: u32,
    /// What the tasks run: built-in functions (`noop`, `sleep`) or real processes (`true`, `sleep`).
    #[arg(long, value_enum, default_value_t = TaskKind::Function)]
    kind: TaskKind,
    /// Simulated managers instead of local blocks (real ZeroMQ, no MPI, tasks on timers), to
    /// draw the interchange's curve to a million workers; every output says "simulated".
    #[arg(long)]
    simulate: bool,
    /// Slots of each simulated manager (worker counts above it must be multiples of it).
    #[arg(long, default_value_t = 128, requires = "simulate")]
    workers_per_manager: u64,
    /// Tries each local worker holds beyond the one it runs.
    #[arg(long, default_value_t = 64, conflicts_with = "simulate")]
    prefetch: u32,
    /// The strand-launcher binary for the local blocks (default: next to `strand`).
    #[arg(long, value_name = "PATH", conflicts_with = "simulate")]
    launcher: Option<PathBuf>,
    /// Executor configuration (TOML; docs/executors.md): the blocks of the largest --nodes
    /// point are submitted once (Slurm, PBS or local, of the executor's own nodes_per_block) and
    /// reused: a point of N nodes feeds N / nodes_per_block of them and holds the others.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["simulate", "workers"], requires = "nodes")]
    config: Option<PathBuf>,
    /// The executor of --config to use, by label (default: the first in the file).
    #[arg(long, value_name = "LABEL", requires = "config")]
    executor: Option<String>,
    /// Nodes, one point each (with --config; multiples of the executor's nodes_per_block), e.g. 1,2,4,8.
    #[arg(long, value_name = "LIST", value_delimiter = ',', requires = "config")]
    nodes: Vec<u64>,
    /// Output directory: results.jsonl, results.csv, plots (SVG, PNG, plots.json) and the
    /// points' run directories; a sweep run again into it skips the points it holds
    /// [default: scaling/strong or scaling/weak].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// `strand bench strong`.
#[derive(clap::Args)]
pub struct StrongArgs {
    /// Tasks at every point (the paper: 50,000).
    #[arg(long, default_value_t = 1000)]
    tasks: u64,
    #[command(flatten)]
    sweep: SweepArgs,
}

/// `strand bench weak`.
#[derive(clap::Args)]
pub struct WeakArgs {
    /// Tasks per worker at every point (the paper: 10).
    #[arg(long, default_value_t = 10)]
    tasks_per_worker: u64,
    #[command(flatten)]
    sweep: SweepArgs,
}

/// `strand bench max-workers`.
#[derive(clap::Args)]
pub struct MaxWorkersArgs {
    /// Worker ranks of real local blocks, one step each, run first (empty: none).
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "1,2,4,8")]
    real: Vec<u64>,
    /// Simulated managers, one step each, after the real steps (empty: none).
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "8,64,512,2048")]
    managers: Vec<u64>,
    /// Slots of each simulated manager.
    #[arg(long, default_value_t = 128)]
    workers_per_manager: u64,
    /// No-op tasks at each simulated step.
    #[arg(long, default_value_t = 100_000)]
    tasks: u64,
    /// No-op tasks at each real step.
    #[arg(long, default_value_t = 20_000)]
    real_tasks: u64,
    /// Tries each real worker holds beyond the one it runs.
    #[arg(long, default_value_t = 64)]
    prefetch: u32,
    /// The strand-launcher binary for the local blocks (default: next to `strand`).
    #[arg(long, value_name = "PATH")]
    launcher: Option<PathBuf>,
    /// Output directory (as for strong and weak) [default: scaling/max-workers].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// `strand bench plot`.
#[derive(clap::Args)]
pub struct PlotArgs {
    /// Output directories of sweeps (their results.jsonl); several are overlaid, each series
    /// named by its directory.
    #[arg(required = true, value_name = "DIR")]
    dirs: Vec<PathBuf>,
    /// Where to write the plots [default: the DIR, when there is one].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Reference points to draw beside (e.g. Parsl's published figures): a CSV with the header
    /// `label,experiment,workers,duration_s,makespan_s,tasks_per_s`.
    #[arg(long, value_name = "CSV")]
    reference: Option<PathBuf>,
}

/// Run a strong sweep; exit 1 if a task failed.
pub fn strong(a: StrongArgs) -> Result<i32> {
    sweep(Experiment::Strong, a.tasks, a.sweep)
}

/// Run a weak sweep; exit 1 if a task failed.
pub fn weak(a: WeakArgs) -> Result<i32> {
    sweep(Experiment::Weak, a.tasks_per_worker, a.sweep)
}

fn sweep(experiment: Experiment, tasks: u64, a: SweepArgs) -> Result<i32> {
    let durations = if !a.durations.is_empty() {
        a.durations
    } else if experiment == Experiment::Strong {
        vec![Duration::ZERO, Duration::from_millis(10), Duration::from_millis(100)]
    } else {
        vec![Duration::from_millis(10), Duration::from_millis(100)]
    };
    let (source, sizes) = if let Some(path) = &a.config {
        // Parsed and checked before anything starts: a bad file leaves nothing behind.
        let file = Config::from_file(path)?;
        let mut exe = file.executor(a.executor.as_deref())?.clone();
        if let Some(l) = &a.launcher {
            exe.launcher_path = l.display().to_string();
        }
        exe.launcher.prefetch = exe.launcher.prefetch.or(Some(a.prefetch));
        exe.check_launcher(&file.origin)?;
        (Workers::Config { config: Box::new(exe) }, a.nodes)
    } else if a.simulate {
        (Workers::Simulated { per_manager: a.workers_per_manager }, a.workers)
    } else {
        (Workers::Local { prefetch: a.prefetch, launcher: a.launcher }, a.workers)
    };
    let o = SweepOptions {
        experiment,
        workers: if sizes.is_empty() { scaling::default_workers() } else { sizes },
        durations,
        tasks,
        reps: a.reps,
        kind: a.kind,
        source,
        out: scaling::out_dir(a.out.as_deref(), experiment.name())?,
    };
    let r = scaling::sweep(&o)?;
    println!("{}", serde_json::to_string(&r)?);
    Ok(if r.failed == 0 { 0 } else { 1 })
}

/// Run the max-workers steps; exit 1 if a step failed.
pub fn max_workers(a: MaxWorkersArgs) -> Result<i32> {
    let o = MaxWorkersOptions {
        real: a.real,
        managers: a.managers,
        workers_per_manager: a.workers_per_manager,
        real_tasks: a.real_tasks,
        tasks: a.tasks,
        prefetch: a.prefetch,
        launcher: a.launcher,
        out: scaling::out_dir(a.out.as_deref(), Experiment::MaxWorkers.name())?,
    };
    let r = max_workers::run(&o)?;
    println!("{}", serde_json::to_string(&r)?);
    Ok(if r.stopped_by.is_none() { 0 } else { 1 })
}

/// Redraw (and overlay) sweeps' plots.
pub fn plot(a: PlotArgs) -> Result<i32> {
    let dirs: Vec<PathBuf> = a.dirs.iter().map(std::path::absolute).collect::<std::io::Result<_>>()?;
    let out = match (a.out, dirs.as_slice()) {
        (Some(o), _) => std::path::absolute(o)?,
        (None, [one]) => one.clone(),
        (None, _) => bail!("several DIRs are overlaid into one set of plots: say where with --out DIR"),
    };
    let reference = match &a.reference {
        Some(csv) => plot::read_reference(csv)?,
        None => vec![],
    };
    let files = plot::draw_dirs(&dirs, &reference, &out)?;
    let r = plot::PlotReport {
        bench: "plot".into(),
        out: out.display().to_string(),
        plots: files.iter().map(|f| f.display().to_string()).collect(),
    };
    println!("{}", serde_json::to_string(&r)?);
    Ok(0)
}
