//! Command tasks: a child process in its own process group, waited on with a pidfd.

use std::collections::HashSet;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strand::task::{CommandSpec, Failure, Outcome, Program};

/// Most stdout kept in a result; the rest is read and discarded so the child never blocks.
pub const STDOUT_LIMIT: usize = 1 << 20;
/// Most stderr kept (its tail) for a failure message.
pub const STDERR_TAIL: usize = 4096;

/// Process groups of running commands, so a stopping launcher can kill them all.
#[derive(Clone, Default, Debug)]
pub struct RunningGroups {
    inner: Arc<Mutex<(HashSet<i32>, HashSet<i32>)>>,
}

impl RunningGroups {
    fn lock(&self) -> std::sync::MutexGuard<'_, (HashSet<i32>, HashSet<i32>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, pgid: i32) {
        self.lock().0.insert(pgid);
    }

    /// Forget a group; returns whether it was killed by [`RunningGroups::kill_all`].
    fn remove(&self, pgid: i32) -> bool {
        let mut g = self.lock();
        g.0.remove(&pgid);
        g.1.remove(&pgid)
    }

    /// SIGKILL every running command's process group.
    pub fn kill_all(&self) {
        let mut g = self.lock();
        let running: Vec<i32> = g.0.iter().copied().collect();
        for pgid in running {
            g.1.insert(pgid);
            killpg(pgid);
        }
    }
}

fn killpg(pgid: i32) {
    // SAFETY: plain syscall; ESRCH (already gone) is harmless.
    unsafe { libc::killpg(pgid, libc::SIGKILL) };
}

fn describe(p: &Program) -> String {
    match p {
        Program::Argv(v) => v.first().cloned().unwrap_or_default(),
        Program::Shell(s) => format!("/bin/sh -c {s:?}"),
    }
}

/// Run a command to completion or walltime. Never panics on any input.
pub fn run_command(spec: &CommandSpec, walltime_ms: Option<u64>, groups: &RunningGroups) -> Outcome {
    let mut cmd = match &spec.program {
        Program::Argv(v) if v.is_empty() => {
            return Outcome::Failed(Failure::SpawnError { message: "empty argv: nothing to run".into() })
        }
        Program::Argv(v) => {
            let mut c = Command::new(&v[0]);
            c.args(&v[1..]);
            c
        }
        Program::Shell(s) => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(s);
            c
        }
    };
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null()).process_group(0);
    if let Some(d) = &spec.cwd {
        cmd.current_dir(d);
    }
    let open = |path: &str| std::fs::File::create(path).map_err(|e| format!("cannot create {path}: {e}"));
    match &spec.stdout {
        Some(p) => match open(p) {
            Ok(f) => cmd.stdout(f),
            Err(message) => return Outcome::Failed(Failure::SpawnError { message }),
        },
        None => cmd.stdout(Stdio::piped()),
    };
    match &spec.stderr {
        Some(p) => match open(p) {
            Ok(f) => cmd.stderr(f),
            Err(message) => return Outcome::Failed(Failure::SpawnError { message }),
        },
        None => cmd.stderr(Stdio::piped()),
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let cwd = spec.cwd.as_deref().map(|d| format!(" (cwd {d})")).unwrap_or_default();
            return Outcome::Failed(Failure::SpawnError { message: format!("{}{cwd}: {e}", describe(&spec.program)) });
        }
    };
    let pid = child.id() as i32;
    groups.add(pid);
    let stdout = child.stdout.take().map(OwnedFd::from);
    let stderr = child.stderr.take().map(OwnedFd::from);
    let deadline = walltime_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
    let timed_out = wait_with_output(pid, stdout, stderr, deadline);
    // Reap; after a kill this returns at once.
    let status = child.wait();
    // Stray background children must not outlive the task.
    killpg(pid);
    let killed_by_us = groups.remove(pid);
    let (out, err) = timed_out.1;
    if killed_by_us {
        return Outcome::Failed(Failure::Shutdown);
    }
    if timed_out.0 {
        return Outcome::Failed(Failure::Timeout { walltime_ms: walltime_ms.unwrap_or(0) });
    }
    let stderr = String::from_utf8_lossy(&err).into_owned();
    match status {
        Ok(s) if s.success() => Outcome::Done(out),
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => Outcome::Failed(Failure::ExitCode { code, stderr }),
            (None, Some(signal)) => Outcome::Failed(Failure::Signal { signal, stderr }),
            (None, None) => Outcome::Failed(Failure::SpawnError { message: format!("unknown wait status {s}") }),
        },
        Err(e) => Outcome::Failed(Failure::SpawnError { message: format!("waiting for the child: {e}") }),
    }
}

/// Bounded capture of one pipe.
struct Capture {
    fd: Option<OwnedFd>,
    buf: Vec<u8>,
    /// Keep the head (stdout) or the tail (stderr).
    keep_tail: bool,
    limit: usize,
}

impl Capture {
    fn new(fd: Option<OwnedFd>, keep_tail: bool, limit: usize) -> Capture {
        if let Some(f) = &fd {
            set_nonblocking(f.as_raw_fd());
        }
        Capture { fd, buf: Vec::new(), keep_tail, limit }
    }

    /// Read what is there; returns false at EOF (and closes the pipe).
    fn pump(&mut self) {
        let Some(fd) = &self.fd else { return };
        // SAFETY: the fd stays owned by `self.fd`; ManuallyDrop keeps File from closing it.
        let mut f = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd.as_raw_fd()) });
        let mut chunk = [0u8; 65536];
        loop {
            match f.read(&mut chunk) {
                Ok(0) => {
                    self.fd = None;
                    return;
                }
                Ok(n) => self.keep(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.fd = None;
                    return;
                }
            }
        }
    }

    fn keep(&mut self, data: &[u8]) {
        if self.keep_tail {
            self.buf.extend_from_slice(data);
            if self.buf.len() > self.limit {
                let cut = self.buf.len() - self.limit;
                self.buf.drain(..cut);
            }
        } else {
            let room = self.limit.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&data[..room.min(data.len())]);
        }
    }
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor we own.
    Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Wait for the child to exit while draining its pipes, until `deadline`.
/// Returns (timed out, (stdout head, stderr tail)). On timeout the group is killed.
fn wait_with_output(
    pid: i32,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    deadline: Option<Instant>,
) -> (bool, (Vec<u8>, Vec<u8>)) {
    let mut out = Capture::new(stdout, false, STDOUT_LIMIT);
    let mut err = Capture::new(stderr, true, STDERR_TAIL);
    // pidfd (Linux 5.3+) makes the exit itself pollable, so there is no sleep loop. Without
    // it, poll the pipes with a short timeout and check the exit with waitid(WNOWAIT).
    let pidfd = pidfd_open(pid);
    let mut exited = false;
    let mut timed_out = false;
    loop {
        if !exited {
            exited = has_exited(pid);
        }
        if exited && out.fd.is_none() && err.fd.is_none() {
            break;
        }
        if exited {
            // The child is gone; grandchildren may hold the pipes open. Take what is
            // buffered and stop: the group is killed after this returns.
            out.pump();
            err.pump();
            break;
        }
        let timeout_ms = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    killpg(pid);
                    timed_out = true;
                    break;
                }
                left.as_millis().clamp(1, i32::MAX as u128) as i32
            }
            None => -1,
        };
        let mut fds = Vec::with_capacity(3);
        if let Some(p) = &pidfd {
            fds.push(libc::pollfd { fd: p.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        }
        for c in [&out, &err] {
            if let Some(f) = &c.fd {
                fds.push(libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 });
            }
        }
        let timeout_ms = if pidfd.is_none() { timeout_ms.clamp(-1, 10).max(1) } else { timeout_ms };
        // SAFETY: valid pollfd array; EINTR is handled by looping.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        out.pump();
        err.pump();
    }
    (timed_out, (out.buf, err.buf))
}

/// Whether the child has exited, without reaping it (std's `wait` reaps it later).
fn has_exited(pid: i32) -> bool {
    // SAFETY: zeroed siginfo is a valid out-parameter for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer; WNOWAIT leaves the child waitable.
    let rc = unsafe {
        libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
    };
    // SAFETY: si_pid is valid to read after waitid filled (or zeroed) the struct.
    rc == 0 && unsafe { info.si_pid() } != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(s: &str) -> CommandSpec {
        CommandSpec { program: Program::Shell(s.into()), env: vec![], cwd: None, stdout: None, stderr: None }
    }

    fn run(spec: &CommandSpec, w: Option<u64>) -> Outcome {
        run_command(spec, w, &RunningGroups::default())
    }

    #[test]
    fn exit_zero_captures_stdout() {
        assert_eq!(run(&sh("echo hi"), None), Outcome::Done(b"hi\n".to_vec()));
    }

    #[test]
    fn exit_code_with_stderr_tail() {
        match run(&sh("echo oops >&2; exit 3"), None) {
            Outcome::Failed(Failure::ExitCode { code: 3, stderr }) => assert_eq!(stderr, "oops\n"),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn signal_is_reported() {
        assert!(matches!(run(&sh("kill -SEGV $$"), None), Outcome::Failed(Failure::Signal { signal: 11, .. })));
    }

    #[test]
    fn walltime_kills_the_whole_group_promptly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pid");
        let t = Instant::now();
        let o = run(&sh(&format!("sleep 30 & echo $! > {}; wait", pidfile.display())), Some(200));
        assert_eq!(o, Outcome::Failed(Failure::Timeout { walltime_ms: 200 }));
        assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
        let gpid: i32 = std::fs::read_to_string(&pidfile).expect("pid").trim().parse().expect("number");
        // The grandchild was SIGKILLed; once its parent (init or a subreaper) reaps it, it is gone.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            // SAFETY: probing with signal 0.
            let alive = unsafe { libc::kill(gpid, 0) } == 0;
            let zombie =
                std::fs::read_to_string(format!("/proc/{gpid}/stat")).map(|s| s.contains(") Z")).unwrap_or(true);
            if !alive || zombie {
                break;
            }
            assert!(Instant::now() < deadline, "grandchild {gpid} survived the walltime kill");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn spawn_errors_name_the_program() {
        let spec = CommandSpec { program: Program::Argv(vec!["/no/such/program".into()]), ..sh("") };
        match run(&spec, None) {
            Outcome::Failed(Failure::SpawnError { message }) => assert!(message.contains("/no/such/program")),
            o => panic!("{o:?}"),
        }
        let spec = CommandSpec { cwd: Some("/no/such/dir".into()), ..sh("true") };
        assert!(matches!(run(&spec, None), Outcome::Failed(Failure::SpawnError { .. })));
        let spec = CommandSpec { program: Program::Argv(vec![]), ..sh("") };
        assert!(matches!(run(&spec, None), Outcome::Failed(Failure::SpawnError { .. })));
    }

    #[test]
    fn stdout_file_env_and_cwd() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("o.txt");
        let spec = CommandSpec {
            program: Program::Shell("echo $GREETING; pwd".into()),
            env: vec![("GREETING".into(), "hej".into())],
            cwd: Some(dir.path().display().to_string()),
            stdout: Some(out.display().to_string()),
            stderr: None,
        };
        assert_eq!(run(&spec, None), Outcome::Done(vec![]));
        let text = std::fs::read_to_string(&out).expect("stdout file");
        assert!(text.starts_with("hej\n"), "{text}");
        assert!(text.contains(&dir.path().display().to_string()));
    }

    #[test]
    fn large_stdout_does_not_deadlock_and_is_truncated() {
        match run(&sh("head -c 3000000 /dev/zero"), Some(20_000)) {
            Outcome::Done(out) => assert_eq!(out.len(), STDOUT_LIMIT),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn kill_all_turns_a_running_command_into_shutdown() {
        let groups = RunningGroups::default();
        let g2 = groups.clone();
        let h = std::thread::spawn(move || run_command(&sh("sleep 30"), None, &g2));
        let deadline = Instant::now() + Duration::from_secs(10);
        while groups.lock().0.is_empty() {
            assert!(Instant::now() < deadline, "command never started");
            std::thread::yield_now();
        }
        groups.kill_all();
        assert_eq!(h.join().expect("thread"), Outcome::Failed(Failure::Shutdown));
    }
}
