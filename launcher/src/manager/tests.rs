//! The manager's state machine without sockets, MPI or processes: a recorder stands in for
//! the world, and time is whatever the test says it is.

use super::state::{share_out, ManagerState, PoolInfo};
use super::{ManagerComm, ManagerConfig, ManagerExit};
use crate::pool_msg::{ToWorker, WorkerHello, WorkerRank, WorkerTry};
use std::time::{Duration, Instant};
use strand::block::BlockId;
use strand::sample::{NodeSample, Samples, TreeUsage, TrySample};
use strand::task::{
    App, ClientId, CommandSpec, Failure, FunctionCall, ManagerId, Outcome, Program, Resources, TaskId, TaskSpec, Try,
    TryId, TryResult,
};
use strand::wire::{ManagerMsg, Registration, ToManagerMsg};

/// Every effect, in order.
#[derive(Default)]
struct Recorder {
    sent: Vec<ManagerMsg>,
    to_workers: Vec<(WorkerRank, ToWorker)>,
    local: Vec<Try>,
    /// What the manager's own rank samples (`sample_here`).
    here: Samples,
}

impl ManagerComm for Recorder {
    fn to_interchange(&mut self, msg: ManagerMsg) {
        self.sent.push(msg);
    }
    fn to_worker(&mut self, rank: WorkerRank, msg: ToWorker) {
        self.to_workers.push((rank, msg));
    }
    fn run_locally(&mut self, t: Try) {
        self.local.push(t);
    }
    fn sample_here(&mut self) -> Samples {
        self.here.clone()
    }
}

impl Recorder {
    /// What went to the interchange since the last look.
    fn sent(&mut self) -> Vec<ManagerMsg> {
        std::mem::take(&mut self.sent)
    }

    /// The tries fed to workers since the last look, as (rank, task numbers) per message; a
    /// stop or a wide try's cpuset fails the test (they have their own checks).
    fn fed(&mut self) -> Vec<(i32, Vec<u64>)> {
        std::mem::take(&mut self.to_workers)
            .into_iter()
            .map(|(rank, msg)| match msg {
                ToWorker::Tries(ts) => {
                    assert!(ts.iter().all(|t| t.cpus.is_none()), "a plain try with a cpuset: {ts:?}");
                    (rank.0, ts.iter().map(|t| t.try_.id.task.0).collect())
                }
                ToWorker::Stop => panic!("unexpected stop to {rank}"),
                ToWorker::Group(g) => panic!("unexpected MPI function try to {rank}: {g:?}"),
            })
            .collect()
    }
}

const T: Duration = Duration::from_millis(1);

fn config() -> ManagerConfig {
    ManagerConfig {
        id: ManagerId(7),
        block: "block-1".into(),
        slots_per_worker: 1,
        prefetch: 1,
        local_slots: 1,
        connect_timeout: Duration::from_secs(10),
        drain_at: None,
        worker_threshold: Duration::from_secs(3),
        gpu_ids: vec![],
        mpi: crate::task_mpi::MpiLaunch { kind: crate::task_mpi::TaskLaunch::Mpirun, as_root: false },
        mpi_functions: ["mpi_sum".to_string()].into(),
        resource_interval: None,
    }
}

/// A manager of `workers` worker ranks (none: it runs tries itself), started at `t0`.
fn started(workers: u32, cfg: ManagerConfig, t0: Instant) -> (ManagerState, Recorder) {
    let info = PoolInfo { size: workers + 1, local: workers == 0, host: "mgr".into(), mpi_version: "MPI 9".into() };
    let mut m = ManagerState::new(cfg, info, t0, slog::Logger::root(slog::Discard, slog::o!()));
    let mut c = Recorder::default();
    m.start(&mut c);
    (m, c)
}

/// As [`started`], registered at `t0` (heartbeat every 60 s, threshold 120 s: no noise), the
/// registration already looked at.
fn registered(workers: u32, cfg: ManagerConfig, t0: Instant) -> (ManagerState, Recorder) {
    let (mut m, mut c) = started(workers, cfg, t0);
    let reply = ToManagerMsg::Registered { heartbeat_period_ms: 60_000, heartbeat_threshold_ms: 120_000 };
    assert_eq!(m.interchange(reply, t0, &mut c), None);
    assert!(matches!(c.sent().as_slice(), [ManagerMsg::Register(_)]));
    (m, c)
}

fn id(n: u64) -> TryId {
    TryId { client: ClientId(1), task: TaskId(n), attempt: 0 }
}

fn noop(n: u64) -> Try {
    let app = App::Function(FunctionCall { name: "noop".into(), args: vec![] });
    Try {
        id: id(n),
        spec: TaskSpec { app, walltime_ms: None, priority: 0, outputs: vec![], resources: Resources::default() },
    }
}

fn tasks(ns: impl IntoIterator<Item = u64>) -> ToManagerMsg {
    ToManagerMsg::Tasks(ns.into_iter().map(noop).collect())
}

fn done(ns: &[u64]) -> Vec<TryResult> {
    ns.iter().map(|&n| TryResult::new(id(n), Outcome::Done(vec![]))).collect()
}

/// What the manager sends on for `done(ns)` from `rank` (0: its own slots): stamped with
/// where they ran, for the run database.
fn answered(rank: u32, ns: &[u64]) -> Vec<TryResult> {
    done(ns)
        .into_iter()
        .map(|mut r| {
            r.ran.manager = ManagerId(7);
            r.ran.rank = rank;
            r
        })
        .collect()
}

fn hello(host: &str, cpus: &[u32]) -> Option<WorkerHello> {
    Some(WorkerHello { host: host.into(), cpus: Some(cpus.iter().copied().collect()) })
}

fn registration(slots: u32, prefetch: u32, pool_size: u32) -> ManagerMsg {
    ManagerMsg::Register(Registration {
        manager: ManagerId(7),
        block: BlockId("block-1".into()),
        host: "mgr".into(),
        pool_size,
        slots,
        prefetch,
        launcher_version: env!("CARGO_PKG_VERSION").into(),
        mpi_version: "MPI 9".into(),
    })
}

/// Two workers (on `hosts`, one CPU each) registered at `t0` and fed tries 1 to `n` (at least
/// 4): two each, level by level; the rest wait in the backlog.
fn two_fed_workers(hosts: [&str; 2], n: u64, t0: Instant) -> (ManagerState, Recorder) {
    let (mut m, mut c) = registered(2, config(), t0);
    m.worker_hello(WorkerRank(1), hello(hosts[0], &[0]), t0);
    m.worker_hello(WorkerRank(2), hello(hosts[1], &[1]), t0);
    m.interchange(tasks(1..=n), t0, &mut c);
    assert!(m.step(t0, &mut c));
    assert_eq!(c.fed(), [(1, vec![1, 3]), (2, vec![2, 4])]);
    (m, c)
}

#[test]
fn registration_advertises_slots_and_prefetch() {
    let t0 = Instant::now();
    // Three workers of one slot, prefetch 1: 3 slots; 3 prefetched on workers + a backlog of 3.
    assert_eq!(started(3, config(), t0).1.sent(), [registration(3, 6, 4)]);
    // Two slots each, prefetch 2: 6 slots; 12 prefetched + 6 backlog.
    let cfg = ManagerConfig { slots_per_worker: 2, prefetch: 2, ..config() };
    assert_eq!(started(3, cfg, t0).1.sent(), [registration(6, 18, 4)]);
    // Prefetch 0: nothing waits in this pool.
    assert_eq!(started(3, ManagerConfig { prefetch: 0, ..config() }, t0).1.sent(), [registration(3, 0, 4)]);
    // A pool of one runs its local slots.
    assert_eq!(started(0, ManagerConfig { local_slots: 2, ..config() }, t0).1.sent(), [registration(2, 4, 1)]);
}

#[test]
fn no_answer_to_registration_within_the_connect_timeout_stops_the_pool() {
    let t0 = Instant::now();
    let (mut m, mut c) = started(1, config(), t0);
    c.sent();
    for s in 1..10 {
        assert_eq!(m.timers(t0 + Duration::from_secs(s), &mut c), None, "at {s} s");
    }
    assert_eq!(c.sent(), []);
    // At the timeout itself it still waits (and sends its first heartbeat); just past it, it gives up.
    assert_eq!(m.timers(t0 + Duration::from_secs(10), &mut c), None);
    assert_eq!(c.sent(), [ManagerMsg::Heartbeat]);
    assert_eq!(m.timers(t0 + Duration::from_secs(10) + T, &mut c), Some(ManagerExit::InterchangeGone));
}

#[test]
fn heartbeats_follow_the_interchanges_period_and_its_silence_stops_the_pool() {
    let t0 = Instant::now();
    let (mut m, mut c) = started(1, config(), t0);
    let reply = ToManagerMsg::Registered { heartbeat_period_ms: 1000, heartbeat_threshold_ms: 5000 };
    assert_eq!(m.interchange(reply, t0, &mut c), None);
    c.sent();
    let half = Duration::from_millis(500);
    for k in 1..=10 {
        assert_eq!(m.timers(t0 + half * k, &mut c), None, "at {k} half seconds");
    }
    assert_eq!(c.sent(), vec![ManagerMsg::Heartbeat; 5], "one a second");
    assert_eq!(m.timers(t0 + half * 11, &mut c), Some(ManagerExit::InterchangeGone));
    // Whatever the interchange says counts as hearing from it.
    let (mut m, mut c) = started(1, config(), t0);
    let reply = ToManagerMsg::Registered { heartbeat_period_ms: 1000, heartbeat_threshold_ms: 5000 };
    m.interchange(reply, t0, &mut c);
    for k in 1..=40 {
        let now = t0 + half * k;
        if k % 4 == 0 {
            assert_eq!(m.interchange(ToManagerMsg::Heartbeat, now, &mut c), None);
        }
        assert_eq!(m.timers(now, &mut c), None, "at {k} half seconds");
    }
}

#[test]
fn a_suspended_manager_checks_in_instead_of_judging_the_interchange_gone() {
    let t0 = Instant::now();
    let (mut m, mut c) = started(1, config(), t0);
    let reply = ToManagerMsg::Registered { heartbeat_period_ms: 60_000, heartbeat_threshold_ms: 4000 };
    m.interchange(reply, t0, &mut c);
    c.sent();
    assert_eq!(m.timers(t0 + Duration::from_secs(1), &mut c), None);
    // Twenty seconds between two rounds: this process was stopped, not the interchange.
    let back = t0 + Duration::from_secs(21);
    assert_eq!(m.timers(back, &mut c), None);
    assert_eq!(c.sent(), [ManagerMsg::Heartbeat]);
    // It waits the threshold again from there.
    for s in 1..=4 {
        assert_eq!(m.timers(back + Duration::from_secs(s), &mut c), None, "{s} s after");
    }
    assert_eq!(m.timers(back + Duration::from_secs(4) + T, &mut c), Some(ManagerExit::InterchangeGone));
}

#[test]
fn heartbeats_keep_a_worker_and_silence_past_the_threshold_loses_it() {
    let t0 = Instant::now();
    let (mut m, mut c) = two_fed_workers(["h1", "h2"], 4, t0);
    // Rank 1 beats every second; rank 2 falls silent. Three seconds is not past the threshold.
    for s in 1..=3 {
        let now = t0 + Duration::from_secs(s);
        m.worker_hello(WorkerRank(1), hello("h1", &[0]), now);
        m.step(now, &mut c);
    }
    assert_eq!(c.sent(), []);
    let now = t0 + Duration::from_secs(3) + T;
    m.step(now, &mut c);
    let sent = c.sent();
    // The interchange stops counting the lost slot (1 slot + 1 prefetched + a backlog of 1) ...
    assert_eq!(sent[0], ManagerMsg::Capacity { slots: 1, prefetch: 2 });
    // ... and the tries the lost rank held fail, naming it.
    let ManagerMsg::Results(mut lost) = sent[1].clone() else { panic!("{sent:?}") };
    assert_eq!(sent.len(), 2, "{sent:?}");
    lost.sort_by_key(|r| r.id);
    let failure = Failure::WorkerLost { manager: ManagerId(7), rank: 2, host: "h2".into() };
    let want: Vec<TryResult> =
        [2, 4].iter().map(|&n| TryResult::new(id(n), Outcome::Failed(failure.clone()))).collect();
    assert_eq!(lost, want);
    // Rank 1, beating, is still alive ten seconds on and is the only one fed.
    for s in 4..=10 {
        let now = t0 + Duration::from_secs(s);
        m.worker_hello(WorkerRank(1), hello("h1", &[0]), now);
        m.step(now, &mut c);
    }
    assert_eq!(c.sent(), []);
    let now = t0 + Duration::from_secs(10);
    m.interchange(tasks(5..=6), now, &mut c);
    // The lost rank speaks again: too late, its late results are not delivered twice.
    m.worker_hello(WorkerRank(2), hello("h2", &[1]), now);
    m.worker_results(WorkerRank(2), done(&[2]), now);
    m.worker_results(WorkerRank(1), done(&[1]), now);
    m.step(now, &mut c);
    assert_eq!(c.fed(), [(1, vec![5])]);
    assert_eq!(c.sent(), [ManagerMsg::Results(answered(1, &[1]))]);
}

#[test]
fn a_worker_lost_during_registration_is_advertised_when_it_is_answered() {
    let t0 = Instant::now();
    let (mut m, mut c) = started(2, config(), t0);
    assert_eq!(c.sent(), [registration(2, 4, 3)]);
    let now = t0 + Duration::from_secs(4);
    m.worker_hello(WorkerRank(1), None, now);
    m.step(now, &mut c);
    assert_eq!(c.sent(), [], "the registration on its way still says 2 slots");
    let reply = ToManagerMsg::Registered { heartbeat_period_ms: 60_000, heartbeat_threshold_ms: 120_000 };
    m.interchange(reply, now, &mut c);
    assert_eq!(c.sent(), [ManagerMsg::Capacity { slots: 1, prefetch: 2 }]);
}

#[test]
fn every_idle_worker_gets_a_try_before_any_gets_a_second() {
    // Two idle workers, prefetch 1 (depth 2), two tries: one each, not both to the first.
    assert_eq!(share_out(&[0, 0], 2, 2), [0, 1]);
    // Three tries: the front two run at once, the third waits in a prefetch slot.
    assert_eq!(share_out(&[0, 0], 2, 3), [0, 1, 0]);
}

#[test]
fn the_least_loaded_come_first_and_full_workers_get_nothing() {
    assert_eq!(share_out(&[1, 0, 2], 2, 5), [1, 1, 0]);
    assert_eq!(share_out(&[2, 2], 2, 4), Vec::<usize>::new());
    assert_eq!(share_out(&[], 2, 4), Vec::<usize>::new());
}

#[test]
fn multi_slot_workers_fill_their_slots_level_by_level() {
    // Workers of 2 slots with prefetch 1 (depth 4): slots first, across workers.
    assert_eq!(share_out(&[0, 1], 4, 4), [0, 0, 1, 0]);
    assert_eq!(share_out(&[0, 0], 4, 100).len(), 8);
}

#[test]
fn tries_go_out_level_by_level_and_the_backlog_refills_workers_without_asking() {
    let t0 = Instant::now();
    // One batch per worker: 1 and 2 run at once, 3 and 4 wait in prefetch, 5 and 6 here.
    let (mut m, mut c) = two_fed_workers(["h", "h"], 6, t0);
    assert!(!m.step(t0, &mut c), "everyone is full");
    assert_eq!(c.fed(), []);
    // A result is sent on and its worker refilled from the backlog: no request to the interchange.
    m.worker_results(WorkerRank(2), done(&[2]), t0 + T);
    assert!(m.step(t0 + T, &mut c));
    assert_eq!(c.fed(), [(2, vec![5])]);
    assert_eq!(c.sent(), [ManagerMsg::Results(answered(2, &[2]))]);
    m.worker_results(WorkerRank(1), done(&[1, 3]), t0 + T * 2);
    m.step(t0 + T * 2, &mut c);
    assert_eq!(c.fed(), [(1, vec![6])]);
    assert_eq!(c.sent(), [ManagerMsg::Results(answered(1, &[1, 3]))]);
    assert!(m.busy());
}

#[test]
fn draining_is_announced_once_and_held_tries_finish_before_the_stop() {
    let t0 = Instant::now();
    let cfg = ManagerConfig { drain_at: Some(t0 + Duration::from_secs(10)), ..config() };
    let (mut m, mut c) = registered(1, cfg, t0);
    m.interchange(tasks([1]), t0, &mut c);
    m.step(t0, &mut c);
    assert_eq!(c.fed(), [(1, vec![1])]);
    for s in 1..10 {
        m.worker_hello(WorkerRank(1), None, t0 + Duration::from_secs(s));
        assert_eq!(m.timers(t0 + Duration::from_secs(s), &mut c), None);
    }
    assert_eq!(c.sent(), []);
    assert_eq!(m.timers(t0 + Duration::from_secs(10), &mut c), None);
    assert_eq!(c.sent(), [ManagerMsg::Draining]);
    assert_eq!(m.timers(t0 + Duration::from_secs(11), &mut c), None);
    assert_eq!(c.sent(), [], "once");
    // What it holds still finishes and is reported; then the interchange stops it.
    m.worker_results(WorkerRank(1), done(&[1]), t0 + Duration::from_secs(11));
    m.step(t0 + Duration::from_secs(11), &mut c);
    assert_eq!(c.sent(), [ManagerMsg::Results(answered(1, &[1]))]);
    assert!(!m.busy());
    let now = t0 + Duration::from_secs(12);
    assert_eq!(m.interchange(ToManagerMsg::Stop, now, &mut c), Some(ManagerExit::Stopped));
    m.finish(ManagerExit::Stopped, &mut c);
    assert_eq!(c.sent(), [], "no goodbye: the interchange asked");
    assert_eq!(c.to_workers, [(WorkerRank(1), ToWorker::Stop)]);
}

fn wide_command(n: u64, cores: u32) -> Try {
    let app = App::Command(CommandSpec {
        program: Program::Shell("true".into()),
        env: vec![],
        cwd: None,
        stdout: None,
        stderr: None,
    });
    let resources = Resources { cores, gpus: 0, ranks: 1 };
    Try { id: id(n), spec: TaskSpec { app, walltime_ms: None, priority: 0, outputs: vec![], resources } }
}

#[test]
fn reregister_drops_what_has_not_started_and_registers_again() {
    let t0 = Instant::now();
    let (mut m, mut c) = two_fed_workers(["h", "h"], 6, t0);
    // A wide try waits for both (busy) ranks.
    m.interchange(ToManagerMsg::Tasks(vec![wide_command(9, 2)]), t0, &mut c);
    m.step(t0, &mut c);
    assert_eq!(c.fed(), []);
    assert_eq!(m.interchange(ToManagerMsg::Reregister, t0 + T, &mut c), None);
    assert_eq!(c.sent(), [registration(2, 4, 3)]);
    // Every message sent before our registration reached it gets its own Reregister: moot.
    m.interchange(ToManagerMsg::Reregister, t0 + T, &mut c);
    assert_eq!(c.sent(), []);
    // Running tries finish and are reported (the interchange drops them as stale); the
    // backlog and the wide try belong to no one now and never start here.
    m.worker_results(WorkerRank(1), done(&[1, 3]), t0 + T * 2);
    m.worker_results(WorkerRank(2), done(&[2, 4]), t0 + T * 2);
    m.step(t0 + T * 2, &mut c);
    assert_eq!(c.sent(), [ManagerMsg::Results([answered(1, &[1, 3]), answered(2, &[2, 4])].concat())]);
    assert_eq!(c.fed(), []);
    assert!(!m.busy());
    // Registered again with the capacity it registered: nothing more to say.
    let reply = ToManagerMsg::Registered { heartbeat_period_ms: 60_000, heartbeat_threshold_ms: 120_000 };
    m.interchange(reply, t0 + T * 3, &mut c);
    assert_eq!(c.sent(), []);
    m.interchange(ToManagerMsg::Reregister, t0 + T * 4, &mut c);
    assert_eq!(c.sent(), [registration(2, 4, 3)], "a new Reregister after that counts");
}

#[test]
fn stopping_tells_every_worker_and_leaving_unasked_says_goodbye() {
    let t0 = Instant::now();
    let (mut m, mut c) = registered(3, config(), t0);
    m.worker_hello(WorkerRank(1), None, t0 + Duration::from_secs(4));
    m.worker_hello(WorkerRank(3), None, t0 + Duration::from_secs(4));
    m.step(t0 + Duration::from_secs(4), &mut c);
    assert_eq!(c.sent(), [ManagerMsg::Capacity { slots: 2, prefetch: 4 }], "rank 2 is lost");
    m.finish(ManagerExit::Signalled, &mut c);
    assert_eq!(c.sent(), [ManagerMsg::Goodbye]);
    // Lost ranks too: a rank that is only slow must not be left waiting for work forever.
    let stops: Vec<(WorkerRank, ToWorker)> = (1..=3).map(|r| (WorkerRank(r), ToWorker::Stop)).collect();
    assert_eq!(c.to_workers, stops);
    let (mut m, mut c) = registered(1, config(), t0);
    m.finish(ManagerExit::InterchangeGone, &mut c);
    assert_eq!(c.sent(), [ManagerMsg::Goodbye]);
}

#[test]
fn a_wide_try_goes_to_its_leader_with_the_cpus_of_its_ranks() {
    let t0 = Instant::now();
    let (mut m, mut c) = registered(3, config(), t0);
    m.worker_hello(WorkerRank(1), hello("h", &[0, 1]), t0);
    m.worker_hello(WorkerRank(2), hello("h", &[2]), t0);
    // An empty cpuset is no binding: the third rank is placed but lends no CPUs.
    m.worker_hello(WorkerRank(3), hello("h", &[]), t0);
    m.interchange(ToManagerMsg::Tasks(vec![wide_command(9, 2)]), t0, &mut c);
    assert!(m.step(t0, &mut c));
    let sends: [(WorkerRank, ToWorker); 1] = std::mem::take(&mut c.to_workers).try_into().expect("one send");
    let [(leader, ToWorker::Tries(tries))] = sends else { panic!("not tries: {sends:?}") };
    assert_eq!(leader, WorkerRank(1));
    let [WorkerTry { try_, cpus }]: [WorkerTry; 1] = tries.try_into().expect("one try");
    assert_eq!((try_.id, cpus), (id(9), Some([0, 1, 2].into())));
    // Its ranks get no plain tries while it runs; rank 3 does.
    m.interchange(tasks([1]), t0, &mut c);
    m.step(t0, &mut c);
    assert_eq!(c.fed(), [(3, vec![1])]);
    // When it ends, both ranks are fed again.
    m.worker_results(WorkerRank(1), done(&[9]), t0 + T);
    m.step(t0 + T, &mut c);
    assert_eq!(c.sent(), [ManagerMsg::Results(answered(1, &[9]))]);
    m.interchange(tasks([2, 3]), t0 + T, &mut c);
    m.step(t0 + T, &mut c);
    assert_eq!(c.fed(), [(1, vec![2]), (2, vec![3])]);
}

#[test]
fn a_pool_of_one_runs_tries_on_its_own_slots() {
    let t0 = Instant::now();
    let (mut m, mut c) = registered(0, ManagerConfig { local_slots: 2, ..config() }, t0);
    assert!(!m.busy());
    assert_eq!(m.idle_wait(t0), Duration::from_millis(100), "capped, so signals are seen");
    m.interchange(tasks(1..=5), t0, &mut c);
    m.step(t0, &mut c);
    // Two slots with prefetch 1: four at once.
    let ids = |c: &mut Recorder| std::mem::take(&mut c.local).iter().map(|t| t.id.task.0).collect::<Vec<_>>();
    assert_eq!(ids(&mut c), [1, 2, 3, 4]);
    assert!(m.busy());
    m.local_result(done(&[1]).remove(0));
    m.step(t0 + T, &mut c);
    assert_eq!(ids(&mut c), [5]);
    assert_eq!(c.sent(), [ManagerMsg::Results(answered(0, &[1]))]);
}

fn mpi_sum(n: u64, ranks: u32, walltime_ms: Option<u64>) -> Try {
    let app = App::Function(FunctionCall { name: "mpi_sum".into(), args: b"1".to_vec() });
    let resources = Resources { ranks, ..Resources::default() };
    Try { id: id(n), spec: TaskSpec { app, walltime_ms, priority: 0, outputs: vec![], resources } }
}

/// The members each MPI function try was sent to since the last look.
fn groups_sent(c: &mut Recorder) -> Vec<(u64, Vec<i32>)> {
    let mut out: Vec<(u64, Vec<i32>)> = vec![];
    for (rank, msg) in std::mem::take(&mut c.to_workers) {
        let ToWorker::Group(g) = msg else { panic!("not a group try to {rank}: {msg:?}") };
        assert!(g.members.contains(&rank), "{rank} is not a member of {g:?}");
        let n = g.try_.id.task.0;
        match out.last_mut() {
            Some((last, members)) if *last == n => members.push(rank.0),
            _ => out.push((n, vec![rank.0])),
        }
    }
    out
}

#[test]
fn an_mpi_function_goes_to_every_member_and_reports_once_when_all_are_back() {
    let t0 = Instant::now();
    let (mut m, mut c) = registered(3, config(), t0);
    for r in 1..=3 {
        m.worker_hello(WorkerRank(r), hello("h", &[r as u32]), t0);
    }
    // Even on one rank an MPI function is a group try (it gets a communicator of one).
    m.interchange(ToManagerMsg::Tasks(vec![mpi_sum(9, 2, None), mpi_sum(10, 1, None)]), t0, &mut c);
    m.step(t0, &mut c);
    assert_eq!(groups_sent(&mut c), [(9, vec![1, 2]), (10, vec![3])]);
    m.worker_results(WorkerRank(2), done(&[9]), t0 + T);
    m.step(t0 + T, &mut c);
    assert!(c.sent().is_empty(), "rank 0 has not answered");
    // Rank 1's members answer with rank 1's value, reported once, stamped as rank 1's.
    m.worker_results(WorkerRank(1), done(&[9]), t0 + T);
    m.step(t0 + T, &mut c);
    assert_eq!(c.sent(), [ManagerMsg::Results(answered(1, &[9]))]);
    // Its ranks are free again.
    m.interchange(tasks([1, 2]), t0 + T, &mut c);
    m.step(t0 + T, &mut c);
    assert_eq!(c.fed(), [(1, vec![1]), (2, vec![2])]);
}

#[test]
fn a_failed_member_fails_the_try_at_once_and_its_ranks_wait_for_the_others() {
    let t0 = Instant::now();
    let (mut m, mut c) = registered(3, config(), t0);
    for r in 1..=3 {
        m.worker_hello(WorkerRank(r), hello("h", &[r as u32]), t0);
    }
    m.interchange(ToManagerMsg::Tasks(vec![mpi_sum(9, 3, None)]), t0, &mut c);
    m.step(t0, &mut c);
    assert_eq!(groups_sent(&mut c), [(9, vec![1, 2, 3])]);
    let panicked = Outcome::Failed(Failure::Panic { message: "boom".into() });
    m.worker_results(WorkerRank(3), vec![TryResult::new(id(9), panicked.clone())], t0 + T);
    m.step(t0 + T, &mut c);
    let [ManagerMsg::Results(rs)]: [ManagerMsg; 1] = c.sent().try_into().expect("one message") else { unreachable!() };
    assert_eq!((rs.len(), &rs[0].outcome), (1, &panicked));
    // Rank 3 answered; ranks 1 and 2 may still be inside the function: no plain try for any.
    m.interchange(tasks([1]), t0 + T, &mut c);
    m.step(t0 + T, &mut c);
    assert!(c.fed().is_empty());
    m.worker_results(WorkerRank(1), done(&[9]), t0 + T);
    m.worker_results(WorkerRank(2), done(&[9]), t0 + T);
    m.step(t0 + T, &mut c);
    assert!(c.sent().is_empty(), "nothing ends twice");
    assert_eq!(c.fed(), [(1, vec![1])]);
}

#[test]
fn members_inside_an_mpi_function_are_judged_by_silence_only_after_its_walltime() {
    let t0 = Instant::now();
    let (mut m, mut c) = registered(2, config(), t0);
    m.worker_hello(WorkerRank(1), hello("h", &[0]), t0);
    m.worker_hello(WorkerRank(2), hello("h", &[1]), t0);
    // A walltime of 10 s, a worker threshold of 3 s.
    m.interchange(ToManagerMsg::Tasks(vec![mpi_sum(9, 2, Some(10_000))]), t0, &mut c);
    m.step(t0, &mut c);
    assert_eq!(groups_sent(&mut c), [(9, vec![1, 2])]);
    // Rank 2 answers and goes on with heartbeats; rank 1 is inside the function, silent.
    m.worker_results(WorkerRank(2), done(&[9]), t0 + T);
    for s in 1..=12 {
        m.worker_hello(WorkerRank(2), None, t0 + Duration::from_secs(s));
        m.step(t0 + Duration::from_secs(s), &mut c);
    }
    assert!(c.sent().is_empty(), "silent for 12 s, but within walltime + threshold");
    m.worker_hello(WorkerRank(2), None, t0 + Duration::from_secs(14));
    m.step(t0 + Duration::from_secs(14), &mut c);
    let sent = c.sent();
    let lost = sent.iter().find_map(|s| match s {
        ManagerMsg::Results(rs) => rs.first().cloned(),
        _ => None,
    });
    assert!(
        matches!(lost, Some(TryResult { outcome: Outcome::Failed(Failure::WorkerLost { rank: 1, .. }), .. })),
        "{sent:?}"
    );
}

fn node(host: &str, t_us: u64) -> NodeSample {
    NodeSample { host: host.into(), t_us, load1: 0.5, cpus: 8, mem_total_kib: 64, mem_available_kib: 32 }
}

fn try_sample(n: u64, t_us: u64) -> TrySample {
    TrySample { id: id(n), t_us, usage: TreeUsage { cpu_us: n, rss_kib: 1024, processes: 1 } }
}

/// Workers' samples are gathered and go to the interchange once per interval, with the
/// manager's own and one sample per node; none go before registration, or when not sampled.
#[test]
fn resource_samples_go_once_per_interval_with_a_node_once() {
    let t0 = Instant::now();
    let every = Duration::from_secs(10);
    let cfg = ManagerConfig { resource_interval: Some(every), ..config() };
    let (mut m, mut c) = started(2, cfg.clone(), t0);
    c.here = Samples { tries: vec![], nodes: vec![node("mgr", 1)] };
    m.worker_samples(Samples { tries: vec![try_sample(1, 1)], nodes: vec![node("n1", 1)] });
    assert_eq!(m.timers(t0, &mut c), None);
    assert!(matches!(c.sent().as_slice(), [ManagerMsg::Register(_)]), "no samples before registration");

    let (mut m, mut c) = registered(2, cfg.clone(), t0);
    c.here = Samples { tries: vec![], nodes: vec![node("mgr", 2)] };
    m.worker_samples(Samples { tries: vec![try_sample(1, 2)], nodes: vec![node("n1", 2)] });
    m.worker_samples(Samples { tries: vec![try_sample(2, 3)], nodes: vec![node("n1", 3)] });
    assert_eq!(m.timers(t0 + T, &mut c), None);
    let want = Samples { tries: vec![try_sample(1, 2), try_sample(2, 3)], nodes: vec![node("n1", 3), node("mgr", 2)] };
    assert_eq!(c.sent(), vec![ManagerMsg::Samples(want)]);
    // Not again until the interval has passed; the idle wait wakes for it.
    m.worker_samples(Samples { tries: vec![try_sample(1, 4)], nodes: vec![] });
    assert_eq!(m.timers(t0 + every, &mut c), None);
    assert!(c.sent().is_empty());
    assert!(m.idle_wait(t0 + every) <= T);
    assert_eq!(m.timers(t0 + every + T, &mut c), None);
    let want = Samples { tries: vec![try_sample(1, 4)], nodes: vec![node("mgr", 2)] };
    assert_eq!(c.sent(), vec![ManagerMsg::Samples(want)]);

    // Registration takes longer than the interval's first due time: the samples taken while
    // registering are let go, and the first ones go right after registration, not an interval later.
    let (mut m, mut c) = started(2, cfg.clone(), t0);
    c.here = Samples { tries: vec![], nodes: vec![node("mgr", 5)] };
    assert_eq!(m.timers(t0 + T, &mut c), None);
    let reply = ToManagerMsg::Registered { heartbeat_period_ms: 60_000, heartbeat_threshold_ms: 120_000 };
    assert_eq!(m.interchange(reply, t0 + 2 * T, &mut c), None);
    assert!(m.idle_wait(t0 + 2 * T) <= T);
    assert_eq!(m.timers(t0 + 2 * T, &mut c), None);
    let sent = c.sent();
    assert!(sent.contains(&ManagerMsg::Samples(Samples { tries: vec![], nodes: vec![node("mgr", 5)] })), "{sent:?}");

    // Not sampled: workers' samples (there should be none) are not kept.
    let (mut m, mut c) = registered(2, config(), t0);
    m.worker_samples(Samples { tries: vec![try_sample(1, 1)], nodes: vec![] });
    assert_eq!(m.timers(t0 + every * 3, &mut c), None);
    assert!(!c.sent().iter().any(|s| matches!(s, ManagerMsg::Samples(_))));
}
