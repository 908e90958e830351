//! Wide tries: tries that need several worker ranks (cores, MPI ranks) or GPUs.
//!
//! A manager feeds plain tries one per worker slot. A wide try instead reserves
//! `ranks * cores` idle worker ranks of its pool (and `gpus` GPUs on its first
//! rank's node), runs on the first of them (the *leader*), and holds the others
//! idle until it ends, so the cores it was promised are not running anything else.
//!
//! Reservations keep the tries' order ([`WidePlanner::step`]): the oldest waiting wide try (the
//! head) reserves what is free at once and each further rank as it comes free, and tries behind
//! it reserve all their ranks at once if they arrived before every plain try still waiting, so
//! several reservations drain side by side. Reserved workers get no new plain tries and no other
//! wide try, so a try starts as soon as its ranks finish what they hold, and neither plain tries
//! nor smaller wide ones can starve it. The command runs on the union of the cpusets of its reserved ranks on the
//! leader's node (sent to the leader with the try, [`WorkerTry::cpus`], and applied when it
//! starts the command; `STRAND_CPUS` tells the command), so a `cores = 4` try is not confined
//! to its leader's own share. This module is plain data: the manager shows it its workers and
//! does the MPI sends it asks for, so it is tested without MPI.

use crate::placement::{list_string, parse_list};
use crate::pool_msg::{GroupTry, WorkerRank, WorkerTry};
use crate::task_mpi::MpiLaunch;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use strand::task::{App, Failure, ManagerId, Outcome, Try, TryId, TryResult};

/// What the planner needs to know about one worker rank.
#[derive(Clone, Debug)]
pub struct WorkerView {
    /// Its rank in the pool.
    pub rank: WorkerRank,
    /// Its host ("" until its first heartbeat).
    pub host: String,
    /// Tries it holds now.
    pub held: u32,
    /// Declared lost.
    pub lost: bool,
    /// The CPUs the rank is bound to (from its heartbeat); `None` until known, or from a worker
    /// that does not say.
    pub cpus: Option<BTreeSet<u32>>,
}

/// What the manager must do for the planner.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Send this try (its environment already says what it got, its cpuset is set) to the leader rank.
    Launch {
        /// Rank that runs it.
        leader: WorkerRank,
        /// The try, with the CPUs its command runs on.
        job: Box<WorkerTry>,
    },
    /// Send this MPI function try to each of its members (one per MPI rank it asked for).
    LaunchGroup(Box<GroupTry>),
    /// Report this result: the try can never run in this pool.
    Fail(TryResult),
}

/// A wide try waiting for its ranks.
#[derive(Debug)]
struct Waiting {
    t: Try,
    /// An MPI function try: every member runs it (else only the leader runs it).
    group: bool,
    /// When its manager received it, among all its tries (see [`WidePlanner::step`]).
    seq: u64,
    /// Ranks set aside for it (leader first): they get no plain tries and no other wide try.
    reserved: Vec<WorkerRank>,
}

/// Worker ranks and GPUs held by one running wide try.
#[derive(Debug)]
struct Alloc {
    ranks: Vec<WorkerRank>,
    host: String,
    gpus: Vec<String>,
}

/// Reservations and queue of wide tries for one pool.
#[derive(Debug)]
pub struct WidePlanner {
    manager: ManagerId,
    queue: VecDeque<Waiting>,
    running: HashMap<TryId, Alloc>,
    /// Ranks lent to running tries or reserved for waiting ones: they get no plain tries.
    blocked: HashSet<WorkerRank>,
    /// GPU ids each node offers (the same list on every node).
    gpu_ids: Vec<String>,
    /// GPU ids in use, per host.
    gpus_in_use: HashMap<String, Vec<String>>,
    /// How a try's MPI program is started on its ranks.
    mpi: MpiLaunch,
}

impl WidePlanner {
    /// A planner for a pool whose nodes each offer the GPUs `gpu_ids`, whose tries start MPI
    /// programs with `mpi`.
    pub fn new(manager: ManagerId, gpu_ids: Vec<String>, mpi: MpiLaunch) -> WidePlanner {
        WidePlanner {
            manager,
            queue: VecDeque::new(),
            running: HashMap::new(),
            blocked: HashSet::new(),
            gpu_ids,
            gpus_in_use: HashMap::new(),
            mpi,
        }
    }

    /// Queue a wide try, the `seq`-th its manager received.
    pub fn push(&mut self, t: Try, seq: u64) {
        self.queue.push_back(Waiting { t, group: false, seq, reserved: vec![] });
    }

    /// Queue an MPI function try (it runs on every one of its members, with their communicator),
    /// the `seq`-th its manager received.
    pub fn push_group(&mut self, t: Try, seq: u64) {
        self.queue.push_back(Waiting { t, group: true, seq, reserved: vec![] });
    }

    /// Wide tries waiting for their ranks.
    pub fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// Wide tries running now.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Whether this rank must not get plain tries (lent to a wide try or reserved for one).
    pub fn is_blocked(&self, rank: WorkerRank) -> bool {
        self.blocked.contains(&rank)
    }

    /// Forget every waiting wide try (the interchange no longer knows them); running ones keep their ranks.
    pub fn clear_waiting(&mut self) {
        for mut w in std::mem::take(&mut self.queue) {
            self.release(&mut w.reserved);
        }
    }

    /// A try ended (any outcome): give back its ranks and GPUs. Unknown ids are ignored.
    pub fn finished(&mut self, id: &TryId) {
        if let Some(a) = self.running.remove(id) {
            for r in &a.ranks {
                self.blocked.remove(r);
            }
            if let Some(used) = self.gpus_in_use.get_mut(&a.host) {
                used.retain(|g| !a.gpus.contains(g));
            }
        }
    }

    /// Live ranks heard from that no try holds or has reserved.
    fn free_ranks(&self, workers: &[WorkerView]) -> usize {
        workers.iter().filter(|w| !w.lost && !w.host.is_empty() && !self.blocked.contains(&w.rank)).count()
    }

    /// Give back the ranks of a reservation.
    fn release(&mut self, reserved: &mut Vec<WorkerRank>) {
        for r in reserved.drain(..) {
            self.blocked.remove(&r);
        }
    }

    /// Reserve, launch or refuse as many waiting tries as the workers allow, in order.
    ///
    /// `oldest_plain` is the `seq` of the oldest plain try still waiting in the manager (`None`:
    /// none waits). The first waiting try (the head) always reserves: what is free now, and each
    /// rank as it comes free until it has all it needs, so nothing behind it can take the ranks it
    /// waits for and it cannot starve. A try behind the head reserves all its ranks at once, and
    /// only if it arrived before every waiting plain try (or none waits), so wide tries keep their
    /// place in the stream beside plain ones instead of waiting for one reservation after another,
    /// and never overtake a plain try that came first. Reserved ranks finish what they hold and get
    /// nothing new; a try starts when all its ranks are idle. Tries with GPUs behind the head wait
    /// for their turn as the head.
    pub fn step(&mut self, workers: &[WorkerView], oldest_plain: Option<u64>) -> Vec<Action> {
        let mut out = vec![];
        let live = workers.iter().filter(|w| !w.lost).count();
        // Ranks nobody holds or has reserved: when none are left (the usual case in a busy
        // pool), tries that still need some are not looked at rank by rank.
        let mut free = self.free_ranks(workers);
        let mut i = 0;
        while i < self.queue.len() {
            let (need, gpus, seq) = {
                let w = &self.queue[i];
                let r = w.t.spec.resources;
                (r.worker_ranks() as usize, r.gpus as usize, w.seq)
            };
            if need > live || gpus > self.gpu_ids.len() {
                let Some(mut w) = self.queue.remove(i) else { break };
                self.release(&mut w.reserved);
                free = self.free_ranks(workers);
                let message = format!(
                    "the pool of {} has {live} live worker rank(s) and {} GPU(s) per node",
                    self.manager,
                    self.gpu_ids.len()
                );
                let failure = Failure::Unsatisfiable { needed: w.t.spec.resources, message };
                out.push(Action::Fail(TryResult::new(w.t.id, Outcome::Failed(failure))));
                continue;
            }
            // A reserved rank that was lost meanwhile spoils the reservation: choose again.
            let lost = |r: &WorkerRank| workers.iter().any(|w| w.rank == *r && w.lost);
            if self.queue[i].reserved.iter().any(lost) {
                let mut spoiled = std::mem::take(&mut self.queue[i].reserved);
                self.release(&mut spoiled);
                free = self.free_ranks(workers);
            }
            let have = self.queue[i].reserved.len();
            // Behind the head, all at once or nothing: a partial reservation there would idle
            // ranks for a try that may wait behind the head for long.
            let may = if i == 0 { free > 0 } else { gpus == 0 && free >= need && oldest_plain.is_none_or(|p| seq < p) };
            if have < need && may {
                let leader_host = self.queue[i].reserved.first().and_then(|r| host_of(workers, *r));
                let got = match self.choose(workers, need - have, gpus, leader_host.as_deref()) {
                    Some(more) if i == 0 || more.len() == need => more,
                    _ => vec![],
                };
                free -= got.len().min(free);
                self.blocked.extend(got.iter().copied());
                self.queue[i].reserved.extend(got);
            }
            let idle = |r: &WorkerRank| workers.iter().any(|w| w.rank == *r && w.held == 0 && !w.lost);
            let ready = {
                let w = &self.queue[i];
                w.reserved.len() == need && w.reserved.iter().all(idle)
            };
            if !ready {
                i += 1;
                continue;
            }
            let Some(w) = self.queue.remove(i) else { break };
            out.push(self.launch(w, workers));
        }
        out
    }

    /// Start `w` on its reserved ranks: its GPUs, its environment, the ranks lent to it.
    fn launch(&mut self, w: Waiting, workers: &[WorkerView]) -> Action {
        let Waiting { mut t, group, reserved: ranks, .. } = w;
        let gpus = t.spec.resources.gpus as usize;
        let leader = ranks[0];
        let host = host_of(workers, leader).unwrap_or_default();
        let used = self.gpus_in_use.entry(host.clone()).or_default();
        let got: Vec<String> = self.gpu_ids.iter().filter(|g| !used.contains(g)).take(gpus).cloned().collect();
        used.extend(got.iter().cloned());
        let cores = t.spec.resources.cores.max(1) as usize;
        let rank_hosts: Vec<String> =
            ranks.iter().step_by(cores).map(|r| host_of(workers, *r).unwrap_or_default()).collect();
        let planned = local_cpus(workers, &ranks, &host);
        // Before the environment gets the planned list: only the task's own setting counts.
        let cpus = binding(&t, planned.clone());
        set_environment(&mut t, &rank_hosts, &got, planned.as_ref(), &self.mpi);
        // One member per MPI rank: the first rank of each `cores` ranks (the others lend cores).
        let members: Vec<WorkerRank> = ranks.iter().step_by(cores).copied().collect();
        self.running.insert(t.id, Alloc { ranks, host, gpus: got });
        if group {
            Action::LaunchGroup(Box::new(GroupTry { try_: t, members }))
        } else {
            Action::Launch { leader, job: Box::new(WorkerTry { try_: t, cpus }) }
        }
    }

    /// Pick up to `want` live ranks that no try holds or has reserved, preferring the node `home`
    /// (a reservation's leader's), else a node with `gpus` free GPUs for the leader and the most
    /// such ranks (fewest hops for an MPI app); then the least loaded. `None`: none to pick.
    fn choose(&self, workers: &[WorkerView], want: usize, gpus: usize, home: Option<&str>) -> Option<Vec<WorkerRank>> {
        // A rank not heard from yet has no known host or cores: it could not be placed with the
        // others or lend its cores, so it waits for its first heartbeat (well under a second).
        let mut free: Vec<&WorkerView> =
            workers.iter().filter(|w| !w.lost && !w.host.is_empty() && !self.blocked.contains(&w.rank)).collect();
        if free.is_empty() || want == 0 {
            return None;
        }
        let home = match home {
            Some(h) => h.to_string(),
            None => {
                let free_gpus = |host: &str| {
                    let used = self.gpus_in_use.get(host).map(|v| v.len()).unwrap_or(0);
                    self.gpu_ids.len() - used.min(self.gpu_ids.len())
                };
                let mut per_host: HashMap<&str, usize> = HashMap::new();
                for w in &free {
                    *per_host.entry(w.host.as_str()).or_default() += 1;
                }
                // Enough free GPUs, then the most free ranks, then the name (determinism).
                per_host
                    .iter()
                    .filter(|(h, _)| free_gpus(h) >= gpus)
                    .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                    .map(|(h, _)| h.to_string())?
            }
        };
        free.sort_by_key(|w| (w.host != home, w.held, w.rank));
        Some(free.iter().take(want).map(|w| w.rank).collect())
    }
}

/// The host of worker `rank`, once it has said.
fn host_of(workers: &[WorkerView], rank: WorkerRank) -> Option<String> {
    workers.iter().find(|w| w.rank == rank).map(|w| w.host.clone()).filter(|h| !h.is_empty())
}

/// The union of the cpusets of the `ranks` on `host` (the leader's node: only its CPUs can run
/// the command); `None` when any of them is unknown, since a partial union would confine the
/// command to fewer cores than it reserved.
fn local_cpus(workers: &[WorkerView], ranks: &[WorkerRank], host: &str) -> Option<BTreeSet<u32>> {
    let mut union = BTreeSet::new();
    for r in ranks {
        let w = workers.iter().find(|w| w.rank == *r)?;
        if w.host != host {
            continue;
        }
        union.extend(w.cpus.as_ref()?.iter().copied());
    }
    // Nothing to run on is no affinity at all (the command keeps its worker's binding).
    (!union.is_empty()).then_some(union)
}

/// The CPUs a wide command binds to: those it was `planned`, unless the task sets `STRAND_CPUS`
/// itself (its last setting, as the child sees it): then that list, or none (its leader's
/// binding) when empty or not a list. Read here, once, so the worker gets a typed cpuset and
/// never reads an environment variable.
fn binding(t: &Try, planned: Option<BTreeSet<u32>>) -> Option<BTreeSet<u32>> {
    let App::Command(cmd) = &t.spec.app else { return None };
    match cmd.env.iter().rev().find(|(k, _)| k == "STRAND_CPUS") {
        Some((_, own)) => parse_list(own).filter(|c| !c.is_empty()),
        None => planned,
    }
}

/// Tell a command what it got: `STRAND_CORES`, `STRAND_RANKS`, `STRAND_HOSTS` (one host per rank),
/// `OMP_NUM_THREADS`, the GPU masks, `STRAND_CPUS` (the CPUs it runs on, when known) and how to
/// start its MPI program on those ranks (`STRAND_MPI_PREFIX` and its parts). Variables the task
/// sets itself win.
fn set_environment(t: &mut Try, rank_hosts: &[String], gpus: &[String], cpus: Option<&BTreeSet<u32>>, mpi: &MpiLaunch) {
    let r = t.spec.resources;
    let App::Command(cmd) = &mut t.spec.app else { return };
    let mut add = |k: &str, v: String| {
        if !cmd.env.iter().any(|(key, _)| key == k) {
            cmd.env.push((k.to_string(), v));
        }
    };
    add("STRAND_CORES", r.cores.max(1).to_string());
    add("OMP_NUM_THREADS", r.cores.max(1).to_string());
    add("STRAND_RANKS", r.ranks.max(1).to_string());
    add("STRAND_HOSTS", rank_hosts.join(","));
    for (k, v) in mpi.env(rank_hosts) {
        add(&k, v);
    }
    if let Some(c) = cpus {
        add("STRAND_CPUS", list_string(c));
    }
    if !gpus.is_empty() {
        let list = gpus.join(",");
        add("STRAND_GPUS", list.clone());
        add("CUDA_VISIBLE_DEVICES", list.clone());
        add("ROCR_VISIBLE_DEVICES", list.clone());
        add("ZE_AFFINITY_MASK", list);
    }
}

/// GPU ids a node offers: `count` of them (default: all) from `$CUDA_VISIBLE_DEVICES` when the
/// scheduler set it (so ids stay within the allocation), else `0..count`.
pub fn gpu_ids(count: Option<u32>, visible: Option<String>) -> Vec<String> {
    let from_env: Vec<String> = visible
        .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    match (count, from_env.is_empty()) {
        (None, _) => from_env,
        (Some(n), false) => from_env.into_iter().take(n as usize).collect(),
        (Some(n), true) => (0..n).map(|i| i.to_string()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strand::task::{ClientId, CommandSpec, Program, Resources, TaskId, TaskSpec};

    fn wide(n: u64, cores: u32, gpus: u32, ranks: u32) -> Try {
        Try {
            id: TryId { client: ClientId(1), task: TaskId(n), attempt: 0 },
            spec: TaskSpec {
                app: App::Command(CommandSpec {
                    program: Program::Shell("true".into()),
                    env: vec![("OMP_NUM_THREADS".into(), "7".into())],
                    cwd: None,
                    stdout: None,
                    stderr: None,
                }),
                walltime_ms: None,
                priority: 0,
                outputs: vec![],
                resources: Resources { cores, gpus, ranks },
            },
        }
    }

    fn workers(spec: &[(&str, u32)]) -> Vec<WorkerView> {
        spec.iter()
            .enumerate()
            .map(|(i, (h, held))| WorkerView {
                rank: WorkerRank(i as i32 + 1),
                host: h.to_string(),
                held: *held,
                lost: false,
                cpus: None,
            })
            .collect()
    }

    fn env(a: &Action, k: &str) -> Option<String> {
        let Action::Launch { job, .. } = a else { return None };
        let App::Command(c) = &job.try_.spec.app else { return None };
        c.env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
    }

    /// The cpuset a launch binds its command to.
    fn bound(a: &Action) -> Option<BTreeSet<u32>> {
        let Action::Launch { job, .. } = a else { return None };
        job.cpus.clone()
    }

    fn mpirun() -> MpiLaunch {
        MpiLaunch { kind: crate::task_mpi::TaskLaunch::Mpirun, as_root: false }
    }

    fn ranks(r: &[i32]) -> Vec<WorkerRank> {
        r.iter().map(|&r| WorkerRank(r)).collect()
    }

    #[test]
    fn reserves_waits_for_busy_ranks_then_launches_on_one_node() {
        let mut p = WidePlanner::new(ManagerId(1), vec![], mpirun());
        p.push(wide(1, 2, 0, 1), 0);
        let mut w = workers(&[("a", 1), ("b", 0), ("b", 1), ("a", 1)]);
        assert!(p.step(&w, None).is_empty(), "no node has two idle ranks yet");
        // Reserved ranks get no plain tries, so the reservation cannot starve.
        let blocked: Vec<WorkerRank> = w.iter().map(|x| x.rank).filter(|r| p.is_blocked(*r)).collect();
        assert_eq!(blocked.len(), 2);
        for x in w.iter_mut() {
            x.held = 0;
        }
        let acts = p.step(&w, None);
        assert_eq!(acts.len(), 1);
        assert_eq!(env(&acts[0], "STRAND_CORES").as_deref(), Some("2"));
        assert_eq!(env(&acts[0], "OMP_NUM_THREADS").as_deref(), Some("7"), "the task's own setting wins");
        assert_eq!(p.running(), 1);
        let Action::Launch { job, .. } = &acts[0] else { unreachable!() };
        p.finished(&job.try_.id);
        assert!(w.iter().all(|x| !p.is_blocked(x.rank)));
    }

    #[test]
    fn ranks_not_heard_from_yet_are_not_reserved() {
        let mut p = WidePlanner::new(ManagerId(1), vec![], mpirun());
        p.push(wide(1, 2, 0, 1), 0);
        // Rank 2 has sent no heartbeat: its host and cores are unknown.
        let mut w = workers(&[("a", 0), ("", 0)]);
        assert!(p.step(&w, None).is_empty(), "it waits rather than lend a rank of unknown place");
        w[1].host = "a".into();
        let acts = p.step(&w, None);
        assert_eq!(acts.len(), 1, "{acts:?}");
        assert_eq!(env(&acts[0], "STRAND_HOSTS").as_deref(), Some("a"));
    }

    #[test]
    fn mpi_ranks_get_one_host_each_and_gpus_come_from_the_leaders_node() {
        let mut p = WidePlanner::new(ManagerId(1), gpu_ids(Some(2), Some("4,5,6".into())), mpirun());
        p.push(wide(1, 1, 2, 3), 0);
        p.push(wide(2, 1, 1, 1), 0);
        let w = workers(&[("a", 0), ("a", 0), ("b", 0), ("b", 0)]);
        let acts = p.step(&w, None);
        assert_eq!(acts.len(), 2, "{acts:?}");
        assert_eq!(env(&acts[0], "STRAND_HOSTS").map(|h| h.split(',').count()), Some(3));
        assert_eq!(env(&acts[0], "CUDA_VISIBLE_DEVICES").as_deref(), Some("4,5"));
        let prefix = env(&acts[0], "STRAND_MPI_PREFIX").unwrap_or_default();
        assert!(prefix.starts_with("mpirun --bind-to none -n 3 --host "), "{prefix}");
        assert_eq!(env(&acts[0], "STRAND_NUM_RANKS").as_deref(), Some("3"));
        assert_eq!(env(&acts[0], "STRAND_NUM_NODES").as_deref(), Some("2"));
        // The one rank left is on the other node, whose GPUs are all free.
        assert_eq!(env(&acts[1], "CUDA_VISIBLE_DEVICES").as_deref(), Some("4"));
        let host = |a: &Action| env(a, "STRAND_HOSTS").unwrap_or_default();
        assert!(!host(&acts[0]).starts_with(&host(&acts[1])), "{} vs {}", host(&acts[0]), host(&acts[1]));
        // A third GPU try waits: both nodes' GPUs or ranks are taken.
        p.push(wide(3, 1, 1, 1), 0);
        assert!(p.step(&w, None).is_empty());
    }

    #[test]
    fn more_than_the_pool_has_fails_at_once() {
        let mut p = WidePlanner::new(ManagerId(1), vec![], mpirun());
        p.push(wide(1, 4, 0, 1), 0);
        p.push(wide(2, 1, 1, 1), 0);
        p.push(wide(3, 1, 0, 3), 0);
        let acts = p.step(&workers(&[("a", 0), ("a", 0), ("a", 0)]), None);
        assert_eq!(acts.len(), 3);
        assert!(matches!(
            &acts[0],
            Action::Fail(TryResult { outcome: Outcome::Failed(Failure::Unsatisfiable { .. }), .. })
        ));
        assert!(matches!(&acts[1], Action::Fail(_)));
        assert!(matches!(&acts[2], Action::Launch { .. }));
        let text = match &acts[0] {
            Action::Fail(TryResult { outcome: Outcome::Failed(f), .. }) => f.to_string(),
            _ => String::new(),
        };
        assert!(text.contains("3 live worker rank(s)"), "{text}");
    }

    #[test]
    fn a_lost_reserved_rank_spoils_the_reservation() {
        let mut p = WidePlanner::new(ManagerId(1), vec![], mpirun());
        p.push(wide(1, 2, 0, 1), 0);
        let mut w = workers(&[("a", 1), ("a", 1), ("a", 0)]);
        assert!(p.step(&w, None).is_empty());
        let first = w.iter().find(|x| p.is_blocked(x.rank)).map(|x| x.rank).expect("a reservation");
        if let Some(x) = w.iter_mut().find(|x| x.rank == first) {
            x.lost = true;
        }
        for x in w.iter_mut() {
            x.held = 0;
        }
        let acts = p.step(&w, None);
        let Some(Action::Launch { leader, .. }) = acts.first() else { panic!("{acts:?}") };
        assert_ne!(*leader, first);
        assert!(!p.is_blocked(first));
    }

    /// Workers on `spec` (host, cpus) hosts, all idle; rank i + 1 has the i-th entry.
    fn placed(spec: &[(&str, Option<&[u32]>)]) -> Vec<WorkerView> {
        spec.iter()
            .enumerate()
            .map(|(i, (h, cpus))| WorkerView {
                rank: WorkerRank(i as i32 + 1),
                host: h.to_string(),
                held: 0,
                lost: false,
                cpus: cpus.map(|c| c.iter().copied().collect()),
            })
            .collect()
    }

    fn launched_ranks(p: &WidePlanner, a: &Action) -> Vec<WorkerRank> {
        let Action::Launch { job, .. } = a else { return vec![] };
        p.running.get(&job.try_.id).map(|al| al.ranks.clone()).unwrap_or_default()
    }

    #[test]
    fn a_wide_command_runs_on_the_union_of_its_ranks_cpus_on_the_leaders_node() {
        let mut p = WidePlanner::new(ManagerId(1), vec![], mpirun());
        p.push(wide(1, 4, 0, 1), 0);
        let w =
            placed(&[("a", Some(&[0, 1])), ("a", Some(&[2])), ("a", Some(&[3, 8])), ("a", Some(&[4])), ("b", None)]);
        let acts = p.step(&w, None);
        assert_eq!(acts.len(), 1, "{acts:?}");
        assert_eq!(launched_ranks(&p, &acts[0]), ranks(&[1, 2, 3, 4]));
        assert_eq!(bound(&acts[0]), Some([0, 1, 2, 3, 4, 8].into()));
        assert_eq!(env(&acts[0], "STRAND_CPUS").as_deref(), Some("0-4,8"), "and the command is told");
    }

    #[test]
    fn ranks_on_other_nodes_add_no_cpus() {
        let mut p = WidePlanner::new(ManagerId(1), vec![], mpirun());
        // Three ranks of one core, two on "a" and one on "b": the command runs on "a".
        p.push(wide(1, 1, 0, 3), 0);
        let w = placed(&[("a", Some(&[0])), ("b", Some(&[5])), ("a", Some(&[1]))]);
        let acts = p.step(&w, None);
        let Some(Action::Launch { leader, .. }) = acts.first() else { panic!("{acts:?}") };
        assert_eq!(w[(leader.0 - 1) as usize].host, "a");
        assert_eq!(bound(&acts[0]), Some([0, 1].into()));
        assert_eq!(env(&acts[0], "STRAND_CPUS").as_deref(), Some("0-1"));
    }

    #[test]
    fn an_unknown_cpuset_on_the_leaders_node_means_no_strand_cpus() {
        let mut p = WidePlanner::new(ManagerId(1), vec![], mpirun());
        p.push(wide(1, 2, 0, 1), 0);
        p.push(wide(2, 2, 0, 1), 0);
        // Node "a" has the most ranks, one of them with an unknown cpuset (a worker that does
        // not send it): the first try goes there. The second gets what is left, rank 3 on "b"
        // (the leader: same count, first name) and rank 4 on "c", whose unknown cpuset is on
        // another node and does not matter.
        let w = placed(&[("a", Some(&[0])), ("a", None), ("b", Some(&[1])), ("c", None)]);
        let acts = p.step(&w, None);
        assert_eq!(acts.len(), 2, "{acts:?}");
        assert_eq!(launched_ranks(&p, &acts[0]), ranks(&[1, 2]));
        assert_eq!(bound(&acts[0]), None, "a partial union would confine it");
        assert_eq!(env(&acts[0], "STRAND_CPUS"), None);
        assert_eq!(env(&acts[0], "STRAND_CORES").as_deref(), Some("2"));
        assert_eq!(launched_ranks(&p, &acts[1]), ranks(&[3, 4]));
        assert_eq!(bound(&acts[1]), Some([1].into()));
        assert_eq!(env(&acts[1], "STRAND_CPUS").as_deref(), Some("1"));
    }

    #[test]
    fn a_task_that_sets_strand_cpus_itself_wins() {
        let mut p = WidePlanner::new(ManagerId(1), vec![], mpirun());
        let mut t = wide(1, 2, 0, 1);
        if let App::Command(c) = &mut t.spec.app {
            c.env.push(("STRAND_CPUS".into(), "7".into()));
        }
        p.push(t, 0);
        let acts = p.step(&placed(&[("a", Some(&[0])), ("a", Some(&[1]))]), None);
        assert_eq!(env(&acts[0], "STRAND_CPUS").as_deref(), Some("7"));
        assert_eq!(bound(&acts[0]), Some([7].into()), "its list is what the command is bound to");
        let Action::Launch { job, .. } = &acts[0] else { unreachable!() };
        let App::Command(c) = &job.try_.spec.app else { unreachable!() };
        assert_eq!(c.env.iter().filter(|(k, _)| k == "STRAND_CPUS").count(), 1);
    }

    #[test]
    fn an_empty_or_bad_own_strand_cpus_keeps_the_leaders_binding() {
        for own in ["", "0-1:junk"] {
            let mut p = WidePlanner::new(ManagerId(1), vec![], mpirun());
            let mut t = wide(1, 2, 0, 1);
            if let App::Command(c) = &mut t.spec.app {
                c.env.push(("STRAND_CPUS".into(), own.into()));
            }
            p.push(t, 0);
            let acts = p.step(&placed(&[("a", Some(&[0])), ("a", Some(&[1]))]), None);
            assert_eq!(acts.len(), 1, "{acts:?}");
            assert_eq!(bound(&acts[0]), None, "{own:?}");
            assert_eq!(env(&acts[0], "STRAND_CPUS").as_deref(), Some(own));
        }
    }

    /// Ranks 1..=n on one host "a", holding `held[i]` tries each.
    fn busy(held: &[u32]) -> Vec<WorkerView> {
        let spec: Vec<(&str, u32)> = held.iter().map(|&h| ("a", h)).collect();
        workers(&spec)
    }

    fn launched(acts: &[Action]) -> Vec<u64> {
        acts.iter()
            .filter_map(|a| match a {
                Action::Launch { job, .. } => Some(job.try_.id.task.0),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn tries_behind_the_head_reserve_at_once_when_no_older_plain_try_waits() {
        let mut p = WidePlanner::new(ManagerId(1), vec![], mpirun());
        p.push(wide(1, 1, 0, 2), 1);
        p.push(wide(2, 1, 0, 2), 2);
        p.push(wide(3, 1, 0, 2), 5);
        let mut w = busy(&[1, 1, 1, 1, 1, 1]);
        // A plain try that arrived 4th waits: the 3rd-arrived try may not reserve before it.
        assert!(p.step(&w, Some(4)).is_empty());
        let reserved = w.iter().filter(|x| p.is_blocked(x.rank)).count();
        assert_eq!(reserved, 4, "the head and the try behind it, both older than the plain one");
        // The plain try has gone to a worker: the 3rd reserves the last two ranks too.
        assert!(p.step(&w, None).is_empty());
        assert!(w.iter().all(|x| p.is_blocked(x.rank)));
        // They start as their ranks drain, in any order: each waits only for its own ranks.
        w[2].held = 0;
        w[3].held = 0;
        assert_eq!(launched(&p.step(&w, None)), [2]);
        for x in w.iter_mut() {
            x.held = 0;
        }
        assert_eq!(launched(&p.step(&w, None)), [1, 3]);
    }

    #[test]
    fn the_head_keeps_the_ranks_it_waits_for_so_smaller_tries_cannot_starve_it() {
        let mut p = WidePlanner::new(ManagerId(1), vec![], mpirun());
        // Two ranks run a wide try; the head needs four of the four.
        p.push(wide(1, 1, 0, 2), 0);
        let mut w = busy(&[0, 0, 0, 0]);
        assert_eq!(launched(&p.step(&w, None)), [1]);
        w[0].held = 1;
        w[1].held = 1;
        p.push(wide(2, 1, 0, 4), 1);
        p.push(wide(3, 1, 0, 2), 2);
        // The head takes the two free ranks now; the two-rank try behind it finds none.
        assert!(p.step(&w, None).is_empty());
        assert!(w[2..].iter().all(|x| p.is_blocked(x.rank)));
        // The running try ends: its ranks go to the head, not to the smaller try behind it.
        let Some(first) = p.running.keys().next().copied() else { panic!("nothing runs") };
        p.finished(&first);
        w[0].held = 0;
        w[1].held = 0;
        assert_eq!(launched(&p.step(&w, None)), [2]);
        assert_eq!(p.waiting(), 1);
    }

    #[test]
    fn gpu_ids_follow_the_schedulers_mask() {
        assert_eq!(gpu_ids(None, None), Vec::<String>::new());
        assert_eq!(gpu_ids(Some(2), None), vec!["0", "1"]);
        assert_eq!(gpu_ids(None, Some("2,3".into())), vec!["2", "3"]);
        assert_eq!(gpu_ids(Some(1), Some("2,3".into())), vec!["2"]);
    }
}
