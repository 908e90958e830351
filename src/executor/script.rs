//! Block scripts: the batch script of one block of an executor, for the local provider (bash),
//! Slurm (`#SBATCH`) and PBS Pro (`#PBS`), with the launch command from [`super::launch`].
//!
//! Every launcher is started with `--connection` (the run's connection file) and `--block-id`
//! (the id the strategy gave the block), so its managers register under the block and the
//! strategy and the interchange agree on which managers belong to which block. With
//! `steps_per_block = S > 1` a Slurm block runs S concurrent `srun --exact` job steps over
//! disjoint node sets and waits for all of them, as `job-scripts/slurm.sbatch` does
//! (docs/fault-domains.md): a dead node or rank then costs only its step's pools.

use super::config::{format_walltime, ExecutorConfig, ProviderKind};
use super::launch::{launch_command, lits, render, srun_step, step_layout, LaunchKind, LaunchSpec, Step, Word};
use crate::block::BlockId;
use crate::launcher_options::{BindPolicy, TaskLaunch};
use crate::provider::safe_file_stem;
use crate::text::shell_quote;
use std::fmt::Write as _;
use std::path::Path;

/// The batch script of block `block_id` of `cfg`, whose launchers connect through `conn_file`
/// (an absolute path the compute nodes can read; its directory is the run directory, where the
/// block's output goes).
pub fn block_script(cfg: &ExecutorConfig, conn_file: &Path, block_id: &BlockId) -> String {
    match cfg.provider {
        ProviderKind::Local => local_script(cfg, conn_file, block_id),
        ProviderKind::Slurm => slurm_script(cfg, conn_file, block_id),
        ProviderKind::Pbs => pbs_script(cfg, conn_file, block_id),
    }
}

/// The command that starts block `block_id`'s launchers when another system submits the block
/// (Parsl's providers, through the Python package): what `cfg`'s block script would `exec`.
pub fn block_command(cfg: &ExecutorConfig, conn_file: &Path, block_id: &BlockId) -> String {
    let launcher = launcher_words(cfg, conn_file, block_id, cfg.scheduler.gpus_per_node);
    let hostfile = (cfg.provider == ProviderKind::Pbs).then_some("$PBS_NODEFILE");
    render(&launch_command(&spec(cfg, hostfile), &launcher))
}

/// The launcher's own argv: binary, connection, block id, and the options from the config.
pub fn launcher_words(cfg: &ExecutorConfig, conn_file: &Path, block_id: &BlockId, gpus: Option<u32>) -> Vec<Word> {
    let mut a = vec![
        cfg.launcher_path.clone(),
        "--connection".into(),
        conn_file.display().to_string(),
        "--block-id".into(),
        block_id.0.clone(),
    ];
    let mut o = cfg.launcher.clone();
    o.pool_size = cfg.pool_size;
    if cfg.walltime_s > 0 {
        // Managers drain drain_margin before the walltime, so no try is killed by the deadline.
        o.walltime = Some(cfg.walltime_s);
        o.drain_margin = Some(cfg.drain_margin_s);
    }
    // The launcher table may say it itself (GPUs the scheduler is not asked for); it wins.
    o.gpus_per_node = o.gpus_per_node.or(gpus);
    // Local blocks share this machine, and each would bind its ranks from core 0 up (--bind
    // auto), stacking every block on the same cores: leave them to the kernel.
    if cfg.blocks_on_this_machine() {
        o.bind = o.bind.or(Some(BindPolicy::None));
    }
    // Tasks start their MPI programs with the block's own launch command ($STRAND_MPI_PREFIX);
    // a block of one process ("simple") leaves it to the launcher's MPI library.
    o.task_launch = o.task_launch.or(TaskLaunch::for_launch(cfg.launch));
    a.extend(o.to_args());
    lits(&a)
}

fn spec<'a>(cfg: &'a ExecutorConfig, hostfile: Option<&'a str>) -> LaunchSpec<'a> {
    LaunchSpec {
        kind: cfg.launch,
        nodes: cfg.nodes_per_block,
        ranks_per_node: cfg.ranks_per_node,
        local: cfg.blocks_on_this_machine(),
        // The same user submits and runs the block, so this process tells.
        as_root: crate::process::is_root(),
        srun_mpi: &cfg.scheduler.mpi,
        hostfile,
        extra: &cfg.launch_args,
    }
}

fn header(out: &mut String, cfg: &ExecutorConfig, block_id: &BlockId) {
    let _ = writeln!(
        out,
        "# Strand block {} of executor {:?} (provider {}, launch {}), written by strand.",
        block_id.0,
        cfg.label,
        cfg.provider.name(),
        cfg.launch.name()
    );
}

fn body_start(out: &mut String, cfg: &ExecutorConfig, cd: Option<&Path>) {
    if let Some(dir) = cd {
        let _ = writeln!(out, "cd {} || exit 2", shell_quote(&dir.display().to_string()));
    }
    // Before `set -u`: module and conda set-up scripts often read unset variables.
    if !cfg.worker_init.trim().is_empty() {
        out.push_str("# worker_init\n");
        out.push_str(cfg.worker_init.trim_end());
        out.push('\n');
    }
    // No `set -e`: a block script that stops at the first failure would end the job, and with
    // it every step still running.
    out.push_str("set -uo pipefail\n");
}

fn run_dir_of(conn_file: &Path) -> &Path {
    conn_file.parent().unwrap_or(Path::new("."))
}

fn local_script(cfg: &ExecutorConfig, conn_file: &Path, block_id: &BlockId) -> String {
    let mut s = String::from("#!/bin/bash\n");
    header(&mut s, cfg, block_id);
    body_start(&mut s, cfg, None);
    let launcher = launcher_words(cfg, conn_file, block_id, cfg.scheduler.gpus_per_node);
    if cfg.blocks_are_job_steps() {
        job_step_body(&mut s, cfg, &launcher);
    } else {
        let _ = writeln!(s, "exec {}", render(&launch_command(&spec(cfg, None), &launcher)));
    }
    s
}

/// A block that is one `srun` job step of the allocation this script runs in (strand's own):
/// `--exact` with every CPU of each node it takes, so blocks get disjoint whole nodes, and a
/// block started while the others hold every node waits in srun until one ends.
fn job_step_body(s: &mut String, cfg: &ExecutorConfig, launcher: &[Word]) {
    let (n, r) = (cfg.nodes_per_block, cfg.ranks_per_node);
    let _ = write!(
        s,
        r#"# provider = "local" with launch = "srun": this block is a job step of the allocation strand runs in.
if [[ -z ${{SLURM_JOB_ID:-}} ]]; then
    echo "strand-block: launch = srun with provider = local runs each block as a job step of the Slurm allocation strand runs in, but SLURM_JOB_ID is not set (run strand inside sbatch or salloc, or use provider = slurm)" >&2
    exit 2
fi
# CPUs per rank, so that the step takes whole nodes (with --exact a step has only what it asks for).
cpt=$((${{SLURM_CPUS_ON_NODE:-{r}}} / {r}))
((cpt >= 1)) || cpt=1
"#
    );
    let step = Step { first_node: 0, nodes: n, ranks: n.saturating_mul(r) };
    let words =
        srun_step(&step, &cfg.scheduler.mpi, None, "$cpt", cfg.scheduler.gpus_per_node, &cfg.launch_args, launcher);
    let _ = writeln!(s, "exec {}", render(&words));
}

fn slurm_script(cfg: &ExecutorConfig, conn_file: &Path, block_id: &BlockId) -> String {
    let sched = &cfg.scheduler;
    let stem = safe_file_stem(&block_id.0);
    let mut s = String::from("#!/bin/bash\n");
    let mut d = |line: String| {
        let _ = writeln!(s, "#SBATCH {line}");
    };
    d(format!("--job-name=strand-{stem}"));
    d(format!("--output={}/{stem}.%j.out", run_dir_of(conn_file).display()));
    d(format!("--nodes={}", cfg.nodes_per_block));
    d(format!("--ntasks-per-node={}", cfg.ranks_per_node));
    d(format!("--time={}", format_walltime(cfg.walltime_s)));
    // A failed node does not end the job: only the steps on it are killed (docs/fault-domains.md).
    d("--no-kill".into());
    for (flag, v) in [
        ("partition", &sched.partition),
        ("account", &sched.account),
        ("qos", &sched.qos),
        ("constraint", &sched.constraint),
    ] {
        if let Some(v) = v {
            d(format!("--{flag}={v}"));
        }
    }
    if let Some(g) = sched.gpus_per_node.filter(|g| *g > 0) {
        d(format!("--gpus-per-node={g}"));
    }
    if sched.exclusive {
        d("--exclusive".into());
    }
    for e in &sched.extra {
        d(e.trim().to_string());
    }
    header(&mut s, cfg, block_id);
    body_start(&mut s, cfg, None);
    let steps = cfg.steps_per_block;
    let layout = step_layout(cfg.nodes_per_block, cfg.ranks_per_node, steps).unwrap_or_default();
    if cfg.launch != LaunchKind::Srun || steps <= 1 || layout.is_empty() {
        let launcher = launcher_words(cfg, conn_file, block_id, sched.gpus_per_node);
        let _ = writeln!(s, "exec {}", render(&launch_command(&spec(cfg, None), &launcher)));
        return s;
    }
    let (n, r) = (cfg.nodes_per_block, cfg.ranks_per_node);
    let _ = write!(
        s,
        r#"# {steps} concurrent job steps (fault domains), each its own MPI_COMM_WORLD with its own pools:
# an MPI runtime ends a whole step when one of its processes dies, and only that step.
# `srun --kill-on-bad-exit=0`: a rank that exits badly does not make Slurm end its step.
mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
if ((${{#nodes[@]}} < {n})); then
    echo "strand-block: expected {n} nodes in SLURM_JOB_NODELIST='${{SLURM_JOB_NODELIST:-}}', got ${{#nodes[@]}}" >&2
    exit 2
fi
# Comma-separated names of the job's nodes [$1, $1 + $2).
slice() {{
    local IFS=,
    echo "${{nodes[*]:$1:$2}}"
}}
# CPUs per rank: with --exact a step gets only the CPUs it asks for (one per task by default).
cpt=$((${{SLURM_CPUS_ON_NODE:-{r}}} / {r}))
((cpt >= 1)) || cpt=1
# One step in the background; says at once when it fails (steps may end in any order).
run_step() {{
    local i=$1
    shift
    "$@"
    local rc=$?
    if ((rc != 0)); then
        echo "strand-block: job step $i of {steps} exited with status $rc; the other steps go on" >&2
    fi
    return "$rc"
}}
pids=()
"#
    );
    for (i, step) in layout.iter().enumerate() {
        // A step on whole nodes takes their GPUs; steps sharing a node share its GPUs.
        let gpus =
            sched
                .gpus_per_node
                .map(|g| if step.ranks >= r { g } else { (g as u64 * step.ranks as u64 / r as u64) as u32 });
        let launcher = launcher_words(cfg, conn_file, block_id, gpus);
        let nodelist = format!("$(slice {} {})", step.first_node, step.nodes);
        let words = srun_step(step, &sched.mpi, Some(&nodelist), "$cpt", gpus, &cfg.launch_args, &launcher);
        let _ = writeln!(s, "run_step {i} {} &", render(&words));
        s.push_str("pids+=($!)\n");
    }
    let _ = write!(
        s,
        r#"echo "strand-block: job ${{SLURM_JOB_ID:-}}: {steps} job steps over {n} node(s)" >&2
# Wait for every step; when this script exits, the job ends and Slurm kills what still runs.
status=0
for pid in "${{pids[@]}}"; do
    wait "$pid" || status=$?
done
exit "$status"
"#
    );
    s
}

fn pbs_script(cfg: &ExecutorConfig, conn_file: &Path, block_id: &BlockId) -> String {
    let sched = &cfg.scheduler;
    let stem = safe_file_stem(&block_id.0);
    let run_dir = run_dir_of(conn_file);
    let mut s = String::from("#!/bin/bash\n");
    let mut d = |line: String| {
        let _ = writeln!(s, "#PBS {line}");
    };
    d(format!("-N strand-{stem}"));
    let mut select = format!("select={}:mpiprocs={}", cfg.nodes_per_block, cfg.ranks_per_node);
    if let Some(g) = sched.gpus_per_node.filter(|g| *g > 0) {
        let _ = write!(select, ":ngpus={g}");
    }
    if let Some(x) = &sched.select {
        let _ = write!(select, ":{}", x.trim_start_matches(':'));
    }
    d(format!("-l {select}"));
    d(format!("-l walltime={}", format_walltime(cfg.walltime_s)));
    // One chunk per node; excl: no other job on them.
    d(format!("-l place=scatter{}", if sched.exclusive { ":excl" } else { "" }));
    if let Some(q) = &sched.queue {
        d(format!("-q {q}"));
    }
    if let Some(a) = &sched.account {
        d(format!("-A {a}"));
    }
    d("-j oe".into());
    d(format!("-o {}/{stem}.out", run_dir.display()));
    for e in &sched.extra {
        d(e.trim().to_string());
    }
    header(&mut s, cfg, block_id);
    // PBS starts the script in $HOME; the run directory is where Slurm and the local provider start.
    body_start(&mut s, cfg, Some(run_dir));
    let launcher = launcher_words(cfg, conn_file, block_id, sched.gpus_per_node);
    let _ = writeln!(s, "exec {}", render(&launch_command(&spec(cfg, Some("$PBS_NODEFILE")), &launcher)));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::config::Config;

    fn cfg(body: &str) -> ExecutorConfig {
        let text = format!("[[executor]]\nlabel = \"x\"\n{body}");
        match Config::parse(&text, "t.toml") {
            Ok(mut c) => c.executors.remove(0),
            Err(e) => panic!("{e}"),
        }
    }

    const CONN: &str = "/runs/r1/connection.json";

    fn script(body: &str) -> String {
        block_script(&cfg(body), Path::new(CONN), &BlockId("x-3".into()))
    }

    fn lines_with<'a>(s: &'a str, needle: &str) -> Vec<&'a str> {
        s.lines().filter(|l| l.contains(needle)).collect()
    }

    #[test]
    fn local_runs_mpirun_with_the_block_id() {
        let s = script(
            "provider = \"local\"\nranks_per_node = 3\nworker_init = \"export A=1\"\nlauncher_path = \"/b/strand-launcher\"\n",
        );
        assert!(s.starts_with("#!/bin/bash\n"), "{s}");
        assert!(s.contains("\nexport A=1\n"), "{s}");
        let exec = lines_with(&s, "exec mpirun");
        assert_eq!(exec.len(), 1, "{s}");
        assert!(exec[0].contains("--oversubscribe") && exec[0].contains("-n 3 /b/strand-launcher"), "{s}");
        assert!(
            exec[0].ends_with(&format!("--connection {CONN} --block-id x-3 --bind none --task-launch mpirun")),
            "{s}"
        );
        assert!(!s.contains("set -e"), "{s}");
        // A walltime reaches the launcher, with its drain margin.
        let s = script("provider = \"local\"\nwalltime = 60\ndrain_margin = 5\n");
        assert!(s.contains("--block-id x-3 --walltime 60 --drain-margin 5 --bind none --task-launch mpirun"), "{s}");
    }

    #[test]
    fn a_block_another_system_submits_runs_what_the_block_script_would_exec() {
        for body in [
            "provider = \"local\"\nranks_per_node = 3\n",
            "provider = \"slurm\"\nnodes_per_block = 2\nranks_per_node = 4\nwalltime = \"01:00:00\"\n",
            "provider = \"pbs\"\nnodes_per_block = 2\nlaunch = \"mpiexec\"\nwalltime = \"01:00:00\"\n",
        ] {
            let c = cfg(body);
            let command = block_command(&c, Path::new(CONN), &BlockId("x-3".into()));
            let s = script(body);
            assert_eq!(lines_with(&s, "exec "), vec![format!("exec {command}")], "{body}");
        }
        let pbs = block_command(
            &cfg("provider = \"pbs\"\nlaunch = \"mpiexec\"\nwalltime = 60\n"),
            Path::new(CONN),
            &BlockId("b".into()),
        );
        assert!(pbs.contains("--hostfile \"$PBS_NODEFILE\""), "{pbs}");
    }

    #[test]
    fn slurm_directives_come_from_the_scheduler_table() {
        let s = script(
            r#"provider = "slurm"
nodes_per_block = 4
ranks_per_node = 56
walltime = "02:00:00"
pool_size = 8
launcher = { prefetch = 2 }
[executor.scheduler]
partition = "batch"
account = "abc123"
qos = "debug"
constraint = "gpu"
gpus_per_node = 8
exclusive = true
mpi = "cray_shasta"
extra = ["--mail-type=END"]
"#,
        );
        for d in [
            "#SBATCH --job-name=strand-x-3",
            "#SBATCH --output=/runs/r1/x-3.%j.out",
            "#SBATCH --nodes=4",
            "#SBATCH --ntasks-per-node=56",
            "#SBATCH --time=02:00:00",
            "#SBATCH --no-kill",
            "#SBATCH --partition=batch",
            "#SBATCH --account=abc123",
            "#SBATCH --qos=debug",
            "#SBATCH --constraint=gpu",
            "#SBATCH --gpus-per-node=8",
            "#SBATCH --exclusive",
            "#SBATCH --mail-type=END",
        ] {
            assert!(s.lines().any(|l| l == d), "missing {d:?} in\n{s}");
        }
        // Directives all come before the first command, or sbatch ignores them.
        let first_cmd = s.lines().position(|l| !l.starts_with('#')).unwrap_or(0);
        assert!(s.lines().skip(first_cmd).all(|l| !l.starts_with("#SBATCH")), "{s}");
        let exec = lines_with(&s, "exec srun");
        assert_eq!(exec.len(), 1, "{s}");
        assert!(exec[0].starts_with("exec srun --mpi=cray_shasta --kill-on-bad-exit=0 --nodes=4 --ntasks=224"), "{s}");
        assert!(
            exec[0].ends_with(&format!(
                "strand-launcher --connection {CONN} --block-id x-3 --pool-size 8 --walltime 7200 --drain-margin 300 \
                 --gpus-per-node 8 --task-launch srun --prefetch 2"
            )),
            "{s}"
        );
    }

    #[test]
    fn slurm_steps_are_concurrent_exact_sruns_over_disjoint_nodes() {
        let s = script("provider = \"slurm\"\nnodes_per_block = 4\nranks_per_node = 2\nsteps_per_block = 2\n");
        let steps = lines_with(&s, "run_step ");
        let steps: Vec<&str> = steps.into_iter().filter(|l| l.starts_with("run_step ")).collect();
        assert_eq!(steps.len(), 2, "{s}");
        for (i, first) in [(0, 0), (1, 2)] {
            let l = steps[i];
            assert!(
                l.starts_with(&format!("run_step {i} srun --mpi=pmix --kill-on-bad-exit=0 --exact --mem=0")),
                "{l}"
            );
            assert!(
                l.contains(&format!("--nodes=2 --nodelist=\"$(slice {first} 2)\" --ntasks=4 --ntasks-per-node=2")),
                "{l}"
            );
            assert!(l.contains("--block-id x-3"), "{l}");
            assert!(l.ends_with(" &"), "{l}");
        }
        assert!(s.contains("wait \"$pid\""), "{s}");
        assert!(!s.contains("set -e"), "{s}");
        assert!(!s.contains("exec srun"), "{s}");
    }

    #[test]
    fn pbs_selects_chunks_with_mpiprocs_and_runs_mpiexec_or_aprun() {
        let s = script(
            r#"provider = "pbs"
nodes_per_block = 2
ranks_per_node = 4
walltime = 1800
[executor.scheduler]
queue = "debug"
account = "proj"
select = "system=polaris"
gpus_per_node = 4
extra = ["-l filesystems=home:eagle"]
"#,
        );
        for d in [
            "#PBS -N strand-x-3",
            "#PBS -l select=2:mpiprocs=4:ngpus=4:system=polaris",
            "#PBS -l walltime=00:30:00",
            "#PBS -l place=scatter",
            "#PBS -q debug",
            "#PBS -A proj",
            "#PBS -o /runs/r1/x-3.out",
            "#PBS -l filesystems=home:eagle",
        ] {
            assert!(s.lines().any(|l| l == d), "missing {d:?} in\n{s}");
        }
        assert!(s.contains("\ncd /runs/r1 || exit 2\n"), "{s}");
        let exec = lines_with(&s, "exec mpiexec");
        assert_eq!(exec.len(), 1, "{s}");
        assert!(exec[0].starts_with("exec mpiexec -n 8 -ppn 4 --hostfile \"$PBS_NODEFILE\" strand-launcher"), "{s}");
        assert!(exec[0].contains("--block-id x-3"), "{s}");
        let s = script(
            "provider = \"pbs\"\nlaunch = \"aprun\"\nnodes_per_block = 3\n[executor.scheduler]\nexclusive = true\n",
        );
        assert!(s.lines().any(|l| l == "#PBS -l place=scatter:excl"), "{s}");
        assert!(s.contains("exec aprun -n 3 -N 1 -cc none strand-launcher"), "{s}");
    }

    /// Runs the generated Slurm script under bash with fake `scontrol` and `srun`: each step
    /// gets its own nodes and every step is waited for, a failing one included.
    #[test]
    fn the_slurm_step_script_runs_with_fake_slurm_commands() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir");
        let log = dir.path().join("srun.log");
        let fake = |name: &str, body: &str| {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/bash\n{body}\n")).expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        };
        fake("scontrol", "printf 'n1\\nn2\\nn3\\nn4\\nn5\\n'");
        // Record the node list; the step on n3 fails, as a step whose rank died would.
        fake(
            "srun",
            &format!(
                "for a in \"$@\"; do case $a in --nodelist=*) nl=${{a#--nodelist=}};; --cpus-per-task=*) c=${{a#*=}};; esac; done\n\
                 echo \"$nl cpt=$c\" >> '{}'\n[[ $nl == n3* ]] && exit 7\nexit 0",
                log.display()
            ),
        );
        let s = script("provider = \"slurm\"\nnodes_per_block = 5\nranks_per_node = 2\nsteps_per_block = 2\n");
        let path = dir.path().join("block.sbatch");
        std::fs::write(&path, &s).expect("write");
        let out = std::process::Command::new("bash")
            .arg(&path)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("SLURM_JOB_NODELIST", "n[1-5]")
            .env("SLURM_CPUS_ON_NODE", "16")
            .env("SLURM_JOB_ID", "42")
            .output()
            .expect("bash");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(7), "the failed step's status: {stderr}");
        assert!(stderr.contains("job step 1 of 2 exited with status 7; the other steps go on"), "{stderr}");
        let mut calls: Vec<String> = std::fs::read_to_string(&log).expect("log").lines().map(String::from).collect();
        calls.sort();
        assert_eq!(calls, vec!["n1,n2 cpt=8", "n3,n4,n5 cpt=8"]);
    }
}
