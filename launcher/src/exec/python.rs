//! Python function tries: a warm interpreter per slot thread (`python -u -m strand._worker`),
//! started on first use, fed one try at a time over its stdin and answering on its stdout,
//! each way a frame of a 4-byte little-endian length and the bytes.
//!
//! A try's frame is a kind byte, the function's 16-byte key, then for [`WITH_FUNCTION`] and
//! [`FORGET_THEN_WITH_FUNCTION`] the pickled function (a 4-byte length, the bytes), then the
//! pickled arguments. The slot remembers which functions its interpreter holds, so a function
//! crosses the pipe and is unpickled once per interpreter, not once per try. The answer is a
//! tag byte (0: the pickled return value follows; 1: `type\0message\0traceback` of the
//! exception it raised). An interpreter that dies fails only its try, and the next try starts
//! a fresh one; one past the walltime is killed with its try.

use super::groups::RunningGroups;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};
use strand::task::{Failure, Outcome, PythonCall};

/// Largest answer accepted from an interpreter (a result is also bounded by the frame limit).
const MAX_ANSWER: usize = 1 << 30;

/// Frames up to this size are written in one piece; larger ones are not copied for it.
const ONE_WRITE: usize = 64 << 10;

/// Frame kind: the function follows; the interpreter keeps it by its key.
pub const WITH_FUNCTION: u8 = 0;
/// Frame kind: the interpreter already holds the function of this key.
pub const CACHED_FUNCTION: u8 = 1;
/// Frame kind: the interpreter forgets every function it holds, then as [`WITH_FUNCTION`].
pub const FORGET_THEN_WITH_FUNCTION: u8 = 2;

/// The frames' protocol between this launcher and `strand._worker`. A started interpreter
/// first sends a hello (`HELLO`, the protocol as 4 little-endian bytes, then its Python's
/// version and its strand's, `\0` between), so that a worker of another strand is refused
/// with a message instead of misreading frames.
pub const PROTOCOL: u32 = 2;
/// How a hello begins.
const HELLO: &[u8] = b"strand-worker\0";
/// How long an interpreter may take to import strand and say hello (a parallel file system
/// at the start of a big job can be slow), unless the try's walltime ends first.
const HELLO_TIMEOUT: Duration = Duration::from_secs(300);

/// How many functions one interpreter holds before it is told to forget them all (a driver
/// that makes a new function per task must not grow the worker without bound).
const MAX_FUNCTIONS: usize = 1024;

/// One running interpreter.
struct Interpreter {
    path: String,
    child: Child,
    stdin: ChildStdin,
    /// Non-blocking, so that one read takes a whole answer and a walltime can end the wait.
    stdout: ChildStdout,
    /// Bytes read from `stdout` and not yet taken as an answer.
    inbox: Vec<u8>,
    /// The keys of the functions it holds.
    functions: HashSet<[u8; 16]>,
}

impl Drop for Interpreter {
    fn drop(&mut self) {
        // Its own process group: whatever the function started dies with it.
        // SAFETY: kill(2) on a process group we created; a stale id only fails.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Interpreter {
    /// Write one try's frame; the function goes with it unless the interpreter holds it.
    fn send(&mut self, call: &PythonCall) -> std::io::Result<()> {
        let (kind, mut frame) = frame_head(&self.functions, call)?;
        if kind == FORGET_THEN_WITH_FUNCTION {
            self.functions.clear();
        }
        let function: &[u8] = if kind == CACHED_FUNCTION { &[] } else { &call.function.pickled };
        if function.len() + call.args.len() <= ONE_WRITE {
            // One write: the interpreter wakes once, to the whole frame.
            frame.extend_from_slice(function);
            frame.extend_from_slice(&call.args);
            self.stdin.write_all(&frame)?;
        } else {
            // Large arguments are written where they are, not copied first.
            self.stdin.write_all(&frame)?;
            self.stdin.write_all(function)?;
            self.stdin.write_all(&call.args)?;
        }
        // Only once written may a later try count on it.
        self.functions.insert(call.function.key);
        Ok(())
    }

    /// The next answer, waiting at most until `deadline`.
    fn answer(&mut self, deadline: Option<Instant>) -> Result<Vec<u8>, Cut> {
        loop {
            // The whole frame's length once its head is in, else the head's.
            let need = match le_u32(&self.inbox) {
                Some(len) if len as usize > MAX_ANSWER => return Err(Cut::Closed),
                Some(len) => 4 + len as usize,
                None => 4,
            };
            // (Without a head, `need` is 4 and the inbox holds fewer.)
            if self.inbox.len() >= need {
                let answer = self.inbox[4..need].to_vec();
                self.inbox.drain(..need);
                return Ok(answer);
            }
            let want = need - self.inbox.len();
            let at = self.inbox.len();
            self.inbox.resize(at + want.max(4096), 0);
            let got = self.stdout.read(&mut self.inbox[at..]);
            self.inbox.truncate(at + *got.as_ref().unwrap_or(&0));
            match got {
                Ok(0) => return Err(Cut::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => wait_readable(&self.stdout, deadline)?,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Cut::Closed),
            }
        }
    }
}

/// The kind of a try's frame to an interpreter that holds `held`, and the frame's bytes up
/// to the pickled function (or, for [`CACHED_FUNCTION`], up to the arguments).
fn frame_head(held: &HashSet<[u8; 16]>, call: &PythonCall) -> std::io::Result<(u8, Vec<u8>)> {
    let f = &call.function;
    let kind = if held.contains(&f.key) {
        CACHED_FUNCTION
    } else if held.len() >= MAX_FUNCTIONS {
        FORGET_THEN_WITH_FUNCTION
    } else {
        WITH_FUNCTION
    };
    let function_len = if kind == CACHED_FUNCTION { 0 } else { 4 + f.pickled.len() };
    let total = u32::try_from(1 + f.key.len() + function_len + call.args.len())
        .map_err(|_| std::io::Error::other("a Python try over 4 GiB"))?;
    // Room for the rest of the frame too when `send` appends it (a small frame).
    let small = function_len + call.args.len() <= ONE_WRITE + 4;
    let mut head = Vec::with_capacity(if small { total as usize + 4 } else { 4 + 1 + 16 + 4 });
    head.extend_from_slice(&total.to_le_bytes());
    head.push(kind);
    head.extend_from_slice(&f.key);
    if kind != CACHED_FUNCTION {
        // Fits: it is part of `total`.
        head.extend_from_slice(&(f.pickled.len() as u32).to_le_bytes());
    }
    Ok((kind, head))
}

/// The warm interpreter of one slot thread, if it has one.
#[derive(Default)]
pub struct PythonSlot {
    warm: Option<Interpreter>,
}

/// How reading an answer (or starting an interpreter) ended early.
enum Cut {
    TimedOut,
    Closed,
    /// The interpreter could not be used, and why.
    Refused(String),
}

impl PythonSlot {
    /// Run one Python try on this slot's interpreter (starting it if needed), the interpreter
    /// lent to the try in `groups` while it runs, so resource samples count it as the try's.
    pub fn run(&mut self, call: &PythonCall, walltime_ms: Option<u64>, groups: &RunningGroups) -> Outcome {
        let deadline = walltime_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
        if self.warm.as_ref().is_some_and(|i| i.path != call.interpreter) {
            self.warm = None;
        }
        if self.warm.is_none() {
            match start(&call.interpreter, deadline) {
                Ok(i) => self.warm = Some(i),
                Err(Cut::TimedOut) => {
                    return Outcome::Failed(Failure::Timeout { walltime_ms: walltime_ms.unwrap_or_default() })
                }
                Err(Cut::Refused(message)) => return Outcome::Failed(Failure::SpawnError { message }),
                Err(Cut::Closed) => return Outcome::Failed(Failure::Shutdown),
            }
        }
        let Some(py) = self.warm.as_mut() else { return Outcome::Failed(Failure::Shutdown) };
        let lent = groups.lend(py.child.id() as i32);
        let sent = py.send(call);
        let answer = match sent {
            Ok(()) => py.answer(deadline),
            Err(_) => Err(Cut::Closed),
        };
        // Before the interpreter may be reaped below: a reaped pid can be reused.
        drop(lent);
        match answer {
            Ok(a) => match a.split_first() {
                Some((0, value)) => Outcome::Done(value.to_vec()),
                Some((1, text)) => {
                    let text = String::from_utf8_lossy(text);
                    let mut parts = text.splitn(3, '\0');
                    let mut next = || parts.next().unwrap_or_default().to_string();
                    let (kind, message, traceback) = (next(), next(), next());
                    Outcome::Failed(Failure::PythonError { kind, message, traceback })
                }
                _ => self.died("answered with an empty or unknown frame"),
            },
            Err(Cut::TimedOut) => {
                self.warm = None; // killed with its try
                Outcome::Failed(Failure::Timeout { walltime_ms: walltime_ms.unwrap_or_default() })
            }
            Err(Cut::Closed | Cut::Refused(_)) => self.died(""),
        }
    }

    /// The interpreter is gone or broken: reap it, say how it ended, start fresh next time.
    fn died(&mut self, what: &str) -> Outcome {
        let Some(mut py) = self.warm.take() else { return Outcome::Failed(Failure::Shutdown) };
        let ended = how_it_ended(&mut py.child);
        let how = if what.is_empty() { ended } else { what.to_string() };
        Outcome::Failed(Failure::InterpreterDied { interpreter: py.path.clone(), how })
    }
}

/// How a child that closed its pipe ended: its exit code or signal, after a short grace for
/// it to exit; one still running then is killed (its process group, as `Drop` does).
fn how_it_ended(child: &mut Child) -> String {
    use std::os::unix::process::ExitStatusExt;
    let grace = Instant::now() + Duration::from_secs(2);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) if Instant::now() < grace => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                // SAFETY: kill(2) on the process group we created.
                unsafe {
                    libc::kill(-(child.id() as i32), libc::SIGKILL);
                }
                return "closed its frames' pipe but kept running (killed)".into();
            }
            Err(e) => break Err(e),
        }
    };
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exited with code {c}"),
            (_, Some(sig)) => format!("killed by signal {sig}"),
            _ => s.to_string(),
        },
        Err(e) => format!("could not be waited for: {e}"),
    }
}

/// Start an interpreter and wait for its hello (until `deadline`, the try's walltime, or
/// [`HELLO_TIMEOUT`]): an interpreter that cannot run strand._worker, or runs another
/// strand's, is refused with a message that says which and what to do.
fn start(path: &str, deadline: Option<Instant>) -> Result<Interpreter, Cut> {
    let refused = |why: String| Cut::Refused(format!("starting the Python interpreter {path}: {why}"));
    let mut cmd = Command::new(path);
    // Its Python tries may start MPI programs (or import mpi4py) as any command may.
    crate::task_mpi::task_environment(&mut cmd);
    let mut child = cmd
        .args(["-u", "-m", "strand._worker"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(|e| refused(e.to_string()))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(refused("no pipes".into()));
    };
    // Non-blocking, so that a walltime can end a wait for an answer.
    let fd = stdout.as_raw_fd();
    // SAFETY: fcntl on a pipe this process owns.
    let nonblocking = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
    };
    let mut py =
        Interpreter { path: path.to_string(), child, stdin, stdout, inbox: Vec::new(), functions: HashSet::new() };
    if !nonblocking {
        return Err(refused(format!("cannot make its pipe non-blocking: {}", std::io::Error::last_os_error())));
    }
    let hello_by = Instant::now() + HELLO_TIMEOUT;
    let by = deadline.map_or(hello_by, |d| d.min(hello_by));
    match py.answer(Some(by)) {
        Ok(hello) => check_hello(&hello).map_err(refused)?,
        Err(Cut::TimedOut) if deadline.is_some_and(|d| d <= hello_by) => return Err(Cut::TimedOut),
        Err(Cut::TimedOut) => {
            return Err(refused(format!(
                "strand._worker did not say hello within {} s (an older strand there, or a hung import?)",
                HELLO_TIMEOUT.as_secs()
            )))
        }
        Err(_) => {
            let how = how_it_ended(&mut py.child);
            return Err(refused(format!(
                "it {how} before strand._worker said hello: is strand installed for it (pip install ./python)? \
                 Its error is in the block's log"
            )));
        }
    }
    Ok(py)
}

/// The little-endian u32 at the start of `b`, if it is that long.
fn le_u32(b: &[u8]) -> Option<u32> {
    b.get(..4).map(|h| u32::from_le_bytes([h[0], h[1], h[2], h[3]]))
}

/// Whether `hello` is strand._worker's, speaking this launcher's protocol; if not, why.
fn check_hello(hello: &[u8]) -> Result<(), String> {
    let Some(rest) = hello.strip_prefix(HELLO) else {
        return Err(format!("its first {} bytes are not strand._worker's hello", hello.len()));
    };
    let Some(protocol) = le_u32(rest) else { return Err("its hello is cut short".into()) };
    let text = &rest[4..];
    if protocol == PROTOCOL {
        return Ok(());
    }
    let text = String::from_utf8_lossy(text);
    let mut parts = text.splitn(2, '\0');
    let (python, strand) = (parts.next().unwrap_or("?"), parts.next().unwrap_or("?"));
    Err(format!(
        "its strand._worker (strand {strand}, Python {python}) speaks protocol {protocol}, this launcher {PROTOCOL}: \
         install this strand there (pip install ./python)"
    ))
}

/// Wait until `r` has bytes to read (or is closed), or say the deadline has passed.
fn wait_readable(r: &ChildStdout, deadline: Option<Instant>) -> Result<(), Cut> {
    loop {
        let wait_ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Cut::TimedOut);
                }
                // Rounded up: a poll that wakes a little early would spin.
                (left.as_micros().div_ceil(1000)).min(i32::MAX as u128) as i32
            }
        };
        let mut fd = libc::pollfd { fd: r.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut fd, 1, wait_ms) };
        if n > 0 {
            return Ok(()); // readable, or hung up: the read says which
        }
        if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(Cut::Closed);
        }
        // Timed out or interrupted: the deadline check above decides.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strand::task::PythonFunction;

    fn call(function: &[u8], args: &[u8]) -> PythonCall {
        PythonCall {
            interpreter: "python3".into(),
            function: PythonFunction::new(function.to_vec()),
            args: args.to_vec(),
        }
    }

    #[test]
    fn a_function_goes_once_then_by_key() {
        let c = call(b"fn-bytes", b"args");
        let mut held = HashSet::new();
        let (kind, head) = frame_head(&held, &c).unwrap();
        assert_eq!(kind, WITH_FUNCTION);
        // length, kind, key, function length: the frame is everything after the length.
        assert_eq!(head.len(), 4 + 1 + 16 + 4);
        assert_eq!(u32::from_le_bytes(head[..4].try_into().unwrap()) as usize, 1 + 16 + 4 + 8 + 4);
        assert_eq!(&head[5..21], &c.function.key);
        assert_eq!(u32::from_le_bytes(head[21..25].try_into().unwrap()), 8);
        held.insert(c.function.key);
        let (kind, head) = frame_head(&held, &c).unwrap();
        assert_eq!(kind, CACHED_FUNCTION);
        assert_eq!(head.len(), 4 + 1 + 16);
        assert_eq!(u32::from_le_bytes(head[..4].try_into().unwrap()) as usize, 1 + 16 + 4);
    }

    #[test]
    fn a_full_interpreter_is_told_to_forget_before_a_new_function() {
        let held: HashSet<[u8; 16]> = (0..MAX_FUNCTIONS as u32)
            .map(|i| {
                let mut k = [0u8; 16];
                k[..4].copy_from_slice(&i.to_le_bytes());
                k
            })
            .collect();
        let new = call(b"another", b"");
        assert_eq!(frame_head(&held, &new).unwrap().0, FORGET_THEN_WITH_FUNCTION);
        let mut k = [0u8; 16];
        k[..4].copy_from_slice(&7u32.to_le_bytes());
        let mut old = call(b"x", b"");
        old.function.key = k;
        assert_eq!(frame_head(&held, &old).unwrap().0, CACHED_FUNCTION, "one it holds is still named by key");
    }

    fn hello(protocol: u32) -> Vec<u8> {
        let mut h = HELLO.to_vec();
        h.extend_from_slice(&protocol.to_le_bytes());
        h.extend_from_slice(b"3.11.7\x000.0.9");
        h
    }

    #[test]
    fn a_hello_of_another_protocol_or_none_is_refused_by_name() {
        assert_eq!(check_hello(&hello(PROTOCOL)), Ok(()));
        let e = check_hello(&hello(1)).unwrap_err();
        assert!(e.contains("strand 0.0.9, Python 3.11.7") && e.contains("protocol 1, this launcher 2"), "{e}");
        assert!(check_hello(b"\x80\x04junk").unwrap_err().contains("not strand._worker's hello"));
        assert!(check_hello(HELLO).unwrap_err().contains("cut short"));
    }

    #[test]
    fn distinct_functions_have_distinct_keys() {
        assert_ne!(PythonFunction::new(b"a".to_vec()).key, PythonFunction::new(b"b".to_vec()).key);
        assert_eq!(PythonFunction::new(b"a".to_vec()).key, PythonFunction::new(b"a".to_vec()).key);
    }
}
