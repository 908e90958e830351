//! Process groups of running commands, so a stopping launcher can kill them all and start no more.

use std::collections::HashSet;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// The process groups of the commands running under one executor.
///
/// Every command is the leader of its own group (pgid == pid). [`RunningGroups::kill_all`]
/// SIGKILLs every group and closes the set: commands started afterwards are refused, so a
/// launcher stopping on SIGTERM leaves no orphans behind.
#[derive(Clone, Default, Debug)]
pub struct RunningGroups {
    inner: Arc<Inner>,
}

#[derive(Default, Debug)]
struct Inner {
    /// `true` once closed. Spawns hold the read side across fork/exec and registration;
    /// `kill_all` takes the write side, so it waits for spawns in flight (which it then
    /// kills) and no spawn can slip in between its sweep and the launcher exiting.
    closed: RwLock<bool>,
    state: Mutex<State>,
}

#[derive(Default, Debug)]
struct State {
    running: HashSet<i32>,
    /// Groups killed by `kill_all`, so their tries end as `Shutdown`, not `Signal`.
    killed: HashSet<i32>,
}

/// What [`RunningGroups::spawn`] did.
pub(crate) enum Spawned {
    /// The child runs and is registered; its pid is its process group id.
    Child(Child),
    /// `kill_all` was called: nothing was started.
    Closed,
    /// fork/exec failed.
    Failed(std::io::Error),
}

impl RunningGroups {
    /// An empty, open set.
    pub fn new() -> RunningGroups {
        RunningGroups::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked while holding it; the sets
        // are still consistent (every update is a single insert or remove).
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spawn `cmd` (which must put the child in its own process group) and register it.
    pub(crate) fn spawn(&self, cmd: &mut Command) -> Spawned {
        let closed = self.inner.closed.read().unwrap_or_else(|p| p.into_inner());
        if *closed {
            return Spawned::Closed;
        }
        match cmd.spawn() {
            Ok(child) => {
                self.state().running.insert(child.id() as i32);
                Spawned::Child(child)
            }
            Err(e) => Spawned::Failed(e),
        }
    }

    /// Forget a group; returns whether `kill_all` killed it. Call it before reaping the
    /// leader: until then its pid (the pgid) cannot be reused, so `kill_all` never signals
    /// a stranger's group.
    pub(crate) fn finish(&self, pgid: i32) -> bool {
        let mut s = self.state();
        s.running.remove(&pgid);
        s.killed.remove(&pgid)
    }

    /// SIGKILL every running command's process group and refuse to start any more.
    pub fn kill_all(&self) {
        let mut closed = self.inner.closed.write().unwrap_or_else(|p| p.into_inner());
        *closed = true;
        let mut s = self.state();
        let running: Vec<i32> = s.running.iter().copied().collect();
        for pgid in running {
            kill_group(pgid);
            s.killed.insert(pgid);
        }
    }

    /// Whether `kill_all` has been called.
    pub fn is_closed(&self) -> bool {
        *self.inner.closed.read().unwrap_or_else(|p| p.into_inner())
    }

    /// How many commands are running now.
    pub fn len(&self) -> usize {
        self.state().running.len()
    }

    /// Whether no command is running now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// SIGKILL a whole process group. ESRCH (already gone) is the expected answer for a
/// command that left no strays, so errors are ignored.
pub(crate) fn kill_group(pgid: i32) {
    // killpg(0) would hit our own group and killpg(1) init's: never pass those on.
    if pgid > 1 {
        // SAFETY: a plain syscall with no memory arguments.
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
    }
}
