//! Child processes of the submit host (an interchange, a local block): how they are started,
//! found, waited for and killed, so that none outlives the process that started it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Children die with the process that started them (SIGTERM on its death, even by SIGKILL),
/// so a killed `strand run` leaves no interchange or block behind.
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the child being started.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        })
    }
}

/// Where `strand` and `strand-launcher` are when this process is not one of them and does not
/// sit beside them (the Python package: its executable is the interpreter).
static BINARY_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Find Strand's binaries in `dir` from now on (once per process; later calls are ignored
/// and return false).
pub fn use_binaries_in(dir: PathBuf) -> bool {
    BINARY_DIR.set(dir).is_ok()
}

/// A binary that sits next to the running executable (cargo puts all of a workspace's binaries
/// together), or in the directory given to [`use_binaries_in`].
pub fn sibling_binary(name: &str) -> PathBuf {
    if let Some(dir) = BINARY_DIR.get() {
        return dir.join(name);
    }
    let here = std::env::current_exe().ok();
    let dir = here.as_deref().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
    // Test executables live in target/<profile>/deps; the binaries one level up.
    let candidates = [dir.join(name), dir.parent().map(|p| p.join(name)).unwrap_or_default()];
    candidates.iter().find(|p| p.is_file()).cloned().unwrap_or_else(|| dir.join(name))
}

/// The `strand` binary: this one if it is `strand`, else the one next to this executable.
pub fn strand_binary() -> PathBuf {
    let me = std::env::current_exe()
        .ok()
        .filter(|p| BINARY_DIR.get().is_none() && p.file_name().is_some_and(|n| n == "strand"));
    me.unwrap_or_else(|| sibling_binary("strand"))
}

/// Whether this process runs as root (Open MPI then needs `--allow-run-as-root`).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `program` is an executable file in a directory of `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file())).unwrap_or(false)
}

/// Standard output or error for a child: `dir/name` (created), or this process's own.
pub fn log_stdio(dir: &Path, name: &str, to_file: bool) -> std::io::Result<Stdio> {
    if !to_file {
        return Ok(Stdio::inherit());
    }
    std::fs::File::create(dir.join(name)).map(Stdio::from)
}

/// Wait for a child until `deadline`; kill it past that. `None` if it had to be killed.
pub fn wait_child(c: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match c.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                kill_child(c);
                return None;
            }
        }
    }
}

/// Kill a child that is still running, and reap it.
pub fn kill_child(c: &mut Child) {
    if matches!(c.try_wait(), Ok(None)) {
        let _ = c.kill();
        let _ = c.wait();
    }
}
