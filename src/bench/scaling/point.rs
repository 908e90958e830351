//! One point of a sweep: N tasks of one duration submitted at once to a DFK whose executor
//! has W workers, timed from the first submit to the last result.

use super::results::TaskKind;
use crate::dfk::{Call, Dfk};
use crate::task::TaskId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The task a point runs: a no-op for a zero duration, else a sleep of that duration; a
/// built-in function or a real process.
pub fn task(kind: TaskKind, duration: Duration) -> Call {
    let secs = format!("{}", duration.as_secs_f64());
    match (kind, duration.is_zero()) {
        (TaskKind::Function, true) => Call::function("noop", Vec::new()),
        (TaskKind::Function, false) => Call::function("sleep", secs.into_bytes()),
        (TaskKind::Command, true) => Call::argv(["true"]),
        (TaskKind::Command, false) => Call::argv(["sleep".to_string(), secs]),
    }
}

/// What one point measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// First submit to last result.
    pub makespan: Duration,
    /// Submit to result of each task, sorted.
    pub results: Vec<Duration>,
    /// Tasks that did not succeed.
    pub failed: u64,
}

impl Measured {
    /// The `q` quantile (0..=1) of submit-to-result times, seconds.
    pub fn result_quantile_s(&self, q: f64) -> f64 {
        quantile(&self.results, q).as_secs_f64()
    }
}

/// The `q` quantile of sorted durations (nearest rank; zero for none).
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize]
}

/// Why a point did not finish.
#[derive(Debug, thiserror::Error)]
#[error("{left} of {tasks} task(s) had not ended after {waited:?}")]
pub struct Unfinished {
    /// Tasks not ended.
    pub left: usize,
    /// Tasks submitted.
    pub tasks: u64,
    /// How long we waited.
    pub waited: Duration,
}

/// Submit `tasks` copies of `call()` at once and wait for their ends (from `ends`, the DFK's
/// one end channel, drained of earlier ends first), at most `timeout`; `tick` is called about
/// twice a second with the tasks ended so far.
pub fn run(
    dfk: &Dfk,
    ends: &crossbeam_channel::Receiver<TaskId>,
    tasks: u64,
    call: impl Fn() -> Call,
    timeout: Duration,
    mut tick: impl FnMut(u64),
) -> Result<Measured, Unfinished> {
    while ends.try_recv().is_ok() {}
    let mut submitted: HashMap<TaskId, Instant> = HashMap::with_capacity(tasks as usize);
    let start = Instant::now();
    let futures: Vec<_> = (0..tasks)
        .map(|_| {
            let f = dfk.submit(call());
            submitted.insert(f.id(), Instant::now());
            f
        })
        .collect();
    let deadline = start + timeout;
    let mut results = Vec::with_capacity(tasks as usize);
    let mut last_tick = Instant::now();
    let mut last_end = start;
    while (results.len() as u64) < tasks {
        let now = Instant::now();
        if now >= deadline {
            return Err(Unfinished { left: (tasks as usize) - results.len(), tasks, waited: timeout });
        }
        match ends.recv_timeout((deadline - now).min(Duration::from_millis(500))) {
            Ok(id) => {
                // Ends of tasks of an earlier point (or its warm-up) are not this point's.
                if let Some(t) = submitted.remove(&id) {
                    last_end = Instant::now();
                    results.push(last_end - t);
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                return Err(Unfinished { left: (tasks as usize) - results.len(), tasks, waited: start.elapsed() });
            }
        }
        if last_tick.elapsed() > Duration::from_millis(500) {
            tick(results.len() as u64);
            last_tick = Instant::now();
        }
    }
    tick(tasks);
    results.sort();
    let failed = futures.iter().filter(|f| !matches!(f.peek(), Some(Ok(_)))).count() as u64;
    Ok(Measured { makespan: last_end - start, results, failed })
}

/// Round trips of `tasks` no-op tasks, one at a time, in microseconds (after 50 to warm up).
pub fn latencies(dfk: &Dfk, tasks: u64, kind: TaskKind) -> (Vec<f64>, u64) {
    for _ in 0..50 {
        let _ = dfk.submit(task(kind, Duration::ZERO)).wait();
    }
    let mut failed = 0;
    let samples = (0..tasks)
        .map(|_| {
            let t = Instant::now();
            if dfk.submit(task(kind, Duration::ZERO)).wait().is_err() {
                failed += 1;
            }
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    (samples, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&d, 0.5), Duration::from_millis(51));
        assert_eq!(quantile(&d, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&d, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn tasks_for_each_kind_and_duration() {
        use crate::task::{App, Program};
        let f = |c: Call| c.app;
        assert!(matches!(f(task(TaskKind::Function, Duration::ZERO)), App::Function(x) if x.name == "noop"));
        assert!(
            matches!(f(task(TaskKind::Function, Duration::from_millis(10))), App::Function(x) if x.name == "sleep" && x.args == b"0.01")
        );
        assert!(
            matches!(f(task(TaskKind::Command, Duration::ZERO)), App::Command(c) if c.program == Program::Argv(vec!["true".into()]))
        );
        assert!(matches!(
            f(task(TaskKind::Command, Duration::from_secs(1))),
            App::Command(c) if c.program == Program::Argv(vec!["sleep".into(), "1".into()])
        ));
    }
}
