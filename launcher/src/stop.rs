//! SIGTERM / SIGINT as a flag the polling loops check.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Set when the process is asked to stop.
#[derive(Clone, Debug, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A flag set by SIGTERM and SIGINT (mpirun forwards both to every rank).
    pub fn on_signals() -> std::io::Result<StopFlag> {
        let flag = StopFlag::default();
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(sig, Arc::clone(&flag.0))?;
        }
        Ok(flag)
    }

    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Ask for a stop.
    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
