//! The launcher's options: one typed struct that `strand-launcher`'s command line flattens
//! and an executor config holds (`[executor.launcher]`), so a block script renders flags from
//! fields ([`LauncherOptions::to_args`]) instead of passing strings through.
//!
//! Every field is an `Option`: "not set" means the same on the command line and in a config,
//! and the launcher's default (an accessor here, and the `--help` text) applies. The types need
//! no MPI, so login-node tools build and check them without the launcher.

use crate::executor::launch::LaunchKind;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How `--bind` places a rank on its node's cores.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindPolicy {
    /// Leave the binding the MPI runtime gave (or did not give) the rank.
    None,
    /// One core per rank, in order (rank i on core i), round-robin when ranks outnumber cores.
    Core,
    /// One NUMA domain per rank (or several whole domains when ranks are fewer than domains).
    Numa,
    /// An even share of the node's cores, contiguous and NUMA-aligned when that keeps the
    /// shares even; left alone when the MPI runtime already bound the rank, or when the node
    /// has more ranks than cores (as Open MPI does: pinning then only stops the kernel from
    /// balancing the load).
    #[default]
    Auto,
}

/// How a task's MPI program is started on its ranks' nodes.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskLaunch {
    /// Slurm's `srun`, a job step inside the block's allocation.
    Srun,
    /// `mpiexec` of MPICH Hydra or Cray PALS (`-n -ppn -hosts`).
    Mpiexec,
    /// Open MPI's `mpirun` (`-n --host h:n`).
    Mpirun,
    /// ALPS `aprun` (Cray XC, `-n -N -L`).
    Aprun,
}

impl TaskLaunch {
    /// The task launch of a block started by `kind`: its own launch command, or `None` for a
    /// block of one launcher process ("simple"), which leaves it to the launcher's MPI library.
    pub fn for_launch(kind: LaunchKind) -> Option<TaskLaunch> {
        match kind {
            LaunchKind::Srun => Some(TaskLaunch::Srun),
            LaunchKind::Aprun => Some(TaskLaunch::Aprun),
            LaunchKind::Mpiexec => Some(TaskLaunch::Mpiexec),
            LaunchKind::Mpirun => Some(TaskLaunch::Mpirun),
            LaunchKind::Simple => None,
        }
    }

    /// What started this launcher, read from the variables its MPI runtime set (`get` looks one
    /// up); when none is there, the launch command of `mpi_library` (its version string).
    pub fn detect(get: impl Fn(&str) -> Option<String>, mpi_library: &str) -> TaskLaunch {
        let has = |k: &str| get(k).is_some();
        if has("SLURM_STEP_ID") {
            TaskLaunch::Srun
        } else if has("ALPS_APP_PE") {
            TaskLaunch::Aprun
        } else if has("OMPI_COMM_WORLD_SIZE") {
            TaskLaunch::Mpirun
        } else if has("PMI_RANK") || has("PALS_RANKID") {
            TaskLaunch::Mpiexec
        } else if mpi_library.contains("Open MPI") {
            TaskLaunch::Mpirun
        } else {
            TaskLaunch::Mpiexec
        }
    }
}

/// Default of `--slots-per-worker`, `--local-slots` and `--prefetch`.
const DEFAULT_ONE: u32 = 1;
/// Default of `--drain-margin`, in seconds.
pub const DEFAULT_DRAIN_MARGIN_S: u64 = 300;
/// Default of `--worker-heartbeat`, in seconds.
const DEFAULT_WORKER_HEARTBEAT_S: f64 = 1.0;
/// Default of `--worker-threshold`, in seconds.
const DEFAULT_WORKER_THRESHOLD_S: f64 = 30.0;
/// Default of `--connect-timeout`, in seconds.
const DEFAULT_CONNECT_TIMEOUT_S: u64 = 120;
/// Default of `--resource-interval`, in seconds: a row per running try every 10 s is cheap for
/// SQLite up to ~100,000 busy workers; larger runs raise it.
const DEFAULT_RESOURCE_INTERVAL_S: f64 = 10.0;

/// Options of `strand-launcher` beyond its connection file, block id and logging; the same
/// struct is an executor's `[executor.launcher]` table (its keys are the flags' names with `_`).
#[derive(clap::Args, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LauncherOptions {
    /// Ranks per pool (one manager + workers). Default: one pool per node.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub pool_size: Option<u32>,
    /// The block's walltime in seconds, counted from launcher start (e.g. from the job script).
    #[arg(long, value_name = "SECONDS")]
    pub walltime: Option<u64>,
    /// Start draining this many seconds before --walltime ends: no new tasks, finish the held
    /// ones. [default: 300]
    #[arg(long, value_name = "SECONDS")]
    pub drain_margin: Option<u64>,
    /// GPUs per node that tasks may ask for (`resources.gpus`). Default: those in $CUDA_VISIBLE_DEVICES, else none.
    #[arg(long, value_name = "N")]
    pub gpus_per_node: Option<u32>,
    /// How each rank is bound to cores. auto: an even share of the node's cores unless the MPI
    /// runtime already bound the rank (or the node has more ranks than cores); core: one core
    /// per rank, round-robin when oversubscribed; numa: a NUMA domain per rank; none: leave it.
    /// Task processes inherit their rank's binding. [default: auto]
    #[arg(long, value_enum, value_name = "POLICY")]
    pub bind: Option<BindPolicy>,
    /// How tasks start MPI programs on their ranks' nodes: the launch command that
    /// `$STRAND_MPI_PREFIX` is composed for. Default: the one that started this launcher
    /// (read from its MPI runtime's variables), else the MPI library's own (mpirun for Open MPI,
    /// mpiexec for the others). Block scripts pass their executor's `launch`.
    #[arg(long, value_enum, value_name = "LAUNCH")]
    pub task_launch: Option<TaskLaunch>,
    /// Tasks each worker rank runs at once (>1 for one rank per node owning several slots). [default: 1]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub slots_per_worker: Option<u32>,
    /// Tasks each worker holds beyond its running ones, so short tasks never wait a round trip. [default: 1]
    #[arg(long, value_name = "N")]
    pub prefetch: Option<u32>,
    /// Task slots of a manager whose pool has no workers (a pool of one rank runs tasks itself). [default: 1]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub local_slots: Option<u32>,
    /// Seconds between a worker's heartbeats to its manager (over MPI). [default: 1]
    #[arg(long, value_name = "SECONDS", value_parser = positive_secs)]
    pub worker_heartbeat: Option<f64>,
    /// Seconds of silence after which a manager declares a worker lost (its tries fail with
    /// WorkerLost). [default: 30]
    #[arg(long, value_name = "SECONDS", value_parser = positive_secs)]
    pub worker_threshold: Option<f64>,
    /// Seconds to wait for the interchange to answer registration before giving up. [default: 120]
    #[arg(long, value_name = "SECONDS")]
    pub connect_timeout: Option<u64>,
    /// Seconds between resource samples: each rank reads the CPU time and resident memory of
    /// its running commands and Python tries (with their child processes) and its node's load
    /// and memory from /proc; managers send them to the run database. 0: off. [default: 10]
    #[arg(long, value_name = "SECONDS", value_parser = interval_secs)]
    pub resource_interval: Option<f64>,
}

/// An interval on the command line: a number of seconds, 0 (off) or more.
fn interval_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if is_interval_secs(v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds (0 for off, or more)")),
    }
}

/// Whether `v` is usable as a sampling interval: 0 (off), or as [`is_positive_secs`].
pub fn is_interval_secs(v: f64) -> bool {
    v == 0.0 || is_positive_secs(v)
}

/// A number of seconds on the command line: finite and more than zero.
fn positive_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if is_positive_secs(v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds more than zero")),
    }
}

/// Whether `v` is usable as a heartbeat or threshold: finite, more than zero, below 1e9 s.
pub fn is_positive_secs(v: f64) -> bool {
    v.is_finite() && v > 0.0 && v < 1e9
}

impl LauncherOptions {
    /// Tasks each worker rank runs at once.
    pub fn slots_per_worker(&self) -> u32 {
        self.slots_per_worker.unwrap_or(DEFAULT_ONE).max(1)
    }

    /// Tasks each worker holds beyond its running ones.
    pub fn prefetch(&self) -> u32 {
        self.prefetch.unwrap_or(DEFAULT_ONE)
    }

    /// Task slots of a manager whose pool has no workers.
    pub fn local_slots(&self) -> u32 {
        self.local_slots.unwrap_or(DEFAULT_ONE).max(1)
    }

    /// Seconds before the walltime at which managers start draining.
    pub fn drain_margin(&self) -> u64 {
        self.drain_margin.unwrap_or(DEFAULT_DRAIN_MARGIN_S)
    }

    /// The placement policy.
    pub fn bind(&self) -> BindPolicy {
        self.bind.unwrap_or_default()
    }

    /// Time between a worker's heartbeats.
    pub fn worker_heartbeat(&self) -> Duration {
        secs(self.worker_heartbeat, DEFAULT_WORKER_HEARTBEAT_S)
    }

    /// Silence after which a worker is lost.
    pub fn worker_threshold(&self) -> Duration {
        secs(self.worker_threshold, DEFAULT_WORKER_THRESHOLD_S)
    }

    /// How long registration may take.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT_S))
    }

    /// Time between resource samples; `None`: not sampled.
    pub fn resource_interval(&self) -> Option<Duration> {
        match self.resource_interval {
            Some(0.0) => None,
            v => Some(secs(v, DEFAULT_RESOURCE_INTERVAL_S)),
        }
    }

    /// The set options as `strand-launcher` flags, in field order (parsing them gives `self`).
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![];
        let mut flag = |name: &str, v: Option<String>| {
            if let Some(v) = v {
                a.extend([format!("--{name}"), v]);
            }
        };
        let num = |v: Option<u32>| v.map(|v| v.to_string());
        let big = |v: Option<u64>| v.map(|v| v.to_string());
        let real = |v: Option<f64>| v.map(|v| v.to_string());
        flag("pool-size", num(self.pool_size));
        flag("walltime", big(self.walltime));
        flag("drain-margin", big(self.drain_margin));
        flag("gpus-per-node", num(self.gpus_per_node));
        flag("bind", self.bind.map(value_name));
        flag("task-launch", self.task_launch.map(value_name));
        flag("slots-per-worker", num(self.slots_per_worker));
        flag("prefetch", num(self.prefetch));
        flag("local-slots", num(self.local_slots));
        flag("worker-heartbeat", real(self.worker_heartbeat));
        flag("worker-threshold", real(self.worker_threshold));
        flag("connect-timeout", big(self.connect_timeout));
        flag("resource-interval", real(self.resource_interval));
        a
    }
}

/// The name a value of a clap enum is written as on the command line.
fn value_name<T: ValueEnum>(v: T) -> String {
    v.to_possible_value().map(|p| p.get_name().to_string()).unwrap_or_default()
}

/// Seconds as a duration, clamped so that a value set through the library cannot panic a rank.
fn secs(v: Option<f64>, default: f64) -> Duration {
    let s = v.unwrap_or(default);
    Duration::from_secs_f64(if s.is_finite() { s.clamp(0.001, 1e9) } else { default })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::Parser;

    /// Options with every field set (a new field must be added here, and so to the tests).
    pub(crate) fn every_option_set() -> LauncherOptions {
        LauncherOptions {
            pool_size: Some(8),
            walltime: Some(7200),
            drain_margin: Some(60),
            gpus_per_node: Some(4),
            bind: Some(BindPolicy::Numa),
            task_launch: Some(TaskLaunch::Srun),
            slots_per_worker: Some(2),
            prefetch: Some(0),
            local_slots: Some(64),
            worker_heartbeat: Some(0.25),
            worker_threshold: Some(90.0),
            connect_timeout: Some(600),
            resource_interval: Some(2.5),
        }
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        options: LauncherOptions,
    }

    fn parse(args: &[String]) -> LauncherOptions {
        let argv = std::iter::once("strand-launcher".to_string()).chain(args.iter().cloned());
        Cli::try_parse_from(argv).map(|c| c.options).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn to_args_parses_back_to_the_same_options() {
        let all = every_option_set();
        for o in [LauncherOptions::default(), all.clone(), LauncherOptions { prefetch: Some(3), ..Default::default() }]
        {
            assert_eq!(parse(&o.to_args()), o);
        }
        assert_eq!(
            all.to_args().join(" "),
            "--pool-size 8 --walltime 7200 --drain-margin 60 --gpus-per-node 4 --bind numa --task-launch srun \
             --slots-per-worker 2 --prefetch 0 --local-slots 64 --worker-heartbeat 0.25 --worker-threshold 90 \
             --connect-timeout 600 --resource-interval 2.5"
        );
    }

    #[test]
    fn unset_options_take_the_launcher_defaults() {
        let o = LauncherOptions::default();
        assert!(o.to_args().is_empty());
        assert_eq!((o.slots_per_worker(), o.prefetch(), o.local_slots(), o.drain_margin()), (1, 1, 1, 300));
        assert_eq!(o.bind(), BindPolicy::Auto);
        assert_eq!(o.worker_heartbeat(), Duration::from_secs(1));
        assert_eq!(o.worker_threshold(), Duration::from_secs(30));
        assert_eq!(o.connect_timeout(), Duration::from_secs(120));
        assert_eq!(o.resource_interval(), Some(Duration::from_secs(10)));
        assert_eq!(LauncherOptions { resource_interval: Some(0.0), ..o }.resource_interval(), None);
    }

    #[test]
    fn help_states_the_defaults_the_accessors_use() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string().replace('\n', " ");
        let help: String = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for (flag, default) in [
            ("--drain-margin", DEFAULT_DRAIN_MARGIN_S.to_string()),
            ("--bind", "auto".to_string()),
            ("--slots-per-worker", DEFAULT_ONE.to_string()),
            ("--prefetch", DEFAULT_ONE.to_string()),
            ("--local-slots", DEFAULT_ONE.to_string()),
            ("--worker-heartbeat", DEFAULT_WORKER_HEARTBEAT_S.to_string()),
            ("--worker-threshold", DEFAULT_WORKER_THRESHOLD_S.to_string()),
            ("--connect-timeout", DEFAULT_CONNECT_TIMEOUT_S.to_string()),
            ("--resource-interval", DEFAULT_RESOURCE_INTERVAL_S.to_string()),
        ] {
            let at = help.find(&format!("{flag} <")).unwrap_or_else(|| panic!("{flag} not in help"));
            // This flag's text ends where the next flag's `--name <VALUE>` begins.
            let starts_flag = |i: &usize| help[i + 1..].split(' ').nth(1).is_some_and(|w| w.starts_with('<'));
            let next = help.match_indices(" --").map(|(i, _)| i).filter(|i| *i > at).find(starts_flag);
            let next = next.unwrap_or(help.len());
            assert!(help[at..next].contains(&format!("[default: {default}]")), "{flag}: {}", &help[at..next]);
        }
    }

    #[test]
    fn bad_seconds_are_refused_on_the_command_line() {
        for bad in ["0", "-1", "nan", "inf", "soon"] {
            let argv = ["strand-launcher".to_string(), format!("--worker-heartbeat={bad}")];
            let e = Cli::try_parse_from(argv).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(e.to_string().contains("not a number of seconds more than zero"), "{e}");
        }
    }

    #[test]
    fn a_config_table_reads_into_the_same_struct() {
        let o: LauncherOptions =
            toml::from_str("prefetch = 2\nbind = \"core\"\nworker_heartbeat = 2\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            o,
            LauncherOptions {
                prefetch: Some(2),
                bind: Some(BindPolicy::Core),
                worker_heartbeat: Some(2.0),
                ..Default::default()
            }
        );
        let e = toml::from_str::<LauncherOptions>("prefetch_depth = 2\n").err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("unknown field `prefetch_depth`")));
    }

    #[test]
    fn what_started_the_launcher_is_read_from_its_runtime() {
        let only = |key: &'static str| move |k: &str| (k == key).then(|| "1".to_string());
        assert_eq!(TaskLaunch::detect(only("SLURM_STEP_ID"), ""), TaskLaunch::Srun);
        assert_eq!(TaskLaunch::detect(only("OMPI_COMM_WORLD_SIZE"), ""), TaskLaunch::Mpirun);
        assert_eq!(TaskLaunch::detect(only("PMI_RANK"), ""), TaskLaunch::Mpiexec);
        assert_eq!(TaskLaunch::detect(only("ALPS_APP_PE"), ""), TaskLaunch::Aprun);
        assert_eq!(TaskLaunch::detect(|_| None, "Open MPI v4.1.4"), TaskLaunch::Mpirun);
        assert_eq!(TaskLaunch::detect(|_| None, "MPICH Version: 4.1"), TaskLaunch::Mpiexec);
        // A block's own launch command, except for a block of one process.
        assert_eq!(TaskLaunch::for_launch(LaunchKind::Srun), Some(TaskLaunch::Srun));
        assert_eq!(TaskLaunch::for_launch(LaunchKind::Aprun), Some(TaskLaunch::Aprun));
        assert_eq!(TaskLaunch::for_launch(LaunchKind::Simple), None);
    }
}
