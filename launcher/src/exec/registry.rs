//! The functions a launcher can run by name, and the built-ins every launcher has.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// A task function: argument bytes in, result bytes or an error message out.
pub type TaskFn = dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync;

/// Functions a launcher can run, by name.
#[derive(Default)]
pub struct Registry {
    fns: HashMap<String, Box<TaskFn>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("names", &self.names()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The built-ins: `noop`, `echo`, `sleep` (seconds as text, e.g. "0.2"), and `fail`
    /// and `panic` (which fail with their args as the message; for tests).
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

    /// Add a function, replacing any of the same name.
    pub fn register(
        &mut self,
        name: impl Into<String>,
        f: impl Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync + 'static,
    ) {
        self.fns.insert(name.into(), Box::new(f));
    }

    /// The function registered as `name`.
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

/// `sleep`'s argument: non-negative decimal seconds as UTF-8 text.
fn parse_seconds(args: &[u8]) -> Result<Duration, String> {
    let text = std::str::from_utf8(args).map_err(|_| format!("sleep: argument {args:?} is not UTF-8"))?;
    let secs: f64 = text.trim().parse().map_err(|_| format!("sleep: expected seconds like \"0.5\", got {text:?}"))?;
    // try_from: "1e300" or "inf" would make from_secs_f64 panic.
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("sleep: expected a non-negative, finite number of seconds, got {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_registered() {
        let r = Registry::with_builtins();
        assert_eq!(r.names(), vec!["echo", "fail", "noop", "panic", "sleep"]);
        assert!(r.get("noop").is_some() && r.get("nope").is_none());
        assert_eq!(Registry::new().names(), Vec::<&str>::new());
    }

    #[test]
    fn register_adds_and_replaces() {
        let mut r = Registry::with_builtins();
        r.register("double", |a| Ok([a, a].concat()));
        r.register("echo", |_| Ok(b"replaced".to_vec()));
        assert_eq!(r.get("double").map(|f| f(b"ab")), Some(Ok(b"abab".to_vec())));
        assert_eq!(r.get("echo").map(|f| f(b"x")), Some(Ok(b"replaced".to_vec())));
        assert!(format!("{r:?}").contains("double"));
    }

    #[test]
    fn sleep_arguments() {
        assert_eq!(parse_seconds(b"0.2"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_seconds(b" 1\n"), Ok(Duration::from_secs(1)));
        for bad in [&b"soon"[..], b"-1", b"1e300", b"inf", b"NaN", b"", b"\xff"] {
            let e = parse_seconds(bad).expect_err("bad argument accepted");
            assert!(e.starts_with("sleep: "), "{e}");
        }
        assert!(parse_seconds(b"soon").expect_err("bad").contains("\"soon\""));
    }
}
