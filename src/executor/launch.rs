//! Launch commands: the command line that starts `strand-launcher` over a block's nodes (or
//! over one job step's nodes), for srun, aprun, mpiexec, mpirun and "simple".
//!
//! Everything here is a pure function of its arguments, so each launch kind is unit-tested
//! without a scheduler. Words that depend on the job at run time (the node list of a step,
//! `$PBS_NODEFILE`, the CPUs Slurm gave the job) are [`Word::Shell`] and are expanded by the
//! batch script; everything else is a literal, quoted for the shell when it is written out.

use crate::text::shell_quote;
use std::fmt;

/// How a block starts the launcher on its nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaunchKind {
    /// Slurm's `srun` (`--mpi=<plugin>`: pmix, or cray_shasta on Cray EX).
    Srun,
    /// ALPS `aprun` (Cray XC).
    Aprun,
    /// `mpiexec` of MPICH Hydra or Cray PALS (`-ppn`, `--hostfile`), e.g. Polaris and Aurora.
    Mpiexec,
    /// Open MPI's `mpirun`.
    Mpirun,
    /// The launcher alone, one process (an MPI singleton) on the first node.
    Simple,
}

/// The accepted names of [`LaunchKind`], in the order docs and errors list them.
pub const LAUNCH_NAMES: [&str; 5] = ["srun", "aprun", "mpiexec", "mpirun", "simple"];

impl LaunchKind {
    /// The kind named `s` in a configuration file.
    pub fn parse(s: &str) -> Option<LaunchKind> {
        Some(match s {
            "srun" => LaunchKind::Srun,
            "aprun" => LaunchKind::Aprun,
            "mpiexec" => LaunchKind::Mpiexec,
            "mpirun" => LaunchKind::Mpirun,
            "simple" => LaunchKind::Simple,
            _ => return None,
        })
    }

    /// Its name in a configuration file.
    pub fn name(self) -> &'static str {
        match self {
            LaunchKind::Srun => "srun",
            LaunchKind::Aprun => "aprun",
            LaunchKind::Mpiexec => "mpiexec",
            LaunchKind::Mpirun => "mpirun",
            LaunchKind::Simple => "simple",
        }
    }
}

impl fmt::Display for LaunchKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One word of a command line as a batch script writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Word {
    /// Literal text, quoted for the shell where needed.
    Lit(String),
    /// A literal prefix, then shell text expanded at run time inside double quotes:
    /// `Shell("--nodelist=", "$(slice 0 2)")` is written `--nodelist="$(slice 0 2)"`.
    Shell(String, String),
}

impl Word {
    /// A literal word.
    pub fn lit(s: impl Into<String>) -> Word {
        Word::Lit(s.into())
    }

    /// The word as bash reads it.
    pub fn to_shell(&self) -> String {
        match self {
            Word::Lit(s) => shell_quote(s),
            Word::Shell(prefix, expr) => {
                format!("{}\"{expr}\"", if prefix.is_empty() { String::new() } else { shell_quote(prefix) })
            }
        }
    }
}

/// Words joined into one line of a script.
pub fn render(words: &[Word]) -> String {
    words.iter().map(Word::to_shell).collect::<Vec<_>>().join(" ")
}

/// Literal words from strings.
pub fn lits<S: AsRef<str>>(v: &[S]) -> Vec<Word> {
    v.iter().map(|s| Word::lit(s.as_ref())).collect()
}

/// What a launch command must start: how many ranks, where, and with which options.
#[derive(Clone, Debug)]
pub struct LaunchSpec<'a> {
    /// The launch command.
    pub kind: LaunchKind,
    /// Nodes of the block (for a job step: of the step).
    pub nodes: u32,
    /// Launcher ranks on each of those nodes.
    pub ranks_per_node: u32,
    /// Every rank runs on this machine (the local provider): Open MPI may oversubscribe and
    /// needs no network; no host file.
    pub local: bool,
    /// This user is root (Open MPI refuses to start then unless told `--allow-run-as-root`).
    pub as_root: bool,
    /// `srun --mpi=` plugin (pmix, cray_shasta, pmi2, ...).
    pub srun_mpi: &'a str,
    /// Shell text naming the host file for mpiexec (`$PBS_NODEFILE` under PBS; under Slurm,
    /// Hydra and PALS read the allocation themselves).
    pub hostfile: Option<&'a str>,
    /// The site's own options for the launch command; they come last, so they win.
    pub extra: &'a [String],
}

/// The whole command line: the launch command, its options, then `launcher` (the launcher's argv).
pub fn launch_command(spec: &LaunchSpec, launcher: &[Word]) -> Vec<Word> {
    let ranks = spec.nodes.saturating_mul(spec.ranks_per_node);
    let mut w: Vec<Word> = vec![];
    match spec.kind {
        LaunchKind::Srun => {
            w.extend(lits(&["srun".to_string(), format!("--mpi={}", spec.srun_mpi), "--kill-on-bad-exit=0".into()]));
            w.extend(lits(&[
                format!("--nodes={}", spec.nodes),
                format!("--ntasks={ranks}"),
                format!("--ntasks-per-node={}", spec.ranks_per_node),
            ]));
            // The launcher does no CPU binding of its own yet: a rank that owns its node must
            // not be pinned to one core by Slurm's default binding.
            if spec.ranks_per_node == 1 {
                w.push(Word::lit("--cpu-bind=none"));
            }
        }
        LaunchKind::Aprun => {
            w.extend(lits(&[
                "aprun".to_string(),
                "-n".into(),
                ranks.to_string(),
                "-N".into(),
                spec.ranks_per_node.to_string(),
            ]));
            // As for srun: ALPS binds each PE to one CPU by default (-cc cpu).
            if spec.ranks_per_node == 1 {
                w.extend(lits(&["-cc", "none"]));
            }
        }
        LaunchKind::Mpiexec => {
            w.extend(lits(&["mpiexec".to_string(), "-n".into(), ranks.to_string()]));
            if !spec.local {
                // Hydra and PALS both take -ppn and a host file; PBS lists each node mpiprocs times.
                w.extend(lits(&["-ppn".to_string(), spec.ranks_per_node.to_string()]));
                if let Some(h) = spec.hostfile {
                    w.push(Word::lit("--hostfile"));
                    w.push(Word::Shell(String::new(), h.into()));
                }
            }
        }
        LaunchKind::Mpirun => {
            w.push(Word::lit("mpirun"));
            if spec.as_root {
                w.push(Word::lit("--allow-run-as-root"));
            }
            if spec.local {
                // The same options as the local default's block.
                w.extend(lits(&super::local_block::LOCAL_MPIRUN_OPTIONS));
            } else {
                // Open MPI reads the nodes from Slurm or PBS itself; place the ranks per node.
                w.extend(lits(&["--map-by".to_string(), format!("ppr:{}:node", spec.ranks_per_node)]));
            }
            w.extend(lits(&["-n".to_string(), ranks.to_string()]));
        }
        LaunchKind::Simple => {}
    }
    if spec.kind != LaunchKind::Simple {
        w.extend(lits(spec.extra));
    }
    w.extend(launcher.iter().cloned());
    w
}

/// One job step of a block: which of the block's nodes it runs on and how many ranks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Index of its first node among the block's nodes.
    pub first_node: u32,
    /// How many consecutive nodes it has.
    pub nodes: u32,
    /// Its ranks, spread evenly over its nodes.
    pub ranks: u32,
}

/// Split a block of `nodes` x `ranks_per_node` ranks into `steps` job steps (fault domains).
///
/// With `nodes >= steps`, step i gets nodes `[nodes*i/steps, nodes*(i+1)/steps)`, disjoint
/// sets, so a dead node costs only its step. With fewer nodes than steps, step i runs on node
/// `nodes*i/steps` and the steps on one node split its ranks (a dead process still costs only
/// its step; a dead node every step on it). This is the layout of `job-scripts/slurm.sbatch`.
/// `None` when some step would get no rank.
pub fn step_layout(nodes: u32, ranks_per_node: u32, steps: u32) -> Option<Vec<Step>> {
    if nodes == 0 || ranks_per_node == 0 || steps == 0 {
        return None;
    }
    let (n, s) = (nodes as u64, steps as u64);
    let mut out = Vec::with_capacity(steps as usize);
    for i in 0..s {
        if n >= s {
            let lo = n * i / s;
            let k = n * (i + 1) / s - lo;
            out.push(Step { first_node: lo as u32, nodes: k as u32, ranks: (k as u32).saturating_mul(ranks_per_node) });
        } else {
            let node = n * i / s;
            // Steps first..first+here-1 share this node.
            let first = (node * s).div_ceil(n);
            let here = ((node + 1) * s).div_ceil(n) - first;
            let j = i - first;
            let per = ranks_per_node as u64;
            let ranks = per * (j + 1) / here - per * j / here;
            if ranks == 0 {
                return None;
            }
            out.push(Step { first_node: node as u32, nodes: 1, ranks: ranks as u32 });
        }
    }
    Some(out)
}

/// `srun` for one job step: `--exact` over its own nodes (of a block that runs several), or over
/// any free nodes of the allocation (a block that is one step of strand's own allocation).
///
/// `nodelist` is shell text that expands to the step's comma-separated node names at run
/// time (`None`: Slurm picks them); `cpus_per_task` shell text for the CPUs each rank gets
/// (with `--exact` a step has only the CPUs it asks for, one per task unless told). `gpus` are
/// the GPUs the step takes on each of its nodes, if any.
pub fn srun_step(
    step: &Step,
    mpi: &str,
    nodelist: Option<&str>,
    cpus_per_task: &str,
    gpus: Option<u32>,
    extra: &[String],
    launcher: &[Word],
) -> Vec<Word> {
    let per_node = step.ranks / step.nodes.max(1);
    let mut w = lits(&[
        "srun".to_string(),
        format!("--mpi={mpi}"),
        "--kill-on-bad-exit=0".into(),
        // Each step may use the job's memory on its nodes without taking it from the others
        // (a step without --mem asks for all of it where memory is consumable, and the next
        // step waits).
        "--exact".into(),
        "--mem=0".into(),
        format!("--nodes={}", step.nodes),
    ]);
    if let Some(nodelist) = nodelist {
        w.push(Word::Shell("--nodelist=".into(), nodelist.into()));
    }
    w.extend(lits(&[format!("--ntasks={}", step.ranks), format!("--ntasks-per-node={per_node}")]));
    w.push(Word::Shell("--cpus-per-task=".into(), cpus_per_task.into()));
    if let Some(g) = gpus.filter(|g| *g > 0) {
        w.push(Word::lit(format!("--gpus-per-node={g}")));
    }
    w.extend(lits(extra));
    w.extend(launcher.iter().cloned());
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: LaunchKind) -> LaunchSpec<'static> {
        LaunchSpec {
            kind,
            nodes: 4,
            ranks_per_node: 8,
            local: false,
            as_root: false,
            srun_mpi: "pmix",
            hostfile: Some("$PBS_NODEFILE"),
            extra: &[],
        }
    }

    fn launcher() -> Vec<Word> {
        lits(&["/opt/strand-launcher", "--connection", "/runs/a/connection.json", "--block-id", "x-1"])
    }

    fn line(spec: &LaunchSpec) -> String {
        render(&launch_command(spec, &launcher()))
    }

    const TAIL: &str = "/opt/strand-launcher --connection /runs/a/connection.json --block-id x-1";

    #[test]
    fn srun_has_plugin_kill_on_bad_exit_and_task_counts() {
        assert_eq!(
            line(&spec(LaunchKind::Srun)),
            format!("srun --mpi=pmix --kill-on-bad-exit=0 --nodes=4 --ntasks=32 --ntasks-per-node=8 {TAIL}")
        );
        let extra = vec!["--gpu-bind=closest".to_string()];
        let s = LaunchSpec { ranks_per_node: 1, srun_mpi: "cray_shasta", extra: &extra, ..spec(LaunchKind::Srun) };
        assert_eq!(
            line(&s),
            format!(
                "srun --mpi=cray_shasta --kill-on-bad-exit=0 --nodes=4 --ntasks=4 --ntasks-per-node=1 \
                 --cpu-bind=none --gpu-bind=closest {TAIL}"
            )
        );
    }

    #[test]
    fn aprun_has_pes_and_pes_per_node() {
        assert_eq!(line(&spec(LaunchKind::Aprun)), format!("aprun -n 32 -N 8 {TAIL}"));
        let s = LaunchSpec { ranks_per_node: 1, ..spec(LaunchKind::Aprun) };
        assert_eq!(line(&s), format!("aprun -n 4 -N 1 -cc none {TAIL}"));
    }

    #[test]
    fn mpiexec_has_ppn_and_the_pbs_host_file() {
        assert_eq!(
            line(&spec(LaunchKind::Mpiexec)),
            format!("mpiexec -n 32 -ppn 8 --hostfile \"$PBS_NODEFILE\" {TAIL}")
        );
        let s = LaunchSpec { local: true, nodes: 1, ..spec(LaunchKind::Mpiexec) };
        assert_eq!(line(&s), format!("mpiexec -n 8 {TAIL}"));
        // Under Slurm, Hydra and PALS find the nodes themselves.
        let s = LaunchSpec { hostfile: None, ..spec(LaunchKind::Mpiexec) };
        assert_eq!(line(&s), format!("mpiexec -n 32 -ppn 8 {TAIL}"));
    }

    #[test]
    fn mpirun_oversubscribes_locally_and_allows_root_only_for_root() {
        let s = LaunchSpec { local: true, nodes: 1, ranks_per_node: 3, ..spec(LaunchKind::Mpirun) };
        let l = line(&s);
        assert!(l.starts_with("mpirun --oversubscribe --bind-to none --mca btl self,vader"), "{l}");
        assert!(l.ends_with(&format!("-n 3 {TAIL}")), "{l}");
        assert!(!l.contains("--allow-run-as-root"), "{l}");
        let l = line(&LaunchSpec { as_root: true, ..s });
        assert!(l.starts_with("mpirun --allow-run-as-root --oversubscribe"), "{l}");
        // On a cluster: no oversubscription, ranks placed per node.
        assert_eq!(line(&spec(LaunchKind::Mpirun)), format!("mpirun --map-by ppr:8:node -n 32 {TAIL}"));
    }

    #[test]
    fn simple_is_the_launcher_alone() {
        let extra = vec!["--ignored".to_string()];
        assert_eq!(line(&LaunchSpec { extra: &extra, ..spec(LaunchKind::Simple) }), TAIL);
    }

    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(Word::lit("a b").to_shell(), "'a b'");
        assert_eq!(Word::lit("it's").to_shell(), r"'it'\''s'");
        assert_eq!(Word::lit("").to_shell(), "''");
        assert_eq!(Word::lit("$HOME").to_shell(), "'$HOME'");
        assert_eq!(Word::Shell("--nodelist=".into(), "$(slice 0 2)".into()).to_shell(), "--nodelist=\"$(slice 0 2)\"");
        assert_eq!(Word::Shell(String::new(), "$PBS_NODEFILE".into()).to_shell(), "\"$PBS_NODEFILE\"");
    }

    #[test]
    fn steps_get_disjoint_nodes_or_share_ranks() {
        let s = step_layout(4, 8, 2).unwrap();
        assert_eq!(s, vec![Step { first_node: 0, nodes: 2, ranks: 16 }, Step { first_node: 2, nodes: 2, ranks: 16 }]);
        let s = step_layout(5, 1, 2).unwrap();
        assert_eq!(s, vec![Step { first_node: 0, nodes: 2, ranks: 2 }, Step { first_node: 2, nodes: 3, ranks: 3 }]);
        // One node, two steps: they split its 8 ranks.
        let s = step_layout(1, 8, 2).unwrap();
        assert_eq!(s, vec![Step { first_node: 0, nodes: 1, ranks: 4 }, Step { first_node: 0, nodes: 1, ranks: 4 }]);
        // Two nodes, three steps: node 0 has steps 0 and 1, node 1 step 2.
        let s = step_layout(2, 4, 3).unwrap();
        assert_eq!(s.iter().map(|s| (s.first_node, s.ranks)).collect::<Vec<_>>(), vec![(0, 2), (0, 2), (1, 4)]);
        assert!(step_layout(1, 1, 2).is_none(), "a step without a rank");
        // Every rank is placed exactly once.
        for (n, r, st) in [(7, 3, 3), (3, 5, 7), (16, 56, 4), (1, 56, 8)] {
            let s = step_layout(n, r, st).unwrap();
            assert_eq!(s.iter().map(|s| s.ranks).sum::<u32>(), n * r, "{n} {r} {st}");
        }
    }

    #[test]
    fn a_step_is_an_exact_srun_on_its_own_nodes() {
        let step = Step { first_node: 2, nodes: 2, ranks: 16 };
        let w = srun_step(&step, "pmix", Some("$(slice 2 2)"), "$cpt", Some(4), &[], &launcher());
        assert_eq!(
            render(&w),
            format!(
                "srun --mpi=pmix --kill-on-bad-exit=0 --exact --mem=0 --nodes=2 --nodelist=\"$(slice 2 2)\" \
                 --ntasks=16 --ntasks-per-node=8 --cpus-per-task=\"$cpt\" --gpus-per-node=4 {TAIL}"
            )
        );
        let w = srun_step(&step, "pmix", Some("$n"), "$cpt", Some(0), &[], &launcher());
        assert!(!render(&w).contains("gpus"), "no GPUs asked for when the step gets none");
    }
}
