//! The task graph: dependencies, readiness, retries and terminal states, as a plain struct.
//!
//! Driven by `add` (a new task) and `on_result` (a try came back); what should be
//! sent comes out of `take_ready`. No sockets, no threads: unit-tested directly.
//!
//! One piece (about 800 lines) on purpose: every transition (ready, sent, retried, failed,
//! dependency-failed, memo hit, join linked) touches the same maps under the DFK's one lock,
//! and the invariant that each task ends exactly once is easiest to check in one place.

use super::future::{TaskError, TaskFuture, TaskOutcome};
use super::memo::{Memo, MemoKey};
use crate::monitoring::events::{EventLog, State};
use crate::monitoring::record::{now_us, Record, TryEnd};
use crate::task::{App, ClientId, Failure, Outcome, Program, TaskId, TaskSpec, Try, TryId, TryResult};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Decides what a failure costs against a task's retry budget: 0 never retries it.
/// Like Parsl's `retry_handler`; the default charges 1 for every failure.
pub type RetryHandler = Arc<dyn Fn(&Failure) -> u32 + Send + Sync>;

/// The body of a join task: given its inputs' results, submit more tasks and return the
/// future the join stands for (Parsl's `join_app`). Runs on the DFK's I/O thread.
pub type JoinFn = Arc<std::sync::Mutex<Option<Box<dyn FnOnce(Vec<Vec<u8>>) -> TaskFuture + Send>>>>;

/// Retry only on lost managers or workers and on the listed exit codes (cost 1 each); never on others.
pub fn retry_on(exit_codes: &[i32]) -> RetryHandler {
    let codes = exit_codes.to_vec();
    Arc::new(move |f: &Failure| match f {
        Failure::ManagerLost { .. } | Failure::WorkerLost { .. } | Failure::InterchangeLost { .. } => 1,
        Failure::ExitCode { code, .. } if codes.contains(code) => 1,
        _ => 0,
    })
}

/// What to run, with the futures it takes as inputs or waits for.
#[derive(Clone)]
pub struct Call {
    /// A name for people (progress, checkpoints); not required to be unique.
    pub name: Option<String>,
    /// The app's version: change it when a function's code changes, to invalidate memoized results.
    pub version: Option<String>,
    /// Reuse a result of an identical earlier task (same name, app, inputs and dependencies);
    /// `None` follows the DFK's default (off, but on for `strand run`/`map` with a run directory).
    pub memoize: Option<bool>,
    /// What a failure costs against `retries` (default: 1 for any failure).
    pub retry_handler: Option<RetryHandler>,
    /// A join task: runs this on the submit host instead of sending an app.
    pub join: Option<JoinFn>,
    /// Files it reads: a task that declared one of them as output runs first. `{in0}`, `{in1}` ... in a command.
    pub input_files: Vec<String>,
    /// Files it must write (checked on the worker: `MissingOutputs`). `{out0}`, `{out1}` ... in a command.
    pub output_files: Vec<String>,
    /// Put the content of its input files into its memo key (a changed input re-runs it).
    pub hash_inputs: bool,
    /// The app; `{0}`, `{1}` ... in a command are replaced by the inputs' results.
    pub app: App,
    /// Futures whose results are inputs: substituted into commands, appended to function args.
    pub inputs: Vec<TaskFuture>,
    /// Futures that must succeed first, without passing their results.
    pub after: Vec<TaskFuture>,
    /// Walltime in milliseconds.
    pub walltime_ms: Option<u64>,
    /// Lower runs first.
    pub priority: i32,
    /// Extra tries after a failure.
    pub retries: u32,
    /// What each try needs from its pool.
    pub resources: crate::task::Resources,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("name", &self.name)
            .field("app", &self.app)
            .field("inputs", &self.inputs)
            .field("after", &self.after)
            .field("retries", &self.retries)
            .field("retry_handler", &self.retry_handler.as_ref().map(|_| "custom"))
            .finish_non_exhaustive()
    }
}

impl Call {
    fn new(app: App) -> Call {
        Call {
            name: None,
            version: None,
            memoize: None,
            retry_handler: None,
            join: None,
            input_files: vec![],
            output_files: vec![],
            hash_inputs: false,
            app,
            inputs: vec![],
            after: vec![],
            walltime_ms: None,
            priority: 0,
            retries: 0,
            resources: Default::default(),
        }
    }

    /// Read this file (a path, or a URI a stager handles).
    pub fn input_file(mut self, path: impl Into<String>) -> Call {
        self.input_files.push(path.into());
        self
    }

    /// Write this file; it must exist when the task succeeds.
    pub fn output_file(mut self, path: impl Into<String>) -> Call {
        self.output_files.push(path.into());
        self
    }

    /// Key memoized results also on the content of its input files.
    pub fn hash_inputs(mut self, on: bool) -> Call {
        self.hash_inputs = on;
        self
    }

    /// Name it (shown in progress and kept in checkpoints).
    pub fn named(mut self, name: impl Into<String>) -> Call {
        self.name = Some(name.into());
        self
    }

    /// Set the app's version (part of the memo key).
    pub fn version(mut self, v: impl Into<String>) -> Call {
        self.version = Some(v.into());
        self
    }

    /// Turn memoization on or off for this task.
    pub fn memoize(mut self, on: bool) -> Call {
        self.memoize = Some(on);
        self
    }

    /// Charge failures against `retries` with this handler.
    pub fn retry_handler(mut self, h: RetryHandler) -> Call {
        self.retry_handler = Some(h);
        self
    }

    /// A command run by `/bin/sh -c`.
    pub fn shell(cmd: impl Into<String>) -> Call {
        Call::new(App::Command(crate::task::CommandSpec {
            program: Program::Shell(cmd.into()),
            env: vec![],
            cwd: None,
            stdout: None,
            stderr: None,
        }))
    }

    /// A command run directly from an argv vector.
    pub fn argv<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Call {
        Call::new(App::Command(crate::task::CommandSpec {
            program: Program::Argv(argv.into_iter().map(Into::into).collect()),
            env: vec![],
            cwd: None,
            stdout: None,
            stderr: None,
        }))
    }

    /// A function registered in the launcher, with argument bytes.
    pub fn function(name: impl Into<String>, args: impl Into<Vec<u8>>) -> Call {
        Call::new(App::Function(crate::task::FunctionCall { name: name.into(), args: args.into() }))
    }

    /// A join task: when its inputs are done, `f` gets their results, may submit more
    /// tasks, and returns the future this task completes with (dynamic graphs, recursion).
    pub fn join(f: impl FnOnce(Vec<Vec<u8>>) -> TaskFuture + Send + 'static) -> Call {
        let mut c = Call::new(App::Function(crate::task::FunctionCall { name: "<join>".into(), args: vec![] }));
        c.join = Some(Arc::new(std::sync::Mutex::new(Some(Box::new(f)))));
        c.memoize = Some(false);
        c
    }

    /// Any app, as parsed from a workflow file.
    pub fn app(app: App) -> Call {
        Call::new(app)
    }

    /// Take a future's result as the next input.
    pub fn input(mut self, f: &TaskFuture) -> Call {
        self.inputs.push(f.clone());
        self
    }

    /// Run only after `f` succeeds.
    pub fn after(mut self, f: &TaskFuture) -> Call {
        self.after.push(f.clone());
        self
    }

    /// Kill the try past this walltime.
    pub fn walltime(mut self, d: std::time::Duration) -> Call {
        self.walltime_ms = Some(d.as_millis() as u64);
        self
    }

    /// Lower runs first.
    pub fn priority(mut self, p: i32) -> Call {
        self.priority = p;
        self
    }

    /// Extra tries after a failure.
    pub fn retries(mut self, n: u32) -> Call {
        self.retries = n;
        self
    }

    /// What each try needs from its pool (cores, GPUs, MPI ranks); one worker rank by default.
    pub fn resources(mut self, r: crate::task::Resources) -> Call {
        self.resources = r;
        self
    }
}

struct Node {
    call: Call,
    waiting_on: u32,
    dependents: Vec<TaskId>,
    attempt: u32,
    /// Retry budget spent so far (see `RetryHandler`).
    retry_spent: u32,
    in_flight: bool,
    /// Memo key, known once the task is ready (its inputs are in it).
    key: Option<MemoKey>,
    /// Content hashes of its input files (`hash_inputs`), computed off the graph's lock.
    input_hashes: Option<Vec<MemoKey>>,
    /// For a join whose body has run: the future it stands for.
    forward: Option<TaskFuture>,
    future: TaskFuture,
    /// When its current try was sent (µs since the epoch; 0: never, or no run database).
    launched_us: u64,
}

/// Counters of what the graph has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GraphCounts {
    /// Tasks added.
    pub submitted: u64,
    /// Tasks done.
    pub done: u64,
    /// Tasks failed (after their retries).
    pub failed: u64,
    /// Tasks whose dependency failed.
    pub dep_failed: u64,
    /// Tries retried.
    pub retried: u64,
    /// Results for tries that are not current (dropped).
    pub stale: u64,
    /// Tasks answered from the memo table or an earlier run's checkpoint (also counted in `done`).
    pub memo_hits: u64,
    /// Tasks cancelled (directly or because a task they depend on was).
    pub cancelled: u64,
    /// Tries sent again because the interchange restarted and lost them.
    pub resubmitted: u64,
}

/// The DFK's task graph for one client.
pub struct Graph {
    client: ClientId,
    next: u64,
    /// Pending tasks. Boxed: a table of 400-byte slots is up to half empty after it grows,
    /// which doubled the memory per pending task; boxed slots are 16 bytes.
    nodes: HashMap<TaskId, Box<Node>>,
    ready: VecDeque<TaskId>,
    in_flight: usize,
    counts: GraphCounts,
    memo: Memo,
    /// Whether tasks that do not say are memoized.
    memoize_by_default: bool,
    /// Where state transitions are recorded, if anywhere.
    events: Option<EventLog>,
    /// Records for the run database, taken by the I/O thread in batches (`None`: not kept).
    records: Option<Vec<Record>>,
    /// The latest task declaring each output file, so readers of the file run after it.
    producers: HashMap<String, TaskFuture>,
    /// Join bodies ready to run (outside the graph's lock).
    joins: Vec<(TaskId, JoinFn, Vec<Vec<u8>>)>,
    /// Ready tasks whose input files must be hashed before their memo key is known.
    to_hash: Vec<(TaskId, Vec<std::path::PathBuf>)>,
    /// Told the id of every task that reaches a terminal state.
    on_end: Option<crossbeam_channel::Sender<TaskId>>,
    /// Checkpoint write errors (reported by the caller; the run goes on).
    pub checkpoint_errors: Vec<String>,
}

impl Graph {
    /// An empty graph whose tries carry `client`.
    pub fn new(client: ClientId) -> Graph {
        Graph::with_memo(client, Memo::in_memory())
    }

    /// An empty graph that reuses and records results in `memo`.
    pub fn with_memo(client: ClientId, memo: Memo) -> Graph {
        Graph {
            client,
            next: 0,
            nodes: HashMap::new(),
            ready: VecDeque::new(),
            in_flight: 0,
            counts: GraphCounts::default(),
            memo,
            events: None,
            records: None,
            memoize_by_default: false,
            producers: HashMap::new(),
            joins: Vec::new(),
            to_hash: Vec::new(),
            on_end: None,
            checkpoint_errors: Vec::new(),
        }
    }

    /// Tasks not yet in a terminal state.
    pub fn pending(&self) -> usize {
        self.nodes.len()
    }

    /// Tries sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Tries ready to send.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Memoize tasks that do not say otherwise (identical tasks, by name and content, run once).
    pub fn memoize_by_default(&mut self, on: bool) {
        self.memoize_by_default = on;
    }

    /// Set when memoized results reach the checkpoint file.
    pub fn set_checkpoint_mode(&mut self, mode: super::memo::CheckpointMode) {
        self.memo.set_mode(mode);
    }

    /// Whether this run's results are indexed for hits within the run (see [`Memo::set_index_new`]).
    pub fn set_memo_indexes_new(&mut self, on: bool) {
        self.memo.set_index_new(on);
    }

    /// The checkpoint records due now (all of them with `now`), for the caller to write
    /// after it lets go of the lock.
    pub fn checkpoint_due(&mut self, now: bool) -> Option<super::memo::CheckpointWrite> {
        self.memo.take_due(now)
    }

    /// Record every state transition in `log` from now on.
    pub fn record_events(&mut self, log: EventLog) {
        self.events = Some(log);
    }

    /// Push buffered events to the log file.
    pub fn flush_events(&mut self) {
        if let Some(l) = &mut self.events {
            l.flush();
        }
    }

    /// Keep records for the run database from now on (taken with [`Graph::take_records`]).
    pub fn keep_records(&mut self) {
        self.records.get_or_insert_with(Vec::new);
    }

    /// The records since the last call, for the run database's writer.
    pub fn take_records(&mut self) -> Vec<Record> {
        self.records.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Those records if there are at least `min` of them, or `due` and any at all (else none):
    /// the writer is woken once per batch, not once per I/O round.
    pub fn take_records_if(&mut self, min: usize, due: bool) -> Vec<Record> {
        match &mut self.records {
            Some(r) if r.len() >= min || (due && !r.is_empty()) => std::mem::take(r),
            _ => Vec::new(),
        }
    }

    /// Whether records wait to be taken.
    pub fn has_records(&self) -> bool {
        self.records.as_ref().is_some_and(|r| !r.is_empty())
    }

    fn event(&mut self, id: TaskId, state: State, attempt: u32, detail: Option<String>) {
        if let Some(records) = &mut self.records {
            let t_us = now_us();
            let task = id.0;
            match state {
                State::Submitted => {
                    if let Some(n) = self.nodes.get(&id) {
                        let (name, app) = (n.call.name.clone(), n.call.app.label());
                        records.push(Record::Task { task, name, app, t_us });
                    }
                }
                State::Launched => {
                    if let Some(n) = self.nodes.get_mut(&id) {
                        n.launched_us = t_us;
                    }
                }
                // Implied by the try's record (its outcome is `done`): one record less per task.
                State::Done if self.nodes.get(&id).is_some_and(|n| n.launched_us != 0) => {}
                State::Retrying => {}
                State::Done | State::MemoHit | State::Failed | State::DepFailed | State::Cancelled => {
                    // Tries the task made: a memo hit or a task that never launched made none.
                    let launched = self.nodes.get(&id).is_some_and(|n| n.in_flight || n.attempt > 0);
                    let tries = match state {
                        State::Done | State::Failed => attempt + 1,
                        _ if launched => attempt + 1,
                        _ => 0,
                    };
                    records.push(Record::TaskEnded { task, state, tries, t_us, reason: detail.clone() });
                }
            }
        }
        if let Some(log) = &mut self.events {
            let name = self.nodes.get(&id).and_then(|n| n.call.name.as_deref());
            log.record(id.0, name, state, attempt, detail);
        }
    }

    /// Send the id of each task that ends from now on to `tx`.
    pub fn notify_ends(&mut self, tx: crossbeam_channel::Sender<TaskId>) {
        self.on_end = Some(tx);
    }

    fn ended(&self, id: TaskId) {
        if let Some(tx) = &self.on_end {
            let _ = tx.send(id);
        }
    }

    /// Records loaded from the checkpoint, and torn records ignored.
    pub fn memo_loaded(&self) -> (usize, usize) {
        (self.memo.loaded, self.memo.torn)
    }

    /// Counters.
    pub fn counts(&self) -> GraphCounts {
        self.counts
    }

    /// Add a task; it is ready at once if every future it needs is already done.
    pub fn add(&mut self, mut call: Call) -> TaskFuture {
        // Files make dependencies: read after the (latest) task that writes the file.
        for f in &call.input_files {
            if let Some(p) = self.producers.get(f) {
                call.after.push(p.clone());
            }
        }
        let id = TaskId(self.next);
        self.next += 1;
        self.counts.submitted += 1;
        let future = TaskFuture::new(id);
        for f in &call.output_files {
            self.producers.insert(f.clone(), future.clone());
        }
        let mut waiting_on = 0;
        let mut failed_dep = None;
        for dep in call.inputs.iter().chain(call.after.iter()) {
            match dep.peek() {
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    failed_dep.get_or_insert_with(|| root_of(dep.id(), &e));
                }
                None => {
                    if let Some(n) = self.nodes.get_mut(&dep.id()) {
                        n.dependents.push(id);
                        waiting_on += 1;
                    }
                }
            }
        }
        self.nodes.insert(
            id,
            Box::new(Node {
                call,
                waiting_on,
                dependents: vec![],
                attempt: 0,
                retry_spent: 0,
                in_flight: false,
                key: None,
                input_hashes: None,
                forward: None,
                future: future.clone(),
                launched_us: 0,
            }),
        );
        self.event(id, State::Submitted, 0, None);
        if let Some((root, reason)) = failed_dep {
            self.fail_subtree(id, TaskError::DependencyFailed { root, reason });
        } else if waiting_on == 0 {
            self.ready.push_back(id);
        }
        future
    }

    /// Up to `max` tries to send now. Tasks whose result is memoized end here instead.
    pub fn take_ready(&mut self, max: usize) -> Vec<Try> {
        let mut out = Vec::with_capacity(max.min(self.ready.len()));
        while out.len() < max {
            let Some(id) = self.ready.pop_front() else { break };
            let Some(node) = self.nodes.get_mut(&id) else { continue };
            if let Some(f) = &node.call.join {
                let inputs =
                    node.call.inputs.iter().map(|i| i.peek().and_then(Result::ok).unwrap_or_default()).collect();
                self.joins.push((id, Arc::clone(f), inputs));
                continue;
            }
            let memoize = node.attempt == 0 && node.call.memoize.unwrap_or(self.memoize_by_default);
            if memoize && node.call.hash_inputs && node.input_hashes.is_none() {
                // Reading and hashing files can take seconds: not under the graph's lock.
                // `hashed` puts the task back at the front of the ready queue.
                self.to_hash.push((id, node.call.input_files.iter().map(std::path::PathBuf::from).collect()));
                continue;
            }
            let spec = concrete_spec(&node.call);
            if memoize {
                node.key = memo_key(&node.call, &spec, node.input_hashes.as_deref());
                if let Some(key) = node.key {
                    node.future.set_key(key);
                    // A result whose declared output files were deleted since is not reused.
                    let outputs_exist = spec.outputs.iter().all(|o| std::path::Path::new(o).exists());
                    if let Some(bytes) = self.memo.lookup(&key).filter(|_| outputs_exist) {
                        self.counts.memo_hits += 1;
                        self.succeed_as(id, bytes, State::MemoHit);
                        continue;
                    }
                }
            }
            node.in_flight = true;
            self.in_flight += 1;
            let attempt = node.attempt;
            out.push(Try { id: TryId { client: self.client, task: id, attempt }, spec });
            self.event(id, State::Launched, attempt, None);
        }
        out
    }

    /// Whether the I/O thread has work of its own to start: join bodies to run, input files to
    /// hash (outside the lock).
    pub fn has_local_work(&self) -> bool {
        !self.joins.is_empty() || !self.to_hash.is_empty()
    }

    /// Tasks whose input files must be hashed (outside the lock) before their memo key is known.
    pub fn take_hashing(&mut self) -> Vec<(TaskId, Vec<std::path::PathBuf>)> {
        std::mem::take(&mut self.to_hash)
    }

    /// The content hashes of a task's input files, in order: it is ready again.
    pub fn hashed(&mut self, id: TaskId, hashes: Vec<MemoKey>) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.input_hashes = Some(hashes);
            self.ready.push_front(id);
        }
    }

    /// Join bodies whose inputs are done; run each, then `link_join` its future.
    pub fn take_joins(&mut self) -> Vec<(TaskId, JoinFn, Vec<Vec<u8>>)> {
        std::mem::take(&mut self.joins)
    }

    /// A join body returned `target`: the join ends when (and as) `target` does.
    pub fn link_join(&mut self, id: TaskId, target: TaskFuture) {
        let Some(node) = self.nodes.get_mut(&id) else { return };
        node.forward = Some(target.clone());
        match target.peek() {
            Some(Ok(b)) => self.succeed(id, b),
            Some(Err(e)) => self.fail_subtree(id, e),
            None => match self.nodes.get_mut(&target.id()) {
                Some(t) if target.id() != id => {
                    t.dependents.push(id);
                    if let Some(node) = self.nodes.get_mut(&id) {
                        node.waiting_on = 1;
                    }
                }
                _ => self.fail_subtree(
                    id,
                    TaskError::Failed {
                        failure: Failure::FunctionError { message: "join returned a future of another DFK".into() },
                        tries: 1,
                    },
                ),
            },
        }
    }

    /// A join body panicked.
    pub fn fail_join(&mut self, id: TaskId, message: String) {
        self.fail_subtree(id, TaskError::Failed { failure: Failure::Panic { message }, tries: 1 });
    }

    /// Put tries the interchange refused back at the front of the ready queue.
    pub fn requeue(&mut self, ids: &[TryId]) {
        for t in ids.iter().rev() {
            if let Some(n) = self.nodes.get_mut(&t.task) {
                if n.in_flight && n.attempt == t.attempt {
                    n.in_flight = false;
                    self.in_flight -= 1;
                    self.ready.push_front(t.task);
                }
            }
        }
    }

    /// A try came back: finish, retry, or fail the task (and its dependents).
    pub fn on_result(&mut self, r: TryResult) {
        let Some(node) = self.nodes.get_mut(&r.id.task) else {
            self.counts.stale += 1;
            return;
        };
        if !node.in_flight || node.attempt != r.id.attempt || r.id.client != self.client {
            self.counts.stale += 1;
            return;
        }
        node.in_flight = false;
        self.in_flight -= 1;
        node.future.note_ran(r.ran);
        if let Some(records) = &mut self.records {
            let (task, attempt, ran, launched_us) = (r.id.task.0, r.id.attempt, r.ran, node.launched_us);
            let end = TryEnd::of(&r.outcome);
            records.push(Record::TryEnded { task, attempt, launched_us, t_us: now_us(), end, ran });
        }
        match r.outcome {
            Outcome::Done(bytes) => self.succeed(r.id.task, bytes),
            Outcome::Failed(failure) => {
                let cost = if failure.is_permanent() {
                    u32::MAX
                } else {
                    node.call.retry_handler.as_ref().map_or(1, |h| h(&failure))
                };
                if cost > 0 && node.retry_spent.saturating_add(cost) <= node.call.retries {
                    node.retry_spent += cost;
                    node.attempt += 1;
                    self.counts.retried += 1;
                    self.ready.push_back(r.id.task);
                    self.event(r.id.task, State::Retrying, r.id.attempt, Some(failure.to_string()));
                } else {
                    let tries = node.attempt + 1;
                    self.fail_subtree(r.id.task, TaskError::Failed { failure, tries });
                }
            }
        }
    }

    /// Cancel a task and, transitively, its dependents; returns how many tasks were cancelled.
    /// A try already out keeps its worker busy until it ends; its result is then dropped as stale.
    pub fn cancel(&mut self, id: TaskId) -> usize {
        let mut stack = vec![id];
        let mut n = 0;
        while let Some(tid) = stack.pop() {
            let Some(node) = self.nodes.get(&tid) else { continue };
            let attempt = node.attempt;
            self.event(tid, State::Cancelled, attempt, None);
            let Some(node) = self.nodes.remove(&tid) else { continue };
            if node.in_flight {
                self.in_flight -= 1;
            }
            self.counts.cancelled += 1;
            n += 1;
            node.future.resolve(Err(TaskError::Cancelled));
            self.ended(tid);
            stack.extend(node.dependents);
        }
        n
    }

    /// Cancel every task with no try out (not yet sent, or waiting on its inputs), and their
    /// dependents; tries out keep running. Returns how many tasks were cancelled.
    pub fn cancel_unsent(&mut self) -> usize {
        let unsent: Vec<TaskId> = self.nodes.iter().filter(|(_, n)| !n.in_flight).map(|(id, _)| *id).collect();
        unsent.into_iter().map(|id| self.cancel(id)).sum()
    }

    /// The interchange took these tries back before any manager had them: cancel their tasks
    /// (and dependents). A try of an earlier attempt, or of a task that already ended, changes
    /// nothing. Returns how many tasks were cancelled.
    pub fn withdrawn(&mut self, tries: &[TryId]) -> usize {
        let mut n = 0;
        for t in tries {
            let current = self.nodes.get(&t.task).is_some_and(|n| n.in_flight && n.attempt == t.attempt);
            if t.client == self.client && current {
                n += self.cancel(t.task);
            }
        }
        n
    }

    /// The interchange restarted and lost what it held: send every in-flight task again as a
    /// new try (not charged to its retries; a late result of the old try is dropped as stale).
    pub fn resubmit_in_flight(&mut self) -> usize {
        let ids: Vec<TaskId> = self.nodes.iter().filter(|(_, n)| n.in_flight).map(|(id, _)| *id).collect();
        for id in &ids {
            if let Some(n) = self.nodes.get_mut(id) {
                n.in_flight = false;
                n.attempt += 1;
                self.in_flight -= 1;
                self.ready.push_back(*id);
            }
        }
        self.counts.resubmitted += ids.len() as u64;
        ids.len()
    }

    /// Fail every in-flight try with `failure` (e.g. the interchange went silent); retries apply.
    pub fn fail_in_flight(&mut self, failure: Failure) {
        let ids: Vec<TryId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.in_flight)
            .map(|(id, n)| TryId { client: self.client, task: *id, attempt: n.attempt })
            .collect();
        for id in ids {
            self.on_result(TryResult::new(id, Outcome::Failed(failure.clone())));
        }
    }

    fn succeed(&mut self, id: TaskId, bytes: Vec<u8>) {
        self.succeed_as(id, bytes, State::Done)
    }

    fn succeed_as(&mut self, id: TaskId, bytes: Vec<u8>, state: State) {
        let attempt = self.nodes.get(&id).map_or(0, |n| n.attempt);
        self.event(id, state, attempt, None);
        let Some(node) = self.nodes.remove(&id) else { return };
        self.counts.done += 1;
        if let Some(key) = node.key {
            if !self.memo.contains(&key) {
                self.memo.record(key, node.call.name.as_deref(), &bytes);
            }
        }
        node.future.resolve(Ok(bytes.clone()));
        self.ended(id);
        let mut forwards = Vec::new();
        for d in node.dependents {
            if let Some(dn) = self.nodes.get_mut(&d) {
                dn.waiting_on = dn.waiting_on.saturating_sub(1);
                if dn.waiting_on == 0 {
                    if dn.forward.is_some() {
                        forwards.push(d);
                    } else {
                        self.ready.push_back(d);
                    }
                }
            }
        }
        // Joins waiting on this task end with its result (recursion as deep as the join chain).
        for d in forwards {
            self.succeed(d, bytes.clone());
        }
    }

    /// Resolve `id` with `err` and every transitive dependent with `DependencyFailed`.
    fn fail_subtree(&mut self, id: TaskId, err: TaskError) {
        let (root, reason) = root_of(id, &err);
        let mut stack = vec![(id, err)];
        while let Some((tid, e)) = stack.pop() {
            let (state, attempt) = match &e {
                TaskError::DependencyFailed { .. } => (State::DepFailed, 0),
                _ => (State::Failed, self.nodes.get(&tid).map_or(0, |n| n.attempt)),
            };
            if self.nodes.contains_key(&tid) {
                self.event(tid, state, attempt, Some(e.to_string()));
            }
            let Some(node) = self.nodes.remove(&tid) else { continue };
            if node.in_flight {
                self.in_flight -= 1;
            }
            match e {
                TaskError::DependencyFailed { .. } => self.counts.dep_failed += 1,
                _ => self.counts.failed += 1,
            }
            node.future.resolve(Err(e));
            self.ended(tid);
            for d in node.dependents {
                stack.push((d, TaskError::DependencyFailed { root, reason: reason.clone() }));
            }
        }
    }
}

/// The root task and reason to report for dependents of a task that ended with `e`.
fn root_of(id: TaskId, e: &TaskError) -> (TaskId, String) {
    match e {
        TaskError::DependencyFailed { root, reason } => (*root, reason.clone()),
        other => (id, other.to_string()),
    }
}

/// Replace `{in0}`, `{in1}` ... and `{out0}`, `{out1}` ... by the task's input and output files.
pub fn fill_file_placeholders(s: &str, inputs: &[String], outputs: &[String]) -> String {
    let mut out = s.to_string();
    for (i, f) in inputs.iter().enumerate() {
        out = out.replace(&format!("{{in{i}}}"), f);
    }
    for (i, f) in outputs.iter().enumerate() {
        out = out.replace(&format!("{{out{i}}}"), f);
    }
    out
}

/// Text of an input for substitution into a command: UTF-8 (lossy), trailing whitespace trimmed.
fn input_text(f: &TaskFuture) -> String {
    match f.peek() {
        Some(Ok(b)) => String::from_utf8_lossy(&b).trim_end().to_string(),
        _ => String::new(),
    }
}

fn substitute(s: &str, inputs: &[String]) -> String {
    let mut out = s.to_string();
    for (i, v) in inputs.iter().enumerate() {
        out = out.replace(&format!("{{{i}}}"), v);
    }
    out
}

/// The spec to send: the call's app with its inputs filled in.
fn concrete_spec(call: &Call) -> TaskSpec {
    let mut app = call.app.clone();
    if !call.input_files.is_empty() || !call.output_files.is_empty() {
        if let App::Command(c) = &mut app {
            let files = |s: &str| fill_file_placeholders(s, &call.input_files, &call.output_files);
            c.program = match &c.program {
                Program::Shell(s) => Program::Shell(files(s)),
                Program::Argv(v) => Program::Argv(v.iter().map(|a| files(a)).collect()),
            };
        }
    }
    if !call.inputs.is_empty() {
        match &mut app {
            App::Command(c) => {
                let texts: Vec<String> = call.inputs.iter().map(input_text).collect();
                c.program = match &c.program {
                    Program::Shell(s) => Program::Shell(substitute(s, &texts)),
                    Program::Argv(v) => Program::Argv(v.iter().map(|a| substitute(a, &texts)).collect()),
                };
            }
            App::Function(f) => {
                for i in &call.inputs {
                    if let Some(Ok(b)) = i.peek() {
                        f.args.extend_from_slice(&b);
                    }
                }
            }
            // The Python side resolves its futures before it pickles the call.
            App::Python(_) => {}
        }
    }
    TaskSpec {
        app,
        walltime_ms: call.walltime_ms,
        priority: call.priority,
        outputs: call.output_files.clone(),
        resources: call.resources,
    }
}

/// The memo key of a ready task, or `None` if a dependency has none (then it cannot be memoized
/// safely). `input_hashes`: its input files' content hashes, when it asked for them.
fn memo_key(call: &Call, spec: &TaskSpec, input_hashes: Option<&[MemoKey]>) -> Option<MemoKey> {
    let mut deps: Vec<MemoKey> =
        call.inputs.iter().chain(call.after.iter()).map(TaskFuture::key).collect::<Option<Vec<_>>>()?;
    // The files' content stands in for them as extra "dependencies".
    deps.extend(input_hashes.unwrap_or_default());
    Some(MemoKey::of(spec, call.name.as_deref(), call.version.as_deref(), &deps))
}

/// The content hash of an input file, for memo keys. A missing or unreadable file hashes as
/// empty, so it differs from any content it later gets. Large files are memory-mapped and
/// hashed on several threads.
pub fn hash_input_file(path: &std::path::Path) -> MemoKey {
    let mut h = blake3::Hasher::new();
    if h.update_mmap_rayon(path).is_err() {
        h = blake3::Hasher::new();
    }
    MemoKey(*h.finalize().as_bytes())
}

/// How a finished future reads, for callers that only need the outcome.
pub fn outcome_of(f: &TaskFuture) -> Option<TaskOutcome> {
    f.peek()
}

#[cfg(test)]
mod tests;
