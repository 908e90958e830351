//! `strand bench gnu-parallel`: `strand map` beside GNU parallel itself, in one run.
//!
//! - Speed: `/bin/true` over N arguments with W slots, `parallel -j W` against `strand map
//!   -j W`, each timed from its start to its exit (Strand's time includes starting its
//!   interchange and block, as a user running it pays).
//! - Memory: the peak resident memory of `strand map` streaming S/10 and S arguments
//!   (`:::: FILE`) to an interchange served by simulated managers (real ZeroMQ, no MPI; they
//!   answer at once), so that only `strand map`'s own memory is measured: as run by default
//!   (its run database on), and with `--no-monitoring`, side by side.

use super::sim::Served;
use super::{at_least_one, BenchError};
use crate::process::strand_binary;
use crate::run_dir::RunDir;
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct GnuParallelOptions {
    /// Arguments of the speed comparison.
    pub tasks: u64,
    /// Slots: `-j` of both.
    pub workers: u32,
    /// Arguments of the long stream (and a tenth of them for the short one); 0: no memory part.
    pub stream: u64,
}

/// The two side by side.
#[derive(Serialize, Debug)]
pub struct GnuParallel {
    /// Always "gnu-parallel".
    pub bench: &'static str,
    /// `/bin/true` jobs each ran.
    pub tasks: u64,
    /// `-j` of both.
    pub workers: u32,
    /// Seconds of `parallel -j W /bin/true :::: FILE`, start to exit.
    pub parallel_s: f64,
    /// Seconds of `strand map -j W /bin/true :::: FILE`, start to exit.
    pub strand_s: f64,
    /// `parallel_s / strand_s` (goal: at least 3).
    pub speedup: f64,
    /// Arguments of the long stream.
    pub stream_tasks: u64,
    /// Peak resident memory of `strand map` over a tenth of the stream, MiB.
    pub stream_tenth_peak_rss_mib: f64,
    /// Peak resident memory of `strand map` over the whole stream, MiB.
    pub stream_peak_rss_mib: f64,
    /// Growth of the peak per argument beyond the tenth, bytes (flat: near 0).
    pub stream_bytes_per_task: f64,
    /// The same three with `--no-monitoring`: the tenth's peak, MiB.
    pub stream_no_monitoring_tenth_peak_rss_mib: f64,
    /// With `--no-monitoring`: the whole stream's peak, MiB.
    pub stream_no_monitoring_peak_rss_mib: f64,
    /// With `--no-monitoring`: growth per argument beyond the tenth, bytes.
    pub stream_no_monitoring_bytes_per_task: f64,
    /// Jobs that failed, or runs that did not exit 0 (should be 0).
    pub failed: u64,
}

/// Run both comparisons under `run_dir`.
pub fn run(run_dir: &RunDir, o: &GnuParallelOptions) -> Result<GnuParallel, BenchError> {
    at_least_one("--tasks", o.tasks)?;
    at_least_one("--workers", o.workers as u64)?;
    let args = run_dir.file("bench-args");
    write_numbers(&args, o.tasks)?;
    let j = o.workers.to_string();
    let mut failed = 0;
    let mut gnu = Command::new("parallel");
    gnu.args(["--will-cite", "-j", &j, "/bin/true", "::::"]).arg(&args);
    let gnu = timed(&mut gnu).map_err(|e| {
        BenchError::Invalid(format!("running GNU parallel ({e}); install it with `apt-get install parallel`"))
    })?;
    failed += u64::from(!gnu.ok);
    let mut strand = Command::new(strand_binary());
    strand.args(["map", "-j", &j, "--run-dir"]).arg(run_dir.file("map-speed")).args(["/bin/true", "::::"]).arg(&args);
    let strand = timed(&mut strand).map_err(|e| BenchError::Stalled(format!("running strand map: {e}")))?;
    failed += u64::from(!strand.ok);
    // Peaks in MiB: [monitoring on, off] x [a tenth, the whole stream].
    let mut peaks = [[0.0; 2]; 2];
    if o.stream > 0 {
        let served = Served::start(run_dir, 2, 128, false, Duration::from_secs(60))?;
        let conn = run_dir.connection_file();
        for (i, n) in [o.stream.div_ceil(10), o.stream].into_iter().enumerate() {
            let file = run_dir.file(&format!("bench-stream-{n}"));
            write_numbers(&file, n)?;
            for (m, (flag, suffix)) in [(None, ""), (Some("--no-monitoring"), "-no-monitoring")].into_iter().enumerate()
            {
                let mut map = Command::new(strand_binary());
                map.arg("map").args(flag).arg("--connection").arg(&conn).arg("--run-dir");
                map.arg(run_dir.file(&format!("map-stream-{n}{suffix}"))).args(["true", "::::"]).arg(&file);
                let r =
                    timed(&mut map).map_err(|e| BenchError::Stalled(format!("streaming through strand map: {e}")))?;
                failed += u64::from(!r.ok);
                peaks[m][i] = r.peak_rss_kib as f64 / 1024.0;
            }
        }
        served.stop()?;
    }
    let extra = o.stream - o.stream.div_ceil(10);
    let per_task = |[tenth, whole]: [f64; 2]| {
        if extra > 0 {
            (whole - tenth) * 1024.0 * 1024.0 / extra as f64
        } else {
            0.0
        }
    };
    Ok(GnuParallel {
        bench: "gnu-parallel",
        tasks: o.tasks,
        workers: o.workers,
        parallel_s: gnu.seconds,
        strand_s: strand.seconds,
        speedup: gnu.seconds / strand.seconds,
        stream_tasks: o.stream,
        stream_tenth_peak_rss_mib: peaks[0][0],
        stream_peak_rss_mib: peaks[0][1],
        stream_bytes_per_task: per_task(peaks[0]),
        stream_no_monitoring_tenth_peak_rss_mib: peaks[1][0],
        stream_no_monitoring_peak_rss_mib: peaks[1][1],
        stream_no_monitoring_bytes_per_task: per_task(peaks[1]),
        failed,
    })
}

fn write_numbers(path: &Path, n: u64) -> Result<(), BenchError> {
    let io = |e: std::io::Error| BenchError::Invalid(format!("writing {}: {e}", path.display()));
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    for i in 1..=n {
        writeln!(w, "{i}").map_err(io)?;
    }
    w.flush().map_err(io)
}

/// One program's run: wall time, whether it exited 0, its peak resident memory.
struct Timed {
    seconds: f64,
    ok: bool,
    peak_rss_kib: u64,
}

/// Run `cmd` (output discarded) and reap it with `wait4`, for its peak memory.
fn timed(cmd: &mut Command) -> std::io::Result<Timed> {
    let start = Instant::now();
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data, all zeros is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointers; `pid` is our child, reaped here and nowhere else (dropping
    // a `Child` does not wait for it).
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    drop(child);
    if r != pid {
        return Err(std::io::Error::last_os_error());
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Ok(Timed { seconds: start.elapsed().as_secs_f64(), ok, peak_rss_kib: usage.ru_maxrss.max(0) as u64 })
}
