//! The progress bar of `strand run` and `strand map`: done, failed, running, waiting, rate.
//! Drawn on stderr, and only when stdout is a terminal (so piped output stays clean).

use crate::dfk::Monitor;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A progress bar that follows a DFK until dropped.
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Follow `monitor`; `total` is the number of tasks when known up front.
    pub fn start(monitor: Monitor, total: Option<u64>) -> Progress {
        Progress::start_when(monitor, total, false)
    }

    /// As [`Progress::start`], and drawn even when stdout is not a terminal if `always`
    /// (`strand map --bar`); stderr must still be one.
    pub fn start_when(monitor: Monitor, total: Option<u64>, always: bool) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        if !always && !std::io::stdout().is_terminal() {
            return Progress { stop, thread: None };
        }
        let bar = match total {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let template = if total.is_some() {
            "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}"
        } else {
            "{elapsed_precise} {pos} {msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        let s2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("strand-progress".into())
            .spawn(move || {
                let start = Instant::now();
                loop {
                    let done = s2.load(Ordering::Relaxed);
                    let s = monitor.snapshot();
                    let ended = s.counts.done + s.counts.failed + s.counts.dep_failed;
                    let rate = ended as f64 / start.elapsed().as_secs_f64().max(1e-3);
                    bar.set_position(ended);
                    bar.set_message(format!(
                        "done {}  failed {}  running {}  waiting {}  {:.0}/s",
                        s.counts.done,
                        s.counts.failed + s.counts.dep_failed,
                        s.in_flight,
                        s.pending.saturating_sub(s.in_flight),
                        rate
                    ));
                    if done {
                        bar.finish_and_clear();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
            .ok();
        Progress { stop, thread }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
