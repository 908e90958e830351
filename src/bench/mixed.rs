//! `strand bench mixed`: tries of one rank and of several ranks sharing one pool, against the
//! lower bound on their makespan.
//!
//! Classes of tries (`200x1@0.2`: 200 tries of one rank sleeping 0.2 s) are submitted at once in
//! a shuffled order (a fixed seed, so runs compare). Wide tries reserve their ranks; plain tries
//! fill the other ranks meanwhile. The report gives the makespan beside its lower bound (the work
//! in rank-seconds over the workers, or the longest try if longer), the utilization that makes,
//! and each class's waits (submit to start on a worker), so a class that starves shows.

use crate::dfk::{Call, Dfk, TaskFuture};
use crate::task::Resources;
use serde::Serialize;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::BenchError;

/// One class of tries: `count` tries of `ranks` ranks, each sleeping `seconds`.
#[derive(Serialize, Clone, Copy, Debug, PartialEq)]
pub struct Class {
    /// Tries of this class.
    pub count: u64,
    /// Worker ranks each reserves.
    pub ranks: u32,
    /// Seconds each runs (after --time-scale).
    pub seconds: f64,
}

/// The mix of the issue that asked for it: 200 one-rank, 40 four-rank and 10 eight-rank tries.
pub const DEFAULT_MIX: &str = "200x1@0.2,40x4@0.5,10x8@1";

/// Parse a mix such as `200x1@0.2,40x4@0.5`: classes of COUNTxRANKS@SECONDS, comma-separated.
pub fn parse_mix(s: &str) -> Result<Vec<Class>, BenchError> {
    let bad = |part: &str, why: &str| {
        BenchError::Invalid(format!("--mix: {part:?} {why}; expected COUNTxRANKS@SECONDS, e.g. \"40x4@0.5\""))
    };
    let mut out = vec![];
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (count, rest) = part.split_once('x').ok_or_else(|| bad(part, "has no 'x'"))?;
        let (ranks, secs) = rest.split_once('@').ok_or_else(|| bad(part, "has no '@'"))?;
        let count: u64 = count.trim().parse().map_err(|_| bad(part, "has a count that is not a whole number"))?;
        let ranks: u32 = ranks.trim().parse().map_err(|_| bad(part, "has ranks that are not a whole number"))?;
        let seconds: f64 = secs.trim().parse().map_err(|_| bad(part, "has seconds that are not a number"))?;
        if count == 0 || ranks == 0 {
            return Err(bad(part, "needs at least one try of at least one rank"));
        }
        if !(seconds.is_finite() && seconds >= 0.0) {
            return Err(bad(part, "needs a finite, non-negative duration"));
        }
        out.push(Class { count, ranks, seconds });
    }
    if out.is_empty() {
        return Err(BenchError::Invalid(format!("--mix {s:?} has no class; expected e.g. {DEFAULT_MIX:?}")));
    }
    Ok(out)
}

/// One class's part of the report.
#[derive(Serialize, Debug)]
pub struct ClassReport {
    /// The class (seconds after --time-scale).
    #[serde(flatten)]
    pub class: Class,
    /// Mean seconds from submit to start on a worker.
    pub mean_wait_s: f64,
    /// Longest such wait.
    pub max_wait_s: f64,
}

/// The report of `strand bench mixed`.
#[derive(Serialize, Debug)]
pub struct Mixed {
    /// Always "mixed".
    pub bench: &'static str,
    /// Worker ranks of the pool.
    pub workers: u32,
    /// Tries run.
    pub tries: u64,
    /// Sum over tries of ranks x seconds.
    pub work_rank_s: f64,
    /// No schedule can end sooner: the work over the workers, or the longest try.
    pub lower_bound_s: f64,
    /// First submit to last result.
    pub makespan_s: f64,
    /// Work over (workers x makespan): 1 is a perfect packing.
    pub utilization: f64,
    /// Per class.
    pub classes: Vec<ClassReport>,
    /// Classes whose mean wait is more than twice the mean wait of all tries (starved).
    pub starved_classes: Vec<u32>,
    /// Tries that did not succeed (should be 0).
    pub failed: u64,
}

/// The order tries are submitted in: every class's tries, shuffled by a fixed `seed`.
fn order(classes: &[Class], seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> =
        classes.iter().enumerate().flat_map(|(i, c)| std::iter::repeat_n(i, c.count as usize)).collect();
    // xorshift64*: deterministic, no dependency for a shuffle.
    let mut x = seed.max(1);
    for i in (1..v.len()).rev() {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let j = (x.wrapping_mul(0x2545_f491_4f6c_dd1d) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Run the mix on a pool of `workers` worker ranks (each class's durations multiplied by `time_scale`).
pub fn run(dfk: &Dfk, mix: &[Class], time_scale: f64, workers: u32, seed: u64) -> Result<Mixed, BenchError> {
    if !(time_scale.is_finite() && time_scale > 0.0) {
        return Err(BenchError::Invalid(format!("--time-scale {time_scale} must be a positive number")));
    }
    let classes: Vec<Class> =
        mix.iter().map(|c| Class { seconds: (c.seconds * time_scale * 1e6).round() / 1e6, ..*c }).collect();
    if let Some(c) = classes.iter().find(|c| c.ranks > workers) {
        return Err(BenchError::Invalid(format!(
            "--mix: a class of {} ranks cannot run on {workers} worker ranks; give --workers {} or more",
            c.ranks, c.ranks
        )));
    }
    let start = Instant::now();
    let submitted: Vec<(usize, u64, TaskFuture)> = order(&classes, seed)
        .into_iter()
        .map(|i| {
            let c = classes[i];
            let call = Call::function("sleep", format!("{}", c.seconds))
                .resources(Resources { ranks: c.ranks, ..Resources::default() });
            (i, now_us(), dfk.submit(call))
        })
        .collect();
    let failed = submitted.iter().filter(|(_, _, f)| f.wait().is_err()).count() as u64;
    let makespan_s = start.elapsed().as_secs_f64();
    let mut waits: Vec<Vec<f64>> = vec![vec![]; classes.len()];
    for (i, at, f) in &submitted {
        let ran = f.ran();
        if ran.is_known() {
            waits[*i].push(ran.started_us.saturating_sub(*at) as f64 / 1e6);
        }
    }
    let work_rank_s: f64 = classes.iter().map(|c| c.count as f64 * f64::from(c.ranks) * c.seconds).sum();
    let longest = classes.iter().map(|c| c.seconds).fold(0.0, f64::max);
    let lower_bound_s = (work_rank_s / f64::from(workers.max(1))).max(longest);
    let mean = |v: &[f64]| if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
    let all: Vec<f64> = waits.iter().flatten().copied().collect();
    let overall = mean(&all);
    let reports: Vec<ClassReport> = classes
        .iter()
        .zip(&waits)
        .map(|(c, w)| ClassReport {
            class: *c,
            mean_wait_s: mean(w),
            max_wait_s: w.iter().copied().fold(0.0, f64::max),
        })
        .collect();
    let starved_classes = reports.iter().filter(|r| r.mean_wait_s > 2.0 * overall).map(|r| r.class.ranks).collect();
    Ok(Mixed {
        bench: "mixed",
        workers,
        tries: submitted.len() as u64,
        work_rank_s,
        lower_bound_s,
        makespan_s,
        utilization: if makespan_s > 0.0 { work_rank_s / (f64::from(workers.max(1)) * makespan_s) } else { 0.0 },
        classes: reports,
        starved_classes,
        failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_bad_ones_are_named() {
        let m = parse_mix(DEFAULT_MIX).expect("the default parses");
        assert_eq!(m.len(), 3);
        assert_eq!(m[1], Class { count: 40, ranks: 4, seconds: 0.5 });
        for (bad, says) in [
            ("", "has no class"),
            ("40x4", "has no '@'"),
            ("40@4", "has no 'x'"),
            ("ax4@1", "count"),
            ("4x-1@1", "ranks"),
            ("4x1@soon", "seconds"),
            ("0x1@1", "at least one"),
            ("4x1@-1", "non-negative"),
        ] {
            let e = parse_mix(bad).expect_err(bad).to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn the_order_has_every_try_once_and_is_the_same_for_a_seed() {
        let m = parse_mix("5x1@0,3x2@0").expect("parses");
        let a = order(&m, 7);
        assert_eq!(a.iter().filter(|&&i| i == 0).count(), 5);
        assert_eq!(a.iter().filter(|&&i| i == 1).count(), 3);
        assert_eq!(a, order(&m, 7));
        assert_ne!(a, order(&m, 8), "another seed, another order");
    }
}
