//! `strand bench sim`: a real interchange process, simulated managers (real ZeroMQ, no MPI)
//! and a DFK in this process; measures the interchange alone.

use super::simulator::{self, Simulator};
use super::{at_least_one, noop, BenchError};
use crate::dfk::{Dfk, DfkConfig, TaskFuture};
use crate::interchange::process::{InterchangeOptions, InterchangeProcess};
use crate::run_dir::RunDir;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to run the simulation.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Simulated managers (each a real ZeroMQ connection).
    pub managers: usize,
    /// Task slots each advertises.
    pub workers_per_manager: u32,
    /// No-op tasks.
    pub tasks: u64,
    /// Pin the interchange to CPU 0 and this process to the other CPUs.
    pub pin: bool,
    /// Give up when the managers have not all registered within this.
    pub registration_timeout: Duration,
}

/// What `strand bench sim` measured.
#[derive(Serialize, Debug)]
pub struct Sim {
    /// Always "sim".
    pub bench: &'static str,
    /// Simulated managers.
    pub managers: usize,
    /// Slots per manager.
    pub workers_per_manager: u32,
    /// Slots in all.
    pub workers: u64,
    /// Tasks submitted.
    pub tasks: u64,
    /// Tasks that ended in success.
    pub done: u64,
    /// Tasks not finished when the wait ended.
    pub not_finished: usize,
    /// Tries the simulated managers answered (equals `tasks` when each was answered once).
    pub answered_by_managers: u64,
    /// Seconds until every manager was registered.
    pub registration_s: f64,
    /// Seconds from the first submit to the last result.
    pub seconds: f64,
    /// Tasks per second.
    pub tasks_per_s: f64,
    /// The interchange's resident memory at the end, MiB.
    pub interchange_peak_rss_mib: f64,
    /// CPU seconds the interchange spent on the tasks.
    pub interchange_cpu_s: f64,
    /// Tasks per CPU second of the interchange.
    pub interchange_tasks_per_cpu_s: f64,
    /// Whether the processes were pinned.
    pub pinned: bool,
}

/// Run the simulation in `run_dir`.
pub fn run(run_dir: &RunDir, o: &SimOptions) -> Result<Sim, BenchError> {
    at_least_one("--managers", o.managers as u64)?;
    at_least_one("--workers-per-manager", o.workers_per_manager as u64)?;
    at_least_one("--tasks", o.tasks)?;
    let served = Served::start(run_dir, o.managers, o.workers_per_manager, o.pin, o.registration_timeout)?;
    let (registration_s, pinned) = (served.registration.as_secs_f64(), served.pinned);
    let ix = &served.ix;
    let (_, cpu0) = crate::host::proc_usage(ix.pid()).unwrap_or((0, 0.0));
    let dfk = Dfk::connect(&ix.conn, DfkConfig::default())?;
    let start = Instant::now();
    let futures: Vec<TaskFuture> = (0..o.tasks).map(|_| dfk.submit(noop())).collect();
    let left = dfk.wait_all(Some(Duration::from_secs(1800)));
    let seconds = start.elapsed().as_secs_f64();
    let (rss, cpu1) = crate::host::proc_usage(ix.pid()).unwrap_or((0, 0.0));
    let done = futures.iter().filter(|f| matches!(f.peek(), Some(Ok(_)))).count() as u64;
    dfk.shutdown();
    let report = served.stop()?;
    Ok(Sim {
        bench: "sim",
        managers: o.managers,
        workers_per_manager: o.workers_per_manager,
        workers: o.managers as u64 * o.workers_per_manager as u64,
        tasks: o.tasks,
        done,
        not_finished: left,
        answered_by_managers: report.answered,
        registration_s,
        seconds,
        tasks_per_s: o.tasks as f64 / seconds,
        interchange_peak_rss_mib: rss as f64 / (1 << 20) as f64,
        interchange_cpu_s: cpu1 - cpu0,
        interchange_tasks_per_cpu_s: o.tasks as f64 / (cpu1 - cpu0).max(0.01),
        pinned,
    })
}

/// A real interchange process served by simulated managers, until [`Served::stop`].
pub struct Served {
    /// The interchange.
    pub ix: InterchangeProcess,
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<simulator::SimReport>,
    /// How long until every simulated manager was registered.
    pub registration: Duration,
    /// Whether the interchange (CPU 0) and this process (the others) were pinned apart.
    pub pinned: bool,
}

impl Served {
    /// Start an interchange in `run_dir` and `managers` simulated managers of
    /// `workers_per_manager` slots each; returns once all are registered (or fails at `timeout`).
    pub fn start(
        run_dir: &RunDir,
        managers: usize,
        workers_per_manager: u32,
        pin: bool,
        timeout: Duration,
    ) -> Result<Served, BenchError> {
        // ZeroMQ takes three descriptors per socket here (6,185 open for 2,048 managers), and the
        // interchange one per peer.
        crate::host::raise_fd_limit(3 * managers as u64 + 256, &format!("{managers} simulated managers"))
            .map_err(|e| BenchError::Invalid(e.to_string()))?;
        // The interchange's own heartbeat defaults: simulated managers heartbeat every 10 s.
        let ix_opts = InterchangeOptions {
            max_managers: Some(managers as u64),
            ..InterchangeOptions::remote("127.0.0.1".into())
        };
        let ix = InterchangeProcess::start(run_dir, &ix_opts)?;
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let pinned = pin && cores >= 2;
        if pinned {
            let pin = |pid, cpus: &[usize], what: &str| {
                crate::host::pin_to_cpus(pid, cpus).map_err(|e| BenchError::Invalid(format!("pinning {what}: {e}")))
            };
            pin(ix.pid(), &[0], "the interchange to CPU 0")?;
            pin(0, &(1..cores).collect::<Vec<_>>(), "this process")?;
        }
        let sim = Simulator::connect(&ix.conn, managers, workers_per_manager)
            .map_err(|e| BenchError::Stalled(format!("connecting the simulated managers: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let registered = Arc::new(AtomicBool::new(false));
        let handle = simulator::spawn(sim, Arc::clone(&stop), Arc::clone(&registered));
        let t0 = Instant::now();
        while !registered.load(Ordering::Relaxed) {
            if t0.elapsed() > timeout || handle.is_finished() {
                stop.store(true, Ordering::Relaxed);
                let seen = handle.join().map(|r| r.registered).unwrap_or(0);
                return Err(BenchError::Stalled(format!(
                    "{seen} of {managers} simulated managers registered within {timeout:?}; see `strand status --connection {}`",
                    run_dir.connection_file().display()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(Served { ix, stop, handle, registration: t0.elapsed(), pinned })
    }

    /// Stop the simulated managers, then the interchange; what the managers answered.
    pub fn stop(self) -> Result<simulator::SimReport, BenchError> {
        self.stop.store(true, Ordering::Relaxed);
        let report = self.handle.join().map_err(|_| BenchError::Stalled("the simulator thread panicked".into()));
        self.ix.stop(Duration::from_secs(10));
        report
    }
}
