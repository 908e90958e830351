//! `strand bench`: benchmarks through the whole path, one JSON line each (the reports of
//! `strand::bench`). Each kind runs in the test suite at a small size (tests/it/bench_cli.rs).

use super::scaling::{self, MaxWorkersArgs, PlotArgs, StrongArgs, WeakArgs};
use super::{open, seconds, TargetArgs};
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;
use std::time::Duration;
use strand::bench::{self, elasticity::ElasticityOptions, sim::SimOptions};
use strand::dfk::{Dfk, DfkConfig};
use strand::executor::Executor;
use strand::run_dir::RunDir;

/// `strand bench` arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    which: BenchKind,
}

#[derive(Subcommand)]
enum BenchKind {
    /// No-op tasks per second, all submitted at once.
    Throughput {
        /// Number of tasks.
        #[arg(long, default_value_t = 20_000)]
        tasks: u64,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// No-op tasks per second with the run database (monitoring.db) and without, alternating
    /// on the same blocks; the database's bytes per task and the report's time on it.
    Monitoring {
        /// Number of tasks per run.
        #[arg(long, default_value_t = 20_000)]
        tasks: u64,
        /// Runs of each kind.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        reps: u32,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// No-op tasks per second through `strand map --json` (JSON lines in and out, as a driver
    /// in Python or any language uses it) beside the same tasks from Rust, on the same blocks.
    JsonLines {
        /// Number of tasks, each way.
        #[arg(long, default_value_t = 20_000)]
        tasks: u64,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// `/bin/true` command tasks per second beside this machine's spawn floor (W threads doing
    /// posix_spawn + waitpid of /bin/true), measured in the same run, and their ratio.
    Commands {
        /// Number of tasks (and of processes spawned for the floor).
        #[arg(long, default_value_t = 5_000)]
        tasks: u64,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// `strand map -j W` beside GNU parallel's `parallel -j W` on `/bin/true` over N
    /// arguments (each timed start to exit, in one run), and `strand map`'s resident memory
    /// while it streams S arguments to simulated managers, by tenths of its run time, with and
    /// without its run database (flat: no growth over the second half).
    GnuParallel {
        /// Arguments of the speed comparison.
        #[arg(long, default_value_t = 20_000)]
        tasks: u64,
        /// Slots of both (`-j`).
        #[arg(long, default_value_t = 2)]
        workers: u32,
        /// Arguments of the long stream; 0 leaves the memory part out.
        #[arg(long, default_value_t = 3_000_000)]
        stream: u64,
        /// Run directory (default: a fresh one under runs/).
        #[arg(long, value_name = "DIR")]
        run_dir: Option<PathBuf>,
    },
    /// Round trip of one no-op task at a time (mean, p50, p99 in microseconds); with --out,
    /// every round trip goes to DIR/results.jsonl and its histogram and CDF are plotted.
    Latency {
        /// Number of tasks.
        #[arg(long, default_value_t = 1_000)]
        tasks: u64,
        /// Output directory for the distribution (results.jsonl, results.csv, plots).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Strong scaling: a fixed number of tasks of each duration over more and more workers;
    /// completion time, efficiency and throughput against workers, with the ideal.
    Strong(StrongArgs),
    /// Weak scaling: a fixed number of tasks per worker over more and more workers; the
    /// completion time should stay flat.
    Weak(WeakArgs),
    /// Connect more and more workers to one interchange (real local blocks, then simulated
    /// managers) until a step fails: registration time, interchange memory, throughput.
    MaxWorkers(MaxWorkersArgs),
    /// Redraw the plots of sweeps from their results.jsonl, overlaid, with reference points.
    Plot(PlotArgs),
    /// Tries of one rank and of several ranks sharing one pool (docs/mpi-tasks.md): makespan
    /// against its lower bound (work over workers), utilization, and each class's waits.
    /// Without --connection or --config: a local block of 16 worker ranks (oversubscribed on a
    /// laptop: the tries sleep).
    Mixed {
        /// Classes of tries, COUNTxRANKS@SECONDS, comma-separated.
        #[arg(long, default_value = bench::mixed::DEFAULT_MIX, value_name = "MIX")]
        mix: String,
        /// Multiply every try's duration (e.g. 0.2 for a quick check).
        #[arg(long, default_value_t = 1.0, value_name = "X")]
        time_scale: f64,
        /// Seed of the shuffled submission order.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Per-link overhead of a chain of no-op tasks, each waiting for the previous one.
    Chain {
        /// Links in the chain.
        #[arg(long, default_value_t = 1000)]
        depth: u64,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// A million no-op tasks streamed through the whole path, with at most --window in flight;
    /// the driver's and the interchange's resident memory sampled every --sample-every tasks.
    Load {
        /// Number of tasks.
        #[arg(long, default_value_t = 1_000_000)]
        tasks: u64,
        /// Most tasks in flight (submitted, not yet ended) at a time.
        #[arg(long, default_value_t = 100_000)]
        window: u64,
        /// Tasks between memory samples.
        #[arg(long, default_value_t = 100_000)]
        sample_every: u64,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Memory of the DFK (this process) and the interchange with N tasks pending and no workers.
    Memory {
        /// Tasks to submit.
        #[arg(long, default_value_t = 1_000_000)]
        tasks: u64,
        /// The interchange's queue limit (past it, it refuses and the DFK holds the rest).
        #[arg(long, default_value_t = 100_000)]
        max_queue: u64,
    },
    /// The Parsl paper's elasticity experiment, scaled down: stages of 20, 1, 20, 1 tasks of
    /// 10, 10, 5, 5 s on local blocks, static and elastic; makespan, worker utilization and
    /// (elastic) the scale-in latency after the last result.
    Elasticity {
        /// Run only the elastic configuration.
        #[arg(long, conflicts_with = "static_only")]
        elastic_only: bool,
        /// Run only the static configuration.
        #[arg(long)]
        static_only: bool,
        /// Multiply every task's duration (e.g. 0.2 for a quick check, 6 for minute-long tasks).
        #[arg(long, default_value_t = 1.0, value_name = "X")]
        time_scale: f64,
        /// Seconds between strategy rounds.
        #[arg(long, default_value_t = 0.1, value_name = "SECONDS")]
        period: f64,
        /// Seconds a block must be idle before it is scaled in.
        #[arg(long, default_value_t = 0.2, value_name = "SECONDS")]
        max_idletime: f64,
        /// Run directory (default: a fresh one under runs/).
        #[arg(long, value_name = "DIR")]
        run_dir: Option<PathBuf>,
    },
    /// The interchange alone: simulated managers (no MPI) answer every task at once.
    Sim {
        /// Simulated managers (each a real ZeroMQ connection).
        #[arg(long, default_value_t = 64)]
        managers: usize,
        /// Workers (task slots) each simulated manager advertises.
        #[arg(long, default_value_t = 128)]
        workers_per_manager: u32,
        /// Number of no-op tasks.
        #[arg(long, default_value_t = 100_000)]
        tasks: u64,
        /// Run directory of the interchange (default: a fresh one under runs/).
        #[arg(long, value_name = "DIR")]
        run_dir: Option<PathBuf>,
        /// Pin the interchange to CPU 0 and this process (client and simulator) to the other CPUs.
        #[arg(long)]
        pin: bool,
    },
}

/// Print one JSON line; exit 0, or 1 if a task failed (`load`, `elasticity`, `sim`).
pub fn exec(a: Args) -> Result<i32> {
    match a.which {
        BenchKind::Throughput { tasks, target } => {
            on_executor(&target, tasks, |dfk, exe| print(&bench::throughput::run(dfk, tasks, exe.slots())))
        }
        BenchKind::Monitoring { tasks, reps, target } => on_executor(&target, tasks, |_, exe| {
            let r = bench::monitoring::run(exe, tasks, reps)?;
            print(&r)?;
            Ok(if r.failed == 0 && r.db_tasks == tasks + 100 { 0 } else { 1 })
        }),
        BenchKind::JsonLines { tasks, target } => on_executor(&target, tasks, |dfk, exe| {
            let r = bench::json_lines::run(dfk, &exe.connection_file(), tasks, exe.slots())?;
            print(&r)?;
            Ok(if r.failed == 0 { 0 } else { 1 })
        }),
        BenchKind::Commands { tasks, target } => on_executor(&target, tasks, |dfk, exe| {
            let r = bench::commands::run(dfk, tasks, exe.slots())?;
            print(&r)?;
            Ok(if r.failed == 0 { 0 } else { 1 })
        }),
        BenchKind::GnuParallel { tasks, workers, stream, run_dir } => {
            let run_dir = RunDir::create(run_dir.as_deref())?;
            let r = bench::gnu_parallel::run(
                &run_dir,
                &bench::gnu_parallel::GnuParallelOptions { tasks, workers, stream },
            )?;
            print(&r)?;
            Ok(if r.failed == 0 { 0 } else { 1 })
        }
        BenchKind::Latency { tasks, out, target } => on_executor(&target, tasks, |dfk, exe| {
            let r = bench::latency::run(dfk, tasks, exe.slots());
            if let Some(out) = out {
                let out = bench::scaling::out_dir(Some(&out), "latency")?;
                bench::scaling::record_latency(&out, &r, exe)?;
            }
            print(&r)?;
            Ok(if r.failed == 0 { 0 } else { 1 })
        }),
        BenchKind::Strong(a) => scaling::strong(a),
        BenchKind::Weak(a) => scaling::weak(a),
        BenchKind::MaxWorkers(a) => scaling::max_workers(a),
        BenchKind::Plot(a) => scaling::plot(a),
        BenchKind::Mixed { mix, time_scale, seed, mut target } => {
            let mix = bench::mixed::parse_mix(&mix)?;
            if target.connection.is_none() && target.config.is_none() && target.workers.is_none() {
                target.workers = Some(16);
            }
            // Prefetch 1, not the benchmarks' 64: a reserved rank drains what it holds first.
            let exe = open(&target, 1)?;
            exe.wait_warm()?;
            let dfk = Dfk::connect(exe.connection(), DfkConfig::default())?;
            let r = bench::mixed::run(&dfk, &mix, time_scale, exe.slots(), seed);
            dfk.shutdown();
            exe.stop();
            let r = r?;
            print(&r)?;
            Ok(if r.failed == 0 { 0 } else { 1 })
        }
        BenchKind::Chain { depth, target } => {
            on_executor(&target, depth, |dfk, exe| print(&bench::chain::run(dfk, depth, exe.slots())))
        }
        BenchKind::Load { tasks, window, sample_every, target } => {
            bench::at_least_one("--window", window)?;
            bench::at_least_one("--sample-every", sample_every)?;
            on_executor(&target, tasks, |dfk, exe| {
                let r = bench::load::run(dfk, tasks, window, sample_every, exe.slots(), exe.interchange_pid());
                print(&r)?;
                Ok(if r.failed == 0 { 0 } else { 1 })
            })
        }
        BenchKind::Memory { tasks, max_queue } => {
            let run_dir = RunDir::create(None)?;
            print(&bench::memory::run(&run_dir, tasks, max_queue)?)
        }
        BenchKind::Elasticity { elastic_only, static_only, time_scale, period, max_idletime, run_dir } => {
            let modes: &[bool] = match (elastic_only, static_only) {
                (true, _) => &[true],
                (_, true) => &[false],
                _ => &[false, true],
            };
            let (period, max_idletime) = (seconds("--period", period)?, seconds("--max-idletime", max_idletime)?);
            let run_dir = RunDir::create(run_dir.as_deref())?;
            let mut failed = 0;
            for &elastic in modes {
                let opts = ElasticityOptions {
                    elastic,
                    time_scale,
                    period,
                    max_idletime,
                    run_dir: run_dir.child(if elastic { "elastic" } else { "static" })?,
                };
                let report = bench::elasticity::run(&opts)?;
                failed += report.failed;
                print(&report)?;
            }
            Ok(if failed == 0 { 0 } else { 1 })
        }
        BenchKind::Sim { managers, workers_per_manager, tasks, run_dir, pin } => {
            let run_dir = RunDir::create(run_dir.as_deref())?;
            let opts = SimOptions {
                managers,
                workers_per_manager,
                tasks,
                pin,
                registration_timeout: Duration::from_secs(300),
            };
            let r = bench::sim::run(&run_dir, &opts)?;
            print(&r)?;
            Ok(if r.done == tasks && r.answered_by_managers == tasks { 0 } else { 1 })
        }
    }
}

/// Print a report as one JSON line; exit code 0.
fn print<T: serde::Serialize>(report: &T) -> Result<i32> {
    println!("{}", serde_json::to_string(report)?);
    Ok(0)
}

/// Check `--tasks`, start the target's executor, wait for its warm blocks, run `f` on a DFK
/// connected to it, then tear it all down.
fn on_executor(target: &TargetArgs, tasks: u64, f: impl FnOnce(&Dfk, &Executor) -> Result<i32>) -> Result<i32> {
    // Before anything starts: a bad option must not leave processes behind.
    bench::at_least_one("--tasks", tasks)?;
    let exe = open(target, 64)?;
    exe.wait_warm()?;
    let dfk = Dfk::connect(exe.connection(), DfkConfig::default())?;
    let code = f(&dfk, &exe);
    dfk.shutdown();
    exe.stop();
    code
}
