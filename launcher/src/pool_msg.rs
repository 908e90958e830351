//! Messages between a manager and its workers over the pool communicator.
//!
//! These stay inside one MPI job, so they carry no authentication; they use the
//! same bincode encoding as the wire and a tag per message kind.

use serde::de::DeserializeOwned;
use serde::Serialize;
use strand::task::{Try, TryResult};

/// Manager -> worker: a batch of tries (`Vec<Try>`).
pub const TAG_TRIES: i32 = 11;
/// Worker -> manager: a batch of results (`Vec<TryResult>`).
pub const TAG_RESULTS: i32 = 12;
/// Manager -> worker: stop (empty body).
pub const TAG_STOP: i32 = 13;
/// Worker -> manager: alive (body: the worker's host name, then `\n` and its cpu list, UTF-8).
pub const TAG_HEARTBEAT: i32 = 14;

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Encode a pool message body.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    match bincode::serde::encode_to_vec(msg, config()) {
        Ok(v) => v,
        Err(e) => unreachable!("encoding plain data into memory failed: {e}"),
    }
}

/// Decode a pool message body; `None` if it does not decode (counted by the caller).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    bincode::serde::decode_from_slice(bytes, config()).ok().map(|(v, _)| v)
}

/// Encode tries for a worker.
pub fn encode_tries(tries: &[Try]) -> Vec<u8> {
    encode(&tries)
}

/// Encode results for the manager.
pub fn encode_results(results: &[TryResult]) -> Vec<u8> {
    encode(&results)
}
