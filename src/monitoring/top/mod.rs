//! `strand top`'s model: what the live view shows, as plain data computed from the
//! interchange's status and the run database. [`ui::draw`] draws it; keys become
//! [`Action`]s. Nothing here touches a terminal, so it is tested without one.

pub mod ui;

use crate::wire::{ManagerMode, ManagerStatus, StatusReport};
use rusqlite::{params, Connection};
use std::collections::BTreeMap;

/// Seconds of history in the rate chart.
pub const RATE_SECONDS: usize = 60;

/// One manager's line.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagerRow {
    /// As `strand status` prints it.
    pub id: crate::task::ManagerId,
    /// Its host.
    pub host: String,
    /// Its block.
    pub block: String,
    /// Task slots.
    pub slots: u32,
    /// Slots running a try (at most `slots`).
    pub busy: u32,
    /// Tries it holds beyond its slots (prefetched).
    pub queued: u32,
    /// Active, held or draining.
    pub mode: ManagerMode,
    /// Seconds idle (or busy) as the interchange counts it.
    pub idle_s: f64,
}

/// One block's line.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockRow {
    /// Its id.
    pub block: String,
    /// Its state from the block log (`connected`, `submitted`, `ended` ...), or `connected`
    /// when only its managers are known.
    pub state: String,
    /// Managers connected now.
    pub managers: u32,
    /// Their slots.
    pub slots: u32,
}

/// Everything one frame shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct View {
    /// Whether the interchange answered this time (else the rest is from the database only).
    pub interchange: bool,
    /// Tries waiting at the interchange.
    pub queued: u64,
    /// Tries held by managers.
    pub in_flight: u64,
    /// Every connected manager.
    pub managers: Vec<ManagerRow>,
    /// Blocks.
    pub blocks: Vec<BlockRow>,
    /// Tries ended in each of the last [`RATE_SECONDS`] seconds, oldest first (from the database).
    pub rates: Vec<u64>,
    /// Tasks by state in the latest run (from the database).
    pub tasks: BTreeMap<String, u64>,
    /// Failed tries by kind, most first (from the database).
    pub failures: Vec<(String, u64)>,
    /// Whether a run database was read.
    pub database: bool,
}

impl View {
    /// Slots of all managers, and how many are busy.
    pub fn slots(&self) -> (u32, u32) {
        self.managers.iter().fold((0, 0), |(s, b), m| (s + m.slots, b + m.busy))
    }
}

/// The interchange's part of a frame.
pub fn from_status(view: &mut View, report: &StatusReport) {
    view.interchange = true;
    view.queued = report.queued;
    view.in_flight = report.in_flight;
    view.managers = report.managers.iter().map(row).collect();
    view.managers.sort_by(|a, b| (&a.block, &a.host, a.id).cmp(&(&b.block, &b.host, b.id)));
    let mut blocks: BTreeMap<String, BlockRow> = BTreeMap::new();
    for m in &view.managers {
        let b = blocks.entry(m.block.clone()).or_insert_with(|| BlockRow {
            block: m.block.clone(),
            state: "connected".into(),
            managers: 0,
            slots: 0,
        });
        b.managers += 1;
        b.slots += m.slots;
    }
    // Blocks the database knows keep their state; connected ones gain their managers.
    for b in view.blocks.drain(..) {
        blocks.entry(b.block.clone()).and_modify(|x| x.state = b.state.clone()).or_insert(BlockRow {
            managers: 0,
            slots: 0,
            ..b
        });
    }
    view.blocks = blocks.into_values().collect();
}

fn row(m: &ManagerStatus) -> ManagerRow {
    ManagerRow {
        id: m.id,
        host: m.host.clone(),
        block: m.block.0.clone(),
        slots: m.slots,
        busy: m.in_flight.min(m.slots),
        queued: m.in_flight.saturating_sub(m.slots),
        mode: m.mode,
        idle_s: m.idle_ms as f64 / 1000.0,
    }
}

/// The database's part of a frame, for the latest run, `now_us` being the current time.
pub fn from_database(view: &mut View, c: &Connection, now_us: u64) -> rusqlite::Result<()> {
    view.database = true;
    let Some(run) = super::db::latest_run(c)? else { return Ok(()) };
    let mut st = c.prepare_cached("SELECT state, count(*) FROM tasks WHERE run = ?1 GROUP BY state")?;
    view.tasks =
        st.query_map([run], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?.collect::<Result<_, _>>()?;
    let mut st = c.prepare_cached(
        "SELECT outcome, count(*) AS n FROM tries WHERE run = ?1 AND outcome <> 'done' GROUP BY outcome ORDER BY n DESC",
    )?;
    view.failures =
        st.query_map([run], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?.collect::<Result<_, _>>()?;
    let now_s = (now_us / 1_000_000) as i64;
    let from = now_s - RATE_SECONDS as i64 + 1;
    let mut rates = vec![0u64; RATE_SECONDS];
    let mut st = c.prepare_cached(
        "SELECT ended_us / 1000000 AS s, count(*) FROM tries WHERE run = ?1 AND ended_us >= ?2 GROUP BY s",
    )?;
    for r in st.query_map(params![run, from * 1_000_000], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
        let (s, n) = r?;
        if let Some(slot) = usize::try_from(s - from).ok().and_then(|i| rates.get_mut(i)) {
            *slot = n as u64;
        }
    }
    view.rates = rates;
    let mut st = c.prepare_cached("SELECT block, state FROM blocks ORDER BY block")?;
    view.blocks = st
        .query_map([], |r| Ok(BlockRow { block: r.get(0)?, state: r.get(1)?, managers: 0, slots: 0 }))?
        .collect::<Result<_, _>>()?;
    Ok(())
}

/// What a key asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Leave.
    Quit,
    /// Select the manager above or below.
    Move(i32),
    /// Put the selected manager in a mode.
    Set(ManagerMode),
    /// Nothing.
    None,
}

/// The action of a key (`q`/Esc quit, arrows or `j`/`k` select, `h` hold, `r` release, `d` drain).
pub fn action_of(key: char) -> Action {
    match key {
        'q' | '\u{1b}' => Action::Quit,
        'j' => Action::Move(1),
        'k' => Action::Move(-1),
        'h' => Action::Set(ManagerMode::Held),
        'r' => Action::Set(ManagerMode::Active),
        'd' => Action::Set(ManagerMode::Draining),
        _ => Action::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockId;
    use crate::task::ManagerId;

    fn manager(id: u64, block: &str, slots: u32, in_flight: u32) -> ManagerStatus {
        ManagerStatus {
            id: ManagerId(id),
            host: "n1".into(),
            block: BlockId(block.into()),
            slots,
            in_flight,
            mode: ManagerMode::Active,
            idle_ms: 0,
        }
    }

    #[test]
    fn status_fills_managers_and_blocks() {
        let mut v = View {
            blocks: vec![BlockRow { block: "b2".into(), state: "submitted".into(), managers: 0, slots: 0 }],
            ..View::default()
        };
        let report = StatusReport {
            queued: 5,
            in_flight: 7,
            managers: vec![manager(1, "b1", 4, 6), manager(2, "b1", 4, 1)],
            ..StatusReport::default()
        };
        from_status(&mut v, &report);
        assert_eq!(v.slots(), (8, 5));
        assert_eq!((v.managers[0].busy, v.managers[0].queued), (4, 2));
        assert_eq!(v.blocks.len(), 2);
        assert_eq!((v.blocks[0].block.as_str(), v.blocks[0].managers, v.blocks[0].slots), ("b1", 2, 8));
        assert_eq!((v.blocks[1].block.as_str(), v.blocks[1].state.as_str()), ("b2", "submitted"));
    }

    #[test]
    fn keys() {
        assert_eq!(action_of('q'), Action::Quit);
        assert_eq!(action_of('h'), Action::Set(ManagerMode::Held));
        assert_eq!(action_of('x'), Action::None);
    }
}
