//! `strand bench gnu-parallel`: `strand map` beside GNU parallel itself, in one run.
//!
//! - Speed: `/bin/true` over N arguments with W slots, `parallel -j W` against `strand map
//!   -j W`, each timed from its start to its exit (Strand's time includes starting its
//!   interchange and block, as a user running it pays).
//! - Memory: the resident memory of `strand map` streaming S arguments (`:::: FILE`) to an
//!   interchange served by simulated managers (real ZeroMQ, no MPI; they answer at once), so
//!   that only `strand map`'s own memory is measured: as run by default (its run database on),
//!   and with `--no-monitoring`, side by side. RSS is read every 20 ms while it runs and told
//!   by tenths of its run time (the rate is steady), with its growth over the second half:
//!   flat is near 0 bytes per argument. A tenth of the stream run alone would end inside the
//!   first seconds' fill (the window, the run database's rounds) and call that growth.

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
    /// Arguments of the long stream; 0: no memory part.
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
    /// Resident memory of `strand map` over the stream, MiB: the highest in each tenth of its
    /// run time.
    pub stream_rss_mib: Vec<f64>,
    /// Peak resident memory of `strand map` over the whole stream, MiB.
    pub stream_peak_rss_mib: f64,
    /// Growth of the peak over the stream's second half, bytes per argument (flat: near 0).
    pub stream_bytes_per_task: f64,
    /// The same three with `--no-monitoring`: RSS by tenths of the run time, MiB.
    pub stream_no_monitoring_rss_mib: Vec<f64>,
    /// With `--no-monitoring`: the whole stream's peak, MiB.
    pub stream_no_monitoring_peak_rss_mib: f64,
    /// With `--no-monitoring`: growth over the second half, bytes per argument.
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
    // [monitoring on, off].
    let mut streams: [Streamed; 2] = Default::default();
    if o.stream > 0 {
        let served = Served::start(run_dir, 2, 128, false, Duration::from_secs(60))?;
        let conn = run_dir.connection_file();
        let n = o.stream;
        let file = run_dir.file(&format!("bench-stream-{n}"));
        write_numbers(&file, n)?;
        for (m, (flag, suffix)) in [(None, ""), (Some("--no-monitoring"), "-no-monitoring")].into_iter().enumerate() {
            let mut map = Command::new(strand_binary());
            map.arg("map").args(flag).arg("--connection").arg(&conn).arg("--run-dir");
            map.arg(run_dir.file(&format!("map-stream-{n}{suffix}"))).args(["true", "::::"]).arg(&file);
            let r = timed(&mut map).map_err(|e| BenchError::Stalled(format!("streaming through strand map: {e}")))?;
            failed += u64::from(!r.ok);
            streams[m] = Streamed::of(&r, n);
        }
        served.stop()?;
    }
    let [on, off] = streams;
    Ok(GnuParallel {
        bench: "gnu-parallel",
        tasks: o.tasks,
        workers: o.workers,
        parallel_s: gnu.seconds,
        strand_s: strand.seconds,
        speedup: gnu.seconds / strand.seconds,
        stream_tasks: o.stream,
        stream_rss_mib: on.tenths,
        stream_peak_rss_mib: on.peak_mib,
        stream_bytes_per_task: on.bytes_per_task,
        stream_no_monitoring_rss_mib: off.tenths,
        stream_no_monitoring_peak_rss_mib: off.peak_mib,
        stream_no_monitoring_bytes_per_task: off.bytes_per_task,
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

/// One program's run: wall time, whether it exited 0, its peak resident memory, and its
/// resident memory as read while it ran (seconds since its start, KiB).
struct Timed {
    seconds: f64,
    ok: bool,
    peak_rss_kib: u64,
    rss: Vec<(f64, u64)>,
}

/// How often [`timed`] reads its program's resident memory.
const RSS_EVERY: Duration = Duration::from_millis(20);

/// Run `cmd` (output discarded) and reap it with `wait4`, for its peak memory; a thread reads
/// its VmRSS every [`RSS_EVERY`] meanwhile.
fn timed(cmd: &mut Command) -> std::io::Result<Timed> {
    let start = Instant::now();
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let pid = child.id() as libc::pid_t;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut rss = Vec::new();
        // Until the child is reaped: the pid cannot be reused before that.
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(RSS_EVERY) {
            if let Some(kib) = vm_rss_kib(pid) {
                rss.push((start.elapsed().as_secs_f64(), kib));
            }
        }
        rss
    });
    let mut status = 0;
    // SAFETY: rusage is plain data, all zeros is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointers; `pid` is our child, reaped here and nowhere else (dropping
    // a `Child` does not wait for it).
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = start.elapsed().as_secs_f64();
    drop(stop);
    let rss = reader.join().unwrap_or_default();
    drop(child);
    if r != pid {
        return Err(std::io::Error::last_os_error());
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Ok(Timed { seconds, ok, peak_rss_kib: usage.ru_maxrss.max(0) as u64, rss })
}

/// `VmRSS` of process `pid` in KiB, while it runs (`None` once it has exited).
fn vm_rss_kib(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One stream's memory as the JSON line tells it.
#[derive(Default)]
struct Streamed {
    tenths: Vec<f64>,
    peak_mib: f64,
    bytes_per_task: f64,
}

impl Streamed {
    /// The run `r` of `n` arguments: its RSS by tenths of its run time (a tenth with no
    /// reading repeats the one before), its peak, and the peak's growth over the second half.
    fn of(r: &Timed, n: u64) -> Streamed {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let tenth_of = |t: f64| ((t / r.seconds.max(1e-9) * 10.0) as usize).min(9);
        let mut tenths: Vec<Option<u64>> = vec![None; 10];
        for &(t, kib) in &r.rss {
            let slot = &mut tenths[tenth_of(t)];
            *slot = Some(slot.map_or(kib, |k| k.max(kib)));
        }
        let mut last = r.rss.first().map_or(0, |&(_, k)| k);
        let tenths: Vec<u64> = tenths
            .into_iter()
            .map(|k| {
                last = k.unwrap_or(last);
                last
            })
            .collect();
        let first_half = tenths[..5].iter().copied().max().unwrap_or(0);
        // The kernel's high-water mark can trail a VmRSS read just before the exit.
        let peak_kib = tenths.iter().copied().fold(r.peak_rss_kib, u64::max);
        let grown_kib = peak_kib.saturating_sub(first_half);
        let half = (n / 2).max(1);
        Streamed {
            tenths: tenths.into_iter().map(mib).collect(),
            peak_mib: mib(peak_kib),
            bytes_per_task: grown_kib as f64 * 1024.0 / half as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_told_by_tenths_of_its_run_time_and_its_second_halfs_growth() {
        // 10 s; readings at 0.5 s (10 MiB), 3.2 s (40), 3.9 s (30), 7.5 s (44); none in the others.
        let rss = vec![(0.5, 10 << 10), (3.2, 40 << 10), (3.9, 30 << 10), (7.5, 44 << 10)];
        let r = Timed { seconds: 10.0, ok: true, peak_rss_kib: 48 << 10, rss };
        let s = Streamed::of(&r, 1 << 20);
        assert_eq!(s.tenths, [10.0, 10.0, 10.0, 40.0, 40.0, 40.0, 40.0, 44.0, 44.0, 44.0]);
        assert_eq!(s.peak_mib, 48.0);
        // 8 MiB above the first half's 40 over 512 Ki arguments: 16 bytes each.
        assert_eq!(s.bytes_per_task, 16.0);
        let nothing = Streamed::of(&Timed { seconds: 0.01, ok: true, peak_rss_kib: 0, rss: vec![] }, 0);
        assert_eq!((nothing.tenths.len(), nothing.bytes_per_task), (10, 0.0));
    }
}
