//! One try on the calling thread: run its app, then check its declared outputs.

use super::command::run_command_measured;
use super::function::run_function_within;
use super::groups::RunningGroups;
use super::python::PythonSlot;
use super::registry::Registry;
use std::collections::BTreeSet;
use std::path::Path;
use strand::task::{App, Failure, Outcome, TaskSpec, Usage};

/// Run one task to completion on this thread.
pub fn execute(registry: &Registry, spec: &TaskSpec) -> Outcome {
    execute_tracked(registry, spec, None, &RunningGroups::new(), &mut PythonSlot::default()).0
}

/// As [`execute`], a command bound to `cpus` when given, its process group registered in
/// `groups` while it runs, with what a command used. Functions run on the slot thread, whose
/// binding they keep (and whose use is not told apart from the worker's: zero).
pub fn execute_tracked(
    registry: &Registry,
    spec: &TaskSpec,
    cpus: Option<&BTreeSet<u32>>,
    groups: &RunningGroups,
    python: &mut PythonSlot,
) -> (Outcome, Usage) {
    let (outcome, cwd, usage) = match &spec.app {
        App::Command(c) => {
            let (o, u) = run_command_measured(c, spec.walltime_ms, cpus, groups);
            (o, c.cwd.as_deref(), u)
        }
        App::Function(f) => (run_function_within(registry, f, spec.walltime_ms), None, Usage::default()),
        App::Python(p) => (python.run(p, spec.walltime_ms, groups), None, Usage::default()),
    };
    let outcome = match outcome {
        // Outputs are checked here, on the worker, because only it sees the files.
        Outcome::Done(out) => match missing_outputs(&spec.outputs, cwd) {
            Some(f) => Outcome::Failed(f),
            None => Outcome::Done(out),
        },
        failed => failed,
    };
    (outcome, usage)
}

/// The declared outputs (relative ones to `cwd`) that do not exist, as a failure.
fn missing_outputs(outputs: &[String], cwd: Option<&str>) -> Option<Failure> {
    let missing: Vec<String> = outputs
        .iter()
        .filter(|o| {
            let p = Path::new(o.as_str());
            match cwd {
                Some(d) if p.is_relative() => !Path::new(d).join(p).exists(),
                _ => !p.exists(),
            }
        })
        .cloned()
        .collect();
    (!missing.is_empty()).then_some(Failure::MissingOutputs { paths: missing })
}

#[cfg(test)]
mod tests {
    use super::*;
    use strand::task::{CommandSpec, FunctionCall, Program};

    fn spec(app: App, walltime_ms: Option<u64>, outputs: &[&str]) -> TaskSpec {
        TaskSpec {
            app,
            walltime_ms,
            priority: 0,
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            resources: Default::default(),
        }
    }

    fn shell(s: &str, cwd: Option<String>) -> App {
        App::Command(CommandSpec { program: Program::Shell(s.into()), env: vec![], cwd, stdout: None, stderr: None })
    }

    #[test]
    fn dispatches_on_the_app() {
        let reg = Registry::with_builtins();
        let echo = App::Function(FunctionCall { name: "echo".into(), args: b"hi".to_vec() });
        assert_eq!(execute(&reg, &spec(echo, None, &[])), Outcome::Done(b"hi".to_vec()));
        assert_eq!(execute(&reg, &spec(shell("echo hi", None), None, &[])), Outcome::Done(b"hi\n".to_vec()));
        // The walltime reaches both kinds.
        let slow = App::Function(FunctionCall { name: "sleep".into(), args: b"0.05".to_vec() });
        assert_eq!(execute(&reg, &spec(slow, Some(5), &[])), Outcome::Failed(Failure::Timeout { walltime_ms: 5 }));
        assert_eq!(
            execute(&reg, &spec(shell("sleep 30", None), Some(50), &[])),
            Outcome::Failed(Failure::Timeout { walltime_ms: 50 })
        );
    }

    #[test]
    fn declared_outputs_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cwd = Some(dir.path().display().to_string());
        let reg = Registry::with_builtins();
        let touch = || shell("touch a.dat", cwd.clone());
        assert_eq!(execute(&reg, &spec(touch(), None, &["a.dat"])), Outcome::Done(vec![]));
        assert_eq!(
            execute(&reg, &spec(touch(), None, &["a.dat", "b.dat"])),
            Outcome::Failed(Failure::MissingOutputs { paths: vec!["b.dat".into()] })
        );
        let abs = dir.path().join("a.dat").display().to_string();
        assert_eq!(execute(&reg, &spec(shell("true", None), None, &[&abs])), Outcome::Done(vec![]));
        // A failure is reported as itself, not as missing outputs.
        assert!(matches!(
            execute(&reg, &spec(shell("exit 1", cwd.clone()), None, &["never.dat"])),
            Outcome::Failed(Failure::ExitCode { code: 1, .. })
        ));
    }
}
