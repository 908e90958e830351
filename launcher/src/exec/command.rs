//! Command tasks: a child process in its own process group, supervised with poll(2).
//!
//! One poll covers the child's exit (a pidfd, or a waitid thread on old kernels) and its stdout and
//! stderr pipes, with the time left to the walltime as the timeout: no spinning, no
//! fixed sleeps. The whole process group is SIGKILLed at the walltime, and again after a
//! normal exit so background children never outlive their task.
//!
//! A command given a cpuset (a wide try's cores, chosen by its manager and sent with the try)
//! starts with that CPU affinity instead of its worker's binding. Its environment is not read
//! for this: `STRAND_CPUS` there only tells the command what it got.

use super::capture::{Capture, Keep};
use super::exit_watch::ExitWatch;
use super::groups::{kill_group, RunningGroups, Spawned};
use super::spawn::{self, Output, Process, Spawn};
use crate::placement;
use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use strand::task::{CommandSpec, Failure, Outcome, Program, Usage};

/// Most stdout kept in a result; the rest is read and discarded so the child never blocks.
pub const STDOUT_LIMIT: usize = 1 << 20;
/// Most stderr kept (its tail) for a failure message.
pub const STDERR_TAIL: usize = 4096;

/// Run a command to its exit or its walltime. Never panics on any input.
///
/// Relative `stdout`/`stderr` paths are taken relative to `cwd` when one is given, as a
/// shell redirection after `cd` would be (and as declared outputs are).
pub fn run_command(spec: &CommandSpec, walltime_ms: Option<u64>) -> Outcome {
    run_command_tracked(spec, walltime_ms, None, &RunningGroups::new())
}

/// As [`run_command`], bound to `cpus` when given (else the worker's binding), and registering
/// the child's process group in `groups` while it runs, so [`RunningGroups::kill_all`] can end
/// it (the try then fails as `Shutdown`).
pub fn run_command_tracked(
    spec: &CommandSpec,
    walltime_ms: Option<u64>,
    cpus: Option<&BTreeSet<u32>>,
    groups: &RunningGroups,
) -> Outcome {
    run_command_measured(spec, walltime_ms, cpus, groups).0
}

/// As [`run_command_tracked`], with what the command used (zero if it never started).
pub fn run_command_measured(
    spec: &CommandSpec,
    walltime_ms: Option<u64>,
    cpus: Option<&BTreeSet<u32>>,
    groups: &RunningGroups,
) -> (Outcome, Usage) {
    run(spec, walltime_ms, cpus, groups, ExitWatch::open)
}

/// How supervision ended.
enum End {
    /// The child exited (by itself, or killed by `kill_all`).
    Exited,
    /// The walltime passed; the group was killed.
    TimedOut,
    /// The child could not be supervised; the group was killed.
    Lost(String),
}

fn run(
    spec: &CommandSpec,
    walltime_ms: Option<u64>,
    cpus: Option<&BTreeSet<u32>>,
    groups: &RunningGroups,
    open_watch: fn(i32) -> io::Result<ExitWatch>,
) -> (Outcome, Usage) {
    // The walltime counts from here: a slow spawn (a binary on a loaded parallel file
    // system) is part of the task's time.
    let deadline = walltime_ms.and_then(|ms| Instant::now().checked_add(Duration::from_millis(ms)));
    let none = Usage::default();
    let ready = match prepare(spec) {
        Ok(r) => r,
        Err(message) => return (Outcome::Failed(Failure::SpawnError { message }), none),
    };
    let mask = cpus.and_then(affinity_mask);
    // posix_spawn cannot set an affinity, and searches the launcher's PATH, not the task's.
    let through_std = mask.is_some()
        || spec.env.iter().any(|(k, _)| k == "PATH")
        || (spec.cwd.is_some() && !spawn::sets_directories());
    let spawned = if through_std {
        groups.spawn(|| command(spec, ready, mask).spawn().map(Process::from))
    } else {
        let (stdout, stderr) = (output(ready.stdout), output(ready.stderr));
        let s = Spawn { argv: &ready.argv, cwd: spec.cwd.as_deref(), env: &spec.env, stdout, stderr };
        groups.spawn(|| spawn::spawn(&s))
    };
    let mut child = match spawned {
        Spawned::Child(c) => c,
        Spawned::Closed => return (Outcome::Failed(Failure::Shutdown), none),
        Spawned::Failed(e) => return (Outcome::Failed(Failure::SpawnError { message: spawn_message(spec, &e) }), none),
    };
    let pid = child.pid;
    let (end, stdout, stderr) = supervise(&mut child, pid, deadline, open_watch);
    // The leader has exited or been SIGKILLed but is not reaped, so its pid (the pgid)
    // cannot have been reused: kill whatever it left behind in its group, unregister
    // it, and only then reap.
    kill_group(pid);
    let shut_down = groups.finish(pid);
    // Reaped here, not by `child.wait()`: wait4 also says what it used.
    let (status, usage) = match reap(pid) {
        Ok(s) => s,
        Err(e) => {
            let message = format!("{}: waiting for it failed: {e}", describe(&spec.program));
            return (Outcome::Failed(Failure::SpawnError { message }), none);
        }
    };
    let outcome = match end {
        // An exit 0 that raced with kill_all still counts.
        End::Exited if status.success() => Outcome::Done(stdout),
        _ if shut_down => Outcome::Failed(Failure::Shutdown),
        End::TimedOut => Outcome::Failed(Failure::Timeout { walltime_ms: walltime_ms.unwrap_or_default() }),
        End::Lost(why) => {
            Outcome::Failed(Failure::SpawnError { message: format!("{}: {why}", describe(&spec.program)) })
        }
        End::Exited => match (status.code(), status.signal()) {
            (Some(code), _) => Outcome::Failed(Failure::ExitCode { code, stderr, stdout }),
            (None, Some(signal)) => Outcome::Failed(Failure::Signal { signal, stderr, stdout }),
            (None, None) => Outcome::Failed(Failure::SpawnError {
                message: format!("{}: unexpected wait status {status}", describe(&spec.program)),
            }),
        },
    };
    (outcome, usage)
}

/// Reap `pid` (our exited or killed child) with `wait4`: its status and its resource use.
fn reap(pid: i32) -> io::Result<(std::process::ExitStatus, Usage)> {
    let mut status = 0;
    // SAFETY: rusage is plain data; all-zero is a valid value for the kernel to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid out-pointers; `pid` is our child and not reaped yet (nothing else waits
        // for it: the exit watch only observes).
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let us = |t: libc::timeval| (t.tv_sec.max(0) as u64) * 1_000_000 + t.tv_usec.max(0) as u64;
    let usage = Usage { cpu_us: us(ru.ru_utime) + us(ru.ru_stime), max_rss_kib: ru.ru_maxrss.max(0) as u64 };
    Ok((std::process::ExitStatus::from_raw(status), usage))
}

/// A command made ready to start: its command line, and the files its outputs go to.
struct Ready {
    argv: Vec<String>,
    stdout: Option<File>,
    stderr: Option<File>,
}

/// Check a spec and open its output files; a message naming the problem if it cannot run.
fn prepare(spec: &CommandSpec) -> Result<Ready, String> {
    let argv = match &spec.program {
        Program::Argv(argv) if argv.is_empty() => return Err("empty argv: there is no program to run".into()),
        Program::Argv(argv) => argv.clone(),
        Program::Shell(script) => vec!["/bin/sh".into(), "-c".into(), script.clone()],
    };
    for (k, _) in &spec.env {
        // std would pass such a name through and the child would see a different variable.
        if k.is_empty() || k.contains('=') {
            return Err(format!("{}: invalid environment variable name {k:?}", describe(&spec.program)));
        }
    }
    let cwd = spec.cwd.as_deref();
    let stdout_path = spec.stdout.as_deref().map(|p| resolve(cwd, p));
    let stderr_path = spec.stderr.as_deref().map(|p| resolve(cwd, p));
    let stdout = stdout_path.as_deref().map(|p| create(p, "stdout")).transpose()?;
    let stderr = match (&stderr_path, &stdout) {
        // The same file for both: share one open file (and its offset), or each stream
        // would overwrite the other from offset 0.
        (Some(e), Some(o)) if Some(e) == stdout_path.as_ref() => {
            Some(o.try_clone().map_err(|err| format!("cannot share stdout file {} for stderr: {err}", e.display()))?)
        }
        (Some(e), _) => Some(create(e, "stderr")?),
        (None, _) => None,
    };
    Ok(Ready { argv, stdout, stderr })
}

fn output(file: Option<File>) -> Output {
    file.map_or(Output::Pipe, |f| Output::File(f.into()))
}

/// The `Command` for a ready spec, bound to the CPUs of `mask` when given: for what
/// [`spawn::spawn`] cannot do.
fn command(spec: &CommandSpec, ready: Ready, mask: Option<Vec<libc::c_ulong>>) -> Command {
    let mut cmd = Command::new(&ready.argv[0]);
    cmd.args(&ready.argv[1..]);
    // Before the task's own variables: a wide try's STRAND_MPI_PREFIX replaces the one-rank one.
    crate::task_mpi::task_environment(&mut cmd);
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    if let Some(d) = &spec.cwd {
        cmd.current_dir(d);
    }
    // Its own process group: a timeout or a stop kills the task's whole tree and nothing else.
    cmd.stdin(Stdio::null()).process_group(0);
    if let Some(mask) = mask {
        let bytes = std::mem::size_of_val(mask.as_slice());
        // SAFETY: the hook runs in the forked child, where only async-signal-safe calls are
        // allowed: it makes one system call on a mask built before the fork and allocates
        // nothing. A failure (no CPU of the list is allowed here) leaves the inherited
        // binding, which is still a place the command can run; so it is not an error.
        unsafe {
            cmd.pre_exec(move || {
                libc::sched_setaffinity(0, bytes, mask.as_ptr().cast::<libc::cpu_set_t>());
                Ok(())
            });
        }
    }
    cmd.stdout(ready.stdout.map_or_else(Stdio::piped, Stdio::from));
    cmd.stderr(ready.stderr.map_or_else(Stdio::piped, Stdio::from));
    cmd
}

/// `cpus` as the kernel's mask ([`placement::cpu_mask`]); `None` (the worker's binding) when
/// empty. CPUs past [`placement::MAX_CPU`] cannot exist and are left out, so a corrupt set
/// cannot make the mask huge.
fn affinity_mask(cpus: &BTreeSet<u32>) -> Option<Vec<libc::c_ulong>> {
    let real: BTreeSet<u32> = cpus.range(..=placement::MAX_CPU).copied().collect();
    placement::cpu_mask(&real)
}

fn resolve(cwd: Option<&str>, path: &str) -> PathBuf {
    match cwd {
        Some(d) if Path::new(path).is_relative() => Path::new(d).join(path),
        _ => PathBuf::from(path),
    }
}

fn create(path: &Path, what: &str) -> Result<File, String> {
    File::create(path).map_err(|e| format!("cannot create {what} file {}: {e}", path.display()))
}

/// A spawn error, naming the program, and the working directory when that is the cause
/// (std reports a missing cwd as a bare ENOENT, which reads like a missing program).
fn spawn_message(spec: &CommandSpec, e: &io::Error) -> String {
    let program = describe(&spec.program);
    let Some(d) = &spec.cwd else { return format!("{program}: {e}") };
    match std::fs::metadata(d) {
        Err(me) => format!("{program}: working directory {d:?}: {me}"),
        Ok(m) if !m.is_dir() => format!("{program}: working directory {d:?} is not a directory"),
        Ok(_) => format!("{program} (in {d:?}): {e}"),
    }
}

/// The program as a message names it; a long shell script is shortened.
fn describe(p: &Program) -> String {
    const MAX: usize = 80;
    match p {
        Program::Argv(v) => format!("{:?}", v.first().map(String::as_str).unwrap_or_default()),
        Program::Shell(s) if s.chars().count() > MAX => {
            format!("/bin/sh -c {:?}...", s.chars().take(MAX).collect::<String>())
        }
        Program::Shell(s) => format!("/bin/sh -c {s:?}"),
    }
}

/// Drain the child's pipes until it exits or the deadline passes. On return the child
/// has exited or its group has been SIGKILLed, and the pipes are closed (grandchildren
/// holding them open cannot keep us waiting). Returns the stdout head and stderr tail.
fn supervise(
    child: &mut Process,
    pid: i32,
    deadline: Option<Instant>,
    open_watch: fn(i32) -> io::Result<ExitWatch>,
) -> (End, Vec<u8>, String) {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let setup = Capture::new(stdout, Keep::Head, STDOUT_LIMIT).and_then(|out| {
        let err = Capture::new(stderr, Keep::Tail, STDERR_TAIL)?;
        Ok((out, err, open_watch(pid)?))
    });
    let (mut out, mut err, watch) = match setup {
        Ok(s) => s,
        Err(e) => {
            kill_group(pid);
            return (End::Lost(format!("cannot watch the child: {e}")), Vec::new(), String::new());
        }
    };
    let end = wait(pid, watch.fd(), &mut out, &mut err, deadline);
    watch.close();
    (end, out.into_bytes(), err.into_text())
}

fn wait(pid: i32, exit_fd: RawFd, out: &mut Capture, err: &mut Capture, deadline: Option<Instant>) -> End {
    loop {
        let timeout_ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    kill_group(pid);
                    return End::TimedOut;
                }
                // Round up: waking a little early would only loop, a little late is fine.
                left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
            }
        };
        let mut fds = [pollfd(Some(exit_fd)), pollfd(out.fd()), pollfd(err.fd())];
        // SAFETY: `fds` is a valid array of 3 pollfds; a negative fd is ignored by poll.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // EINVAL or ENOMEM: we can no longer watch it, so do not let it run unwatched.
            kill_group(pid);
            return End::Lost(format!("poll failed: {e}"));
        }
        if fds[1].revents != 0 {
            out.pump();
        }
        if fds[2].revents != 0 {
            err.pump();
        }
        if fds[0].revents != 0 {
            // Everything the child wrote before exiting is in the pipes now: take it. Do
            // not wait for end of file, which background children may hold off forever.
            out.pump();
            err.pump();
            return End::Exited;
        }
    }
}

fn pollfd(fd: Option<RawFd>) -> libc::pollfd {
    libc::pollfd { fd: fd.unwrap_or(-1), events: libc::POLLIN, revents: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Once;

    fn sh(s: &str) -> CommandSpec {
        CommandSpec { program: Program::Shell(s.into()), env: vec![], cwd: None, stdout: None, stderr: None }
    }

    fn argv(a: &[&str]) -> CommandSpec {
        CommandSpec { program: Program::Argv(a.iter().map(|s| s.to_string()).collect()), ..sh("") }
    }

    fn spawn_error(o: Outcome) -> String {
        match o {
            Outcome::Failed(Failure::SpawnError { message }) => message,
            o => panic!("expected a spawn error, got {o:?}"),
        }
    }

    /// Orphaned grandchildren are reparented to this test process, so a test can reap
    /// them and then see their pid gone (ESRCH) without depending on init reaping.
    fn become_subreaper() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            // SAFETY: a plain prctl with integer arguments.
            let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
            assert_eq!(rc, 0, "PR_SET_CHILD_SUBREAPER: {}", io::Error::last_os_error());
        });
    }

    /// Reap `pid` (now our child, see `become_subreaper`) and check it no longer exists.
    fn assert_reaped_and_gone(pid: i32) {
        let mut status = 0;
        // SAFETY: a valid out-pointer. It blocks until `pid` dies: SIGKILLed, that is prompt.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid, "waitpid({pid}): {}", io::Error::last_os_error());
        assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL, "status {status:#x}");
        // SAFETY: signal 0 only probes for existence.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH), "{pid} still exists");
    }

    fn read_pid(path: &Path) -> i32 {
        let text = std::fs::read_to_string(path).expect("pid file");
        text.trim().parse().unwrap_or_else(|_| panic!("not a pid: {text:?}"))
    }

    #[test]
    fn exit_zero_captures_stdout() {
        assert_eq!(run_command(&sh("echo hi; echo there"), None), Outcome::Done(b"hi\nthere\n".to_vec()));
        assert_eq!(run_command(&argv(&["echo", "a b"]), Some(10_000)), Outcome::Done(b"a b\n".to_vec()));
    }

    #[test]
    fn exit_code_carries_the_stderr_tail() {
        assert_eq!(
            run_command(&sh("echo out; echo oops >&2; exit 3"), None),
            Outcome::Failed(Failure::ExitCode { code: 3, stderr: "oops\n".into(), stdout: b"out\n".to_vec() })
        );
        // Only the last 4 KiB of a long stderr is kept.
        match run_command(&sh("head -c 10000 /dev/zero | tr '\\0' a >&2; echo END >&2; exit 1"), None) {
            Outcome::Failed(Failure::ExitCode { code: 1, stderr, .. }) => {
                assert_eq!(stderr.len(), STDERR_TAIL);
                assert!(stderr.ends_with("aaEND\n"), "{stderr:?}");
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn signals_are_reported() {
        // ulimit -c 0: no core file left in the test's directory.
        assert!(matches!(
            run_command(&sh("ulimit -c 0; echo dying >&2; kill -SEGV $$"), None),
            Outcome::Failed(Failure::Signal { signal: libc::SIGSEGV, stderr, .. }) if stderr == "dying\n"
        ));
        assert!(matches!(
            run_command(&sh("kill -9 $$"), None),
            Outcome::Failed(Failure::Signal { signal: libc::SIGKILL, .. })
        ));
    }

    fn walltime_kills_the_whole_group(open_watch: fn(i32) -> io::Result<ExitWatch>) {
        become_subreaper();
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pid");
        let spec = sh(&format!("sleep 30 & echo $! > {}; wait", pidfile.display()));
        let t = Instant::now();
        let (o, _) = run(&spec, Some(200), None, &RunningGroups::new(), open_watch);
        let took = t.elapsed();
        assert_eq!(o, Outcome::Failed(Failure::Timeout { walltime_ms: 200 }));
        assert!(took >= Duration::from_millis(200) && took < Duration::from_secs(5), "took {took:?}");
        assert_reaped_and_gone(read_pid(&pidfile));
    }

    #[test]
    fn walltime_kills_the_whole_group_promptly() {
        walltime_kills_the_whole_group(ExitWatch::open);
    }

    #[test]
    fn walltime_kills_the_whole_group_without_pidfd() {
        walltime_kills_the_whole_group(ExitWatch::with_thread);
    }

    #[test]
    fn without_pidfd_exit_codes_and_output_still_arrive() {
        let r = |s: &str| run(&sh(s), Some(20_000), None, &RunningGroups::new(), ExitWatch::with_thread).0;
        assert_eq!(r("echo hi"), Outcome::Done(b"hi\n".to_vec()));
        let failed = Failure::ExitCode { code: 4, stderr: "no\n".into(), stdout: b"out\n".to_vec() };
        assert_eq!(r("echo out; echo no >&2; exit 4"), Outcome::Failed(failed), "a failed command's output is kept");
    }

    #[test]
    fn background_children_die_with_the_task_and_do_not_hold_it_up() {
        become_subreaper();
        // The background sleep holds the stdout pipe open; the task still ends at once.
        let t = Instant::now();
        let out = match run_command(&sh("sleep 30 & echo $!"), None) {
            Outcome::Done(out) => out,
            o => panic!("{o:?}"),
        };
        assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
        let pid: i32 = String::from_utf8_lossy(&out).trim().parse().expect("pid on stdout");
        assert_reaped_and_gone(pid);
    }

    #[test]
    fn spawn_errors_name_the_program_or_the_directory() {
        let m = spawn_error(run_command(&argv(&["/no/such/program", "x"]), None));
        assert!(m.contains("/no/such/program") && m.contains("No such file"), "{m}");
        let m = spawn_error(run_command(&argv(&["strand-no-such-program-on-path"]), None));
        assert!(m.contains("strand-no-such-program-on-path"), "{m}");
        let m = spawn_error(run_command(&CommandSpec { cwd: Some("/no/such/dir".into()), ..sh("true") }, None));
        assert!(m.contains("working directory \"/no/such/dir\""), "{m}");
        let m = spawn_error(run_command(&argv(&[]), None));
        assert!(m.contains("empty argv"), "{m}");
        // Not executable (even root needs an execute bit).
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("script.sh");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").expect("write");
        let m = spawn_error(run_command(&argv(&[&script.display().to_string()]), None));
        assert!(m.contains("script.sh") && m.contains("ermission denied"), "{m}");
        // A cwd that is a file.
        let m = spawn_error(run_command(&CommandSpec { cwd: Some(script.display().to_string()), ..sh("true") }, None));
        assert!(m.contains("not a directory"), "{m}");
    }

    #[test]
    fn hostile_specs_fail_cleanly() {
        spawn_error(run_command(&argv(&["ec\0ho", "x"]), None));
        spawn_error(run_command(&argv(&["echo", "a\0b"]), None));
        spawn_error(run_command(&sh("echo \0"), None));
        let env = |k: &str| CommandSpec { env: vec![(k.into(), "v".into())], ..sh("true") };
        spawn_error(run_command(&env("A=B"), None));
        spawn_error(run_command(&env(""), None));
        spawn_error(run_command(&env("A\0"), None));
        spawn_error(run_command(&CommandSpec { cwd: Some("/tmp\0x".into()), ..sh("true") }, None));
        spawn_error(run_command(&CommandSpec { stdout: Some("/no/such/dir/out".into()), ..sh("true") }, None));
        spawn_error(run_command(&CommandSpec { stderr: Some("/no/such/dir/err".into()), ..sh("true") }, None));
        // A walltime too large for an Instant means no walltime, and 0 means already past.
        assert_eq!(run_command(&sh("true"), Some(u64::MAX)), Outcome::Done(vec![]));
        assert_eq!(run_command(&sh("sleep 30"), Some(0)), Outcome::Failed(Failure::Timeout { walltime_ms: 0 }));
    }

    /// The CPUs a command bound to `cpus` (with `env`) may use, as it reports them.
    fn cpus_seen(cpus: Option<&BTreeSet<u32>>, env: &[(&str, &str)]) -> String {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let spec = CommandSpec { env, ..sh("grep Cpus_allowed_list /proc/self/status | cut -f2") };
        match run_command_tracked(&spec, Some(20_000), cpus, &RunningGroups::new()) {
            Outcome::Done(out) => String::from_utf8_lossy(&out).trim().to_string(),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn a_cpuset_sets_the_commands_affinity() {
        let inherited = cpus_seen(None, &[]);
        let mine = placement::parse_list(&inherited).expect("a CPU list");
        let last = mine.last().copied().expect("some CPU");
        // One CPU of ours (the last, so not simply the first of the inherited list).
        assert_eq!(cpus_seen(Some(&[last].into()), &[]), last.to_string());
        // The whole set again.
        assert_eq!(cpus_seen(Some(&mine), &[]), inherited);
        // Empty, or only CPUs this process may not use (or that cannot exist): the inherited binding.
        assert_eq!(cpus_seen(Some(&BTreeSet::new()), &[]), inherited);
        assert_eq!(cpus_seen(Some(&[placement::MAX_CPU].into()), &[]), inherited);
        assert_eq!(cpus_seen(Some(&[u32::MAX].into()), &[]), inherited);
        // A list in the environment does not bind: it only tells the command.
        assert_eq!(cpus_seen(None, &[("STRAND_CPUS", &last.to_string())]), inherited);
    }

    #[test]
    fn stdout_file_env_and_cwd() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("o.txt");
        std::fs::write(&out, "old content that must be truncated away\n".repeat(10)).expect("write");
        let spec = CommandSpec {
            program: Program::Shell("echo $GREETING; pwd; echo to-stderr >&2".into()),
            env: vec![("GREETING".into(), "hej".into())],
            cwd: Some(dir.path().display().to_string()),
            stdout: Some(out.display().to_string()),
            stderr: None,
        };
        assert_eq!(run_command(&spec, None), Outcome::Done(vec![]));
        let text = std::fs::read_to_string(&out).expect("stdout file");
        assert_eq!(text, format!("hej\n{}\n", dir.path().display()));
        // The inherited environment is still there.
        assert_eq!(
            run_command(&CommandSpec { env: spec.env.clone(), ..sh("test -n \"$PATH\"") }, None),
            Outcome::Done(vec![])
        );
    }

    #[test]
    fn relative_output_files_are_in_cwd_and_may_be_one_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = CommandSpec {
            program: Program::Shell("echo one; echo two >&2; echo three".into()),
            env: vec![],
            cwd: Some(dir.path().display().to_string()),
            stdout: Some("both.log".into()),
            stderr: Some("both.log".into()),
        };
        assert_eq!(run_command(&spec, None), Outcome::Done(vec![]));
        assert_eq!(std::fs::read_to_string(dir.path().join("both.log")).expect("log"), "one\ntwo\nthree\n");
        // stderr to its own file: a failure then carries no tail.
        let spec = CommandSpec {
            program: Program::Shell("echo bad >&2; exit 1".into()),
            stderr: Some("e.log".into()),
            ..spec
        };
        assert_eq!(
            run_command(&spec, None),
            Outcome::Failed(Failure::ExitCode { code: 1, stderr: String::new(), stdout: vec![] })
        );
        assert_eq!(std::fs::read_to_string(dir.path().join("e.log")).expect("log"), "bad\n");
    }

    #[test]
    fn large_output_does_not_deadlock_and_is_truncated() {
        match run_command(&sh("head -c 2097152 /dev/urandom"), Some(30_000)) {
            Outcome::Done(out) => assert_eq!(out.len(), STDOUT_LIMIT),
            o => panic!("{o:?}"),
        }
        // Both pipes full at once, and a failure at the end.
        match run_command(&sh("head -c 2097152 /dev/zero; head -c 2097152 /dev/zero >&2; exit 5"), Some(30_000)) {
            Outcome::Failed(Failure::ExitCode { code: 5, stderr, .. }) => assert_eq!(stderr.len(), STDERR_TAIL),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn kill_all_turns_a_running_command_into_shutdown() {
        let groups = RunningGroups::new();
        let g2 = groups.clone();
        let t = Instant::now();
        let h = std::thread::spawn(move || run_command_tracked(&sh("sleep 30"), None, None, &g2));
        // Wait (bounded) for the child to be registered: nothing to block on here.
        while groups.is_empty() {
            assert!(t.elapsed() < Duration::from_secs(10), "command never started");
            std::thread::yield_now();
        }
        groups.kill_all();
        assert_eq!(h.join().expect("thread"), Outcome::Failed(Failure::Shutdown));
        assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
        assert!(groups.is_empty());
        // Closed: nothing more starts.
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("ran");
        let o = run_command_tracked(&sh(&format!("touch {}", marker.display())), None, None, &groups);
        assert_eq!(o, Outcome::Failed(Failure::Shutdown));
        assert!(!marker.exists());
    }
}
