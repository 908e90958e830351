//! A rank's resource samples: what its running tries use and its node's load, at an interval.

use crate::exec::Executor;
use std::time::{Duration, Instant};
use strand::sample::{self, Samples};

/// When a rank samples next, and what it samples as.
pub struct Sampler {
    every: Duration,
    next: Instant,
    /// This node, as its batch system names it.
    host: String,
}

impl Sampler {
    /// Sample every `every` (the launcher's `--resource-interval`); `None`: never.
    pub fn new(every: Option<Duration>, now: Instant) -> Option<Sampler> {
        Some(Sampler { every: every?, next: now, host: strand::host::node_name() })
    }

    /// Take a sample of `exec`'s running tries (if any) and of this node if one is due at
    /// `now`; `None` if not due yet.
    pub fn take(&mut self, now: Instant, exec: Option<&Executor>) -> Option<Samples> {
        if now < self.next {
            return None;
        }
        // From now, not from the due time: a rank that was busy elsewhere does not catch up
        // with a burst of samples.
        self.next = now + self.every;
        Some(self.take_now(exec))
    }

    /// Take a sample now, whether due or not (a manager samples itself when it sends its
    /// workers' samples, on its own clock).
    pub fn take_now(&mut self, exec: Option<&Executor>) -> Samples {
        let t_us = strand::monitoring::record::now_us();
        let tries = exec.map(|e| e.sample(t_us)).unwrap_or_default();
        Samples { tries, nodes: sample::node(&self.host, t_us).into_iter().collect() }
    }
}
