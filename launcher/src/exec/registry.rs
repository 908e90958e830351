//! The functions a launcher can run by name, and the built-ins every launcher has.

use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::topology::{Communicator, SimpleCommunicator};
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// A task function: argument bytes in, result bytes or an error message out.
pub type TaskFn = dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync;

/// An MPI task function: called on every rank of its try with a communicator of exactly those
/// ranks and the argument bytes; rank 0's result is the try's.
pub type MpiTaskFn = dyn Fn(&SimpleCommunicator, &[u8]) -> Result<Vec<u8>, String> + Send + Sync;

/// Functions a launcher can run, by name.
#[derive(Default)]
pub struct Registry {
    fns: HashMap<String, Box<TaskFn>>,
    mpi_fns: HashMap<String, Box<MpiTaskFn>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("names", &self.names()).field("mpi_names", &self.mpi_names()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The built-ins: `noop`, `echo`, `sleep` (seconds as text, e.g. "0.2"), and `fail`
    /// and `panic` (which fail with their args as the message; for tests); and the MPI
    /// functions `mpi_sum`, `mpi_hello` and `mpi_panic` (see [`Registry::register_mpi_builtins`]).
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
        r.register_mpi_builtins();
        r
    }

    /// The built-in MPI functions, for tests and examples:
    /// - `mpi_sum`: each rank adds its rank to the argument (an integer as text); the result is
    ///   the allreduced sum, `k * x + k * (k - 1) / 2` on k ranks;
    /// - `mpi_hello`: one line `hello from rank r of k on HOST` per rank, gathered on rank 0;
    /// - `mpi_panic`: panics on the rank given as the argument; the others return at once.
    pub fn register_mpi_builtins(&mut self) {
        self.register_mpi("mpi_sum", |comm, a| {
            let text = std::str::from_utf8(a).map_err(|_| "mpi_sum: the argument is not UTF-8".to_string())?;
            let x: i64 =
                text.trim().parse().map_err(|_| format!("mpi_sum: expected an integer like \"7\", got {text:?}"))?;
            let mut sum = 0i64;
            comm.all_reduce_into(&(x + i64::from(comm.rank())), &mut sum, SystemOperation::sum());
            Ok(sum.to_string().into_bytes())
        });
        self.register_mpi("mpi_hello", |comm, _| {
            const WIDTH: usize = 64;
            let mut name = [0u8; WIDTH];
            let host = strand::host::hostname();
            let n = host.len().min(WIDTH);
            name[..n].copy_from_slice(&host.as_bytes()[..n]);
            let root = comm.process_at_rank(0);
            if comm.rank() != 0 {
                root.gather_into(&name[..]);
                return Ok(Vec::new());
            }
            let mut all = vec![0u8; WIDTH * comm.size() as usize];
            root.gather_into_root(&name[..], &mut all[..]);
            let lines: Vec<String> = all
                .chunks(WIDTH)
                .enumerate()
                .map(|(r, h)| {
                    let h = String::from_utf8_lossy(h).trim_end_matches('\0').to_string();
                    format!("hello from rank {r} of {} on {h}", comm.size())
                })
                .collect();
            Ok(lines.join("\n").into_bytes())
        });
        self.register_mpi("mpi_panic", |comm, a| {
            let text = String::from_utf8_lossy(a);
            if text.trim().parse::<i32>().ok() == Some(comm.rank()) {
                panic!("mpi_panic on rank {} of {}", comm.rank(), comm.size());
            }
            Ok(Vec::new())
        });
    }

    /// Add a function, replacing any of the same name.
    pub fn register(
        &mut self,
        name: impl Into<String>,
        f: impl Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync + 'static,
    ) {
        self.fns.insert(name.into(), Box::new(f));
    }

    /// Add an MPI function (called on every rank of its try with their communicator), replacing
    /// any of the same name. A function task naming it runs on `resources.ranks` ranks.
    pub fn register_mpi(
        &mut self,
        name: impl Into<String>,
        f: impl Fn(&SimpleCommunicator, &[u8]) -> Result<Vec<u8>, String> + Send + Sync + 'static,
    ) {
        self.mpi_fns.insert(name.into(), Box::new(f));
    }

    /// The MPI function registered as `name`.
    pub fn get_mpi(&self, name: &str) -> Option<&MpiTaskFn> {
        self.mpi_fns.get(name).map(|b| b.as_ref())
    }

    /// Registered MPI function names, sorted.
    pub fn mpi_names(&self) -> Vec<&str> {
        sorted_names(self.mpi_fns.keys())
    }

    /// The function registered as `name`.
    pub fn get(&self, name: &str) -> Option<&TaskFn> {
        self.fns.get(name).map(|b| b.as_ref())
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        sorted_names(self.fns.keys())
    }
}

fn sorted_names<'a>(keys: impl Iterator<Item = &'a String>) -> Vec<&'a str> {
    let mut v: Vec<&str> = keys.map(String::as_str).collect();
    v.sort_unstable();
    v
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
        assert_eq!(r.mpi_names(), vec!["mpi_hello", "mpi_panic", "mpi_sum"]);
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
