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

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};
use strand::task::{Failure, Outcome, PythonCall};

/// Largest answer accepted from an interpreter (a result is also bounded by the frame limit).
const MAX_ANSWER: usize = 1 << 30;

/// Frame kind: the function follows; the interpreter keeps it by its key.
pub const WITH_FUNCTION: u8 = 0;
/// Frame kind: the interpreter already holds the function of this key.
pub const CACHED_FUNCTION: u8 = 1;
/// Frame kind: the interpreter forgets every function it holds, then as [`WITH_FUNCTION`].
pub const FORGET_THEN_WITH_FUNCTION: u8 = 2;

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
        // One write: the interpreter wakes once, to the whole frame.
        if kind != CACHED_FUNCTION {
            frame.extend_from_slice(&call.function.pickled);
        }
        frame.extend_from_slice(&call.args);
        self.stdin.write_all(&frame)?;
        // Only once written may a later try count on it.
        self.functions.insert(call.function.key);
        Ok(())
    }

    /// The next answer, waiting at most until `deadline`.
    fn answer(&mut self, deadline: Option<Instant>) -> Result<Vec<u8>, Cut> {
        loop {
            if let Some(head) = self.inbox.get(..4) {
                let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
                if len > MAX_ANSWER {
                    return Err(Cut::Closed);
                }
                if self.inbox.len() >= 4 + len {
                    let answer = self.inbox[4..4 + len].to_vec();
                    self.inbox.drain(..4 + len);
                    return Ok(answer);
                }
            }
            let want = match self.inbox.get(..4) {
                Some(h) => 4 + u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize - self.inbox.len(),
                None => 4 - self.inbox.len(),
            };
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
    // Room for the rest of the frame too, which `send` appends.
    let mut head = Vec::with_capacity(total as usize + 4);
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

/// How reading an answer ended early.
enum Cut {
    TimedOut,
    Closed,
}

impl PythonSlot {
    /// Run one Python try on this slot's interpreter (starting it if needed).
    pub fn run(&mut self, call: &PythonCall, walltime_ms: Option<u64>) -> Outcome {
        let deadline = walltime_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
        if self.warm.as_ref().is_some_and(|i| i.path != call.interpreter) {
            self.warm = None;
        }
        if self.warm.is_none() {
            match start(&call.interpreter) {
                Ok(i) => self.warm = Some(i),
                Err(message) => return Outcome::Failed(Failure::SpawnError { message }),
            }
        }
        let Some(py) = self.warm.as_mut() else { return Outcome::Failed(Failure::Shutdown) };
        let sent = py.send(call);
        let answer = match sent {
            Ok(()) => py.answer(deadline),
            Err(_) => Err(Cut::Closed),
        };
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
            Err(Cut::Closed) => self.died(""),
        }
    }

    /// The interpreter is gone or broken: reap it, say how it ended, start fresh next time.
    fn died(&mut self, what: &str) -> Outcome {
        let Some(mut py) = self.warm.take() else { return Outcome::Failed(Failure::Shutdown) };
        let how = match py.child.wait() {
            Ok(s) if what.is_empty() => {
                use std::os::unix::process::ExitStatusExt;
                match (s.code(), s.signal()) {
                    (Some(c), _) => format!("exited with code {c}"),
                    (_, Some(sig)) => format!("killed by signal {sig}"),
                    _ => s.to_string(),
                }
            }
            Ok(_) => what.to_string(),
            Err(e) => format!("could not be waited for: {e}"),
        };
        Outcome::Failed(Failure::InterpreterDied { interpreter: py.path.clone(), how })
    }
}

fn start(path: &str) -> Result<Interpreter, String> {
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
        .map_err(|e| format!("starting the Python interpreter {path}: {e}"))?;
    match (child.stdin.take(), child.stdout.take()) {
        (Some(stdin), Some(stdout)) => {
            // SAFETY: fcntl on the pipe we own; a failure leaves it blocking, which only
            // costs the walltime its precision (checked after each read).
            unsafe {
                let fd = stdout.as_raw_fd();
                libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK);
            }
            let functions = HashSet::new();
            Ok(Interpreter { path: path.to_string(), child, stdin, stdout, inbox: Vec::new(), functions })
        }
        _ => Err(format!("starting the Python interpreter {path}: no pipes")),
    }
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

    #[test]
    fn distinct_functions_have_distinct_keys() {
        assert_ne!(PythonFunction::new(b"a".to_vec()).key, PythonFunction::new(b"b".to_vec()).key);
        assert_eq!(PythonFunction::new(b"a".to_vec()).key, PythonFunction::new(b"a".to_vec()).key);
    }
}
