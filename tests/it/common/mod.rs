//! Shared harness for integration tests: real binaries, bounded waits, everything killed on drop.
#![allow(dead_code)]

pub mod cpus;
pub mod run_log;
pub mod slurm;

#[allow(unused_imports)]
pub use run_log::RunLog;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use strand::connection::ConnectionInfo;
use strand::executor::local_block::mpirun_args;
use strand::process::sibling_binary;
use strand::run_dir::CONNECTION_FILE;

/// Run `cmd` in `cwd` with no stdin, killed with its process group past `limit`; asserts it
/// exited 0 (showing its output and the tail of its stderr if not) and returns its stdout.
pub fn run_ok(cwd: &Path, name: &str, cmd: &mut Command, limit: Duration) -> String {
    let out = cwd.join(format!("{name}.out"));
    let err = cwd.join(format!("{name}.err"));
    let mut g = Guard::spawn(
        name,
        cmd.current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file")),
    );
    let status = g.wait(limit);
    let text = std::fs::read_to_string(&out).expect("stdout");
    assert!(status.success(), "{name}: exit {status}\n{text}\n{}", tail(&err));
    text
}

/// The repository's root (examples, job scripts, fixtures).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A workspace binary built next to the test executable.
pub fn bin(name: &str) -> PathBuf {
    let p = sibling_binary(name);
    assert!(p.is_file(), "{} not built: run `cargo build --release --workspace` first", p.display());
    p
}

/// A child process killed (with its process group) when dropped.
pub struct Guard {
    pub child: Child,
    pub name: String,
}

impl Guard {
    pub fn spawn(name: &str, cmd: &mut Command) -> Guard {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Guard { child, name: name.into() }
    }

    /// Wait for exit up to `timeout`; panics (after killing it) if it does not exit.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!("{} did not exit within {:?}", self.name, timeout);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn kill(&mut self) {
        // SAFETY: signalling our own child's process group.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.is_running() {
            self.kill();
        }
    }
}

/// `Command::output` with a deadline: the command runs in its own process group with no stdin;
/// past `limit` the group is killed and the test fails, so no test waits forever on a child.
pub trait OutputWithin {
    /// Run to the end (at most `limit`) and return the status and both outputs.
    fn output_within(&mut self, limit: Duration) -> std::process::Output;
}

impl OutputWithin for Command {
    fn output_within(&mut self, limit: Duration) -> std::process::Output {
        use std::io::Read;
        self.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut g = Guard::spawn(&format!("{:?}", self.get_program()), self);
        let read = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out = read(g.child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
        let err = read(g.child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
        let status = g.wait(limit);
        // Whatever it left behind in its group would hold the pipes open.
        g.kill();
        let join = |h: std::thread::JoinHandle<Vec<u8>>| h.join().expect("pipe reader");
        std::process::Output { status, stdout: join(out), stderr: join(err) }
    }
}

/// Start `strand interchange` in `run_dir` on loopback and wait for its connection file.
pub fn interchange(run_dir: &Path, extra: &[&str]) -> (Guard, ConnectionInfo) {
    let log = std::fs::File::create(run_dir.join("interchange.log")).expect("log file");
    let mut g = Guard::spawn(
        "interchange",
        Command::new(bin("strand"))
            .arg("interchange")
            .arg("--run-dir")
            .arg(run_dir)
            .args(["--address", "127.0.0.1"])
            .args(extra)
            .stdin(Stdio::null())
            .stderr(log),
    );
    let path = run_dir.join(CONNECTION_FILE);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(c) = ConnectionInfo::load(&path) {
            return (g, c);
        }
        assert!(g.is_running(), "interchange exited early; see {}", run_dir.join("interchange.log").display());
        assert!(Instant::now() < deadline, "no connection file within 30 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Start `mpirun -n RANKS strand-launcher --connection FILE ARGS...`, logging to `run_dir/NAME.log`.
pub fn launcher(run_dir: &Path, name: &str, ranks: u32, conn_file: &Path, extra: &[&str]) -> Guard {
    let log = std::fs::File::create(run_dir.join(format!("{name}.log"))).expect("log file");
    Guard::spawn(
        name,
        Command::new("mpirun")
            .args(mpirun_args(ranks))
            .arg(bin("strand-launcher"))
            .arg("--connection")
            .arg(conn_file)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log),
    )
}

/// Poll the interchange until `n` managers are registered (bounded).
pub fn wait_managers(conn: &ConnectionInfo, n: usize, timeout: Duration) {
    let mut c = strand::client::Client::connect(conn).expect("client");
    let deadline = Instant::now() + timeout;
    loop {
        let got = c.status(Duration::from_secs(5)).map(|s| s.managers.len()).unwrap_or(0);
        if got >= n {
            return;
        }
        assert!(Instant::now() < deadline, "only {got} of {n} managers registered within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait (bounded) until a line of the log at `path` contains every one of `words`; returns
/// that line, or fails with the log's tail.
pub fn wait_for_log_line(path: &Path, words: &[&str], timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| words.iter().all(|w| l.contains(w))) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no line with {words:?} in {} within {timeout:?}:\n{}",
            path.display(),
            tail(path)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Latest a strategy may scale in beyond `max_idletime + period`: generous, since what a test
/// checks is that scale-in happens and in order, not how fast under load (the elasticity
/// benchmark measures that).
pub const SCALE_IN_SLACK: Duration = Duration::from_secs(10);

/// Check that each block's events in `blocks.jsonl` come in the order `order` gives them
/// (events not in `order` are skipped), and that each block has every one of them.
pub fn assert_block_event_order(path: &Path, order: &[strand::block::BlockEventKind]) {
    let events = strand::block::read_events(path).expect("blocks.jsonl");
    let mut blocks: Vec<_> = events.iter().map(|e| e.block.clone()).collect();
    blocks.sort();
    blocks.dedup();
    for b in blocks {
        let seen: Vec<_> =
            events.iter().filter(|e| e.block == b && order.contains(&e.event)).map(|e| e.event).collect();
        assert_eq!(seen, order, "block {:?}: events out of order or missing in {}", b, path.display());
    }
}

/// The tail of a log file, for assertion messages.
pub fn tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let mut start = s.len().saturating_sub(3000);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

/// Process ids whose parent is `pid` (from /proc).
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        let ppid =
            stat.rfind(')').and_then(|i| stat[i + 2..].split_whitespace().nth(1)).and_then(|s| s.parse::<i32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// The pid of MPI_COMM_WORLD rank `rank` among mpirun's children (from their environment).
pub fn rank_pid(mpirun: i32, rank: u32) -> Option<i32> {
    children_of(mpirun).into_iter().find(|p| {
        std::fs::read(format!("/proc/{p}/environ"))
            .map(|env| env.split(|b| *b == 0).any(|kv| kv == format!("OMPI_COMM_WORLD_RANK={rank}").as_bytes()))
            .unwrap_or(false)
    })
}

/// Send `sig` to `pid` (a process this test started, or one of its descendants).
pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory effects; tests only signal their own descendants.
    unsafe { libc::kill(pid, sig) };
}

/// SIGKILL a whole launcher: every rank under its `mpirun`, then `mpirun` itself.
pub fn kill_launcher(g: &mut Guard) {
    for pid in children_of(g.pid()) {
        signal(pid, libc::SIGKILL);
    }
    g.kill();
}

/// Restart `strand interchange --resume` on the run directory of one that died (same key and ports).
pub fn resume_interchange(run_dir: &Path, extra: &[&str]) -> Guard {
    let log = std::fs::File::create(run_dir.join("interchange-resumed.log")).expect("log file");
    Guard::spawn(
        "interchange (resumed)",
        Command::new(bin("strand"))
            .arg("interchange")
            .arg("--run-dir")
            .arg(run_dir)
            .arg("--resume")
            .args(extra)
            .stdin(Stdio::null())
            .stderr(log),
    )
}

/// Whether `pid` has exited (gone, or a zombie nobody reaped yet).
pub fn is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3)) == Some("Z"),
        Err(_) => true,
    }
}

/// Wait until every one of `pids` has exited; panics naming the first survivor after `timeout`.
pub fn wait_gone(pids: &[i32], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    for &pid in pids {
        while !is_gone(pid) {
            assert!(Instant::now() < deadline, "process {pid} is still alive after {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Process ids whose command line contains `needle` (from /proc).
pub fn pids_with_cmdline(needle: &str) -> Vec<i32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmd) = std::fs::read(format!("/proc/{p}/cmdline")) else { continue };
        let cmd: Vec<u8> = cmd.into_iter().map(|b| if b == 0 { b' ' } else { b }).collect();
        if String::from_utf8_lossy(&cmd).contains(needle) && !is_gone(p) {
            out.push(p);
        }
    }
    out
}

/// The module whose tests have the machine now, and how many of them run.
static TURN: std::sync::Mutex<(Option<&'static str>, usize)> = std::sync::Mutex::new((None, 0));
/// Signalled when a module's last running test ends.
static TURN_FREE: std::sync::Condvar = std::sync::Condvar::new();

/// A module's turn, held by one of its tests until dropped.
pub struct FileGroup;

/// Wait until no other module's test runs, then join this module's turn. `module_path` is the
/// caller's `module_path!()`; its first module below the crate (`slurm` of `it::slurm::x`) is
/// the group, so each former test file shares the machine only with itself, as it did when it
/// was a binary of its own.
pub fn file_group(module_path: &'static str) -> FileGroup {
    let group = module_path.split("::").nth(1).unwrap_or(module_path);
    let mut turn = TURN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    while turn.0.is_some_and(|g| g != group) {
        turn = TURN_FREE.wait(turn).unwrap_or_else(std::sync::PoisonError::into_inner);
    }
    *turn = (Some(group), turn.1 + 1);
    FileGroup
}

impl Drop for FileGroup {
    fn drop(&mut self) {
        // Runs on a failing test's unwind too, so a failure hands the turn on.
        let mut turn = TURN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        turn.1 = turn.1.saturating_sub(1);
        if turn.1 == 0 {
            turn.0 = None;
            TURN_FREE.notify_all();
        }
    }
}

/// Decode a PNG and check that it is not blank (it has more than a white background); its
/// width and height.
pub fn decode_png(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    let mut reader = decoder.read_info().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let px = &buf[..info.buffer_size()];
    let samples = info.color_type.samples();
    assert!(px.chunks(samples).any(|c| c[..3] != [255, 255, 255]), "{} is blank", path.display());
    (info.width, info.height)
}
