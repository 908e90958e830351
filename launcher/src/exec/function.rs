//! Function tasks: a registered function on the calling thread; a panic is a failure, not a crash.
//!
//! Walltime applies to commands, which can be killed. A function cannot be stopped safely
//! from outside, so it always runs to its end; one that ran past its walltime is then
//! reported as `Timeout` (and its result dropped), so a retry policy sees the same outcome
//! as for a command.

use super::registry::Registry;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;
use std::time::{Duration, Instant};
use strand::task::{Failure, FunctionCall, Outcome};

/// Run a registered function with no walltime.
pub fn run_function(registry: &Registry, call: &FunctionCall) -> Outcome {
    run_function_within(registry, call, None)
}

/// Run a registered function; if it returns (or panics) after `walltime_ms`, the
/// outcome is `Timeout` whatever it returned.
pub fn run_function_within(registry: &Registry, call: &FunctionCall, walltime_ms: Option<u64>) -> Outcome {
    let Some(f) = registry.get(&call.name) else {
        return Outcome::Failed(Failure::UnknownFunction { name: call.name.clone() });
    };
    run_guarded(walltime_ms, || f(&call.args))
}

/// Call a task function `f` as a try: its error or panic is a failure, and a return (or panic)
/// after `walltime_ms` is `Timeout` whatever it returned.
pub(crate) fn run_guarded(walltime_ms: Option<u64>, f: impl FnOnce() -> Result<Vec<u8>, String>) -> Outcome {
    install_quiet_hook();
    let start = Instant::now();
    let result = {
        let _quiet = QuietPanics::enter();
        // AssertUnwindSafe: the function only sees its argument bytes, and after a panic
        // nothing of its state is used again except through the registry's `Fn`, which
        // must cope with that anyway (it is shared by every slot).
        catch_unwind(AssertUnwindSafe(f))
    };
    if let Some(ms) = walltime_ms {
        if start.elapsed() > Duration::from_millis(ms) {
            return Outcome::Failed(Failure::Timeout { walltime_ms: ms });
        }
    }
    match result {
        Ok(Ok(bytes)) => Outcome::Done(bytes),
        Ok(Err(message)) => Outcome::Failed(Failure::FunctionError { message }),
        Err(payload) => Outcome::Failed(Failure::Panic { message: strand::text::panic_message(payload.as_ref()) }),
    }
}

thread_local! {
    /// How many task functions this thread is inside (functions may run functions).
    static IN_TASK: Cell<u32> = const { Cell::new(0) };
}

/// Marks this thread as inside a task function until dropped, also when unwinding.
struct QuietPanics;

impl QuietPanics {
    fn enter() -> QuietPanics {
        IN_TASK.with(|c| c.set(c.get().saturating_add(1)));
        QuietPanics
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        IN_TASK.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// Whether this thread is inside a task function.
fn in_task() -> bool {
    IN_TASK.with(|c| c.get() > 0)
}

/// The default hook prints every panic to stderr: thousands of failing tasks would flood
/// the logs, and the failure already carries the message. Stay quiet inside task
/// functions only; every other panic (a bug in the launcher) still goes to the previous hook.
fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !in_task() {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: &[u8]) -> FunctionCall {
        FunctionCall { name: name.into(), args: args.to_vec() }
    }

    #[test]
    fn builtins_run() {
        let r = Registry::with_builtins();
        assert_eq!(run_function(&r, &call("noop", b"ignored")), Outcome::Done(vec![]));
        assert_eq!(run_function(&r, &call("echo", b"abc\0\xff")), Outcome::Done(b"abc\0\xff".to_vec()));
        assert_eq!(run_function(&r, &call("sleep", b"0.01")), Outcome::Done(vec![]));
        assert!(matches!(
            run_function(&r, &call("sleep", b"soon")),
            Outcome::Failed(Failure::FunctionError { message }) if message.contains("\"soon\"")
        ));
    }

    #[test]
    fn failures_are_outcomes() {
        let r = Registry::with_builtins();
        assert_eq!(
            run_function(&r, &call("nope", b"")),
            Outcome::Failed(Failure::UnknownFunction { name: "nope".into() })
        );
        assert_eq!(
            run_function(&r, &call("fail", b"bad input")),
            Outcome::Failed(Failure::FunctionError { message: "bad input".into() })
        );
        assert_eq!(
            run_function(&r, &call("panic", b"boom")),
            Outcome::Failed(Failure::Panic { message: "boom".into() })
        );
        assert!(!in_task(), "the quiet flag must be cleared after a panic");
    }

    #[test]
    fn every_panic_payload_becomes_a_message() {
        let mut r = Registry::new();
        r.register("static", |_| panic!("static str"));
        r.register("any", |_| std::panic::panic_any(42u8));
        assert_eq!(
            run_function(&r, &call("static", b"")),
            Outcome::Failed(Failure::Panic { message: "static str".into() })
        );
        assert_eq!(
            run_function(&r, &call("any", b"")),
            Outcome::Failed(Failure::Panic { message: "non-string panic payload".into() })
        );
    }

    #[test]
    fn a_function_past_its_walltime_is_a_timeout() {
        let r = Registry::with_builtins();
        assert_eq!(
            run_function_within(&r, &call("sleep", b"0.05"), Some(10)),
            Outcome::Failed(Failure::Timeout { walltime_ms: 10 })
        );
        assert_eq!(run_function_within(&r, &call("echo", b"x"), Some(60_000)), Outcome::Done(b"x".to_vec()));
    }
}
