use super::*;
use crate::block::BlockId;
use crate::task::*;

#[derive(Default)]
struct Recorder {
    tasks: Vec<(ManagerId, Vec<Try>)>,
    results: Vec<(ClientId, Vec<TryResult>)>,
    refused: Vec<(ClientId, Vec<TryId>)>,
    samples: Vec<(ClientId, Samples)>,
}

impl Comm for Recorder {
    fn send_tasks(&mut self, manager: ManagerId, tries: Vec<Try>) {
        self.tasks.push((manager, tries));
    }
    fn send_results(&mut self, client: ClientId, results: Vec<TryResult>) {
        self.results.push((client, results));
    }
    fn send_refused(&mut self, client: ClientId, tries: Vec<TryId>, _limit: u64) {
        self.refused.push((client, tries));
    }
    fn send_samples(&mut self, client: ClientId, samples: Samples) {
        self.samples.push((client, samples));
    }
}

impl Recorder {
    fn sent_to(&self, m: ManagerId) -> Vec<TryId> {
        self.tasks.iter().filter(|(x, _)| *x == m).flat_map(|(_, t)| t.iter().map(|t| t.id)).collect()
    }
    fn all_results(&self) -> Vec<TryResult> {
        self.results.iter().flat_map(|(_, r)| r.iter().cloned()).collect()
    }
}

fn reg(id: u64, slots: u32, prefetch: u32) -> Registration {
    Registration {
        manager: ManagerId(id),
        block: BlockId("b0".into()),
        host: format!("node{id}"),
        pool_size: slots + 1,
        slots,
        prefetch,
        launcher_version: "t".into(),
        mpi_version: "t".into(),
    }
}

fn tries(client: u64, range: std::ops::Range<u64>, priority: i32) -> Vec<Try> {
    range
        .map(|i| Try {
            id: TryId { client: ClientId(client), task: TaskId(i), attempt: 0 },
            spec: TaskSpec {
                app: App::Function(FunctionCall { name: "noop".into(), args: vec![] }),
                walltime_ms: None,
                priority,
                outputs: vec![],
                resources: Default::default(),
            },
        })
        .collect()
}

fn done(id: TryId) -> TryResult {
    TryResult::new(id, Outcome::Done(vec![]))
}

fn cfg() -> DispatchConfig {
    DispatchConfig {
        heartbeat_threshold: Duration::from_millis(500),
        max_queue: 100,
        max_batch: 1000,
        client_timeout: Duration::from_secs(5),
    }
}

#[test]
fn samples_go_to_the_client_of_each_try_and_nodes_to_every_client() {
    use crate::sample::{NodeSample, TreeUsage, TrySample};
    let mut d = Dispatcher::new(cfg());
    let mut c = Recorder::default();
    let now = Instant::now();
    d.register(reg(1, 4, 0), now);
    d.submit(ClientId(7), tries(7, 0..2, 0), &mut c);
    d.submit(ClientId(8), tries(8, 0..2, 0), &mut c);
    d.flush(&mut c);
    let sample = |client, task| TrySample {
        id: TryId { client: ClientId(client), task: TaskId(task), attempt: 0 },
        t_us: 5,
        usage: TreeUsage { cpu_us: 1, rss_kib: 2, processes: 1 },
    };
    let node =
        NodeSample { host: "node1".into(), t_us: 5, load1: 1.5, cpus: 4, mem_total_kib: 100, mem_available_kib: 50 };
    // Client 9 never submitted: its sample has nobody to go to.
    let taken = vec![sample(7, 0), sample(8, 1), sample(7, 1), sample(9, 0)];
    d.samples(ManagerId(1), Samples { tries: taken, nodes: vec![node.clone()] }, now);
    // An unknown manager's samples are not taken.
    d.samples(ManagerId(2), Samples { tries: vec![sample(7, 0)], nodes: vec![] }, now);
    d.flush(&mut c);
    c.samples.sort_by_key(|(client, _)| *client);
    let want = vec![
        (ClientId(7), Samples { tries: vec![sample(7, 0), sample(7, 1)], nodes: vec![node.clone()] }),
        (ClientId(8), Samples { tries: vec![sample(8, 1)], nodes: vec![node.clone()] }),
    ];
    assert_eq!(c.samples, want);
    d.flush(&mut c);
    assert_eq!(c.samples.len(), 2, "sent once");
    // A client that arrives later gets each node's latest sample once, with its first submit.
    let newer = NodeSample { t_us: 9, ..node };
    d.samples(ManagerId(1), Samples { tries: vec![], nodes: vec![newer.clone()] }, now);
    d.flush(&mut c);
    c.samples.clear();
    d.submit(ClientId(10), tries(10, 0..1, 0), &mut c);
    d.submit(ClientId(10), tries(10, 1..2, 0), &mut c);
    d.flush(&mut c);
    assert_eq!(c.samples, vec![(ClientId(10), Samples { tries: vec![], nodes: vec![newer] })]);
}

#[test]
fn a_silent_client_loses_its_queued_tries_but_not_the_running_ones() {
    let mut d = Dispatcher::new(cfg());
    let mut c = Recorder::default();
    let now = Instant::now();
    d.register(reg(1, 1, 0), now);
    d.submit(ClientId(9), tries(9, 0..10, 0), &mut c);
    d.submit(ClientId(8), tries(8, 0..3, 5), &mut c);
    d.flush(&mut c);
    assert_eq!((d.queued(), d.in_flight()), (12, 1));
    let later = Instant::now() + Duration::from_secs(6);
    d.touch_client(ClientId(8), later);
    assert_eq!(d.expire_clients(later), vec![(ClientId(9), 9)]);
    assert_eq!((d.queued(), d.in_flight()), (3, 1), "client 8 keeps its tries; the running one runs on");
    assert!(d.expire_clients(later).is_empty(), "reported once");
    assert_eq!(d.drop_client(ClientId(8)), 3);
    assert_eq!(d.queued(), 0);
}

#[test]
fn withdraw_takes_back_only_the_clients_queued_tries() {
    let mut d = Dispatcher::new(cfg());
    let mut c = Recorder::default();
    d.register(reg(1, 1, 1), Instant::now());
    d.submit(ClientId(9), tries(9, 0..5, 0), &mut c);
    d.submit(ClientId(8), tries(8, 0..2, 0), &mut c);
    d.flush(&mut c);
    let held = c.sent_to(ManagerId(1));
    assert_eq!(held.len(), 2, "slot plus prefetch");
    let mut taken = d.withdraw(ClientId(9));
    taken.sort();
    let expected: Vec<TryId> = tries(9, 0..5, 0).into_iter().map(|t| t.id).filter(|id| !held.contains(id)).collect();
    assert_eq!(taken, expected, "the queued ones, not those the manager holds");
    assert_eq!((d.queued(), d.in_flight()), (2, 2), "client 8 keeps its tries");
    assert!(d.withdraw(ClientId(9)).is_empty(), "taken once");
}

#[test]
fn dispatch_respects_capacity_and_results_flow_back() {
    let now = Instant::now();
    let mut d = Dispatcher::new(cfg());
    let mut c = Recorder::default();
    d.register(reg(1, 2, 1), now);
    d.submit(ClientId(9), tries(9, 0..10, 0), &mut c);
    d.flush(&mut c);
    let sent = c.sent_to(ManagerId(1));
    assert_eq!(sent.len(), 3, "capacity is slots + prefetch");
    assert_eq!(d.queued(), 7);
    d.results(ManagerId(1), vec![done(sent[0])], now);
    d.flush(&mut c);
    assert_eq!(c.all_results(), vec![done(sent[0])]);
    assert_eq!(c.sent_to(ManagerId(1)).len(), 4, "freed slot is refilled at once");
}

#[test]
fn a_manager_that_lost_workers_gets_only_what_it_has_left() {
    let now = Instant::now();
    let mut d = Dispatcher::new(cfg());
    let mut c = Recorder::default();
    d.register(reg(1, 2, 2), now);
    d.submit(ClientId(9), tries(9, 0..10, 0), &mut c);
    d.flush(&mut c);
    let sent = c.sent_to(ManagerId(1));
    assert_eq!(sent.len(), 4);
    // It lost a worker: one slot and one prefetch left, while it still holds 4.
    d.set_capacity(ManagerId(1), 1, 1);
    assert_eq!(d.status(now).managers[0].slots, 1, "status shows the capacity left");
    for (i, t) in sent.iter().take(2).enumerate() {
        d.results(ManagerId(1), vec![done(*t)], now);
        d.flush(&mut c);
        assert_eq!(c.sent_to(ManagerId(1)).len(), 4, "still at or over its capacity after {} result(s)", i + 1);
    }
    d.results(ManagerId(1), vec![done(sent[2])], now);
    d.flush(&mut c);
    assert_eq!(c.sent_to(ManagerId(1)).len(), 5, "below its new capacity of 2, it gets one more");
    // A pool with no worker left gets nothing.
    d.set_capacity(ManagerId(1), 0, 0);
    d.results(ManagerId(1), vec![done(sent[3])], now);
    d.flush(&mut c);
    assert_eq!(c.sent_to(ManagerId(1)).len(), 5);
}

#[test]
fn priority_then_fifo() {
    let now = Instant::now();
    let mut d = Dispatcher::new(cfg());
    let mut c = Recorder::default();
    d.submit(ClientId(1), tries(1, 0..3, 5), &mut c);
    d.submit(ClientId(1), tries(1, 3..6, -1), &mut c);
    d.register(reg(1, 6, 0), now);
    d.flush(&mut c);
    let order: Vec<u64> = c.sent_to(ManagerId(1)).iter().map(|t| t.task.0).collect();
    assert_eq!(order, vec![3, 4, 5, 0, 1, 2]);
}

#[test]
fn fair_share_across_managers() {
    let now = Instant::now();
    let mut d = Dispatcher::new(cfg());
    let mut c = Recorder::default();
    d.register(reg(1, 4, 4), now);
    d.register(reg(2, 4, 4), now);
    d.submit(ClientId(1), tries(1, 0..8, 0), &mut c);
    d.flush(&mut c);
    assert_eq!(c.sent_to(ManagerId(1)).len(), 4);
    assert_eq!(c.sent_to(ManagerId(2)).len(), 4);
}

#[test]
fn stale_and_duplicate_results_are_dropped_and_counted() {
    let now = Instant::now();
    let mut d = Dispatcher::new(cfg());
    let mut c = Recorder::default();
    d.register(reg(1, 1, 0), now);
    d.register(reg(2, 1, 0), now);
    d.submit(ClientId(1), tries(1, 0..2, 0), &mut c);
    d.flush(&mut c);
    let t1 = c.sent_to(ManagerId(1))[0];
    // Manager 2 answers a try it does not own; manager 1 answers twice; an unknown manager answers.
    d.results(ManagerId(2), vec![done(t1)], now);
    d.results(ManagerId(1), vec![done(t1), done(t1)], now);
    d.results(ManagerId(77), vec![done(t1)], now);
    d.flush(&mut c);
    assert_eq!(c.all_results(), vec![done(t1)], "delivered exactly once");
    assert_eq!(d.status(now).dropped.stale_results, 3);
}

#[test]
fn lost_manager_fails_its_tries_with_its_identity() {
    let t0 = Instant::now();
    let mut d = Dispatcher::new(cfg());
    let mut c = Recorder::default();
    d.register(reg(1, 2, 0), t0);
    d.register(reg(2, 2, 0), t0);
    d.submit(ClientId(1), tries(1, 0..4, 0), &mut c);
    d.flush(&mut c);
    let held_by_1 = c.sent_to(ManagerId(1));
    // Manager 2 keeps talking, manager 1 goes silent.
    let later = t0 + Duration::from_millis(600);
    d.touch(ManagerId(2), later);
    assert_eq!(d.expire(later), vec![ManagerId(1)]);
    d.flush(&mut c);
    let res = c.all_results();
    assert_eq!(res.len(), 2);
    for r in &res {
        assert!(held_by_1.contains(&r.id));
        match &r.outcome {
            Outcome::Failed(Failure::ManagerLost { manager, host, block }) => {
                assert_eq!(*manager, ManagerId(1));
                assert_eq!(host, "node1");
                assert_eq!(block.0, "b0");
            }
            o => panic!("unexpected outcome {o:?}"),
        }
    }
    // A late result from the lost manager is dropped.
    d.results(ManagerId(1), vec![done(held_by_1[0])], later);
    d.flush(&mut c);
    assert_eq!(c.all_results().len(), 2);
    assert_eq!(d.manager_count(), 1);
}

#[test]
fn queue_limit_refuses_the_excess() {
    let mut d = Dispatcher::new(cfg());
    let mut c = Recorder::default();
    d.submit(ClientId(1), tries(1, 0..150, 0), &mut c);
    assert_eq!(d.queued(), 100);
    assert_eq!(c.refused.len(), 1);
    assert_eq!(c.refused[0].1.len(), 50);
    assert_eq!(c.refused[0].1[0].task, TaskId(100));
}

#[test]
fn held_and_draining_managers_get_nothing_new() {
    let now = Instant::now();
    let mut d = Dispatcher::new(cfg());
    let mut c = Recorder::default();
    d.register(reg(1, 2, 0), now);
    d.register(reg(2, 2, 0), now);
    d.submit(ClientId(1), tries(1, 0..2, 0), &mut c);
    d.flush(&mut c);
    let on_1 = c.sent_to(ManagerId(1));
    assert!(d.set_mode(ManagerId(1), ManagerMode::Draining));
    assert!(d.set_mode(ManagerId(2), ManagerMode::Held));
    d.submit(ClientId(1), tries(1, 2..6, 0), &mut c);
    d.flush(&mut c);
    assert_eq!(c.tasks.len(), 2, "nothing new was sent");
    assert!(d.take_drained().is_empty(), "manager 1 still holds tries");
    d.results(ManagerId(1), on_1.iter().map(|t| done(*t)).collect(), now);
    assert_eq!(d.take_drained(), vec![ManagerId(1)], "drained once it held nothing");
    assert!(!d.set_mode(ManagerId(1), ManagerMode::Active), "draining is one-way");
    assert!(d.set_mode(ManagerId(2), ManagerMode::Active));
    d.flush(&mut c);
    // It held 1 of its 2 slots when it was held; released, it takes 1 more.
    assert_eq!(c.sent_to(ManagerId(2)).len(), 2, "released manager is fed again");
    assert_eq!(d.queued(), 3);
    assert!(!d.set_mode(ManagerId(9), ManagerMode::Held), "unknown manager");
    let st = d.status(now);
    assert_eq!(st.managers[0].mode, ManagerMode::Draining);
}

#[test]
fn reregistration_loses_the_old_incarnation() {
    let now = Instant::now();
    let mut d = Dispatcher::new(cfg());
    let mut c = Recorder::default();
    d.register(reg(1, 1, 0), now);
    d.submit(ClientId(1), tries(1, 0..1, 0), &mut c);
    d.flush(&mut c);
    d.register(reg(1, 1, 0), now);
    d.flush(&mut c);
    assert!(matches!(c.all_results()[0].outcome, Outcome::Failed(Failure::ManagerLost { .. })));
}

#[test]
fn tries_handed_back_go_to_the_front_of_the_queue_and_free_their_manager() {
    let mut d = Dispatcher::new(cfg());
    let mut rec = Recorder::default();
    let now = Instant::now();
    d.register(reg(1, 2, 0), now);
    d.submit(ClientId(1), tries(1, 0..5, 0), &mut rec);
    d.flush(&mut rec);
    let sent: Vec<Try> = rec.tasks.iter().flat_map(|(_, t)| t.iter().cloned()).collect();
    assert_eq!(sent.iter().map(|t| t.id.task.0).collect::<Vec<_>>(), [0, 1]);
    assert_eq!((d.queued(), d.in_flight()), (3, 2));

    // The manager hands both back, plus one it never held.
    let stranger = tries(1, 9..10, 0);
    d.hand_back(ManagerId(1), sent.iter().cloned().chain(stranger).collect(), now);
    assert_eq!((d.queued(), d.in_flight()), (5, 0), "both back in the queue, none counted as ended");
    assert_eq!(d.status(now).dropped.unexpected, 1, "the try it did not hold is counted");
    assert!(rec.results.is_empty(), "no try ended");

    // They go out again first, before tries submitted after them, in their order.
    d.submit(ClientId(1), tries(1, 5..6, 0), &mut rec);
    rec.tasks.clear();
    d.flush(&mut rec);
    assert_eq!(rec.sent_to(ManagerId(1)).iter().map(|id| id.task.0).collect::<Vec<_>>(), [0, 1]);
    // A higher priority still goes first: handing back keeps each try's priority.
    d.hand_back(ManagerId(1), sent.clone(), now);
    d.submit(ClientId(1), tries(1, 7..8, -1), &mut rec);
    rec.tasks.clear();
    d.flush(&mut rec);
    assert_eq!(rec.sent_to(ManagerId(1)).iter().map(|id| id.task.0).collect::<Vec<_>>(), [7, 0]);
}
