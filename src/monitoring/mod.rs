//! What a run records and shows: the task event log (`events.jsonl`), the progress bar, and
//! (with [`crate::block`]) the block log. The run database and the live view go here too.
//!
//! Everything here is written off the hot path: the DFK's I/O thread appends events in
//! batches, and readers (`strand status RUN_DIR`) never slow the run.

pub mod events;
pub mod progress;
