//! Scaling runs as one command (the Parsl paper's section 5): strong and weak scaling sweeps
//! over worker counts and task durations, the latency distribution and the maximum number of
//! workers one interchange serves; each leaves `results.jsonl`, `results.csv` and plots in its
//! `--out` directory and resumes from `results.jsonl` when run again.
//!
//! `point` runs one point on a DFK, `results` reads and writes the points, `plot` draws them
//! (`strand bench plot` redraws and overlays), `max_workers` is its own loop. Workers come from
//! a local block per worker count (real launchers under `mpirun`) or, with `--simulate`, from
//! simulated managers (real ZeroMQ, no MPI, tasks on timers: [`super::simulator`]).

pub mod max_workers;
pub mod plot;
pub mod point;
pub mod results;

use super::sim::Served;
use super::BenchError;
use crate::dfk::{Dfk, DfkConfig};
use crate::executor::config::ExecutorConfig;
use crate::executor::{Executor, Target};
use crate::run_dir::RunDir;
use crate::task::TaskId;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use results::{Experiment, PointResult, Provenance, TaskKind};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where a sweep's workers come from.
#[derive(Clone, Debug)]
pub enum Workers {
    /// A local block of W worker ranks under `mpirun` per worker count.
    Local {
        /// Tries each worker holds beyond the one it runs.
        prefetch: u32,
        /// The `strand-launcher` binary (default: next to `strand`).
        launcher: Option<PathBuf>,
    },
    /// Simulated managers of this many slots each (W must be a multiple when above it).
    Simulated {
        /// Slots per simulated manager.
        per_manager: u64,
    },
    /// Blocks of an executor configuration (Slurm, PBS, local), all submitted once for the
    /// largest point; a point of N nodes feeds N / nodes_per_block of them and holds the rest.
    /// The sweep's sizes are nodes, its workers the fed blocks' slots.
    Config {
        /// The executor, as read from its file (its block counts are set by the sweep).
        config: Box<ExecutorConfig>,
    },
}

impl Workers {
    /// Managers and slots per manager for `w` workers.
    pub fn shape(&self, w: u64) -> Result<(u64, u64), BenchError> {
        match self {
            Workers::Local { .. } | Workers::Config { .. } => Ok((1, w)),
            Workers::Simulated { per_manager } => {
                let per = (*per_manager).min(w);
                if !w.is_multiple_of(per) {
                    return Err(BenchError::Invalid(format!(
                        "--workers {w} is not a multiple of --workers-per-manager {per_manager}: simulated managers \
                         all have the same number of slots"
                    )));
                }
                Ok((w / per, per))
            }
        }
    }

    fn name(&self) -> String {
        match self {
            Workers::Local { .. } => "local".into(),
            Workers::Simulated { .. } => "simulated".into(),
            Workers::Config { config } => format!("{} ({})", config.label, config.provider.name()),
        }
    }

    fn prefetch(&self) -> u32 {
        match self {
            Workers::Local { prefetch, .. } => *prefetch,
            Workers::Simulated { per_manager } => *per_manager as u32,
            // What its launchers run with: the config's, or the launcher's default.
            Workers::Config { config } => config.launcher.prefetch(),
        }
    }

    /// Blocks of the configuration's own shape that `nodes` nodes make.
    fn blocks_for(config: &ExecutorConfig, nodes: u64) -> Result<u32, BenchError> {
        let per = u64::from(config.nodes_per_block.max(1));
        if !nodes.is_multiple_of(per) {
            return Err(BenchError::Invalid(format!(
                "--nodes {nodes} is not a multiple of executor {:?}'s nodes_per_block = {per}: a sweep adds whole blocks",
                config.label
            )));
        }
        u32::try_from(nodes / per).map_err(|_| BenchError::Invalid(format!("--nodes {nodes} is too many")))
    }

    /// Worker slots at sweep size `size` (workers, or nodes of a configuration's block).
    fn workers_at(&self, size: u64) -> u64 {
        match self {
            Workers::Config { config } => {
                Self::blocks_for(config, size).map_or(0, |b| u64::from(b) * u64::from(config.slots_per_block()))
            }
            _ => size,
        }
    }
}

/// A strong or weak scaling sweep.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    /// [`Experiment::Strong`] (`tasks` in all) or [`Experiment::Weak`] (`tasks` per worker).
    pub experiment: Experiment,
    /// Worker counts (with [`Workers::Config`]: nodes per block), in the order run.
    pub workers: Vec<u64>,
    /// Task durations (zero: no-op).
    pub durations: Vec<Duration>,
    /// Tasks per point (strong) or per worker (weak).
    pub tasks: u64,
    /// Repetitions of each point.
    pub reps: u32,
    /// What the tasks run.
    pub kind: TaskKind,
    /// Where the workers come from.
    pub source: Workers,
    /// The output directory (absolute).
    pub out: PathBuf,
}

/// A point's identity: what resuming compares.
type PointKey = (Experiment, bool, u64, u64, u64, TaskKind, u32);

fn key(p: &PointResult) -> PointKey {
    (p.experiment, p.simulated, p.workers, p.tasks, (p.duration_s * 1e6).round() as u64, p.kind, p.rep)
}

impl SweepOptions {
    /// Refuse what cannot run, before anything starts.
    pub fn check(&self) -> Result<(), BenchError> {
        if self.workers.is_empty() || self.workers.contains(&0) {
            let flag = if matches!(self.source, Workers::Config { .. }) { "--nodes" } else { "--workers" };
            return Err(BenchError::Invalid(format!("{flag} must list counts of at least 1, e.g. 1,2,4,8")));
        }
        if self.durations.is_empty() {
            return Err(BenchError::Invalid("--durations must list at least one duration, e.g. 0,10ms,100ms".into()));
        }
        super::at_least_one(
            if self.experiment == Experiment::Weak { "--tasks-per-worker" } else { "--tasks" },
            self.tasks,
        )?;
        super::at_least_one("--reps", self.reps as u64)?;
        for &w in &self.workers {
            self.source.shape(w)?;
            if let Workers::Config { config } = &self.source {
                Workers::blocks_for(config, w)?;
            }
        }
        Ok(())
    }

    /// Tasks of a point of `w` workers.
    fn tasks_at(&self, w: u64) -> u64 {
        match self.experiment {
            Experiment::Weak => self.tasks * w,
            _ => self.tasks,
        }
    }
}

/// A DFK on `w` workers and what serves it, until [`Served::stop`]-like teardown on drop.
struct Serving {
    /// From starting the workers until all had registered (a local block: from `mpirun`).
    registration: Duration,
    /// Managers serving the workers.
    managers: u64,
    dfk: Option<Dfk>,
    ends: crossbeam_channel::Receiver<TaskId>,
    executor: Option<Executor>,
    simulated: Option<Served>,
    rss_pid: Option<u32>,
}

impl Serving {
    /// Start `w` workers (for a configuration: a block of `w` nodes) and a DFK on them.
    fn start(source: &Workers, w: u64, run_dir: RunDir) -> Result<Serving, BenchError> {
        let t0 = Instant::now();
        let mut managers = source.shape(w)?.0;
        let (dfk, executor, simulated) = match source {
            Workers::Local { prefetch, launcher } => {
                let t = Target {
                    workers: Some(
                        u32::try_from(w)
                            .map_err(|_| BenchError::Invalid(format!("--workers {w} is too many for a local block")))?,
                    ),
                    prefetch: Some(*prefetch),
                    run_dir: Some(run_dir.path().to_path_buf()),
                    launcher: launcher.clone(),
                    ..Target::default()
                };
                let exe = Executor::open(&t, *prefetch)?;
                let dfk = Dfk::connect(exe.connection(), DfkConfig::default())?;
                (dfk, Some(exe), None)
            }
            Workers::Config { config } => {
                let blocks = Workers::blocks_for(config, w)?;
                let mut cfg = (**config).clone();
                (cfg.strategy.init_blocks, cfg.strategy.min_blocks, cfg.strategy.max_blocks) = (blocks, blocks, blocks);
                let slots = blocks.saturating_mul(cfg.slots_per_block());
                let timeout = cfg.strategy.block_connect_timeout + cfg.strategy.period * 2;
                let exe = Executor::from_config(run_dir, cfg)?;
                exe.wait_warm()?;
                // Every pool of every block, not only each block's first manager.
                managers = exe.wait_for_slots(slots, timeout)? as u64;
                let dfk = Dfk::connect(exe.connection(), DfkConfig::default())?;
                (dfk, Some(exe), None)
            }
            Workers::Simulated { .. } => {
                let (m, per) = source.shape(w)?;
                let served = Served::start(&run_dir, m as usize, per as u32, false, Duration::from_secs(300))?;
                let dfk = Dfk::connect(&served.ix.conn, DfkConfig::default())?;
                (dfk, None, Some(served))
            }
        };
        let registration = simulated.as_ref().map_or(t0.elapsed(), |s| s.registration);
        let rss_pid = executor.as_ref().and_then(Executor::interchange_pid).or(simulated.as_ref().map(|s| s.ix.pid()));
        let ends = dfk.ends();
        // Built first, so that a failed warm-up below tears it all down (on drop).
        let serving = Serving { registration, managers, dfk: Some(dfk), ends, executor, simulated, rss_pid };
        // Warm up: the first tasks pay for connections and page faults.
        let dfk = serving.dfk();
        let warm: Vec<_> = (0..100).map(|_| dfk.submit(point::task(TaskKind::Function, Duration::ZERO))).collect();
        if dfk.wait_all(Some(Duration::from_secs(120))) > 0 || warm.iter().any(|f| !matches!(f.peek(), Some(Ok(_)))) {
            return Err(BenchError::Stalled(format!(
                "the workers of {} at size {w} did not run 100 no-op tasks within 120 s",
                source.name()
            )));
        }
        Ok(serving)
    }

    fn dfk(&self) -> &Dfk {
        self.dfk.as_ref().expect("the DFK lives until drop")
    }

    /// Feed the managers of the first `nodes` nodes' blocks (in the order the blocks were
    /// submitted) and hold the others, so a point of fewer nodes reuses blocks already running.
    fn use_nodes(&mut self, config: &ExecutorConfig, nodes: u64) -> Result<(), BenchError> {
        let exe = self.executor.as_ref().ok_or_else(|| BenchError::Invalid("no executor to resize".into()))?;
        let wanted = Workers::blocks_for(config, nodes)? as usize;
        let mut client = crate::client::Client::connect(exe.connection())?;
        let status = client.status(Duration::from_secs(10))?;
        let mut blocks: Vec<String> = status.managers.iter().map(|m| m.block.0.clone()).collect();
        // Block ids end in their submission number (label-1, label-2, ...).
        blocks.sort_by_key(|b| (b.len(), b.clone()));
        blocks.dedup();
        let fed: Vec<&String> = blocks.iter().take(wanted).collect();
        if fed.len() < wanted {
            return Err(BenchError::Stalled(format!(
                "{nodes} nodes need {wanted} blocks of executor {:?} and {} are connected",
                config.label,
                blocks.len()
            )));
        }
        self.managers = 0;
        for m in &status.managers {
            let feed = fed.contains(&&m.block.0);
            let mode = if feed { crate::wire::ManagerMode::Active } else { crate::wire::ManagerMode::Held };
            if feed {
                self.managers += 1;
            }
            if m.mode != mode {
                let (ok, why) = client.set_mode(m.id, mode, Duration::from_secs(10))?;
                if !ok {
                    return Err(BenchError::Stalled(format!("setting manager {:?} {mode:?}: {why}", m.id)));
                }
            }
        }
        Ok(())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(d) = self.dfk.take() {
            d.shutdown();
        }
        if let Some(e) = self.executor.take() {
            e.stop();
        }
        if let Some(s) = self.simulated.take() {
            let _ = s.stop();
        }
    }
}

/// What a sweep did: every point of its `results.jsonl` (earlier runs' included) and the plots.
#[derive(serde::Serialize, serde::Deserialize, Debug)]
pub struct SweepReport {
    /// "strong" or "weak".
    pub bench: String,
    /// The output directory.
    pub out: String,
    /// Points measured now.
    pub measured: usize,
    /// Points found in `results.jsonl` and not measured again.
    pub resumed: usize,
    /// Tasks that failed in the points measured now.
    pub failed: u64,
    /// Whether the workers were simulated.
    pub simulated: bool,
    /// Plot files written.
    pub plots: Vec<String>,
}

/// A progress bar of points on stderr (drawn only on a terminal).
pub(crate) fn progress(points: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(points), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} points  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Run a strong or weak sweep into `o.out`, skipping points already in its `results.jsonl`.
pub fn sweep(o: &SweepOptions) -> Result<SweepReport, BenchError> {
    o.check()?;
    std::fs::create_dir_all(&o.out).map_err(|e| BenchError::Invalid(format!("--out {}: {e}", o.out.display())))?;
    let simulated = matches!(o.source, Workers::Simulated { .. });
    let earlier = results::read(&o.out).map_err(|e| BenchError::Invalid(e.to_string()))?;
    let done: HashSet<PointKey> = earlier.iter().filter(|p| p.error.is_none()).map(key).collect();
    let provenance = results::this_machine(&o.source.name(), o.source.prefetch());
    let todo = |w: u64| {
        let mut v = vec![];
        for &d in &o.durations {
            for rep in 0..o.reps {
                let p = blank(o, w, d, rep, simulated, &provenance);
                if !done.contains(&key(&p)) {
                    v.push(p);
                }
            }
        }
        v
    };
    // The points each worker count still lacks, worked out once.
    let plan: Vec<(u64, Vec<PointResult>)> =
        o.workers.iter().map(|&w| (w, todo(w))).filter(|(_, points)| !points.is_empty()).collect();
    let total: usize = plan.iter().map(|(_, points)| points.len()).sum();
    let bar = progress(total as u64);
    let mut all = earlier;
    let (mut measured, mut failed) = (0, 0);
    let unit = if matches!(o.source, Workers::Config { .. }) { "nodes" } else { "workers" };
    let run_dir = |w: u64| RunDir::create(Some(&o.out.join("runs").join(format!("{w}-{unit}-{}", std::process::id()))));
    // A configuration's blocks are submitted once, for the largest point left, and reused.
    let largest_left = plan.iter().map(|(w, _)| *w).max();
    let mut shared = match (&o.source, largest_left) {
        (Workers::Config { .. }, Some(largest)) => Some(Serving::start(&o.source, largest, run_dir(largest)?)?),
        _ => None,
    };
    for (w, points) in plan {
        let own;
        let serving = match (&mut shared, &o.source) {
            (Some(s), Workers::Config { config }) => {
                s.use_nodes(config, w)?;
                &*s
            }
            _ => {
                own = Serving::start(&o.source, w, run_dir(w)?)?;
                &own
            }
        };
        for mut p in points {
            let d = Duration::from_secs_f64(p.duration_s);
            let on = if unit == "nodes" { format!(" on {} node(s)", p.nodes) } else { String::new() };
            let label = format!("{} workers{on}, {}, rep {}", p.workers, show_duration(d), p.rep + 1);
            let timeout = Duration::from_secs_f64(60.0 + 10.0 * p.ideal_s.max(p.tasks as f64 * 1e-4));
            let t0 = Instant::now();
            let m = point::run(
                serving.dfk(),
                &serving.ends,
                p.tasks,
                || point::task(o.kind, d),
                timeout,
                |n| {
                    bar.set_message(format!(
                        "{label}: {n}/{} tasks, {:.0}/s",
                        p.tasks,
                        n as f64 / t0.elapsed().as_secs_f64()
                    ))
                },
            )
            .map_err(|e| BenchError::Stalled(format!("{} sweep, {label}: {e}", o.experiment.name())))?;
            fill(&mut p, &m, serving.rss_pid);
            p.managers = serving.managers;
            failed += p.failed;
            results::append(&o.out, &p).map_err(|e| BenchError::Invalid(e.to_string()))?;
            bar.suspend(|| eprintln!("strand: {}: {label}: {}", o.experiment.name(), summary(&p)));
            bar.inc(1);
            measured += 1;
            all.push(p);
        }
    }
    bar.finish_and_clear();
    results::write_csv(&o.out, &all).map_err(|e| BenchError::Invalid(e.to_string()))?;
    let plots = plot::draw_dir(&o.out, &[], &o.out).map_err(|e| BenchError::Invalid(e.to_string()))?;
    Ok(SweepReport {
        bench: o.experiment.name().into(),
        out: o.out.display().to_string(),
        measured,
        resumed: total_points(o) - measured,
        failed,
        simulated,
        plots: plots.iter().map(|p| p.display().to_string()).collect(),
    })
}

fn total_points(o: &SweepOptions) -> usize {
    o.workers.len() * o.durations.len() * o.reps as usize
}

/// A point before it runs, at sweep size `size` (workers, or nodes): its identity and ideal.
fn blank(o: &SweepOptions, size: u64, d: Duration, rep: u32, simulated: bool, prov: &Provenance) -> PointResult {
    let w = o.source.workers_at(size).max(1);
    let tasks = o.tasks_at(w);
    let nodes = match o.source {
        Workers::Config { .. } => size,
        Workers::Local { .. } => 1,
        Workers::Simulated { .. } => 0,
    };
    PointResult {
        simulated,
        nodes,
        managers: o.source.shape(w).map(|(m, _)| m).unwrap_or(1),
        duration_s: d.as_secs_f64(),
        kind: o.kind,
        rep,
        ideal_s: tasks.div_ceil(w) as f64 * d.as_secs_f64(),
        ..PointResult::new(o.experiment, w, tasks, prov.clone())
    }
}

/// Put what a point measured into its line.
fn fill(p: &mut PointResult, m: &point::Measured, rss_pid: Option<u32>) {
    let s = m.makespan.as_secs_f64();
    p.makespan_s = s;
    p.tasks_per_s = p.tasks as f64 / s.max(1e-9);
    p.efficiency = (p.ideal_s > 0.0).then(|| p.ideal_s / s.max(1e-9));
    p.result_p50_s = m.result_quantile_s(0.5);
    p.result_p95_s = m.result_quantile_s(0.95);
    p.result_p99_s = m.result_quantile_s(0.99);
    p.failed = m.failed;
    p.interchange_rss_mib = rss_pid.and_then(crate::host::proc_usage).map_or(0.0, |(hwm, _)| mib(hwm));
    p.ended_unix = crate::block::unix_now();
}

/// Bytes as MiB.
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// One line for people: makespan, rate and efficiency.
fn summary(p: &PointResult) -> String {
    let eff = p.efficiency.map(|e| format!(", efficiency {e:.3}")).unwrap_or_default();
    let failed = if p.failed > 0 { format!(", {} FAILED", p.failed) } else { String::new() };
    format!("{} tasks in {:.3} s, {:.0} tasks/s{eff}{failed}", p.tasks, p.makespan_s, p.tasks_per_s)
}

/// Write a latency run's round trips to `out/results.jsonl` (one line) and plot its histogram
/// and CDF with every latency run in `out`.
pub fn record_latency(out: &Path, l: &super::latency::Latency, exe: &Executor) -> Result<Vec<PathBuf>, BenchError> {
    std::fs::create_dir_all(out).map_err(|e| BenchError::Invalid(format!("--out {}: {e}", out.display())))?;
    let bad = |e: &dyn std::fmt::Display| BenchError::Invalid(e.to_string());
    let mut sorted: Vec<Duration> = l.samples_us.iter().map(|us| Duration::from_secs_f64(us / 1e6)).collect();
    sorted.sort();
    let q = |x: f64| point::quantile(&sorted, x).as_secs_f64();
    let executor = exe.config().map_or("local".to_string(), |c| c.label.clone());
    let mut all = results::read(out).map_err(|e| bad(&e))?;
    let rep = all.iter().filter(|p| p.experiment == Experiment::Latency).count();
    let p = PointResult {
        nodes: exe.config().map_or(1, |c| c.nodes_per_block as u64),
        rep: rep as u32,
        makespan_s: l.samples_us.iter().sum::<f64>() / 1e6,
        tasks_per_s: 1e6 / l.mean_us.max(1e-9),
        result_p50_s: q(0.5),
        result_p95_s: q(0.95),
        result_p99_s: q(0.99),
        failed: l.failed,
        interchange_rss_mib: exe.interchange_pid().and_then(crate::host::proc_usage).map_or(0.0, |(h, _)| mib(h)),
        latencies_us: l.samples_us.clone(),
        ended_unix: crate::block::unix_now(),
        ..PointResult::new(Experiment::Latency, exe.slots() as u64, l.tasks, results::this_machine(&executor, 0))
    };
    results::append(out, &p).map_err(|e| bad(&e))?;
    all.push(p);
    results::write_csv(out, &all).map_err(|e| bad(&e))?;
    plot::draw_dir(out, &[], out).map_err(|e| bad(&e))
}

/// A duration as people write it: `0`, `10ms`, `1.5s`, `250us`.
pub fn show_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us == 0 {
        "0".into()
    } else if us.is_multiple_of(1_000_000) || us >= 10_000_000 {
        format!("{}s", d.as_secs_f64())
    } else if us.is_multiple_of(1000) {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}us")
    }
}

/// Parse a duration as `0`, `250us`, `10ms`, `1.5s` or `2m` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("{s:?} is not a duration (expected e.g. 0, 10ms, 1.5s)"))?;
    Duration::try_from_secs_f64(v * scale).map_err(|_| format!("{s:?} is not a non-negative duration"))
}

/// The default worker counts: powers of two up to the cores of this machine (1, 2, 4, ...).
pub fn default_workers() -> Vec<u64> {
    let cores = std::thread::available_parallelism().map(|n| n.get() as u64).unwrap_or(1);
    std::iter::successors(Some(1u64), |w| Some(w * 2)).take_while(|w| *w <= cores.max(1)).collect()
}

/// An output directory made absolute (once, here at the edge), default `scaling/<bench>`.
pub fn out_dir(given: Option<&Path>, bench: &str) -> Result<PathBuf, BenchError> {
    let p = given.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("scaling").join(bench));
    std::path::absolute(&p).map_err(|e| BenchError::Invalid(format!("--out {}: {e}", p.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_show_as_written() {
        for (text, d) in [
            ("0", Duration::ZERO),
            ("10ms", Duration::from_millis(10)),
            ("100ms", Duration::from_millis(100)),
            ("1s", Duration::from_secs(1)),
            ("1.5s", Duration::from_millis(1500)),
            ("250us", Duration::from_micros(250)),
            ("2m", Duration::from_secs(120)),
            ("0.5", Duration::from_millis(500)),
        ] {
            assert_eq!(parse_duration(text), Ok(d), "{text}");
        }
        assert_eq!(show_duration(Duration::from_millis(10)), "10ms");
        assert_eq!(show_duration(Duration::from_secs(1)), "1s");
        assert_eq!(show_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(show_duration(Duration::ZERO), "0");
        assert!(parse_duration("fast").unwrap_err().contains("\"fast\" is not a duration"));
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn simulated_workers_split_into_equal_managers() {
        let s = Workers::Simulated { per_manager: 128 };
        assert_eq!(s.shape(1).ok(), Some((1, 1)));
        assert_eq!(s.shape(128).ok(), Some((1, 128)));
        assert_eq!(s.shape(1_048_576).ok(), Some((8192, 128)));
        let e = s.shape(200).expect_err("not a multiple");
        assert!(e.to_string().contains("--workers 200 is not a multiple of --workers-per-manager 128"), "{e}");
    }

    #[test]
    fn weak_points_scale_tasks_and_ideals_with_workers() {
        let o = SweepOptions {
            experiment: Experiment::Weak,
            workers: vec![1, 4],
            durations: vec![Duration::from_millis(10)],
            tasks: 10,
            reps: 1,
            kind: TaskKind::Function,
            source: Workers::Local { prefetch: 1, launcher: None },
            out: PathBuf::from("/nonexistent"),
        };
        let prov = results::this_machine("local", 1);
        let p = blank(&o, 4, Duration::from_millis(10), 0, false, &prov);
        assert_eq!((p.tasks, p.workers), (40, 4));
        assert!((p.ideal_s - 0.1).abs() < 1e-12);
        let strong = SweepOptions { experiment: Experiment::Strong, tasks: 10, ..o };
        let q = blank(&strong, 4, Duration::from_millis(10), 0, false, &prov);
        // ceil(10 / 4) = 3 rounds of 10 ms.
        assert_eq!(q.tasks, 10);
        assert!((q.ideal_s - 0.03).abs() < 1e-12);
    }
}
