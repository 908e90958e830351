//! The SPMD launcher: pools, managers, workers and task execution.
//!
//! Started by srun, aprun or mpiexec on every rank of a block. `MPI_COMM_WORLD`
//! is split into pools; rank 0 of each pool is its [`manager`], the others are
//! [`worker`]s. A user with their own functions builds their own launcher:
//!
//! ```no_run
//! use clap::Parser;
//! let mut registry = strand_launcher::exec::Registry::with_builtins();
//! registry.register("square", |args: &[u8]| {
//!     let x: i64 = std::str::from_utf8(args).map_err(|e| e.to_string())?
//!         .trim().parse().map_err(|e: std::num::ParseIntError| e.to_string())?;
//!     Ok((x * x).to_string().into_bytes())
//! });
//! // An MPI function: called on every rank of its try with their communicator (docs/mpi-tasks.md).
//! registry.register_mpi("rank_sum", |comm, _args| {
//!     use mpi::collective::{CommunicatorCollectives, SystemOperation};
//!     use mpi::topology::Communicator;
//!     let mut sum = 0i64;
//!     comm.all_reduce_into(&i64::from(comm.rank()), &mut sum, SystemOperation::sum());
//!     Ok(sum.to_string().into_bytes()) // rank 0's value is the result
//! });
//! let args = strand_launcher::LauncherArgs::parse();
//! std::process::exit(strand_launcher::launch(args, registry));
//! ```

pub mod backoff;
pub mod exec;
pub mod group;
pub mod manager;
pub mod placement;
pub mod pool_msg;
pub mod sampler;
pub mod stop;
pub mod task_mpi;
pub mod wide;
pub mod worker;

use clap::Parser;
use exec::{Executor, Registry};
use manager::{run_manager, ManagerConfig};
use mpi::topology::{Color, Communicator, SimpleCommunicator};
use placement::NodeRank;
use slog::{error, info, o};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use stop::StopFlag;
use strand::connection::ConnectionInfo;
use strand::launcher_options::LauncherOptions;
use strand::task::ManagerId;

/// Command-line options of `strand-launcher` (shared by user-built launchers).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "strand-launcher",
    version,
    about = "Strand's SPMD launcher: start it on every rank with srun, aprun, mpiexec or mpirun",
    long_about = "Splits MPI_COMM_WORLD into pools. Rank 0 of each pool is a manager that \
registers with the interchange named in the connection file and feeds tasks to the other \
ranks of its pool (its workers) over MPI. Every rank exits 0 when the interchange says stop, \
on SIGTERM, or when the interchange has been silent past its heartbeat threshold.\n\n\
Example: mpirun -n 9 strand-launcher --connection runs/demo/connection.json --pool-size 3"
)]
pub struct LauncherArgs {
    /// Connection file written by `strand interchange` (mode 0600, in the run directory).
    #[arg(long, value_name = "FILE")]
    pub connection: PathBuf,
    /// Block id to register under. Default: $STRAND_BLOCK_ID, $SLURM_JOB_ID, $PBS_JOBID ... or "local".
    #[arg(long, value_name = "ID")]
    pub block_id: Option<String>,
    /// Pools, slots, placement, draining and liveness (the `[executor.launcher]` table of a config).
    #[command(flatten)]
    pub options: LauncherOptions,
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Warnings and errors only.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Split the world into pools: `pool_size` consecutive ranks each, or one pool per node.
fn split_pools(world: &SimpleCommunicator, pool_size: Option<u32>) -> Option<SimpleCommunicator> {
    match pool_size {
        Some(n) => world.split_by_color(Color::with_value(world.rank() / n as i32)),
        None => Some(world.split_shared(world.rank())),
    }
}

/// This rank's place among the launcher's ranks on its node (`MPI_Comm_split_type(SHARED)`).
fn node_rank(world: &SimpleCommunicator) -> NodeRank {
    let node = world.split_shared(world.rank());
    // Ranks and sizes are never negative; 0 and 1 are the harmless answers if they were.
    NodeRank { index: u32::try_from(node.rank()).unwrap_or(0), count: u32::try_from(node.size()).unwrap_or(1) }
}

/// Make MPI errors on `comm` (a pool's, or a try's) return instead of aborting the whole world.
pub(crate) fn errors_return(pool: &SimpleCommunicator) {
    use mpi::raw::AsRaw;
    // SAFETY: a valid communicator handle and the predefined MPI_ERRORS_RETURN handler.
    unsafe {
        mpi::ffi::MPI_Comm_set_errhandler(pool.as_raw(), mpi::ffi::RSMPI_ERRORS_RETURN);
    }
}

/// Linux stretches short timed sleeps by up to the thread's timer slack (50 us by default),
/// which would dominate the backoff's 10-50 us polls; 1 us keeps them honest.
fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes a nanosecond count and affects only this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0) };
}

/// Run this rank as manager or worker; returns the process exit code (0 on every clean stop).
pub fn launch(args: LauncherArgs, registry: Registry) -> i32 {
    tighten_timer_slack();
    let stop = match StopFlag::on_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("strand-launcher: cannot install signal handlers: {e}");
            return 2;
        }
    };
    let Some((universe, _threading)) = mpi::initialize_with_threading(mpi::Threading::Funneled) else {
        eprintln!("strand-launcher: MPI was already initialized");
        return 2;
    };
    let world = universe.world();
    let root_log = strand::log::stderr_logger(strand::log::level(args.verbose, args.quiet));
    let log = root_log.new(o!("rank" => world.rank()));
    // Before any thread of ours starts (executor, ZeroMQ), so each inherits the binding;
    // MPI's own threads exist already and are bound with the process.
    let placed = placement::place(args.options.bind(), node_rank(&world), &log);
    // Workers tell their manager where they run, so a wide try gets all its ranks' cores.
    let cpus = placed.map(|p| p.pus).or_else(placement::current_cpus);
    let mpi_library = mpi::environment::library_version().unwrap_or_default();
    let task_launch = args
        .options
        .task_launch
        .unwrap_or_else(|| task_mpi::TaskLaunch::detect(|k| std::env::var(k).ok(), &mpi_library));
    let mpi_launch = task_mpi::MpiLaunch { kind: task_launch, as_root: strand::process::is_root() };
    // Read before any task starts (and before our threads: the environment is read, not changed).
    let _ = task_mpi::runtime_vars();
    task_mpi::set_one_rank_env(&mpi_launch, &strand::host::node_name());
    let Some(pool) = split_pools(&world, args.options.pool_size) else {
        error!(log, "MPI_Comm_split returned no communicator");
        return 2;
    };
    errors_return(&pool);
    let registry = Arc::new(registry);
    let code = if pool.rank() == 0 {
        run_as_manager(&args, &pool, registry, mpi_launch, &stop, &log)
    } else {
        // Slots are numbered through the pool (rank 1's first, then rank 2's ...), so that a
        // pool's running commands have distinct STRAND_SLOTs, as GNU parallel's slots on one host.
        let per_worker = u64::from(args.options.slots_per_worker());
        let first_slot = (pool.rank() as u64 - 1) * per_worker + 1;
        let exec = Executor::numbered(per_worker as usize, first_slot, Arc::clone(&registry));
        let timers = worker::WorkerTimers {
            heartbeat: args.options.worker_heartbeat(),
            resource_interval: args.options.resource_interval(),
        };
        worker::run_worker(&pool, exec, &registry, &timers, cpus.as_ref(), &stop, &log);
        0
    };
    drop(pool);
    drop(universe); // MPI_Finalize
    drop(log);
    drop(root_log); // flush the async drain
    code
}

fn run_as_manager(
    args: &LauncherArgs,
    pool: &SimpleCommunicator,
    registry: Arc<Registry>,
    mpi: task_mpi::MpiLaunch,
    stop: &StopFlag,
    log: &slog::Logger,
) -> i32 {
    let conn = match ConnectionInfo::load(&args.connection) {
        Ok(c) => c,
        Err(e) => {
            error!(log, "cannot use the connection file"; "error" => %e);
            // Workers still wait for work: release them before failing.
            release_workers(pool);
            return 1;
        }
    };
    let id = match strand::wire::random_id() {
        Ok(id) => ManagerId(id),
        Err(e) => {
            error!(log, "no randomness for a manager id"; "error" => %e);
            release_workers(pool);
            return 1;
        }
    };
    let o = &args.options;
    let cfg = ManagerConfig {
        id,
        block: args.block_id.clone().unwrap_or_else(strand::host::block_id_from_env),
        slots_per_worker: o.slots_per_worker(),
        prefetch: o.prefetch(),
        local_slots: o.local_slots(),
        connect_timeout: o.connect_timeout(),
        drain_at: o
            .walltime
            .map(|w| std::time::Instant::now() + Duration::from_secs(w.saturating_sub(o.drain_margin()))),
        worker_threshold: o.worker_threshold(),
        gpu_ids: crate::wide::gpu_ids(o.gpus_per_node, std::env::var("CUDA_VISIBLE_DEVICES").ok()),
        mpi,
        mpi_functions: registry.mpi_names().into_iter().map(str::to_string).collect(),
        resource_interval: o.resource_interval(),
    };
    let local = (pool.size() == 1).then(|| Executor::new(o.local_slots() as usize, registry));
    match run_manager(pool, &conn, cfg, local, stop, log) {
        Ok(exit) => {
            info!(log, "manager done"; "why" => ?exit);
            0
        }
        Err(e) => {
            error!(log, "manager failed"; "error" => %e);
            release_workers(pool);
            1
        }
    }
}

fn release_workers(pool: &SimpleCommunicator) {
    use mpi::point_to_point::Destination;
    for r in 1..pool.size() {
        pool.process_at_rank(r).send_with_tag(&[0u8; 0][..], pool_msg::TAG_STOP);
    }
}
