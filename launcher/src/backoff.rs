//! Idle waiting without busy spinning: a two-phase backoff that resets on activity.
//!
//! MPI offers no file descriptor to sleep on, so a rank that waits for MPI
//! messages polls. For a *hot window* after the last activity it sleeps only
//! briefly (the next task of a busy stream is close); once idle for longer it
//! doubles its sleep up to a cap, so an idle launcher costs ~0% CPU while a busy
//! one never waits more than a few tens of microseconds.

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
}

impl Backoff {
    /// Sleeps from `min` up to `hot_max` within `hot_window` of activity, then up to `cold_max`.
    pub fn new(min: Duration, hot_max: Duration, cold_max: Duration, hot_window: Duration) -> Backoff {
        Backoff { current: min, min, hot_max, cold_max, hot_window, spin: Duration::ZERO, last_active: Instant::now() }
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
        let cap = if self.last_active.elapsed() < self.hot_window { self.hot_max } else { self.cold_max };
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
