//! MPI function tries: a registered MPI function called on every member of a try, with a
//! communicator of exactly the ranks reserved for it.
//!
//! The manager reserves the try's ranks like any wide try's ([`crate::wide`]) and sends each
//! member a [`GroupTry`]. Each member makes the try's communicator from the pool's with
//! `MPI_Comm_create_group` over the members only (no other rank of the pool takes part, so the
//! rest of the pool keeps serving), calls the function on its main thread (the MPI thread),
//! frees the communicator and answers with its own result. [`Groups`] is the manager's side, plain
//! data: the first failure of any member fails the try at once; otherwise the try is done, with
//! rank 0's value, when every member has answered; the ranks return to the pool when every member
//! has answered or been declared lost.
//!
//! A member inside the function sends no heartbeats (its one thread is in the function), so it
//! is not judged by silence until the try's walltime (plus the worker threshold) has passed; then
//! it is declared lost. A function that never returns, or a member waiting in a collective for a
//! member that failed before joining it, keeps its rank until then: MPI cannot interrupt it.

use crate::exec::function::run_guarded;
use crate::exec::Registry;
use crate::pool_msg::{GroupTry, WorkerRank, TAG_CREATE_GROUP};
use mpi::topology::{Communicator, Group, SimpleCommunicator};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};
use strand::task::{App, Failure, Outcome, Ran, TryId, TryResult};

/// Run this rank's part of an MPI function try on `pool` (this rank is one of its members).
pub fn run_member(pool: &SimpleCommunicator, registry: &Registry, g: &GroupTry) -> TryResult {
    let (started, begun) = (std::time::SystemTime::now(), Instant::now());
    let outcome = member_outcome(pool, registry, g);
    TryResult { id: g.try_.id, outcome, ran: Ran::since(started, begun) }
}

fn member_outcome(pool: &SimpleCommunicator, registry: &Registry, g: &GroupTry) -> Outcome {
    let App::Function(call) = &g.try_.spec.app else {
        let message = "only a function task can run on a communicator of its ranks".to_string();
        return Outcome::Failed(Failure::FunctionError { message });
    };
    let Some(f) = registry.get_mpi(&call.name) else {
        return Outcome::Failed(Failure::UnknownFunction { name: call.name.clone() });
    };
    let ranks: Vec<i32> = g.members.iter().map(|r| r.0).collect();
    let group = pool.group().include(&ranks);
    // Collective over the members only: the manager and the other workers go on serving.
    let Some(comm) = pool.split_by_subgroup_with_tag(&group, TAG_CREATE_GROUP) else {
        let message = format!("MPI_Comm_create_group over pool ranks {ranks:?} gave no communicator");
        return Outcome::Failed(Failure::FunctionError { message });
    };
    crate::errors_return(&comm);
    run_guarded(g.try_.spec.walltime_ms, || f(&comm, &call.args))
    // `comm` is freed here, on every member, whatever the function did.
}

/// One running MPI function try, as its manager sees it.
#[derive(Debug)]
struct Running {
    /// Its rank 0, whose value is the try's.
    leader: WorkerRank,
    /// Members that have not answered.
    waiting: BTreeSet<WorkerRank>,
    /// Rank 0's value, once it has answered.
    value: Option<TryResult>,
    /// Its result has been reported (a member failed): later answers only free ranks.
    reported: bool,
    /// Past this, its silent members may be declared lost (`None`: no walltime, never).
    deadline: Option<Instant>,
}

/// What a member's answer means for its try.
#[derive(Debug, Default, PartialEq)]
pub struct Answer {
    /// The try's result, to report now (at most once per try).
    pub report: Option<TryResult>,
    /// Every member has answered: the try's ranks are free.
    pub ended: bool,
}

/// The MPI function tries a manager is running.
#[derive(Debug, Default)]
pub struct Groups {
    running: HashMap<TryId, Running>,
}

impl Groups {
    /// A try started on `members` at `now`; its members are exempt from the silence check until
    /// its walltime (`walltime_ms`) plus `grace` has passed.
    pub fn start(
        &mut self,
        id: TryId,
        members: &[WorkerRank],
        walltime_ms: Option<u64>,
        grace: Duration,
        now: Instant,
    ) {
        let Some(&leader) = members.first() else { return };
        let deadline = walltime_ms.map(|ms| now + Duration::from_millis(ms) + grace);
        let waiting = members.iter().copied().collect();
        self.running.insert(id, Running { leader, waiting, value: None, reported: false, deadline });
    }

    /// Whether `id` is a running MPI function try.
    pub fn contains(&self, id: &TryId) -> bool {
        self.running.contains_key(id)
    }

    /// Whether any is running.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Whether `rank` may be silent at `now`: it is a member of a running try that has not
    /// answered, before that try's deadline.
    pub fn excused(&self, rank: WorkerRank, now: Instant) -> bool {
        self.running.values().any(|g| g.waiting.contains(&rank) && g.deadline.is_none_or(|d| now < d))
    }

    /// Member `rank` answered `r` (its result, or a `WorkerLost` failure when it was lost).
    /// Unknown tries and members, and second answers, change nothing.
    pub fn answer(&mut self, rank: WorkerRank, r: TryResult) -> Answer {
        let id = r.id;
        let Some(g) = self.running.get_mut(&id) else { return Answer::default() };
        if !g.waiting.remove(&rank) {
            return Answer::default();
        }
        let mut report = None;
        if matches!(r.outcome, Outcome::Failed(_)) {
            // The first failure fails the try now: its other members may never answer.
            if !g.reported {
                g.reported = true;
                report = Some(r);
            }
        } else if rank == g.leader {
            g.value = Some(r);
        }
        let ended = g.waiting.is_empty();
        if ended {
            if let Some(done) = self.running.remove(&id) {
                if !done.reported {
                    report = done.value;
                }
            }
        }
        Answer { report, ended }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strand::task::{ClientId, TaskId};

    fn id(n: u64) -> TryId {
        TryId { client: ClientId(1), task: TaskId(n), attempt: 0 }
    }

    fn ranks(r: &[i32]) -> Vec<WorkerRank> {
        r.iter().map(|&r| WorkerRank(r)).collect()
    }

    fn done(n: u64, value: &str) -> TryResult {
        TryResult::new(id(n), Outcome::Done(value.as_bytes().to_vec()))
    }

    fn failed(n: u64, message: &str) -> TryResult {
        TryResult::new(id(n), Outcome::Failed(Failure::FunctionError { message: message.into() }))
    }

    #[test]
    fn the_try_is_rank_zeros_value_once_every_member_answered() {
        let mut g = Groups::default();
        let t0 = Instant::now();
        g.start(id(1), &ranks(&[3, 1, 2]), None, Duration::from_secs(1), t0);
        assert_eq!(g.answer(WorkerRank(3), done(1, "sum")), Answer::default(), "others still run");
        assert_eq!(g.answer(WorkerRank(1), done(1, "ignored")), Answer::default());
        assert_eq!(g.answer(WorkerRank(1), done(1, "again")), Answer::default(), "a second answer is nothing");
        let last = g.answer(WorkerRank(2), done(1, "ignored"));
        assert_eq!(last, Answer { report: Some(done(1, "sum")), ended: true });
        assert!(!g.contains(&id(1)) && g.is_empty());
        assert_eq!(g.answer(WorkerRank(2), done(1, "late")), Answer::default(), "an ended try is unknown");
    }

    #[test]
    fn the_first_failure_fails_the_try_at_once_and_ranks_wait_for_every_member() {
        let mut g = Groups::default();
        g.start(id(2), &ranks(&[1, 2, 3]), None, Duration::from_secs(1), Instant::now());
        let first = g.answer(WorkerRank(2), failed(2, "member 1 panicked"));
        assert_eq!(first, Answer { report: Some(failed(2, "member 1 panicked")), ended: false });
        assert!(g.contains(&id(2)), "its other members still hold their ranks");
        assert_eq!(g.answer(WorkerRank(1), done(2, "v")), Answer::default(), "nothing ends twice");
        assert_eq!(g.answer(WorkerRank(3), failed(2, "second")), Answer { report: None, ended: true });
    }

    #[test]
    fn members_are_excused_from_silence_until_the_walltime_and_grace() {
        let mut g = Groups::default();
        let t0 = Instant::now();
        let grace = Duration::from_secs(3);
        g.start(id(1), &ranks(&[1, 2]), Some(1000), grace, t0);
        g.start(id(2), &ranks(&[3]), None, grace, t0);
        assert!(g.excused(WorkerRank(1), t0 + Duration::from_secs(3)));
        assert!(!g.excused(WorkerRank(1), t0 + Duration::from_secs(5)), "past walltime + grace");
        assert!(g.excused(WorkerRank(3), t0 + Duration::from_secs(100_000)), "no walltime: it cannot be judged");
        assert!(!g.excused(WorkerRank(4), t0), "not a member");
        let _ = g.answer(WorkerRank(1), done(1, "v"));
        assert!(!g.excused(WorkerRank(1), t0), "a member that answered is judged as any worker");
    }
}
