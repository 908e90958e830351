//! The strategy: how many blocks an executor should hold, decided each round from what the
//! interchange (outstanding tries, managers by block) and the scheduler (job states) report.
//!
//! Parsl's "simple" strategy is the base. Scale out when the outstanding tries times
//! `parallelism` exceed the slots of the active blocks, up to `max_blocks`. Scale in only
//! blocks whose every manager has held no try for `max_idletime`, down to `min_blocks`, and
//! *hold* them first: a held manager gets no new tries, so once it holds none its block is
//! cancelled without killing anything. A block whose job runs but whose managers never
//! register within `block_connect_timeout` is marked missing and cancelled; when every block
//! failed and none ever connected, the executor fails with the reason instead of hanging.
//!
//! This is plain data driven by [`Observation`]s, so every rule is tested without a scheduler;
//! [`super::scaler`] runs it against a real provider and interchange.

use crate::block::{BlockId, JobId};
use crate::provider::JobState;
use crate::task::ManagerId;
use crate::wire::{ManagerMode, ManagerStatus};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// The strategy's numbers: the `[[executor]]` keys of the same names (docs/executors.md), which
/// an [`crate::executor::config::ExecutorConfig`] holds as they are.
#[derive(Clone, Debug, PartialEq)]
pub struct StrategyParams {
    /// Blocks to submit at start.
    pub init_blocks: u32,
    /// Never scale in below this.
    pub min_blocks: u32,
    /// Never scale out above this.
    pub max_blocks: u32,
    /// Slots wanted per outstanding try (0..=1): 1 = a slot for every try, 0.5 = one for two.
    pub parallelism: f64,
    /// A block idle this long may be scaled in.
    pub max_idletime: Duration,
    /// A running block whose managers have not registered within this is missing.
    pub block_connect_timeout: Duration,
    /// Time between strategy rounds (`strategy_period`).
    pub period: Duration,
}

/// Where a block is in its life, as the strategy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockPhase {
    /// Submitted; counts as capacity (pending in the queue or starting).
    Active,
    /// Its managers were told to hold; cancelled once they hold no tries.
    Holding,
    /// Cancel asked of the scheduler; waiting for the job to end.
    Cancelling,
    /// The job ended (the state the scheduler gave, or `Missing` when it never connected).
    Ended(JobState),
}

/// One block of this executor.
#[derive(Clone, Debug)]
pub struct Block {
    /// The id its managers register under.
    pub id: BlockId,
    /// The scheduler's job id.
    pub job: JobId,
    /// Where it is.
    pub phase: BlockPhase,
    /// When it was submitted.
    pub submitted: Instant,
    /// When the scheduler first said it runs.
    pub running_since: Option<Instant>,
    /// When its first manager registered.
    pub connected_at: Option<Instant>,
    /// When the job was seen to end.
    pub ended_at: Option<Instant>,
    /// Consecutive rounds the scheduler did not report the job.
    missing_rounds: u32,
}

/// What the interchange and the scheduler say now.
#[derive(Clone, Debug)]
pub struct Observation<'a> {
    /// Now.
    pub now: Instant,
    /// Tries queued at the interchange or held by managers (plus any the caller still holds back).
    pub outstanding: u64,
    /// Registered managers, every block's.
    pub managers: &'a [ManagerStatus],
    /// Job states of this executor's blocks.
    pub jobs: &'a HashMap<JobId, JobState>,
}

/// What the strategy asks its runner to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Submit this many new blocks (then report each with [`Strategy::submitted`]).
    Submit(u32),
    /// Put these managers in hold: no new tries.
    Hold(Vec<ManagerId>),
    /// Cancel these blocks' jobs.
    Cancel(Vec<(BlockId, JobId)>),
    /// Give up: no block ever connected and every one failed.
    Fail(String),
}

/// The strategy's memory between rounds.
#[derive(Debug)]
pub struct Strategy {
    label: String,
    slots_per_block: u32,
    params: StrategyParams,
    blocks: BTreeMap<BlockId, Block>,
    next: u64,
    started: bool,
    ever_connected: bool,
    failures: u32,
    last_failure: Option<String>,
    failed: bool,
}

impl Strategy {
    /// A strategy with no blocks yet for the executor `label` (block ids are `LABEL-N`), whose
    /// blocks bring `slots_per_block` task slots each until their managers say so.
    pub fn new(label: &str, slots_per_block: u32, params: StrategyParams) -> Strategy {
        Strategy {
            label: label.to_string(),
            slots_per_block,
            params,
            blocks: BTreeMap::new(),
            next: 0,
            started: false,
            ever_connected: false,
            failures: 0,
            last_failure: None,
            failed: false,
        }
    }

    /// The parameters it runs with.
    pub fn params(&self) -> &StrategyParams {
        &self.params
    }

    /// New `min_blocks` and `max_blocks` (takes effect at the next round).
    pub fn set_limits(&mut self, min_blocks: u32, max_blocks: u32) {
        self.params.min_blocks = min_blocks;
        self.params.max_blocks = max_blocks.max(min_blocks);
    }

    /// The id for the next block to submit.
    pub fn next_block_id(&mut self) -> BlockId {
        self.next += 1;
        BlockId(format!("{}-{}", self.label, self.next))
    }

    /// A block was submitted as `job`.
    pub fn submitted(&mut self, id: BlockId, job: JobId, now: Instant) {
        let b = Block {
            id: id.clone(),
            job,
            phase: BlockPhase::Active,
            submitted: now,
            running_since: None,
            connected_at: None,
            ended_at: None,
            missing_rounds: 0,
        };
        self.blocks.insert(id, b);
    }

    /// A submission failed (the scheduler refused it): counts toward giving up.
    pub fn submit_failed(&mut self, why: String) {
        self.failures += 1;
        self.last_failure = Some(why);
    }

    /// Every block this strategy has submitted, ended ones included.
    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.blocks.values()
    }

    /// Blocks whose jobs may still hold nodes (everything not ended).
    pub fn live_jobs(&self) -> Vec<(BlockId, JobId)> {
        self.blocks
            .values()
            .filter(|b| !matches!(b.phase, BlockPhase::Ended(_)))
            .map(|b| (b.id.clone(), b.job.clone()))
            .collect()
    }

    /// Blocks counted as capacity.
    pub fn active(&self) -> usize {
        self.blocks.values().filter(|b| b.phase == BlockPhase::Active).count()
    }

    /// One round: take in what is observed and say what to do.
    pub fn step(&mut self, obs: &Observation) -> Vec<Decision> {
        let mut out = vec![];
        if self.failed {
            return out;
        }
        let mut by_block: HashMap<&BlockId, Vec<&ManagerStatus>> = HashMap::new();
        for m in obs.managers {
            by_block.entry(&m.block).or_default().push(m);
        }
        let mut cancel = vec![];
        for b in self.blocks.values_mut() {
            if matches!(b.phase, BlockPhase::Ended(_)) {
                continue;
            }
            let managers = by_block.get(&b.id).map(Vec::as_slice).unwrap_or(&[]);
            if !managers.is_empty() && b.connected_at.is_none() {
                b.connected_at = Some(obs.now);
                self.ever_connected = true;
            }
            let state = obs.jobs.get(&b.job).cloned().unwrap_or(JobState::Missing);
            b.missing_rounds = if state == JobState::Missing { b.missing_rounds + 1 } else { 0 };
            if state == JobState::Running && b.running_since.is_none() {
                b.running_since = Some(obs.now);
            }
            // A scheduler that forgets finished jobs (squeue without accounting) reports them
            // missing; one round of that can be a job not yet visible, two mean it is gone.
            let gone = state.is_terminal() || b.missing_rounds >= 2;
            if gone {
                if b.connected_at.is_none() && b.phase == BlockPhase::Active {
                    self.failures += 1;
                    self.last_failure =
                        Some(format!("block {} (job {}) ended as {state} before any manager registered", b.id, b.job));
                }
                b.phase = BlockPhase::Ended(state);
                b.ended_at = Some(obs.now);
                continue;
            }
            let never_connected = b.connected_at.is_none()
                && b.running_since
                    .is_some_and(|t| obs.now.saturating_duration_since(t) > self.params.block_connect_timeout);
            if b.phase == BlockPhase::Active && never_connected {
                self.failures += 1;
                self.last_failure = Some(format!(
                    "block {} (job {}) ran for {:?} but no manager registered: check its output file and \
                     that the compute nodes reach the interchange's address",
                    b.id, b.job, self.params.block_connect_timeout
                ));
                b.phase = BlockPhase::Cancelling;
                cancel.push((b.id.clone(), b.job.clone()));
                continue;
            }
            // A held block is cancelled once its managers hold nothing (or have all left).
            if b.phase == BlockPhase::Holding && managers.iter().all(|m| m.in_flight == 0) {
                b.phase = BlockPhase::Cancelling;
                cancel.push((b.id.clone(), b.job.clone()));
            }
        }
        if !cancel.is_empty() {
            out.push(Decision::Cancel(cancel));
        }
        let give_up_after = self.params.max_blocks.max(1);
        if !self.ever_connected && self.failures >= give_up_after {
            self.failed = true;
            let why = self.last_failure.clone().unwrap_or_default();
            out.push(Decision::Fail(format!(
                "executor {}: all {} block(s) failed and none ever connected; last: {why}",
                self.label, self.failures
            )));
            return out;
        }
        self.scale(obs, &by_block, &mut out);
        out
    }

    /// Decide scale-out and scale-in from outstanding work and capacity.
    fn scale(&mut self, obs: &Observation, by_block: &HashMap<&BlockId, Vec<&ManagerStatus>>, out: &mut Vec<Decision>) {
        let p = &self.params;
        let active = self.active() as u32;
        if !self.started {
            self.started = true;
            let n = p.init_blocks.max(p.min_blocks).min(p.max_blocks);
            if n > active {
                out.push(Decision::Submit(n - active));
                return;
            }
        }
        let per_block = self.slots_per_block.max(1) as u64;
        let capacity: u64 = self
            .blocks
            .values()
            .filter(|b| b.phase == BlockPhase::Active)
            .map(|b| match by_block.get(&b.id) {
                Some(ms) => ms.iter().filter(|m| m.mode == ManagerMode::Active).map(|m| m.slots as u64).sum(),
                None => per_block,
            })
            .sum();
        let wanted = (obs.outstanding as f64 * p.parallelism.clamp(0.0, 1.0)).ceil() as u64;
        // Work with no capacity at all gets one block even at parallelism 0, as in Parsl.
        let wanted = if obs.outstanding > 0 { wanted.max(1) } else { 0 };
        if wanted > capacity && active < p.max_blocks {
            let more = (wanted - capacity).div_ceil(per_block) as u32;
            out.push(Decision::Submit(more.min(p.max_blocks - active)));
            return;
        }
        if active < p.min_blocks {
            out.push(Decision::Submit(p.min_blocks - active));
            return;
        }
        // Scale in: as many idle blocks as are not needed, the longest idle first.
        let needed_blocks = (wanted.div_ceil(per_block) as u32).max(p.min_blocks);
        if active <= needed_blocks {
            return;
        }
        let mut idle: Vec<(u64, BlockId)> = self
            .blocks
            .values()
            .filter(|b| b.phase == BlockPhase::Active)
            .filter_map(|b| {
                let ms = by_block.get(&b.id)?;
                let idle_for = ms.iter().map(|m| if m.in_flight == 0 { m.idle_ms } else { 0 }).min()?;
                (idle_for >= p.max_idletime.as_millis() as u64).then(|| (idle_for, b.id.clone()))
            })
            .collect();
        idle.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let mut held = vec![];
        for (_, id) in idle.into_iter().take((active - needed_blocks) as usize) {
            if let Some(b) = self.blocks.get_mut(&id) {
                b.phase = BlockPhase::Holding;
            }
            held.extend(by_block.get(&id).into_iter().flatten().map(|m| m.id));
        }
        if !held.is_empty() {
            out.push(Decision::Hold(held));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> StrategyParams {
        StrategyParams {
            init_blocks: 0,
            min_blocks: 0,
            max_blocks: 3,
            parallelism: 1.0,
            max_idletime: Duration::from_secs(10),
            block_connect_timeout: Duration::from_secs(60),
            period: Duration::from_secs(5),
        }
    }

    fn manager(id: u64, block: &BlockId, in_flight: u32, idle_ms: u64) -> ManagerStatus {
        ManagerStatus {
            id: ManagerId(id),
            host: "h".into(),
            block: block.clone(),
            slots: 4,
            in_flight,
            mode: ManagerMode::Active,
            idle_ms,
        }
    }

    /// Submit what the strategy asks, as a runner would; returns the new block ids.
    fn apply(s: &mut Strategy, ds: &[Decision], now: Instant) -> Vec<BlockId> {
        let mut ids = vec![];
        for d in ds {
            if let Decision::Submit(n) = d {
                for _ in 0..*n {
                    let id = s.next_block_id();
                    s.submitted(id.clone(), JobId(format!("job-{id}")), now);
                    ids.push(id);
                }
            }
        }
        ids
    }

    fn running(ids: &[BlockId]) -> HashMap<JobId, JobState> {
        ids.iter().map(|id| (JobId(format!("job-{id}")), JobState::Running)).collect()
    }

    #[test]
    fn scales_out_to_max_then_holds_and_cancels_idle_blocks_down_to_min() {
        let mut s = Strategy::new("t", 4, StrategyParams { min_blocks: 1, ..params() });
        let t0 = Instant::now();
        let jobs = HashMap::new();
        let d = s.step(&Observation { now: t0, outstanding: 0, managers: &[], jobs: &jobs });
        assert_eq!(d, vec![Decision::Submit(1)], "min_blocks at start");
        let mut ids = apply(&mut s, &d, t0);
        // 500 outstanding tries, 4 slots a block: up to max_blocks and no further.
        let d = s.step(&Observation { now: t0, outstanding: 500, managers: &[], jobs: &running(&ids) });
        assert_eq!(d, vec![Decision::Submit(2)]);
        ids.extend(apply(&mut s, &d, t0));
        let busy: Vec<ManagerStatus> = ids.iter().enumerate().map(|(i, b)| manager(i as u64, b, 4, 0)).collect();
        assert!(s.step(&Observation { now: t0, outstanding: 500, managers: &busy, jobs: &running(&ids) }).is_empty());
        // The queue empties; blocks idle less than max_idletime stay.
        let idle: Vec<ManagerStatus> = ids.iter().enumerate().map(|(i, b)| manager(i as u64, b, 0, 5_000)).collect();
        assert!(s.step(&Observation { now: t0, outstanding: 0, managers: &idle, jobs: &running(&ids) }).is_empty());
        // Idle past max_idletime: hold two (the longest idle first), keep min_blocks.
        let mut idle: Vec<ManagerStatus> =
            ids.iter().enumerate().map(|(i, b)| manager(i as u64, b, 0, 11_000)).collect();
        idle[2].idle_ms = 20_000;
        let d = s.step(&Observation { now: t0, outstanding: 0, managers: &idle, jobs: &running(&ids) });
        let Some(Decision::Hold(held)) = d.first() else { panic!("{d:?}") };
        assert_eq!(held.len(), 2);
        assert!(held.contains(&ManagerId(2)));
        assert_eq!(s.active(), 1);
        // Held blocks holding nothing are cancelled next round; one still finishing waits.
        idle[2].in_flight = 1;
        let d = s.step(&Observation { now: t0, outstanding: 0, managers: &idle, jobs: &running(&ids) });
        let Some(Decision::Cancel(c)) = d.first() else { panic!("{d:?}") };
        assert_eq!(c.len(), 1);
        idle[2].in_flight = 0;
        let d = s.step(&Observation { now: t0, outstanding: 0, managers: &idle, jobs: &running(&ids) });
        assert!(matches!(d.first(), Some(Decision::Cancel(c)) if c[0].0 == ids[2]), "{d:?}");
        // Cancelled jobs end; no resubmission while min_blocks is met.
        let mut jobs = running(&ids);
        for id in [&ids[0], &ids[2]] {
            jobs.insert(JobId(format!("job-{id}")), JobState::Cancelled);
        }
        assert!(s.step(&Observation { now: t0, outstanding: 0, managers: &idle[1..2], jobs: &jobs }).is_empty());
        assert_eq!(s.live_jobs(), vec![(ids[1].clone(), JobId(format!("job-{}", ids[1])))]);
    }

    #[test]
    fn parallelism_scales_the_slots_wanted() {
        let mut s = Strategy::new("t", 4, StrategyParams { parallelism: 0.25, max_blocks: 10, ..params() });
        let now = Instant::now();
        let jobs = HashMap::new();
        // 40 tries * 0.25 = 10 slots = 3 blocks of 4.
        let d = s.step(&Observation { now, outstanding: 40, managers: &[], jobs: &jobs });
        assert_eq!(d, vec![Decision::Submit(3)]);
        // Parallelism 0 still gets work one block.
        let mut s = Strategy::new("t", 4, StrategyParams { parallelism: 0.0, ..params() });
        assert_eq!(s.step(&Observation { now, outstanding: 7, managers: &[], jobs: &jobs }), vec![Decision::Submit(1)]);
    }

    #[test]
    fn a_block_that_never_connects_is_missing_and_all_failing_is_an_error() {
        let mut s = Strategy::new("t", 4, StrategyParams { max_blocks: 2, ..params() });
        let t0 = Instant::now();
        let jobs = HashMap::new();
        let d = s.step(&Observation { now: t0, outstanding: 100, managers: &[], jobs: &jobs });
        let ids = apply(&mut s, &d, t0);
        assert_eq!(ids.len(), 2);
        // Pending in the queue: no timeout, however long.
        let pending: HashMap<JobId, JobState> =
            ids.iter().map(|id| (JobId(format!("job-{id}")), JobState::Pending)).collect();
        let later = t0 + Duration::from_secs(3600);
        assert!(s.step(&Observation { now: later, outstanding: 100, managers: &[], jobs: &pending }).is_empty());
        // Running without a manager past the timeout: cancelled as missing.
        let d = s.step(&Observation { now: later, outstanding: 100, managers: &[], jobs: &running(&ids) });
        assert!(d.is_empty(), "just started running: {d:?}");
        let d = s.step(&Observation {
            now: later + Duration::from_secs(61),
            outstanding: 100,
            managers: &[],
            jobs: &running(&ids),
        });
        let Some(Decision::Fail(why)) = d.iter().find(|d| matches!(d, Decision::Fail(_))) else { panic!("{d:?}") };
        assert!(why.contains("no manager registered"), "{why}");
        assert!(matches!(d.first(), Some(Decision::Cancel(c)) if c.len() == 2));
        assert!(s.step(&Observation { now: later, outstanding: 100, managers: &[], jobs: &jobs }).is_empty());
    }

    #[test]
    fn a_failed_block_is_replaced_while_others_connected() {
        let mut s = Strategy::new("t", 4, StrategyParams { max_blocks: 2, ..params() });
        let t0 = Instant::now();
        let d = s.step(&Observation { now: t0, outstanding: 100, managers: &[], jobs: &HashMap::new() });
        let ids = apply(&mut s, &d, t0);
        let ms = vec![manager(1, &ids[0], 4, 0)];
        let mut jobs = running(&ids);
        assert!(s.step(&Observation { now: t0, outstanding: 100, managers: &ms, jobs: &jobs }).is_empty());
        jobs.insert(JobId(format!("job-{}", ids[1])), JobState::Failed);
        let d = s.step(&Observation { now: t0, outstanding: 100, managers: &ms, jobs: &jobs });
        assert_eq!(d, vec![Decision::Submit(1)], "replace it; one block connected so no giving up");
        // A scheduler that forgets the job: gone after two rounds unseen.
        jobs.remove(&JobId(format!("job-{}", ids[0])));
        let ms: Vec<ManagerStatus> = vec![];
        let _ = s.step(&Observation { now: t0, outstanding: 0, managers: &ms, jobs: &jobs });
        assert_eq!(s.live_jobs().iter().filter(|(b, _)| *b == ids[0]).count(), 1);
        let _ = s.step(&Observation { now: t0, outstanding: 0, managers: &ms, jobs: &jobs });
        assert_eq!(s.live_jobs().iter().filter(|(b, _)| *b == ids[0]).count(), 0);
    }
}
