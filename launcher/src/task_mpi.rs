//! What an MPI task is told: the launch-command prefix for its ranks, and a clean MPI environment.
//!
//! A command that runs an MPI program writes `$STRAND_MPI_PREFIX ./app`: the prefix is composed
//! here for the launch command of the task's block (srun, Hydra or PALS mpiexec, Open MPI
//! mpirun, aprun) and for the hosts its reserved ranks are on, as Parsl composes
//! `$PARSL_MPI_PREFIX`. `STRAND_NUM_RANKS`, `STRAND_NUM_NODES`, `STRAND_NODELIST` and
//! `STRAND_RANKS_PER_NODE` say the same in parts.
//!
//! Every task's child also loses the variables the MPI runtime set for the launcher rank it runs
//! under (`OMPI_COMM_WORLD_*`, `PMIX_*`, `PMI_*` ...): a program that inherited them would try to
//! join the launcher's own job as a rank that already exists, and fail in `MPI_Init`. Without
//! them it starts as an MPI singleton, or under the prefix as a job of its own. A user's own MPI
//! settings (`OMPI_MCA_btl`, `OMPI_ALLOW_RUN_AS_ROOT` ...) are kept.
//!
//! Plain data and pure functions, except [`runtime_vars`] and [`set_one_rank_env`], which hold
//! facts of this process (its environment, its host), set once before any task runs.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::OnceLock;

/// How a task's MPI program is started (an option of the launcher, so it lives in the root crate).
pub use strand::launcher_options::TaskLaunch;

/// How this launcher composes `STRAND_MPI_PREFIX`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpiLaunch {
    /// The launch command.
    pub kind: TaskLaunch,
    /// This user is root (Open MPI's mpirun refuses to start then unless told).
    pub as_root: bool,
}

impl MpiLaunch {
    /// The variables a task whose MPI ranks run on `rank_hosts` (one entry per rank, in rank
    /// order) is given: the prefix and its parts. Nothing for no ranks.
    pub fn env(&self, rank_hosts: &[String]) -> Vec<(String, String)> {
        if rank_hosts.is_empty() {
            return vec![];
        }
        let nodes = Nodes::of(rank_hosts);
        vec![
            ("STRAND_MPI_PREFIX".into(), self.prefix(&nodes)),
            ("STRAND_NUM_RANKS".into(), nodes.ranks.to_string()),
            ("STRAND_NUM_NODES".into(), nodes.hosts.len().to_string()),
            ("STRAND_NODELIST".into(), nodes.names().join(",")),
            ("STRAND_RANKS_PER_NODE".into(), nodes.per_node().to_string()),
        ]
    }

    /// The launch command's words for `nodes`, joined (host names are shell-safe words).
    fn prefix(&self, nodes: &Nodes) -> String {
        let (r, n, ppn, list) = (nodes.ranks, nodes.hosts.len(), nodes.per_node(), nodes.names().join(","));
        match self.kind {
            // --overlap (Slurm 20.11 and later): the launcher's own step holds every CPU and all
            // the memory of its nodes, and a step that may not share them would wait for ever.
            TaskLaunch::Srun => {
                format!("srun --ntasks={r} --nodes={n} --nodelist={list} --overlap --kill-on-bad-exit=1")
            }
            TaskLaunch::Mpiexec => format!("mpiexec -n {r} -ppn {ppn} -hosts {list}"),
            TaskLaunch::Mpirun => {
                let root = if self.as_root { "--allow-run-as-root " } else { "" };
                let slots: Vec<String> = nodes.hosts.iter().map(|(h, k)| format!("{h}:{k}")).collect();
                // The task already runs on its reserved ranks' cores (their union); binding each
                // rank to a core of its own could ask for more cores than that union has.
                format!("mpirun {root}--bind-to none -n {r} --host {}", slots.join(","))
            }
            TaskLaunch::Aprun => {
                let nids: Vec<String> = nodes.names().iter().map(|h| nid(h)).collect();
                format!("aprun -n {r} -N {ppn} -L {}", nids.join(","))
            }
        }
    }
}

/// A try's ranks per host, hosts in the order of their first rank.
struct Nodes {
    hosts: Vec<(String, usize)>,
    ranks: usize,
}

impl Nodes {
    fn of(rank_hosts: &[String]) -> Nodes {
        let mut hosts: Vec<(String, usize)> = vec![];
        let mut at: BTreeMap<&str, usize> = BTreeMap::new();
        for h in rank_hosts {
            match at.get(h.as_str()) {
                Some(&i) => hosts[i].1 += 1,
                None => {
                    at.insert(h, hosts.len());
                    hosts.push((h.clone(), 1));
                }
            }
        }
        Nodes { hosts, ranks: rank_hosts.len() }
    }

    fn names(&self) -> Vec<&str> {
        self.hosts.iter().map(|(h, _)| h.as_str()).collect()
    }

    /// The most ranks on one node (what `-ppn`/`-N` ask for; nodes may have fewer).
    fn per_node(&self) -> usize {
        self.hosts.iter().map(|(_, k)| *k).max().unwrap_or(0)
    }
}

/// ALPS's node id of a Cray host name (`nid00012` is 12); other names are passed as they are.
fn nid(host: &str) -> String {
    match host.strip_prefix("nid").map(|d| d.trim_start_matches('0')) {
        Some("") if host.len() > 3 => "0".into(),
        Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => d.into(),
        _ => host.into(),
    }
}

/// Whether `name` is a variable an MPI runtime sets for the process it starts (rather than a
/// setting of the user's): Open MPI's and PRRTE's, PMIx's, PMI's (Hydra, PALS, Slurm, Cray),
/// Hydra's local rank, ALPS's rank.
pub fn is_runtime_var(name: &str) -> bool {
    if let Some(mca) = name.strip_prefix("OMPI_MCA_") {
        // What orted and mpirun add for their ranks; the user's own MCA settings pass.
        const RUNTIME: [&str; 5] = ["ess", "orte_", "pmix", "initial_wdir", "shmem_RUNTIME_QUERY_hint"];
        return RUNTIME.iter().any(|p| mca.starts_with(p));
    }
    if name.starts_with("OMPI_ALLOW_RUN_AS_ROOT") {
        return false;
    }
    const PREFIXES: [&str; 8] =
        ["OMPI_", "PMIX_", "PMI_", "PRTE_", "PALS_", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "ALPS_APP_PE"];
    // Slurm's job step of the launcher rank: with SLURM_STEP_ID an MPI library takes itself for a
    // rank direct-launched by srun. The job's own variables (SLURM_JOB_ID ...) stay: a nested
    // srun needs them.
    const SLURM_STEP: [&str; 7] = [
        "SLURM_STEP_",
        "SLURM_STEPID",
        "SLURM_PROCID",
        "SLURM_LOCALID",
        "SLURM_TASK_PID",
        "SLURM_GTIDS",
        "SLURM_PRIO_PROCESS",
    ];
    PREFIXES.iter().chain(SLURM_STEP.iter()).any(|p| name.starts_with(p))
}

/// The runtime variables of this process's environment (see [`is_runtime_var`]), read once.
pub fn runtime_vars() -> &'static [OsString] {
    static VARS: OnceLock<Vec<OsString>> = OnceLock::new();
    VARS.get_or_init(|| {
        std::env::vars_os().map(|(k, _)| k).filter(|k| k.to_str().is_some_and(is_runtime_var)).collect()
    })
}

static ONE_RANK: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// Say, once per launcher rank, what a plain (one-rank) command is told about MPI: the prefix
/// for one rank on this rank's `host`. Later calls change nothing.
pub fn set_one_rank_env(launch: &MpiLaunch, host: &str) {
    let _ = ONE_RANK.set(launch.env(&[host.to_string()]));
}

/// What [`set_one_rank_env`] set (nothing before it, as in a test's executor).
pub fn one_rank_env() -> &'static [(String, String)] {
    ONE_RANK.get().map(Vec::as_slice).unwrap_or(&[])
}

/// Give a task's process the environment every task gets: without the launcher rank's MPI
/// runtime variables (its MPI identity is not the task's: `MPI_Init` would fail on it), with the
/// one-rank MPI variables. The task's own variables go on top.
pub fn task_environment(cmd: &mut std::process::Command) {
    for k in runtime_vars() {
        cmd.env_remove(k);
    }
    for (k, v) in one_rank_env() {
        cmd.env(k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(h: &[&str]) -> Vec<String> {
        h.iter().map(|s| s.to_string()).collect()
    }

    fn env_of(kind: TaskLaunch, as_root: bool, h: &[&str]) -> BTreeMap<String, String> {
        MpiLaunch { kind, as_root }.env(&hosts(h)).into_iter().collect()
    }

    #[test]
    fn each_launch_command_gets_its_own_words() {
        let two_nodes = ["a", "a", "a", "b"];
        let prefix = |k, root| env_of(k, root, &two_nodes)["STRAND_MPI_PREFIX"].clone();
        assert_eq!(
            prefix(TaskLaunch::Srun, false),
            "srun --ntasks=4 --nodes=2 --nodelist=a,b --overlap --kill-on-bad-exit=1"
        );
        assert_eq!(prefix(TaskLaunch::Mpiexec, false), "mpiexec -n 4 -ppn 3 -hosts a,b");
        assert_eq!(prefix(TaskLaunch::Mpirun, false), "mpirun --bind-to none -n 4 --host a:3,b:1");
        assert_eq!(prefix(TaskLaunch::Mpirun, true), "mpirun --allow-run-as-root --bind-to none -n 4 --host a:3,b:1");
        let cray = env_of(TaskLaunch::Aprun, false, &["nid00012", "nid00013", "nid00000"]);
        assert_eq!(cray["STRAND_MPI_PREFIX"], "aprun -n 3 -N 1 -L 12,13,0");
    }

    #[test]
    fn the_parts_say_the_same_as_the_prefix() {
        let e = env_of(TaskLaunch::Mpiexec, false, &["b", "a", "b"]);
        assert_eq!(e["STRAND_NUM_RANKS"], "3");
        assert_eq!(e["STRAND_NUM_NODES"], "2");
        assert_eq!(e["STRAND_NODELIST"], "b,a", "hosts in the order of their first rank");
        assert_eq!(e["STRAND_RANKS_PER_NODE"], "2");
        let one = env_of(TaskLaunch::Mpirun, false, &["vm"]);
        assert_eq!(one["STRAND_MPI_PREFIX"], "mpirun --bind-to none -n 1 --host vm:1");
        assert!(MpiLaunch { kind: TaskLaunch::Srun, as_root: false }.env(&[]).is_empty());
    }

    #[test]
    fn runtime_variables_go_and_user_settings_stay() {
        for v in [
            "OMPI_COMM_WORLD_RANK",
            "OMPI_MCA_ess_base_vpid",
            "OMPI_MCA_orte_hnp_uri",
            "OMPI_MCA_pmix",
            "OMPI_FILE_LOCATION",
            "PMIX_RANK",
            "PMIX_SERVER_URI41",
            "PMI_FD",
            "PMI_RANK",
            "PALS_RANKID",
            "MPI_LOCALRANKID",
            "ALPS_APP_PE",
            "SLURM_STEP_ID",
            "SLURM_STEP_NODELIST",
            "SLURM_PROCID",
            "SLURM_LOCALID",
        ] {
            assert!(is_runtime_var(v), "{v}");
        }
        for v in [
            "OMPI_MCA_btl",
            "OMPI_ALLOW_RUN_AS_ROOT",
            "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM",
            "SLURM_JOB_ID",
            "SLURM_NODELIST",
            "SLURM_MPI_TYPE",
            "PATH",
            "MPICH_GPU_SUPPORT_ENABLED",
        ] {
            assert!(!is_runtime_var(v), "{v}");
        }
    }
}
