//! The failure matrix: each cell starts a real interchange and launchers under `mpirun`, runs a
//! mixed workload of 2,000 tasks through the DFK, kills one thing in the middle, and checks that
//! every task ended exactly once in the state expected of it and that the survivors kept working
//! (tasks finished after the kill).
//!
//! Each cell writes one JSON row to `$STRAND_MATRIX_DIR` (default `target/failure-matrix/`);
//! `scripts/failure-matrix.sh` runs the cells, then the ignored `matrix_table` test prints the
//! rows as the table kept in docs/fault-domains.md.
//!
//! One file (about 850 lines) on purpose: the cells share one rig, one workload and one
//! end-state check, and run one at a time; split, they would need all three exported.

use crate::common::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use strand::client::Client;
use strand::dfk::{retry_on, Call, Dfk, DfkConfig, TaskError, TaskFuture};
use strand::task::{Failure, TaskId};
use strand::wire::{ClientMsg, ManagerMode, ToClientMsg};

/// Tasks per cell.
const TASKS: usize = 2000;
/// Tasks ended before a cell kills something: the rest of the workload is "the middle".
const KILL_AFTER: usize = 500;
/// Longest a cell's workload may take after its kill.
const CELL_TIMEOUT: Duration = Duration::from_secs(120);
/// Walltime of the hanging tasks.
const HANG_WALLTIME_MS: u64 = 300;
/// Memory limit of the tasks that allocate without bound.
const MEMORY_LIMIT: u64 = 32 << 20;
/// Every cell, in the order the table lists them.
const CELLS: [&str; 9] = [
    "task segfault",
    "task out of memory",
    "task past walltime",
    "worker rank SIGKILL",
    "manager rank SIGKILL",
    "whole launcher SIGKILL",
    "manager SIGSTOP, SIGCONT",
    "interchange SIGKILL, restart",
    "driver SIGKILL, re-run",
];

/// Cells run one at a time: they share two cores, and the table reports their timings.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a task of the workload runs, which decides how it must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    True,
    Echo,
    Func,
    Sleep,
    Exit3,
    Dep,
    Segfault,
    Oom,
    Hang,
}

/// The mix: mostly `true`, `echo` and function tasks; a few `sleep 0.2`, failures that must not be
/// retried (`exit 3`) and dependent tasks; 20 victims of the cell's kind if it has one.
fn kind_of(i: usize, victim: Option<Kind>) -> Kind {
    match (i % 100, victim) {
        (10, Some(v)) => v,
        (50, _) => Kind::Exit3,
        (99, _) => Kind::Dep,
        (25 | 75, _) => Kind::Sleep,
        _ => [Kind::True, Kind::Echo, Kind::Func][i % 3],
    }
}

/// How the out-of-memory tasks are limited: a memory cgroup (the kernel's OOM killer ends them
/// with SIGKILL) where this sandbox lets us make one, else RLIMIT_AS (allocation fails).
enum MemoryLimit {
    Cgroup { dir: PathBuf, version: u8 },
    Rlimit,
}

impl MemoryLimit {
    /// A fresh memory cgroup (v2 `memory.max`, or v1 `memory.limit_in_bytes`), or RLIMIT_AS.
    fn new() -> MemoryLimit {
        let name = format!("strand-failure-matrix-{}", std::process::id());
        let v2 = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
        let candidates = [
            (2u8, v2.split_whitespace().any(|c| c == "memory"), Path::new("/sys/fs/cgroup").join(&name), "memory.max"),
            (
                1,
                Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").is_file(),
                Path::new("/sys/fs/cgroup/memory").join(&name),
                "memory.limit_in_bytes",
            ),
        ];
        for (version, available, dir, limit_file) in candidates {
            if !available || std::fs::create_dir(&dir).is_err() {
                continue;
            }
            let limited = std::fs::write(dir.join(limit_file), MEMORY_LIMIT.to_string()).is_ok();
            // No swap to escape into (absent files are fine: no swap accounting, or none to use).
            let _ = std::fs::write(
                dir.join(if version == 2 { "memory.swap.max" } else { "memory.memsw.limit_in_bytes" }),
                if version == 2 { "0".to_string() } else { MEMORY_LIMIT.to_string() },
            );
            // A process must be able to move itself in, as each task does.
            let procs = dir.join("cgroup.procs");
            let joins = Command::new("sh")
                .arg("-c")
                .arg(format!("echo $$ > {}", procs.display()))
                .status()
                .is_ok_and(|s| s.success());
            let limit = MemoryLimit::Cgroup { dir: dir.clone(), version };
            if limited && joins {
                return limit;
            }
            drop(limit);
        }
        MemoryLimit::Rlimit
    }

    /// A command that allocates without bound under the limit.
    fn hog(&self) -> Call {
        let fill = "x=$(head -c 300000000 /dev/zero | tr '\\0' x)";
        match self {
            // One process that grows (`tail` looking for the end of a line in /dev/zero), so the
            // OOM killer's SIGKILL ends the task itself; a shell filling a variable through a
            // pipe could lose a child to it instead and exit 137.
            MemoryLimit::Cgroup { dir, .. } => Call::argv([
                "sh".into(),
                "-c".into(),
                format!("echo $$ > {} && exec tail /dev/zero", dir.join("cgroup.procs").display()),
            ]),
            // bash, whose allocator names the failure on stderr ("xrealloc: cannot allocate N bytes").
            MemoryLimit::Rlimit => {
                Call::argv(["prlimit".into(), format!("--as={MEMORY_LIMIT}"), "bash".into(), "-c".into(), fill.into()])
            }
        }
    }

    /// Whether `f` is how a task past the limit must fail.
    fn expected(&self, f: &Failure) -> bool {
        match self {
            MemoryLimit::Cgroup { .. } => matches!(f, Failure::Signal { signal: 9, .. }),
            // Only a failure that says an allocation failed proves the limit did it.
            MemoryLimit::Rlimit => match f {
                Failure::Signal { stderr, .. } | Failure::ExitCode { stderr, .. } => {
                    stderr.to_ascii_lowercase().contains("cannot allocate")
                }
                _ => false,
            },
        }
    }

    /// Kills by the kernel's OOM killer in the cgroup so far.
    fn oom_kills(&self) -> Option<u64> {
        let MemoryLimit::Cgroup { dir, version } = self else { return None };
        let file = if *version == 2 { "memory.events" } else { "memory.oom_control" };
        let text = std::fs::read_to_string(dir.join(file)).ok()?;
        text.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|n| n.trim().parse().ok())
    }

    fn describe(&self) -> String {
        match self {
            MemoryLimit::Cgroup { version: 2, .. } => format!("cgroup v2 memory.max = {} MiB", MEMORY_LIMIT >> 20),
            MemoryLimit::Cgroup { .. } => format!("cgroup v1 memory.limit_in_bytes = {} MiB", MEMORY_LIMIT >> 20),
            MemoryLimit::Rlimit => {
                format!("RLIMIT_AS = {} MiB (prlimit; no writable memory cgroup)", MEMORY_LIMIT >> 20)
            }
        }
    }
}

impl Drop for MemoryLimit {
    fn drop(&mut self) {
        if let MemoryLimit::Cgroup { dir, .. } = self {
            // Its tasks were killed; a cgroup goes once its last process has been reaped.
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::fs::remove_dir(&*dir).is_err() && dir.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// What the victims of a cell need to be built and judged.
struct Workload {
    victim: Option<Kind>,
    memory: Option<MemoryLimit>,
    /// The argument of the hanging tasks' `sleep`s, unique to this run, to find leftovers by.
    hang_marker: String,
    /// Where every command task records that it ran, to catch duplicate execution.
    runs: RunLog,
}

impl Workload {
    fn plain() -> Workload {
        Workload::with(None)
    }

    fn with(victim: Option<Kind>) -> Workload {
        let memory = (victim == Some(Kind::Oom)).then(MemoryLimit::new);
        Workload { victim, memory, hang_marker: format!("600.{}", std::process::id()), runs: RunLog::new() }
    }

    fn call(&self, kind: Kind, i: usize, before: Option<&TaskFuture>) -> Call {
        let logged = |cmd: &str| self.runs.logged(&format!("t{i}"), cmd);
        let call = match kind {
            Kind::True => logged("true"),
            Kind::Echo => logged(&format!("echo {i}")),
            Kind::Func => Call::function("echo", format!("f{i}").into_bytes()),
            Kind::Sleep => logged("sleep 0.2"),
            Kind::Exit3 => logged("echo failing >&2; exit 3"),
            Kind::Dep => match before {
                Some(f) => logged("echo dep").after(f),
                None => logged("echo dep"),
            },
            Kind::Segfault => logged("kill -SEGV $$"),
            Kind::Oom => match &self.memory {
                Some(m) => m.hog().walltime(Duration::from_secs(60)),
                None => Call::argv(["false"]),
            },
            // A child in the background too: the walltime must kill the whole process tree.
            Kind::Hang => Call::shell(format!("sleep {m} & sleep {m}", m = self.hang_marker))
                .walltime(Duration::from_millis(HANG_WALLTIME_MS)),
        };
        // Lost managers and workers are retried (twice at most); the tasks' own failures are not.
        call.retries(2).retry_handler(retry_on(&[]))
    }

    /// Whether `got` is how a task of `kind` must end.
    fn expected(&self, kind: Kind, i: usize, got: &Result<Vec<u8>, TaskError>) -> bool {
        let failure = match got {
            Ok(out) => {
                return match kind {
                    Kind::True | Kind::Sleep => out.is_empty(),
                    Kind::Echo => out == format!("{i}\n").as_bytes(),
                    Kind::Func => out == format!("f{i}").as_bytes(),
                    Kind::Dep => out == b"dep\n",
                    _ => false,
                }
            }
            Err(TaskError::Failed { failure, .. }) => failure,
            Err(_) => return false,
        };
        match kind {
            Kind::Exit3 => matches!(failure, Failure::ExitCode { code: 3, .. }),
            Kind::Segfault => matches!(failure, Failure::Signal { signal: 11, .. }),
            Kind::Hang => matches!(failure, Failure::Timeout { walltime_ms: HANG_WALLTIME_MS }),
            Kind::Oom => self.memory.as_ref().is_some_and(|m| m.expected(failure)),
            _ => false,
        }
    }
}

/// A short name for a failure, for the table.
fn reason(e: &TaskError) -> String {
    match e {
        TaskError::Failed { failure: Failure::ExitCode { code, .. }, .. } => format!("exit {code}"),
        TaskError::Failed { failure: Failure::Signal { signal, .. }, .. } => format!("signal {signal}"),
        TaskError::Failed { failure, .. } => {
            let d = format!("{failure:?}");
            d.split([' ', '{', '(']).next().unwrap_or_default().to_string()
        }
        TaskError::DependencyFailed { .. } => "dependency failed".into(),
        TaskError::Cancelled => "cancelled".into(),
    }
}

/// One row of the matrix.
#[derive(Serialize, Deserialize, Debug, Default)]
struct Row {
    cell: String,
    tasks: usize,
    done: usize,
    failed: BTreeMap<String, usize>,
    retried: u64,
    resubmitted: u64,
    lost: usize,
    done_after_kill: usize,
    seconds: f64,
    note: String,
}

fn matrix_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("STRAND_MATRIX_DIR") {
        return d.into();
    }
    // target/<profile>/deps/failure_matrix-<hash> -> target/failure-matrix
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors().nth(3).map(|t| t.join("failure-matrix")).unwrap_or_else(|| PathBuf::from("target/failure-matrix"))
}

fn slug(cell: &str) -> String {
    cell.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect()
}

impl Row {
    /// Write the row (before the cell's assertions, so a failing cell still shows in the table).
    fn save(&self) {
        let dir = matrix_dir();
        std::fs::create_dir_all(&dir).expect("matrix directory");
        let text = serde_json::to_string_pretty(self).expect("row as JSON");
        std::fs::write(dir.join(format!("{}.json", slug(&self.cell))), text).expect("write row");
    }
}

/// An interchange and blocks of 3 ranks (a manager and two workers with two slots each).
struct Rig {
    dir: tempfile::TempDir,
    ix: Guard,
    ix_args: Vec<String>,
    conn: strand::connection::ConnectionInfo,
    blocks: Vec<Guard>,
}

/// Interchange settings of the cells that kill a manager: lost after 1 s of silence.
const FAST_HEARTBEAT: [&str; 4] = ["--heartbeat-period", "0.1", "--heartbeat-threshold", "1"];
/// Settings of the cells that kill only tasks: no manager may be lost.
const CALM_HEARTBEAT: [&str; 4] = ["--heartbeat-period", "0.5", "--heartbeat-threshold", "20"];

impl Rig {
    fn start(blocks: usize, ix_args: &[&str]) -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ix, conn) = interchange(dir.path(), ix_args);
        let conn_file = dir.path().join("connection.json");
        let blocks: Vec<Guard> = (0..blocks)
            .map(|b| {
                let name = format!("block{b}");
                let args = ["--pool-size", "3", "--slots-per-worker", "2", "--block-id", &name];
                launcher(dir.path(), &name, 3, &conn_file, &args)
            })
            .collect();
        wait_managers(&conn, blocks.len(), Duration::from_secs(60));
        Rig { dir, ix, ix_args: ix_args.iter().map(|s| s.to_string()).collect(), conn, blocks }
    }

    fn status(&self) -> strand::wire::StatusReport {
        Client::connect(&self.conn).expect("client").status(Duration::from_secs(10)).expect("status")
    }

    fn log(&self, name: &str) -> String {
        tail(&self.dir.path().join(format!("{name}.log")))
    }
}

/// What a workload left behind.
struct Run {
    dfk: Dfk,
    tasks: Vec<(Kind, TaskFuture)>,
    /// Task ids in the order they ended, as the DFK reported them.
    ends: Vec<TaskId>,
    /// How many had ended when the cell killed something.
    kill_at: Option<usize>,
    note: String,
}

/// The kill of a cell: runs once `KILL_AFTER` tasks have ended, returns a note for the table.
type Kill<'a> = Box<dyn FnOnce(&mut Rig, &Dfk) -> String + 'a>;

/// Submit the workload, kill in the middle, and collect every end (bounded).
fn drive(rig: &mut Rig, w: &Workload, cfg: DfkConfig, kill: Option<Kill>) -> Run {
    let cfg = w.runs.config(cfg);
    let dfk = Dfk::connect(&rig.conn, cfg).expect("dfk");
    let ended = dfk.ends();
    let mut tasks: Vec<(Kind, TaskFuture)> = Vec::with_capacity(TASKS);
    for i in 0..TASKS {
        let kind = kind_of(i, w.victim);
        let before = tasks.last().map(|(_, f)| f);
        let f = dfk.submit(w.call(kind, i, before));
        tasks.push((kind, f));
    }
    let mut ends = Vec::with_capacity(TASKS);
    let mut kill = kill;
    let mut kill_at = None;
    let mut note = String::new();
    let mut deadline = Instant::now() + CELL_TIMEOUT;
    while ends.len() < TASKS {
        let left = deadline.saturating_duration_since(Instant::now());
        match ended.recv_timeout(left) {
            Ok(id) => ends.push(id),
            Err(_) => break,
        }
        if ends.len() == KILL_AFTER {
            if let Some(k) = kill.take() {
                kill_at = Some(ends.len());
                note = k(rig, &dfk);
                deadline = Instant::now() + CELL_TIMEOUT;
            }
        }
    }
    Run { dfk, tasks, ends, kill_at, note }
}

impl Run {
    /// Tally the run into a row and check it: every task ended exactly once, as expected, and
    /// tasks were still finishing after the kill.
    fn judge(self, cell: &str, started: Instant, w: &Workload, rig: &Rig) -> (Row, Dfk) {
        let index: HashMap<TaskId, usize> = self.tasks.iter().enumerate().map(|(i, (_, f))| (f.id(), i)).collect();
        let mut row = Row { cell: cell.into(), tasks: self.tasks.len(), note: self.note.clone(), ..Row::default() };
        let mut wrong = vec![];
        for (i, (kind, f)) in self.tasks.iter().enumerate() {
            match f.peek() {
                None => row.lost += 1,
                Some(got) => {
                    match &got {
                        Ok(_) => row.done += 1,
                        Err(e) => *row.failed.entry(reason(e)).or_default() += 1,
                    }
                    if !w.expected(*kind, i, &got) {
                        wrong.push(format!("task {i} ({kind:?}) ended as {got:?}"));
                    }
                }
            }
        }
        // Without an outside kill, the kill is the first victim's end.
        let kill_at = self.kill_at.or_else(|| {
            self.ends.iter().position(|id| index.get(id).is_some_and(|&i| Some(self.tasks[i].0) == w.victim))
        });
        row.done_after_kill = kill_at
            .map(|k| {
                self.ends[k.min(self.ends.len())..]
                    .iter()
                    .filter(|id| index.get(id).is_some_and(|&i| matches!(self.tasks[i].1.peek(), Some(Ok(_)))))
                    .count()
            })
            .unwrap_or(0);
        let c = self.dfk.counts();
        row.retried = c.retried;
        row.resubmitted = c.resubmitted;
        row.seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        row.save();

        let logs = || rig.blocks.iter().enumerate().map(|(b, _)| rig.log(&format!("block{b}"))).collect::<Vec<_>>();
        assert_eq!(row.lost, 0, "{cell}: {} tasks never ended; logs: {:?}", row.lost, logs());
        let unique: HashSet<&TaskId> = self.ends.iter().collect();
        assert_eq!(unique.len(), self.ends.len(), "{cell}: a task ended twice");
        assert_eq!(self.ends.len(), TASKS, "{cell}: every task ended once");
        assert_eq!((c.done + c.failed) as usize, TASKS, "{cell}: the DFK counted each task once: {c:?}");
        assert_eq!(c.stale, 0, "{cell}: a second result for a try reached the DFK: {c:?}");
        assert!(
            wrong.is_empty(),
            "{cell}: {} tasks ended wrongly, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
        // No command task ran more often than it was tried (functions, hogs and hangs leave no trace).
        let logged = |k: Kind| !matches!(k, Kind::Func | Kind::Oom | Kind::Hang);
        w.runs.assert_each_ran_within_its_tries(
            self.tasks.iter().enumerate().filter(|(_, (k, _))| logged(*k)).map(|(i, (_, f))| (format!("t{i}"), f)),
        );
        assert!(kill_at.is_some(), "{cell}: nothing was killed");
        assert!(row.done_after_kill > 0, "{cell}: no task finished after the kill");
        (row, self.dfk)
    }
}

/// Wait for a killed block's `mpirun` to exit (bounded); its status for the table.
fn exit_of(g: &mut Guard, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = g.child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A task cell: one block, 20 victims of `kind` spread through the workload.
fn task_cell(cell: &str, kind: Kind) -> (Row, Workload, Rig) {
    let started = Instant::now();
    let w = Workload::with(Some(kind));
    let mut rig = Rig::start(1, &CALM_HEARTBEAT);
    let run = drive(&mut rig, &w, DfkConfig::default(), None);
    let (row, dfk) = run.judge(cell, started, &w, &rig);
    assert_eq!(row.retried, 0, "{cell}: nothing but the tasks died, so nothing is retried");
    assert!(rig.blocks[0].is_running(), "{cell}: the block survived its tasks");
    assert_eq!(rig.status().managers.len(), 1, "{cell}: its manager is still registered");
    dfk.shutdown();
    (row, w, rig)
}

#[test]
fn task_segfault() {
    let _file = crate::common::file_group(module_path!());
    let _serial = serial();
    let (row, _, _) = task_cell(CELLS[0], Kind::Segfault);
    assert_eq!(row.failed.get("signal 11"), Some(&20), "{row:?}");
}

#[test]
fn task_out_of_memory() {
    let _file = crate::common::file_group(module_path!());
    let _serial = serial();
    let (mut row, w, _rig) = task_cell(CELLS[1], Kind::Oom);
    let memory = w.memory.as_ref().expect("memory limit");
    row.note = memory.describe();
    match memory {
        // SIGKILL alone could come from anywhere: the cgroup's own count shows it was the OOM killer.
        MemoryLimit::Cgroup { dir, .. } => {
            let Some(kills) = memory.oom_kills() else {
                row.save();
                panic!("cannot show the kernel killed the hogs for memory: no oom_kill count in {}", dir.display());
            };
            row.note += &format!("; {kills} kills by the kernel's OOM killer");
            row.save();
            assert!(kills >= 20, "the kernel killed each hog: {kills} OOM kills");
        }
        // Each hog's own stderr said its allocation failed (checked per task by `expected`).
        MemoryLimit::Rlimit => {
            row.note += "; each hog's stderr says an allocation failed";
            row.save();
        }
    }
    assert_eq!(row.failed.values().sum::<usize>(), 40, "20 hogs and 20 exit 3, no other failure: {row:?}");
}

#[test]
fn task_past_walltime() {
    let _file = crate::common::file_group(module_path!());
    let _serial = serial();
    let (mut row, w, _rig) = task_cell(CELLS[2], Kind::Hang);
    assert_eq!(row.failed.get("Timeout"), Some(&20), "{row:?}");
    // Each hanging task had a child in the background: the whole tree went with it.
    let sleeper = format!("sleep {}", w.hang_marker);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pids_with_cmdline(&sleeper).is_empty() {
        assert!(Instant::now() < deadline, "left behind by a timed-out task: {:?}", pids_with_cmdline(&sleeper));
        std::thread::sleep(Duration::from_millis(20));
    }
    row.note = format!("walltime {HANG_WALLTIME_MS} ms; no process of a killed tree left");
    row.save();
}

/// A cell that kills (part of) block 0 of two; block 1 is the survivor.
fn block_cell(cell: &str, kill: Kill) -> (Row, Rig, Dfk) {
    let started = Instant::now();
    let w = Workload::plain();
    let mut rig = Rig::start(2, &FAST_HEARTBEAT);
    let run = drive(&mut rig, &w, DfkConfig::default(), Some(kill));
    let (row, dfk) = run.judge(cell, started, &w, &rig);
    assert!(row.retried > 0, "{cell}: the kill cost no try, so it proved nothing: {row:?}");
    assert!(rig.blocks[1].is_running(), "{cell}: the other block survived");
    (row, rig, dfk)
}

/// After a kill in block 0: it is gone and only block 1's manager is registered.
fn only_survivor_left(cell: &str, rig: &mut Rig) {
    let st = exit_of(&mut rig.blocks[0], Duration::from_secs(30));
    assert!(st.is_some(), "{cell}: mpirun of the killed block is still running");
    let managers = rig.status().managers;
    assert!(managers.iter().all(|m| m.block.0 == "block1"), "{cell}: a manager of the dead block is registered");
}

/// Kill one rank of block 0 with SIGKILL; the note says what `mpirun` did about it.
fn kill_rank(rank: u32) -> Kill<'static> {
    Box::new(move |rig: &mut Rig, _: &Dfk| {
        let pid = rank_pid(rig.blocks[0].pid(), rank).expect("rank of block 0");
        signal(pid, libc::SIGKILL);
        let t = Instant::now();
        match exit_of(&mut rig.blocks[0], Duration::from_secs(30)) {
            Some(s) => format!("mpirun of the killed block exited ({s}) {:.1} s later", t.elapsed().as_secs_f64()),
            None => "mpirun of the killed block kept running".into(),
        }
    })
}

#[test]
fn worker_rank_sigkill() {
    let _file = crate::common::file_group(module_path!());
    let _serial = serial();
    let (row, mut rig, dfk) = block_cell(CELLS[3], kill_rank(1));
    assert_eq!(row.done + row.failed.get("exit 3").copied().unwrap_or(0), TASKS, "{row:?}");
    only_survivor_left(CELLS[3], &mut rig);
    dfk.shutdown();
}

#[test]
fn manager_rank_sigkill() {
    let _file = crate::common::file_group(module_path!());
    let _serial = serial();
    let (_, mut rig, dfk) = block_cell(CELLS[4], kill_rank(0));
    only_survivor_left(CELLS[4], &mut rig);
    dfk.shutdown();
}

#[test]
fn whole_launcher_sigkill() {
    let _file = crate::common::file_group(module_path!());
    let _serial = serial();
    let kill: Kill = Box::new(|rig: &mut Rig, _: &Dfk| {
        kill_launcher(&mut rig.blocks[0]);
        "mpirun and its ranks killed at once".into()
    });
    let (_, mut rig, dfk) = block_cell(CELLS[5], kill);
    only_survivor_left(CELLS[5], &mut rig);
    dfk.shutdown();
}

#[test]
fn manager_sigstop_then_sigcont() {
    let _file = crate::common::file_group(module_path!());
    let _serial = serial();
    let kill: Kill = Box::new(|rig: &mut Rig, dfk: &Dfk| {
        let manager = rank_pid(rig.blocks[0].pid(), 0).expect("manager of block 0");
        signal(manager, libc::SIGSTOP);
        // Frozen past the threshold: its tries fail ManagerLost and are retried elsewhere.
        let t = Instant::now();
        let deadline = t + Duration::from_secs(30);
        while dfk.counts().retried == 0 {
            assert!(Instant::now() < deadline, "the frozen manager's tries were never failed");
            std::thread::sleep(Duration::from_millis(10));
        }
        signal(manager, libc::SIGCONT);
        format!("frozen {:.1} s", t.elapsed().as_secs_f64())
    });
    let (mut row, rig, dfk) = block_cell(CELLS[6], kill);
    // It comes back and registers afresh; what it finished while frozen is dropped as stale.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let s = rig.status();
        if s.managers.len() == 2 {
            break s;
        }
        assert!(Instant::now() < deadline, "the resumed manager did not register again: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    // With the other manager held, the resumed one alone must run new tasks.
    let other = status.managers.iter().find(|m| m.block.0 == "block1").expect("block1's manager").id;
    let mut client = Client::connect(&rig.conn).expect("client");
    let set = |client: &mut Client, mode| {
        let ack = client.request(&ClientMsg::SetMode { manager: other, mode }, Duration::from_secs(10), |r| match r {
            ToClientMsg::Ack { ok, .. } => Some(ok),
            _ => None,
        });
        assert_eq!(ack.ok(), Some(true), "set {mode:?}");
    };
    set(&mut client, ManagerMode::Held);
    let more: Vec<TaskFuture> = (0..20).map(|i| dfk.submit(Call::function("echo", vec![i]))).collect();
    for (i, f) in more.iter().enumerate() {
        assert_eq!(f.wait_timeout(Duration::from_secs(30)), Some(Ok(vec![i as u8])), "the resumed manager serves");
    }
    set(&mut client, ManagerMode::Active);
    assert_eq!(dfk.counts().stale, 0, "no late result of the frozen manager reached the DFK");
    // The frozen manager's late results must have been sent and dropped by the interchange:
    // else the check above held only because nothing late was ever sent.
    let stale = rig.status().dropped.stale_results;
    assert!(stale > 0, "the resumed manager's late results never reached the interchange");
    row.note += &format!("; it re-registered and ran 20 more tasks; {stale} late results dropped by the interchange");
    row.save();
    dfk.shutdown();
}

#[test]
fn interchange_sigkill_and_restart() {
    let _file = crate::common::file_group(module_path!());
    let _serial = serial();
    let started = Instant::now();
    let hb = ["--heartbeat-period", "0.2", "--heartbeat-threshold", "5"];
    let w = Workload::plain();
    let mut rig = Rig::start(1, &hb);
    let kill: Kill = Box::new(|rig: &mut Rig, _: &Dfk| {
        rig.ix.kill();
        let args: Vec<&str> = rig.ix_args.iter().map(String::as_str).collect();
        rig.ix = resume_interchange(rig.dir.path(), &args);
        "restarted with --resume on the same run directory".into()
    });
    let cfg = DfkConfig { interchange_timeout: Duration::from_secs(20), ..DfkConfig::default() };
    let run = drive(&mut rig, &w, cfg, Some(kill));
    let (row, dfk) = run.judge(CELLS[7], started, &w, &rig);
    assert!(row.resubmitted > 0, "the restart cost some tries, which were sent again: {row:?}");
    assert!(rig.blocks[0].is_running(), "the launcher survived the restart");
    assert_eq!(rig.status().managers.len(), 1, "its manager registered with the new interchange");
    dfk.shutdown();
}

/// The driver cell's workflow: the same mix as the other cells, each command task also appending
/// its name to `log` so a re-run that ran a completed task again would show.
fn driver_workflow(dir: &Path, log: &Path) -> (PathBuf, Vec<Kind>) {
    let l = log.display();
    let mut text = String::new();
    let mut kinds = vec![];
    for i in 0..TASKS {
        let kind = kind_of(i, None);
        kinds.push(kind);
        text += &format!("[[task]]\nname = \"t{i}\"\n");
        text += &match kind {
            Kind::Func => format!("function = \"echo\"\nargs = \"t{i}\"\n"),
            Kind::Sleep => format!("command = \"sleep 0.2; echo t{i} >> {l}\"\n"),
            Kind::Exit3 => format!("command = \"echo t{i} >> {l}; echo failing >&2; exit 3\"\n"),
            Kind::Dep => format!("command = \"echo t{i} >> {l}; echo dep\"\nafter = [\"t{}\"]\n", i - 1),
            _ => format!("command = \"echo t{i} >> {l}; echo t{i}\"\n"),
        };
    }
    let wf = dir.join("wf.toml");
    std::fs::write(&wf, text).expect("write workflow");
    (wf, kinds)
}

fn strand_run(wf: &Path, run_dir: &Path) -> Command {
    let mut c = Command::new(bin("strand"));
    c.arg("run").arg(wf).args(["--workers", "2", "--timeout", "120"]).arg("--run-dir").arg(run_dir);
    c
}

#[test]
fn driver_sigkill_and_rerun() {
    let _file = crate::common::file_group(module_path!());
    let _serial = serial();
    let cell = CELLS[8];
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = dir.path().join("run");
    let log = dir.path().join("log.txt");
    let (wf, kinds) = driver_workflow(dir.path(), &log);

    let mut first = Guard::spawn("strand run", strand_run(&wf, &run_dir).stdout(Stdio::null()).stderr(Stdio::null()));
    let checkpoint = run_dir.join("checkpoint.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&checkpoint).map(|s| s.lines().count()).unwrap_or(0) < KILL_AFTER {
        assert!(first.is_running() && Instant::now() < deadline, "the first run made no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    let helpers = children_of(first.pid());
    // SIGKILL to the driver alone: its interchange and block must go by themselves.
    signal(first.pid(), libc::SIGKILL);
    first.wait(Duration::from_secs(10));
    wait_gone(&helpers, Duration::from_secs(30));
    let mut recorded: Vec<String> = std::fs::read_to_string(&checkpoint)
        .expect("checkpoint")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["name"].as_str().map(String::from))
        .collect();
    let on_record = recorded.len();
    recorded.sort();
    recorded.dedup();
    assert_eq!(recorded.len(), on_record, "a task was recorded twice");

    let (out_path, err_path) = (dir.path().join("rerun.out"), dir.path().join("rerun.err"));
    let files = |p: &Path| std::fs::File::create(p).expect("output file");
    let mut second =
        Guard::spawn("strand run (again)", strand_run(&wf, &run_dir).stdout(files(&out_path)).stderr(files(&err_path)));
    let status = second.wait(Duration::from_secs(180));
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let errors = std::fs::read_to_string(&err_path).unwrap_or_default();
    // One line per task: "t7: done: t7", "t50: failed after 1 tries: exit code 3 ...".
    let mut lines: HashMap<&str, Vec<&str>> = HashMap::new();
    for l in text.lines() {
        if let Some((name, rest)) = l.split_once(": ") {
            lines.entry(name).or_default().push(rest);
        }
    }
    let ran: Vec<String> = std::fs::read_to_string(&log).unwrap_or_default().lines().map(String::from).collect();
    let mut runs: HashMap<&str, usize> = HashMap::new();
    for r in &ran {
        *runs.entry(r.as_str()).or_default() += 1;
    }
    let mut row = Row { cell: cell.into(), tasks: TASKS, ..Row::default() };
    let mut wrong = vec![];
    for (i, kind) in kinds.iter().enumerate() {
        let name = format!("t{i}");
        let got = lines.get(name.as_str()).cloned().unwrap_or_default();
        let [one] = got.as_slice() else {
            if got.is_empty() {
                row.lost += 1;
            }
            wrong.push(format!("{name}: {} result lines {got:?}", got.len()));
            continue;
        };
        let want = match kind {
            Kind::Exit3 => "failed after 1 tries: exit code 3; stderr: failing".to_string(),
            Kind::Sleep => "done".to_string(),
            Kind::Dep => "done: dep".to_string(),
            _ => format!("done: {name}"),
        };
        if one.starts_with("done") {
            row.done += 1;
        } else {
            // "failed after 1 tries: exit code 3; stderr: failing" -> "exit 3"
            let why = one.split_once("tries: ").map_or(*one, |(_, r)| r.split(';').next().unwrap_or(r));
            *row.failed.entry(why.replace("exit code", "exit")).or_default() += 1;
        }
        if *one != want {
            wrong.push(format!("{name} ({kind:?}): {one:?}, expected {want:?}"));
        }
        let times = runs.get(name.as_str()).copied().unwrap_or(0);
        let logs = *kind != Kind::Func;
        if logs && times == 0 {
            wrong.push(format!("{name} never ran"));
        }
        if logs && recorded.binary_search(&name).is_ok() && times != 1 {
            wrong.push(format!("{name} completed before the kill but ran {times} times"));
        }
    }
    let summary = format!("{TASKS} tasks: {} done ({on_record} skipped: completed in an earlier run)", row.done);
    row.done_after_kill = row.done.saturating_sub(on_record);
    row.seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    row.note = format!("killed after {on_record} tasks were checkpointed; the re-run skipped them");
    row.save();

    assert_eq!(status.code(), Some(1), "failed tasks make strand run exit 1:\n{errors}");
    assert!(errors.contains("resuming from"), "the re-run said it resumed:\n{errors}");
    assert!(text.contains(&summary), "expected {summary:?} in:\n{}", &text[text.len().saturating_sub(400)..]);
    assert_eq!(row.lost, 0, "tasks without a result: {row:?}");
    assert!(wrong.is_empty(), "{} tasks ended wrongly, e.g. {:?}", wrong.len(), &wrong[..wrong.len().min(5)]);
    assert_eq!(row.failed.values().sum::<usize>(), 20, "{row:?}");
    assert!(row.done_after_kill > 0, "the re-run finished nothing new");
}

/// Print the matrix from the rows (run by scripts/failure-matrix.sh after the cells).
#[test]
#[ignore = "prints the rows the other tests wrote; run by scripts/failure-matrix.sh"]
fn matrix_table() {
    let _file = crate::common::file_group(module_path!());
    let dir = matrix_dir();
    let mut out = String::from(
        "| cell | tasks | done | failed, by reason | retried | resubmitted | lost | done after the kill | seconds | notes |\n\
         | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    let mut missing = vec![];
    for cell in CELLS {
        let path = dir.join(format!("{}.json", slug(cell)));
        let Some(row) = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str::<Row>(&t).ok()) else {
            missing.push(cell);
            continue;
        };
        let failed = if row.failed.is_empty() {
            "0".to_string()
        } else {
            row.failed.iter().map(|(r, n)| format!("{n} {r}")).collect::<Vec<_>>().join(", ")
        };
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} |\n",
            row.cell,
            row.tasks,
            row.done,
            failed,
            row.retried,
            row.resubmitted,
            row.lost,
            row.done_after_kill,
            row.seconds,
            row.note
        );
        assert_eq!(row.lost, 0, "{}: lost tasks", row.cell);
    }
    std::fs::write(dir.join("matrix.md"), &out).expect("write matrix.md");
    println!("{out}");
    assert!(missing.is_empty(), "no row for {missing:?} in {}: run the cells first", dir.display());
}
