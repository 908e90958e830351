//! Task execution: commands as child processes, functions from a registry, on N slot threads.
//!
//! The [`Executor`] keeps execution off the caller's thread (an MPI progress loop, which
//! must stay responsive): tries go in through [`Executor::submit`], results come out on
//! [`Executor::completions`], exactly one per try.

mod capture;
pub mod command;
mod dispatch;
mod exit_watch;
pub mod function;
mod groups;
mod python;
pub mod registry;
mod spawn;

pub use command::{run_command, run_command_measured, run_command_tracked, STDERR_TAIL, STDOUT_LIMIT};
pub use dispatch::{execute, execute_tracked};
pub use function::{run_function, run_function_within};
pub use groups::RunningGroups;
pub use registry::{Registry, TaskFn};

use crossbeam_channel::{unbounded, Receiver, Sender};
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use strand::task::{Failure, Outcome, Try, TryResult};

/// `slots` threads that run tries off the caller's thread; each try yields exactly one result.
pub struct Executor {
    submit: Sender<Job>,
    /// Kept to answer tries directly when no slot thread could be started.
    done_tx: Sender<TryResult>,
    done: Receiver<TryResult>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// Why no slot thread could be started, if none could.
    no_threads: Option<String>,
}

/// A try queued for a slot, with the CPUs its command must run on (`None`: the rank's own).
struct Job {
    t: Try,
    cpus: Option<BTreeSet<u32>>,
}

/// State the slot threads share with the executor.
#[derive(Default)]
struct Shared {
    groups: RunningGroups,
    /// Set by `shutdown` (or drop): tries still queued are answered `Shutdown`, not run.
    stopping: AtomicBool,
    running: AtomicUsize,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire) || self.groups.is_closed()
    }
}

impl Executor {
    /// Start `slots` execution threads (at least one), named `strand-exec-N`, slots 1 ...
    pub fn new(slots: usize, registry: Arc<Registry>) -> Executor {
        Executor::numbered(slots, 1, registry)
    }

    /// As [`Executor::new`], its slots numbered from `first_slot`: each command is told its
    /// slot as `STRAND_SLOT` (what `strand map` fills `{%}` with, GNU parallel's job slot).
    pub fn numbered(slots: usize, first_slot: u64, registry: Arc<Registry>) -> Executor {
        let (submit, inbox) = unbounded::<Job>();
        let (done_tx, done) = unbounded::<TryResult>();
        let shared = Arc::new(Shared::default());
        let mut threads = Vec::with_capacity(slots.max(1));
        let mut spawn_error = None;
        for i in 0..slots.max(1) {
            let (inbox, done_tx, registry, shared) =
                (inbox.clone(), done_tx.clone(), Arc::clone(&registry), Arc::clone(&shared));
            match std::thread::Builder::new()
                .name(format!("strand-exec-{i}"))
                .spawn(move || slot(first_slot + i as u64, &inbox, &done_tx, &registry, &shared))
            {
                Ok(h) => threads.push(h),
                // Fewer slots than asked still run everything; none is handled in submit.
                Err(e) => spawn_error = Some(e.to_string()),
            }
        }
        let no_threads = threads.is_empty().then(|| spawn_error.unwrap_or_default());
        Executor { submit, done_tx, done, shared, threads, no_threads }
    }

    /// Queue a try; never blocks (the caller bounds what it hands over).
    pub fn submit(&self, t: Try) {
        self.submit_on(t, None);
    }

    /// Queue a try whose command must run on `cpus` (a wide try's cores); `None`: as [`Executor::submit`].
    pub fn submit_on(&self, t: Try, cpus: Option<BTreeSet<u32>>) {
        if let Some(why) = &self.no_threads {
            // Still exactly one result per try, so the caller's accounting holds.
            let message = format!("no executor thread could be started: {why}");
            let _ = self.done_tx.send(TryResult::new(t.id, Outcome::Failed(Failure::SpawnError { message })));
            return;
        }
        // Cannot fail: the slot threads hold receivers until the executor is dropped, and
        // one that died would have had to panic outside catch_unwind.
        let _ = self.submit.send(Job { t, cpus });
    }

    /// Results as tries finish; `recv_timeout` on it is the caller's idle wait.
    pub fn completions(&self) -> &Receiver<TryResult> {
        &self.done
    }

    /// How many tries are executing now (not counting queued ones).
    pub fn running(&self) -> usize {
        self.shared.running.load(Ordering::Acquire)
    }

    /// What the running commands and Python tries use now (functions run inside this process
    /// and are not told apart), each sample stamped `t_us`.
    pub fn sample(&self, t_us: u64) -> Vec<strand::sample::TrySample> {
        self.shared.groups.sample(t_us)
    }

    /// How many slot threads run tries.
    pub fn slots(&self) -> usize {
        self.threads.len()
    }

    /// SIGKILL the process groups of all running commands (their tries end as `Shutdown`)
    /// and start nothing more: queued tries and later submissions are answered `Shutdown`.
    /// Functions already running cannot be interrupted and run to their end.
    pub fn kill_running(&self) {
        self.shared.groups.kill_all();
    }

    /// Stop: queued tries are not started, idle slot threads exit. Running tries are not
    /// waited for (call [`Executor::kill_running`] first to end commands); a thread still
    /// inside a function is left to finish it, as nothing can interrupt it safely.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Dropping `submit` disconnects the inbox once it is empty; the flag makes the
        // slots answer what is still queued instead of running it.
        self.shared.stopping.store(true, Ordering::Release);
    }
}

/// One slot thread: run tries until the executor goes away.
fn slot(number: u64, inbox: &Receiver<Job>, done: &Sender<TryResult>, registry: &Registry, shared: &Shared) {
    let slot_number = u32::try_from(number).unwrap_or(u32::MAX);
    let number = number.to_string();
    // This slot's warm Python interpreter, started by its first Python try.
    let mut python = python::PythonSlot::default();
    for Job { mut t, cpus } in inbox.iter() {
        if let strand::task::App::Command(c) = &mut t.spec.app {
            c.env.push(("STRAND_SLOT".into(), number.clone()));
        }
        let (started, begun) = (std::time::SystemTime::now(), std::time::Instant::now());
        let (outcome, usage) = if shared.stopping() {
            (Outcome::Failed(Failure::Shutdown), strand::task::Usage::default())
        } else {
            shared.running.fetch_add(1, Ordering::AcqRel);
            // Function panics are caught inside; this catches bugs in the launcher's own
            // code, so that even then the try gets its one result and the slot survives.
            let o = catch_unwind(AssertUnwindSafe(|| {
                groups::for_try(t.id, || execute_tracked(registry, &t.spec, cpus.as_ref(), &shared.groups, &mut python))
            }))
            .unwrap_or_else(|p| {
                let failure = Failure::Panic { message: strand::text::panic_message(p.as_ref()) };
                (Outcome::Failed(failure), strand::task::Usage::default())
            });
            shared.running.fetch_sub(1, Ordering::AcqRel);
            o
        };
        let ran = strand::task::Ran { slot: slot_number, usage, ..strand::task::Ran::since(started, begun) };
        let result = TryResult { id: t.id, outcome, ran };
        if done.send(result).is_err() {
            return; // the executor is gone: nobody wants results any more
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::{Duration, Instant};
    use strand::task::{App, ClientId, CommandSpec, FunctionCall, Program, TaskId, TaskSpec, TryId};

    fn try_of(i: u64, app: App) -> Try {
        Try {
            id: TryId { client: ClientId(7), task: TaskId(i), attempt: 0 },
            spec: TaskSpec { app, walltime_ms: None, priority: 0, outputs: vec![], resources: Default::default() },
        }
    }

    fn shell(s: &str) -> App {
        App::Command(CommandSpec {
            program: Program::Shell(s.into()),
            env: vec![],
            cwd: None,
            stdout: None,
            stderr: None,
        })
    }

    fn function(name: &str, args: &[u8]) -> App {
        App::Function(FunctionCall { name: name.into(), args: args.to_vec() })
    }

    fn recv(ex: &Executor) -> TryResult {
        ex.completions().recv_timeout(Duration::from_secs(30)).expect("a result within 30 s")
    }

    #[test]
    fn commands_are_told_their_slot_and_timed() {
        let ex = Executor::numbered(2, 5, Arc::new(Registry::with_builtins()));
        let before = std::time::SystemTime::now();
        // Two at once, so that both slot threads take one.
        let hold = "sleep 0.3; echo $STRAND_SLOT";
        ex.submit(try_of(1, shell(hold)));
        ex.submit(try_of(2, shell(hold)));
        let mut slots: Vec<String> = (0..2)
            .map(|_| {
                let r = recv(&ex);
                assert!(r.ran.is_known() && r.ran.run_us >= 300_000, "timed: {:?}", r.ran);
                let started = std::time::UNIX_EPOCH + Duration::from_micros(r.ran.started_us);
                assert!(started >= before - Duration::from_millis(1), "started in this test");
                match r.outcome {
                    Outcome::Done(out) => String::from_utf8_lossy(&out).trim().to_string(),
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        slots.sort();
        assert_eq!(slots, ["5", "6"]);
    }

    #[test]
    fn every_try_yields_exactly_one_result() {
        let ex = Executor::new(2, Arc::new(Registry::with_builtins()));
        assert_eq!(ex.slots(), 2);
        let n = 200u64;
        let mut expected = HashMap::new();
        for i in 0..n {
            let (app, want) = match i % 6 {
                0 => (function("echo", &i.to_le_bytes()), Outcome::Done(i.to_le_bytes().to_vec())),
                1 => (function("panic", b"p"), Outcome::Failed(Failure::Panic { message: "p".into() })),
                2 => (
                    App::Command(CommandSpec { program: Program::Argv(vec!["true".into()]), ..blank() }),
                    Outcome::Done(vec![]),
                ),
                3 => (
                    shell("exit 2"),
                    Outcome::Failed(Failure::ExitCode { code: 2, stderr: String::new(), stdout: vec![] }),
                ),
                4 => (function("nope", b""), Outcome::Failed(Failure::UnknownFunction { name: "nope".into() })),
                _ => (shell(&format!("echo {i}")), Outcome::Done(format!("{i}\n").into_bytes())),
            };
            expected.insert(TaskId(i), want);
            ex.submit(try_of(i, app));
        }
        for _ in 0..n {
            let r = recv(&ex);
            let want = expected.remove(&r.id.task).unwrap_or_else(|| panic!("unexpected or duplicate result {}", r.id));
            assert_eq!(r.outcome, want, "{}", r.id);
        }
        assert!(expected.is_empty());
        assert!(ex.completions().recv_timeout(Duration::from_millis(200)).is_err(), "an extra result");
        assert_eq!(ex.running(), 0);
        ex.shutdown();
    }

    fn blank() -> CommandSpec {
        CommandSpec { program: Program::Argv(vec![]), env: vec![], cwd: None, stdout: None, stderr: None }
    }

    #[test]
    fn kill_running_turns_a_running_command_into_shutdown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pid");
        let marker = dir.path().join("ran");
        let ex = Executor::new(1, Arc::new(Registry::with_builtins()));
        ex.submit(try_of(1, shell(&format!("echo $$ > {}; exec sleep 30", pidfile.display()))));
        // Queued behind it on the single slot: must never start.
        ex.submit(try_of(2, shell(&format!("touch {}", marker.display()))));
        let t = Instant::now();
        // Nothing to block on until the child is registered and has written its pid
        // (the same pid after `exec`); bounded spin.
        let read_pid = || std::fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse::<i32>().ok());
        while ex.shared.groups.is_empty() || read_pid().is_none() {
            assert!(t.elapsed() < Duration::from_secs(10), "command never started");
            std::thread::yield_now();
        }
        let pid = read_pid().expect("pid");
        let killed_at = Instant::now();
        ex.kill_running();
        let mut got = [recv(&ex), recv(&ex)];
        got.sort_by_key(|r| r.id.task);
        assert!(killed_at.elapsed() < Duration::from_secs(5), "took {:?}", killed_at.elapsed());
        assert_eq!(got[0].outcome, Outcome::Failed(Failure::Shutdown));
        assert_eq!(got[1].outcome, Outcome::Failed(Failure::Shutdown));
        assert!(!marker.exists(), "a queued try started after kill_running");
        // The killed command was reaped by its slot: its pid is gone.
        // SAFETY: signal 0 only probes for existence.
        assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "the killed command {pid} still exists");
        // Later submissions are answered too.
        ex.submit(try_of(3, function("noop", b"")));
        assert_eq!(recv(&ex).outcome, Outcome::Failed(Failure::Shutdown));
        ex.shutdown();
    }

    #[test]
    fn a_running_command_is_sampled_as_its_try() {
        let dir = tempfile::tempdir().expect("tempdir");
        let started = dir.path().join("started");
        let ex = Executor::new(2, Arc::new(Registry::with_builtins()));
        assert!(ex.sample(1).is_empty(), "nothing runs");
        // A shell with a child of its own: the sample covers both.
        ex.submit(try_of(4, shell(&format!("sleep 30 & touch {}; wait", started.display()))));
        let t = Instant::now();
        let samples = loop {
            let s = ex.sample(9);
            if started.exists() && s.first().is_some_and(|s| s.usage.processes == 2) {
                break s;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "never sampled both processes: {s:?}");
            std::thread::yield_now();
        };
        assert_eq!(samples.len(), 1);
        assert_eq!((samples[0].id, samples[0].t_us), (try_of(4, function("noop", b"")).id, 9));
        assert!(samples[0].usage.rss_kib > 0, "{samples:?}");
        ex.kill_running();
        assert_eq!(recv(&ex).outcome, Outcome::Failed(Failure::Shutdown));
        assert!(ex.sample(10).is_empty(), "an ended try is not sampled");
    }

    #[test]
    fn zero_slots_means_one() {
        let ex = Executor::new(0, Arc::new(Registry::with_builtins()));
        assert_eq!(ex.slots(), 1);
        ex.submit(try_of(1, function("echo", b"x")));
        assert_eq!(recv(&ex).outcome, Outcome::Done(b"x".to_vec()));
    }

    #[test]
    fn slots_run_in_parallel() {
        // A handshake over two FIFOs: opening one blocks until the other side opens it,
        // so the pair finishes only if both run at once (else the walltime ends them).
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["ab", "ba"] {
            let path = std::ffi::CString::new(dir.path().join(name).display().to_string()).expect("path");
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "mkfifo");
        }
        let d = dir.path().display();
        let ex = Executor::new(2, Arc::new(Registry::with_builtins()));
        let with_walltime = |i, s: String| {
            let mut t = try_of(i, shell(&s));
            t.spec.walltime_ms = Some(20_000);
            t
        };
        ex.submit(with_walltime(1, format!("echo a > {d}/ab; cat {d}/ba")));
        ex.submit(with_walltime(2, format!("cat {d}/ab; echo b > {d}/ba")));
        let mut got = [recv(&ex), recv(&ex)];
        got.sort_by_key(|r| r.id.task);
        assert_eq!(got[0].outcome, Outcome::Done(b"b\n".to_vec()));
        assert_eq!(got[1].outcome, Outcome::Done(b"a\n".to_vec()));
    }
}
