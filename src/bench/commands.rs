//! `strand bench commands`: `/bin/true` command tasks through the whole path beside the spawn
//! floor of this machine, measured in the same run: W threads of this process, each spawning
//! `/bin/true` with `posix_spawn` and waiting for it in a loop, as many as the tasks.

use super::BenchError;
use crate::dfk::{Call, Dfk, TaskFuture};
use serde::Serialize;
use std::ffi::CString;
use std::time::Instant;

/// Command tasks per second against the bare cost of starting and reaping a process.
#[derive(Serialize, Debug)]
pub struct Commands {
    /// Always "commands".
    pub bench: &'static str,
    /// Tasks run (and processes spawned for the floor).
    pub tasks: u64,
    /// Worker ranks (and spawning threads for the floor).
    pub workers: u32,
    /// Processes per second that `workers` threads reach with `posix_spawn` + `waitpid`.
    pub floor_per_s: f64,
    /// `/bin/true` tasks per second through DFK, interchange, manager and workers.
    pub tasks_per_s: f64,
    /// `tasks_per_s / floor_per_s`.
    pub ratio: f64,
    /// Tasks that did not succeed (should be 0).
    pub failed: u64,
}

/// Measure the floor, then run `n` `/bin/true` tasks on `dfk`.
pub fn run(dfk: &Dfk, n: u64, workers: u32) -> Result<Commands, BenchError> {
    let threads = workers.max(1);
    let floor_per_s = spawn_floor(n, threads)?;
    let task = || Call::argv(["/bin/true"]).memoize(false);
    // Warm up, as the throughput benchmark does.
    for f in (0..20).map(|_| dfk.submit(task())).collect::<Vec<_>>() {
        let _ = f.wait();
    }
    let start = Instant::now();
    let futures: Vec<TaskFuture> = (0..n).map(|_| dfk.submit(task())).collect();
    dfk.wait_all(None);
    let tasks_per_s = n as f64 / start.elapsed().as_secs_f64();
    let failed = futures.iter().filter(|f| !matches!(f.peek(), Some(Ok(_)))).count() as u64;
    Ok(Commands {
        bench: "commands",
        tasks: n,
        workers,
        floor_per_s,
        tasks_per_s,
        ratio: tasks_per_s / floor_per_s,
        failed,
    })
}

/// Processes per second from `threads` threads spawning `/bin/true` `n` times in all.
fn spawn_floor(n: u64, threads: u32) -> Result<f64, BenchError> {
    let per_thread = n.div_ceil(threads as u64);
    let start = Instant::now();
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(move || spawn_loop(per_thread))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a spawning thread panicked".into()))).collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
        return Err(BenchError::Stalled(format!("measuring the spawn floor: {e}")));
    }
    Ok((per_thread * threads as u64) as f64 / seconds)
}

/// Spawn `/bin/true` and wait for it, `n` times.
fn spawn_loop(n: u64) -> Result<(), String> {
    let path = CString::new("/bin/true").map_err(|e| e.to_string())?;
    let argv: [*mut libc::c_char; 2] = [path.as_ptr().cast_mut(), std::ptr::null_mut()];
    // This process's own environment, as a C program passing `environ` would: the tasks get
    // theirs too, and copying it is part of what a spawn costs.
    let env_strings: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let envp: Vec<*mut libc::c_char> =
        env_strings.iter().map(|c| c.as_ptr().cast_mut()).chain(std::iter::once(std::ptr::null_mut())).collect();
    for _ in 0..n {
        let mut pid: libc::pid_t = 0;
        // SAFETY: path, argv and envp (and the strings it points to) are NUL-terminated and outlive the call; no file
        // actions or attributes are passed.
        let rc = unsafe {
            libc::posix_spawn(&mut pid, path.as_ptr(), std::ptr::null(), std::ptr::null(), argv.as_ptr(), envp.as_ptr())
        };
        if rc != 0 {
            return Err(format!("posix_spawn /bin/true: {}", std::io::Error::from_raw_os_error(rc)));
        }
        let mut status = 0;
        // SAFETY: waiting for the child we just started.
        if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
            return Err(format!("waitpid: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}
