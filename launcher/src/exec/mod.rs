//! Task execution: commands as child processes, functions from a registry, on N slot threads.

pub mod command;
pub mod function;

pub use command::{run_command, RunningGroups};
pub use function::{run_function, Registry, TaskFn};

use crossbeam_channel::{unbounded, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use strand::task::{App, Outcome, TaskSpec, Try, TryResult};

/// Run one task to completion on this thread.
pub fn execute(registry: &Registry, spec: &TaskSpec, groups: &RunningGroups) -> Outcome {
    let (outcome, cwd) = match &spec.app {
        App::Command(c) => (run_command(c, spec.walltime_ms, groups), c.cwd.as_deref()),
        App::Function(f) => (run_function(registry, f, spec.walltime_ms), None),
    };
    match outcome {
        Outcome::Done(out) => check_outputs(&spec.outputs, cwd).map_or(Outcome::Done(out), Outcome::Failed),
        failed => failed,
    }
}

/// The declared outputs that do not exist after a successful try, as a failure.
fn check_outputs(outputs: &[String], cwd: Option<&str>) -> Option<strand::task::Failure> {
    let missing: Vec<String> = outputs
        .iter()
        .filter(|o| {
            let p = std::path::Path::new(o.as_str());
            let p = match cwd {
                Some(d) if p.is_relative() => std::path::Path::new(d).join(p),
                _ => p.to_path_buf(),
            };
            !p.exists()
        })
        .cloned()
        .collect();
    (!missing.is_empty()).then_some(strand::task::Failure::MissingOutputs { paths: missing })
}

/// `slots` threads that run tries off the caller's (MPI) thread; each try yields exactly one result.
pub struct Executor {
    submit: Option<Sender<Try>>,
    done: Receiver<TryResult>,
    groups: RunningGroups,
    threads: Vec<JoinHandle<()>>,
}

impl Executor {
    /// Start `slots` execution threads (at least one).
    pub fn new(slots: usize, registry: Arc<Registry>) -> Executor {
        let (submit, inbox) = unbounded::<Try>();
        let (done_tx, done) = unbounded::<TryResult>();
        let groups = RunningGroups::default();
        let threads = (0..slots.max(1))
            .filter_map(|i| {
                let inbox = inbox.clone();
                let done_tx = done_tx.clone();
                let registry = Arc::clone(&registry);
                let groups = groups.clone();
                std::thread::Builder::new()
                    .name(format!("strand-exec-{i}"))
                    .spawn(move || {
                        for t in inbox.iter() {
                            let outcome = execute(&registry, &t.spec, &groups);
                            if done_tx.send(TryResult { id: t.id, outcome }).is_err() {
                                break;
                            }
                        }
                    })
                    .ok()
            })
            .collect();
        Executor { submit: Some(submit), done, groups, threads }
    }

    /// Queue a try (never blocks: the manager bounds what it hands over).
    pub fn submit(&self, t: Try) {
        if let Some(s) = &self.submit {
            // Fails only after shutdown, when no thread would run it anyway.
            let _ = s.send(t);
        }
    }

    /// Results as they finish; `recv_timeout` on it is the caller's idle wait.
    pub fn completions(&self) -> &Receiver<TryResult> {
        &self.done
    }

    /// SIGKILL every running command (their tries end as `Shutdown`).
    pub fn kill_running(&self) {
        self.groups.kill_all();
    }

    /// Stop taking tries and let idle threads exit; threads still inside a function are left
    /// behind (a function cannot be interrupted), which is why the caller exits the process next.
    pub fn shutdown(mut self) {
        self.submit = None;
        for t in self.threads.drain(..) {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::Duration;
    use strand::task::*;

    #[test]
    fn declared_outputs_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cwd = Some(dir.path().display().to_string());
        let cmd = |s: &str| {
            App::Command(CommandSpec {
                program: Program::Shell(s.into()),
                env: vec![],
                cwd: cwd.clone(),
                stdout: None,
                stderr: None,
            })
        };
        let spec = |app, outputs: &[&str]| TaskSpec {
            app,
            walltime_ms: None,
            priority: 0,
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
        };
        let reg = Registry::with_builtins();
        let g = RunningGroups::default();
        assert_eq!(execute(&reg, &spec(cmd("touch a.dat"), &["a.dat"]), &g), Outcome::Done(vec![]));
        assert_eq!(
            execute(&reg, &spec(cmd("touch a.dat"), &["a.dat", "b.dat"]), &g),
            Outcome::Failed(Failure::MissingOutputs { paths: vec!["b.dat".into()] })
        );
    }

    #[test]
    fn every_try_yields_exactly_one_result() {
        let ex = Executor::new(2, Arc::new(Registry::with_builtins()));
        let n = 200u64;
        for i in 0..n {
            let app = match i % 4 {
                0 => App::Function(FunctionCall { name: "echo".into(), args: vec![1] }),
                1 => App::Function(FunctionCall { name: "panic".into(), args: vec![] }),
                2 => App::Command(CommandSpec {
                    program: Program::Argv(vec!["true".into()]),
                    env: vec![],
                    cwd: None,
                    stdout: None,
                    stderr: None,
                }),
                _ => App::Command(CommandSpec {
                    program: Program::Shell("exit 2".into()),
                    env: vec![],
                    cwd: None,
                    stdout: None,
                    stderr: None,
                }),
            };
            ex.submit(Try {
                id: TryId { client: ClientId(0), task: TaskId(i), attempt: 0 },
                spec: TaskSpec { app, walltime_ms: None, priority: 0, outputs: vec![] },
            });
        }
        let mut seen = HashSet::new();
        for _ in 0..n {
            let r = ex.completions().recv_timeout(Duration::from_secs(30)).expect("result in time");
            assert!(seen.insert(r.id.task), "duplicate result for {}", r.id);
        }
        assert!(ex.completions().recv_timeout(Duration::from_millis(100)).is_err(), "no extra results");
        ex.shutdown();
    }
}
