//! Function tasks: Rust functions registered by name; a panic is a failure, not a crash.

use std::cell::Cell;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;
use std::time::{Duration, Instant};
use strand::task::{Failure, FunctionCall, Outcome};

/// A task function: argument bytes in, result bytes or an error message out.
pub type TaskFn = dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync;

/// Functions a launcher can run, by name.
#[derive(Default)]
pub struct Registry {
    fns: HashMap<String, Box<TaskFn>>,
}

fn parse_seconds(args: &[u8]) -> Result<Duration, String> {
    let text = std::str::from_utf8(args).map_err(|_| "sleep: argument is not UTF-8".to_string())?;
    let s: f64 = text.trim().parse().map_err(|_| format!("sleep: expected seconds like \"0.5\", got {text:?}"))?;
    if !(s.is_finite() && s >= 0.0) {
        return Err(format!("sleep: expected a non-negative number of seconds, got {text:?}"));
    }
    Ok(Duration::from_secs_f64(s))
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The built-ins: `noop`, `echo`, `sleep` (seconds as text), `fail` and `panic` (for tests).
    pub fn with_builtins() -> Registry {
        let mut r = Registry::new();
        r.register("noop", |_| Ok(Vec::new()));
        r.register("echo", |a| Ok(a.to_vec()));
        r.register("sleep", |a| {
            std::thread::sleep(parse_seconds(a)?);
            Ok(Vec::new())
        });
        r.register("fail", |a| Err(String::from_utf8_lossy(a).into_owned()));
        r.register("panic", |a| panic!("{}", String::from_utf8_lossy(a)));
        r
    }

    /// Add (or replace) a function.
    pub fn register(
        &mut self,
        name: impl Into<String>,
        f: impl Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync + 'static,
    ) {
        self.fns.insert(name.into(), Box::new(f));
    }

    /// Look a function up.
    pub fn get(&self, name: &str) -> Option<&TaskFn> {
        self.fns.get(name).map(|b| b.as_ref())
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.fns.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}

thread_local! {
    /// Set while a task function runs, so the panic hook stays quiet for it.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

/// Thousands of deliberate test panics would flood the logs: silence the default
/// hook inside task functions only; the failure carries the message anyway.
fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_TASK.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Run a registered function. Walltime cannot interrupt a function safely, so a
/// function that returns after its walltime is reported as `Timeout`.
pub fn run_function(registry: &Registry, call: &FunctionCall, walltime_ms: Option<u64>) -> Outcome {
    let Some(f) = registry.get(&call.name) else {
        return Outcome::Failed(Failure::UnknownFunction { name: call.name.clone() });
    };
    install_quiet_hook();
    let start = Instant::now();
    IN_TASK.with(|c| c.set(true));
    let r = catch_unwind(AssertUnwindSafe(|| f(&call.args)));
    IN_TASK.with(|c| c.set(false));
    if let Some(ms) = walltime_ms {
        if start.elapsed() > Duration::from_millis(ms) {
            return Outcome::Failed(Failure::Timeout { walltime_ms: ms });
        }
    }
    match r {
        Ok(Ok(bytes)) => Outcome::Done(bytes),
        Ok(Err(message)) => Outcome::Failed(Failure::FunctionError { message }),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            Outcome::Failed(Failure::Panic { message })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: &[u8]) -> FunctionCall {
        FunctionCall { name: name.into(), args: args.to_vec() }
    }

    #[test]
    fn builtins() {
        let r = Registry::with_builtins();
        assert_eq!(run_function(&r, &call("noop", b""), None), Outcome::Done(vec![]));
        assert_eq!(run_function(&r, &call("echo", b"abc"), None), Outcome::Done(b"abc".to_vec()));
        assert_eq!(run_function(&r, &call("sleep", b"0.01"), None), Outcome::Done(vec![]));
        assert!(matches!(
            run_function(&r, &call("sleep", b"soon"), None),
            Outcome::Failed(Failure::FunctionError { message }) if message.contains("\"soon\"")
        ));
        assert_eq!(r.names(), vec!["echo", "fail", "noop", "panic", "sleep"]);
    }

    #[test]
    fn failures() {
        let r = Registry::with_builtins();
        assert_eq!(
            run_function(&r, &call("nope", b""), None),
            Outcome::Failed(Failure::UnknownFunction { name: "nope".into() })
        );
        assert_eq!(
            run_function(&r, &call("panic", b"boom"), None),
            Outcome::Failed(Failure::Panic { message: "boom".into() })
        );
        assert_eq!(
            run_function(&r, &call("fail", b"bad"), None),
            Outcome::Failed(Failure::FunctionError { message: "bad".into() })
        );
        assert_eq!(
            run_function(&r, &call("sleep", b"0.05"), Some(10)),
            Outcome::Failed(Failure::Timeout { walltime_ms: 10 })
        );
    }
}
