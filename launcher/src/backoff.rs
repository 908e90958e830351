//! Idle waiting without busy spinning: a two-phase backoff that resets on activity.
//!
//! MPI offers no file descriptor to sleep on, so a rank that waits for MPI
//! messages polls. For a *hot window* after the last activity it sleeps only
//! briefly (the next task of a busy stream is close); once idle for longer it
//! doubles its sleep up to a cap, so an idle launcher costs ~0% CPU while a busy
//! one never waits more than a few tens of microseconds.
//!
//! Both waits follow how long the tries run (`observe_run`): while they run for longer than
//! the spin lasts (command tasks), a rank whose slots have their next try queued neither
//! spins nor polls every few microseconds, since the cores it would take are the ones its
//! commands need.

use std::time::{Duration, Instant};

/// Backoff state for one polling loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    current: Duration,
    min: Duration,
    hot_max: Duration,
    cold_max: Duration,
    hot_window: Duration,
    spin: Duration,
    last_active: Instant,
    /// How long the tries seen lately ran (an average that forgets), in microseconds.
    typical_run_us: u64,
}

/// Tries that run at least this long (typically) make the spin pointless: the next event is a
/// try's end, further away than the spin lasts, and a spinning rank takes the core from the
/// commands it waits for (on 2 cores, a third of their CPU).
pub const LONG_TRY: Duration = Duration::from_micros(250);

/// Longest sleep between polls while long tries run: results wait at most this long in a rank
/// whose prefetched tries keep its slots busy meanwhile.
const LONG_TRY_POLL_MAX: Duration = Duration::from_millis(1);

impl Backoff {
    /// Sleeps from `min` up to `hot_max` within `hot_window` of activity, then up to `cold_max`.
    pub fn new(min: Duration, hot_max: Duration, cold_max: Duration, hot_window: Duration) -> Backoff {
        Backoff {
            current: min,
            min,
            hot_max,
            cold_max,
            hot_window,
            spin: Duration::ZERO,
            last_active: Instant::now(),
            typical_run_us: 0,
        }
    }

    /// A try ran `run_us` microseconds: the waits follow how long tries run.
    pub fn observe_run(&mut self, run_us: u64) {
        // An average over about the last eight tries: one long try among no-ops changes little.
        self.typical_run_us = (self.typical_run_us * 7 + run_us) / 8;
    }

    /// Whether the tries seen lately run long enough ([`LONG_TRY`]) that waiting for their end
    /// beats polling for it.
    pub fn tries_run_long(&self) -> bool {
        self.typical_run_us >= LONG_TRY.as_micros() as u64
    }

    /// For `spin` after activity, `next_wait` returns zero: the caller yields the core instead
    /// of sleeping. A timed sleep costs tens of microseconds to wake from on a virtual machine;
    /// a yield gives the core to any runnable thread and costs nothing when none is.
    pub fn with_spin(mut self, spin: Duration) -> Backoff {
        self.spin = spin;
        self
    }

    /// Something happened: poll eagerly again.
    pub fn reset(&mut self) {
        self.current = self.min;
        self.last_active = Instant::now();
    }

    /// Nothing happened: how long to wait now.
    pub fn next_wait(&mut self) -> Duration {
        if self.last_active.elapsed() < self.spin {
            return Duration::ZERO;
        }
        self.sleep(self.hot_max)
    }

    /// Nothing happened, and what the caller polls for can wait while tries run: every slot it
    /// feeds has its next try queued behind the running one. Once tries run long
    /// ([`Backoff::tries_run_long`]) this never spins and sleeps up to an eighth of a try, so
    /// a result waits a little and the commands keep the cores; before, as [`Backoff::next_wait`].
    /// Past the hot window it doubles up to the cold cap as that does.
    pub fn next_wait_queued(&mut self) -> Duration {
        if !self.tries_run_long() {
            return self.next_wait();
        }
        // A fixed sleep, not doubling from `min`: each wake costs tens of microseconds of CPU
        // on a VM, and waking sooner gains nothing while the queued tries run.
        let eighth = Duration::from_micros(self.typical_run_us / 8).clamp(self.hot_max, LONG_TRY_POLL_MAX);
        self.current = self.current.max(eighth);
        self.sleep(eighth)
    }

    /// The next sleep of the doubling, capped at `hot_max` within the hot window.
    fn sleep(&mut self, hot_max: Duration) -> Duration {
        let cap = if self.last_active.elapsed() < self.hot_window { hot_max } else { self.cold_max.max(hot_max) };
        let d = self.current.min(cap);
        self.current = (self.current * 2).min(cap);
        d
    }
}

impl Default for Backoff {
    /// 10 us to 50 us for 50 ms after activity, then up to 10 ms. A wake that finds
    /// nothing costs ~35 us of CPU here (MPI progress + a context switch), so 100 wakes a
    /// second keep an idle rank well under 1%; the price is up to 10 ms for the first
    /// task after a quiet spell, which no task stream feels.
    fn default() -> Self {
        Backoff::new(
            Duration::from_micros(10),
            Duration::from_micros(50),
            Duration::from_millis(10),
            Duration::from_millis(50),
        )
        .with_spin(Duration::from_micros(500))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spins_right_after_activity() {
        let mut b = Backoff::new(
            Duration::from_micros(10),
            Duration::from_micros(50),
            Duration::from_millis(1),
            Duration::from_millis(50),
        )
        .with_spin(Duration::from_secs(60));
        b.reset();
        assert_eq!(b.next_wait(), Duration::ZERO);
        b.last_active -= Duration::from_secs(61);
        assert_eq!(b.next_wait(), Duration::from_micros(10));
    }

    #[test]
    fn long_tries_stop_the_spin_and_stretch_the_polls() {
        let us = Duration::from_micros;
        let mut b = Backoff::default();
        b.reset();
        assert_eq!(b.next_wait(), Duration::ZERO, "no-ops: spin");
        for _ in 0..40 {
            b.observe_run(16_000);
        }
        assert!(b.tries_run_long());
        b.reset();
        assert_eq!(b.next_wait(), Duration::ZERO, "an idle slot still spins");
        b.reset();
        let waits: Vec<Duration> = (0..3).map(|_| b.next_wait_queued()).collect();
        assert_eq!(waits, [LONG_TRY_POLL_MAX; 3], "no spin, an eighth of a try (capped) at once");
        for _ in 0..8 {
            b.observe_run(0);
        }
        let eighth = b.typical_run_us / 8;
        assert!(eighth < 1_000, "{eighth}");
        assert_eq!(b.next_wait_queued(), us(eighth), "follows the tries");
        b.last_active -= Duration::from_millis(51);
        let cold: Vec<Duration> = (0..10).map(|_| b.next_wait_queued()).collect();
        assert_eq!(*cold.last().expect("waits"), Duration::from_millis(10), "cold: {cold:?}");
        // One long try among no-ops does not stop the spin.
        let mut b = Backoff::default();
        b.observe_run(8_000);
        b.observe_run(0);
        assert!(b.tries_run_long(), "the average still remembers it");
        for _ in 0..20 {
            b.observe_run(0);
        }
        assert!(!b.tries_run_long());
        b.reset();
        assert_eq!(b.next_wait_queued(), Duration::ZERO, "short tries: spin");
    }

    #[test]
    fn hot_then_cold_and_reset() {
        let ms = Duration::from_millis;
        let us = Duration::from_micros;
        let mut b = Backoff::new(us(10), us(25), ms(1), ms(30));
        assert_eq!(b.next_wait(), us(10));
        assert_eq!(b.next_wait(), us(20));
        assert_eq!(b.next_wait(), us(25), "capped at hot_max inside the hot window");
        assert_eq!(b.next_wait(), us(25));
        // Pretend the last activity was long ago.
        b.last_active -= ms(31);
        let waits: Vec<Duration> = (0..8).map(|_| b.next_wait()).collect();
        assert_eq!(*waits.last().expect("waits"), ms(1), "grows to cold_max when idle: {waits:?}");
        b.reset();
        assert_eq!(b.next_wait(), us(10));
    }
}
