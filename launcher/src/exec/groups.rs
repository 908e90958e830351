//! Process groups of running commands, so a stopping launcher can kill them all and start no more.

use super::spawn::Process;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use strand::sample::{TreeUsage, TrySample};
use strand::task::TryId;

thread_local! {
    /// The try this slot thread runs now ([`for_try`]): what its spawns are sampled as.
    static RUNNING_FOR: Cell<Option<TryId>> = const { Cell::new(None) };
}

/// Run `f` as try `id` on this thread: the commands it spawns, and the interpreter it lends,
/// are sampled as that try's. The slot thread wraps each try in it, so the command code below
/// it needs no try id.
pub(crate) fn for_try<R>(id: TryId, f: impl FnOnce() -> R) -> R {
    let before = RUNNING_FOR.with(|c| c.replace(Some(id)));
    let r = f();
    RUNNING_FOR.with(|c| c.set(before));
    r
}

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
    /// Each running command's pgid, with the try it runs for (`None` outside [`for_try`]).
    running: HashMap<i32, Option<TryId>>,
    /// Groups killed by `kill_all`, so their tries end as `Shutdown`, not `Signal`.
    killed: HashSet<i32>,
    /// Processes that outlive their tries (warm interpreters), each lent to the one it runs now.
    lent: HashMap<i32, TryId>,
}

/// What [`RunningGroups::spawn`] did.
pub(crate) enum Spawned {
    /// The child runs and is registered; its pid is its process group id.
    Child(Process),
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

    /// Start a child with `start` (which must put it in its own process group) and register it.
    pub(crate) fn spawn(&self, start: impl FnOnce() -> std::io::Result<Process>) -> Spawned {
        let closed = self.inner.closed.read().unwrap_or_else(|p| p.into_inner());
        if *closed {
            return Spawned::Closed;
        }
        match start() {
            Ok(child) => {
                let owner = RUNNING_FOR.with(Cell::get);
                self.state().running.insert(child.pid, owner);
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
        let running: Vec<i32> = s.running.keys().copied().collect();
        for pgid in running {
            kill_group(pgid);
            s.killed.insert(pgid);
        }
    }

    /// Count `pid` (a warm interpreter) as the current try's until the guard drops; outside
    /// [`for_try`] nothing is lent.
    pub(crate) fn lend(&self, pid: i32) -> Lent<'_> {
        let owner = RUNNING_FOR.with(Cell::get);
        if let Some(id) = owner {
            self.state().lent.insert(pid, id);
        }
        Lent { groups: self, pid: owner.map(|_| pid) }
    }

    /// A sample of every running try's process tree, taken at `t_us`. The lock is held while
    /// `/proc` is read, so no command is reaped (and its pid reused) meanwhile.
    pub fn sample(&self, t_us: u64) -> Vec<TrySample> {
        let s = self.state();
        let owned = s.running.iter().filter_map(|(pid, id)| Some((*pid, (*id)?)));
        let lent = s.lent.iter().map(|(pid, id)| (*pid, *id));
        owned
            .chain(lent)
            .filter_map(|(pid, id)| {
                let usage: TreeUsage = strand::sample::process_tree(pid)?;
                Some(TrySample { id, t_us, usage })
            })
            .collect()
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

/// A process lent to a try by [`RunningGroups::lend`]; dropping it ends the loan.
pub(crate) struct Lent<'a> {
    groups: &'a RunningGroups,
    pid: Option<i32>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            self.groups.state().lent.remove(&pid);
        }
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
