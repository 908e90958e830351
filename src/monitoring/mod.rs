//! What a run records and shows: the task event log (`events.jsonl`), the progress bar, the
//! run database (`monitoring.db`: `record` is what the DFK tells it, `db` writes it) and the
//! report drawn from it (`report`), the live view's model and drawing (`top`); with
//! [`crate::block`], the block log.
//!
//! Everything here is written off the hot path: the DFK's I/O thread appends events in
//! batches, and readers (`strand status RUN_DIR`) never slow the run.

pub mod db;
pub mod events;
pub mod progress;
pub mod record;
pub mod report;
pub mod top;
