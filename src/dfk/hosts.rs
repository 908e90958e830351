//! Where each manager runs, as the interchange reports it. The DFK learns a manager's host
//! from the interchange's status the first time a result of that manager comes in, so that a
//! driver can say where each task ran (GNU parallel's joblog `Host`) without a host name on
//! every result.

use crate::task::{ManagerId, TryResult};
use crate::wire::ManagerStatus;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The manager hosts a DFK has learned; cloneable, read from any thread.
#[derive(Clone, Default)]
pub struct ManagerHosts(Arc<Known>);

#[derive(Default)]
struct Known {
    hosts: Mutex<HashMap<ManagerId, String>>,
    /// Bumped whenever a host is learned, so a reader can tell whether to look again.
    generation: AtomicU64,
}

impl ManagerHosts {
    /// The host of manager `id`, once learned.
    pub fn get(&self, id: ManagerId) -> Option<String> {
        self.0.hosts.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }

    /// How many times hosts were learned so far: unchanged, nothing new to look up.
    pub fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::Acquire)
    }

    /// Take the hosts of a status report.
    pub(crate) fn learn(&self, managers: &[ManagerStatus]) {
        let mut known = self.0.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let before = known.len();
        for m in managers {
            known.entry(m.id).or_insert_with(|| m.host.clone());
        }
        if known.len() != before {
            self.0.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn knows(&self, id: ManagerId) -> bool {
        self.0.hosts.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&id)
    }
}

/// Least time between two status requests made to learn hosts.
const ASK_EVERY: Duration = Duration::from_millis(50);

/// When to ask the interchange for its status: once for each manager whose results come in
/// before its host is known (a manager gone before the answer is not asked for again).
/// `asked` holds every manager seen, known or not.
#[derive(Default)]
pub(crate) struct Asking {
    asked: HashSet<ManagerId>,
    want: bool,
    last: Option<Instant>,
}

impl Asking {
    /// Results came in: note the managers whose hosts are not known yet.
    pub(crate) fn saw(&mut self, hosts: &ManagerHosts, results: &[TryResult]) {
        for r in results {
            let m = r.ran.manager;
            // Each manager is looked at once: the hot path of results takes no lock after.
            if m.0 != 0 && self.asked.insert(m) && !hosts.knows(m) {
                self.want = true;
            }
        }
    }

    /// Whether to send a status request now.
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        if !self.want || self.last.is_some_and(|t| now.saturating_duration_since(t) < ASK_EVERY) {
            return false;
        }
        self.want = false;
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockId;
    use crate::task::{ClientId, Outcome, Ran, TaskId, TryId};
    use crate::wire::ManagerMode;

    fn result_of(manager: u64) -> TryResult {
        let id = TryId { client: ClientId(1), task: TaskId(manager), attempt: 0 };
        TryResult { id, outcome: Outcome::Done(vec![]), ran: Ran { manager: ManagerId(manager), ..Ran::default() } }
    }

    fn status(id: u64, host: &str) -> ManagerStatus {
        ManagerStatus {
            id: ManagerId(id),
            host: host.into(),
            block: BlockId("b-0".into()),
            slots: 1,
            in_flight: 0,
            mode: ManagerMode::Active,
            idle_ms: 0,
        }
    }

    #[test]
    fn each_unknown_manager_is_asked_for_once_and_learned() {
        let hosts = ManagerHosts::default();
        let mut asking = Asking::default();
        let t0 = Instant::now();
        asking.saw(&hosts, &[result_of(0)]);
        assert!(!asking.due(t0), "no manager ran it: nothing to ask");
        asking.saw(&hosts, &[result_of(7), result_of(7)]);
        assert!(asking.due(t0));
        assert!(!asking.due(t0), "asked once");
        asking.saw(&hosts, &[result_of(7)]);
        assert!(!asking.due(t0 + ASK_EVERY), "already asked for 7");
        asking.saw(&hosts, &[result_of(8)]);
        assert!(!asking.due(t0 + ASK_EVERY / 2), "not twice within ASK_EVERY");
        assert!(asking.due(t0 + ASK_EVERY));
        hosts.learn(&[status(7, "nid001"), status(8, "nid002")]);
        assert_eq!(hosts.get(ManagerId(7)).as_deref(), Some("nid001"));
        assert_eq!(hosts.get(ManagerId(9)), None);
    }
}
