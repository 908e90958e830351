//! Facts about the host a process runs on.

/// This host's name, or `"unknown-host"` if the OS will not say.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown-host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The name the batch system knows this node by (Slurm's `SLURMD_NODENAME`, which can differ from
/// the host name), else [`hostname`]: what a job step's node list must name.
pub fn node_name() -> String {
    std::env::var("SLURMD_NODENAME").ok().filter(|n| !n.is_empty()).unwrap_or_else(hostname)
}

/// The block id this process belongs to, from the batch system's environment
/// (`SLURM_JOB_ID`, `PBS_JOBID`, `COBALT_JOBID`, `LSB_JOBID`), else `"local"`.
pub fn block_id_from_env() -> String {
    ["STRAND_BLOCK_ID", "SLURM_JOB_ID", "PBS_JOBID", "COBALT_JOBID", "LSB_JOBID"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "local".into())
}

/// The open-file limit was too low for the configured scale.
#[derive(Debug, thiserror::Error)]
#[error("open-file limit is {have} (hard limit {hard}) but {need} are needed for {what}; raise it with `ulimit -n {need}` or ask your admins to raise the hard limit")]
pub struct FdLimitError {
    /// Soft limit after raising it as far as allowed.
    pub have: u64,
    /// Hard limit.
    pub hard: u64,
    /// What we need.
    pub need: u64,
    /// What it is needed for.
    pub what: String,
}

/// Raise the soft open-file limit to the hard limit; error if still below `need`.
pub fn raise_fd_limit(need: u64, what: &str) -> Result<u64, FdLimitError> {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: valid pointer to an rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return Ok(0);
    }
    if rl.rlim_cur < rl.rlim_max {
        let raised = libc::rlimit { rlim_cur: rl.rlim_max, rlim_max: rl.rlim_max };
        // SAFETY: valid pointer; raising the soft limit up to the hard limit is always allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            rl.rlim_cur = rl.rlim_max;
        }
    }
    let (have, hard) = (rl.rlim_cur, rl.rlim_max);
    if have < need {
        return Err(FdLimitError { have, hard, need, what: what.to_string() });
    }
    Ok(have)
}

/// Peak resident memory (VmHWM) and CPU seconds (user + system) of a process, from /proc.
pub fn proc_usage(pid: u32) -> Option<(u64, f64)> {
    let hwm = status_bytes(pid, "VmHWM:")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((hwm, ticks as f64 / hz))
}

/// Resident memory now (VmRSS) of a process, in bytes, from /proc.
pub fn current_rss(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmRSS:")
}

/// A memory field (`VmRSS:`, `VmHWM:` ..., given in kB) of `/proc/PID/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Pin process `pid` (0: this one, all its threads created afterwards) to the given CPUs.
pub fn pin_to_cpus(pid: u32, cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET only write inside it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        // SAFETY: c is checked against the set's capacity by CPU_SET itself (it ignores overflow).
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: valid set pointer and size.
    let rc = unsafe { libc::sched_setaffinity(pid as libc::pid_t, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
