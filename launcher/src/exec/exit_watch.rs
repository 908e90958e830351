//! A file descriptor that poll(2) reports ready when a child exits, without reaping it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::thread::JoinHandle;

/// Readiness of `fd()` means the child has exited (it is still a zombie, for std to reap).
pub(crate) struct ExitWatch {
    fd: OwnedFd,
    /// Only for the fallback: the thread blocked in waitid.
    helper: Option<JoinHandle<()>>,
}

impl ExitWatch {
    /// A pidfd where the kernel has one, else a helper thread.
    pub(crate) fn open(pid: i32) -> io::Result<ExitWatch> {
        #[cfg(target_os = "linux")]
        if let Ok(fd) = pidfd_open(pid) {
            return Ok(ExitWatch { fd, helper: None });
        }
        // pidfd_open fails with ENOSYS before Linux 5.3 (RHEL 8 and its clones run 4.18)
        // and with EPERM under seccomp filters that predate it. A thread blocked in
        // waitid(WNOWAIT) gives the same pollable exit without timed polling, at the cost
        // of one short-lived thread per command on those systems.
        ExitWatch::with_thread(pid)
    }

    /// The fallback: a thread waits for the exit (without reaping) and then closes the
    /// write end of a pipe, which makes the read end poll ready (POLLHUP).
    pub(crate) fn with_thread(pid: i32) -> io::Result<ExitWatch> {
        let (read, write) = pipe()?;
        let helper = std::thread::Builder::new()
            .name("strand-waitid".into())
            // It only sits in one syscall; the default 2 MiB per command is waste.
            .stack_size(128 * 1024)
            .spawn(move || {
                wait_exited(pid);
                drop(write);
            })?;
        Ok(ExitWatch { fd: read, helper: Some(helper) })
    }

    /// The descriptor to poll for readability.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Release the watch. Call it only once the child has exited or been SIGKILLed (the
    /// join waits for the exit) and before reaping it, so the helper is never inside
    /// waitid for a pid that has been reaped and perhaps reused.
    pub(crate) fn close(self) {
        if let Some(h) = self.helper {
            // The helper cannot panic; a join error would carry nothing to act on.
            let _ = h.join();
        }
    }
}

#[cfg(target_os = "linux")]
fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall; the result is checked before use.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns (pidfds are close-on-exec).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A pipe whose ends are close-on-exec from birth: a child spawned by another slot in
/// between must not inherit the write end, or the read end would report this child's
/// exit only once that other child had exited too.
#[cfg(target_os = "linux")]
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2(2) writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Without pipe2 the close-on-exec flag is set right after; the window is the platform's.
#[cfg(not(target_os = "linux"))]
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&read, &write] {
        // SAFETY: fcntl on descriptors we own.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((read, write))
}

/// Block until `pid` has exited, leaving it waitable (WNOWAIT).
fn wait_exited(pid: i32) {
    loop {
        // SAFETY: an all-zero siginfo_t is a valid out-parameter.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t.
        let rc = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) };
        // Any error but EINTR (ECHILD) means there is nothing left to wait for: report
        // "exited" and let the reap that follows say what happened.
        if rc == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}
