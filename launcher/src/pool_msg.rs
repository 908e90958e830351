//! Messages between a manager and its workers over the pool communicator.
//!
//! These stay inside one MPI job, so they carry no authentication; they use the
//! same bincode encoding as the wire and a tag per message kind.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use strand::task::{Try, TryResult};
use strand::wire::functions;

/// Manager -> worker: a batch of tries (`Vec<WorkerTry>`).
pub const TAG_TRIES: i32 = 11;
/// Worker -> manager: a batch of results (`Vec<TryResult>`).
pub const TAG_RESULTS: i32 = 12;
/// Manager -> worker: stop (empty body).
pub const TAG_STOP: i32 = 13;
/// Worker -> manager: alive (body: a [`WorkerHello`]).
pub const TAG_HEARTBEAT: i32 = 14;
/// Manager -> each member of an MPI function try: run it (body: a [`GroupTry`]).
pub const TAG_GROUP: i32 = 15;
/// The tag of `MPI_Comm_create_group` over a try's members (none of the other tags).
pub const TAG_CREATE_GROUP: i32 = 16;
/// Worker -> manager: resource samples (body: [`strand::sample::Samples`]).
pub const TAG_SAMPLES: i32 = 17;

/// A worker's rank in its pool communicator (the manager is rank 0).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerRank(pub i32);

impl fmt::Display for WorkerRank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rank-{}", self.0)
    }
}

/// A worker's heartbeat: it is alive, and where it runs, so a wide try can be given the
/// cores of every rank it reserves.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WorkerHello {
    /// The worker's node: the batch system's name for it (`SLURMD_NODENAME`), else the host name.
    pub host: String,
    /// The CPUs the rank is bound to; `None` when it could not read its affinity.
    pub cpus: Option<BTreeSet<u32>>,
}

/// A try as a manager hands it to a worker, with where its command must run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct WorkerTry {
    /// The try itself, as the interchange sent it (a wide one with its environment added).
    pub try_: Try,
    /// CPUs to bind the command to (a wide try's reserved cores); `None`: the worker's own binding.
    pub cpus: Option<BTreeSet<u32>>,
}

impl WorkerTry {
    /// A try that runs where its worker is bound.
    pub fn plain(try_: Try) -> WorkerTry {
        WorkerTry { try_, cpus: None }
    }
}

/// An MPI function try as each of its members gets it: the ranks that make its communicator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GroupTry {
    /// The try, as the interchange sent it.
    pub try_: Try,
    /// Its members, pool ranks in the order of their ranks in the try's communicator (the first
    /// is rank 0, whose result is the try's).
    pub members: Vec<WorkerRank>,
}

/// What a manager tells one worker.
#[derive(Clone, Debug, PartialEq)]
pub enum ToWorker {
    /// Run these (tag [`TAG_TRIES`]).
    Tries(Vec<WorkerTry>),
    /// Stop (tag [`TAG_STOP`]).
    Stop,
    /// Be a member of this MPI function try (tag [`TAG_GROUP`]).
    Group(Box<GroupTry>),
}

impl ToWorker {
    /// The MPI tag and body this message travels as to the worker whose link's sending end
    /// is `link`: the Python functions it keeps are named by key.
    pub fn encode_over(&self, link: &mut functions::Sent) -> (i32, Vec<u8>) {
        match self {
            ToWorker::Tries(tries) => (TAG_TRIES, encode_over(tries, link)),
            ToWorker::Stop => (TAG_STOP, Vec::new()),
            ToWorker::Group(g) => (TAG_GROUP, encode_over(g, link)),
        }
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Encode a pool message body (a Python function's bytes once in it, as on the wire).
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    match functions::encoding(|| bincode::serde::encode_to_vec(msg, config())) {
        Ok(v) => v,
        Err(e) => unreachable!("encoding plain data into memory failed: {e}"),
    }
}

/// Encode a pool message body over a worker's link (see [`ToWorker::encode_over`]).
fn encode_over<T: Serialize>(msg: &T, link: &mut functions::Sent) -> Vec<u8> {
    match functions::encoding_over(link, || bincode::serde::encode_to_vec(msg, config())) {
        Ok(v) => v,
        Err(e) => unreachable!("encoding plain data into memory failed: {e}"),
    }
}

/// Decode a pool message body; `None` if it does not decode (counted by the caller).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    functions::decoding(|| bincode::serde::decode_from_slice(bytes, config())).ok().map(|(v, _)| v)
}

/// Decode a pool message body from the manager, over the link whose receiving end is `link`;
/// also the keys of Python functions it named that `link` does not hold.
pub fn decode_over<T: DeserializeOwned>(
    bytes: &[u8],
    link: &mut functions::Held,
) -> Option<(T, Vec<functions::FunctionKey>)> {
    let (v, missing) = functions::decoding_over(link, || bincode::serde::decode_from_slice(bytes, config()));
    v.ok().map(|(v, _)| (v, missing))
}

/// Encode results for the manager.
pub fn encode_results(results: &[TryResult]) -> Vec<u8> {
    encode(&results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellos_and_tries_round_trip() {
        let hello = WorkerHello { host: "node7".into(), cpus: Some([0, 1, 2, 3, 8].into()) };
        assert_eq!(decode::<WorkerHello>(&encode(&hello)), Some(hello));
        let unbound = WorkerHello { host: "node7".into(), cpus: None };
        assert_eq!(decode::<WorkerHello>(&encode(&unbound)), Some(unbound));
        // Garbage is refused, not misread.
        assert_eq!(decode::<WorkerHello>(b"node7\n0-3"), None);
        let link = &mut functions::Sent::default();
        assert_eq!(ToWorker::Stop.encode_over(link), (TAG_STOP, vec![]));
        let (tag, body) = ToWorker::Tries(vec![]).encode_over(link);
        assert_eq!((tag, decode::<Vec<WorkerTry>>(&body)), (TAG_TRIES, Some(vec![])));
    }

    /// A batch of tries of one Python function carries its bytes once, as a wire frame does.
    #[test]
    fn a_batch_carries_a_python_function_once() {
        use strand::task::{App, ClientId, PythonCall, PythonFunction, Resources, TaskId, TaskSpec, TryId};
        let f = PythonFunction::new(vec![9u8; 20_000]);
        let tries: Vec<WorkerTry> = (0..50)
            .map(|i| {
                let app = App::Python(PythonCall { interpreter: "python3".into(), function: f.clone(), args: vec![1] });
                let spec =
                    TaskSpec { app, walltime_ms: None, priority: 0, outputs: vec![], resources: Resources::default() };
                WorkerTry::plain(Try { id: TryId { client: ClientId(1), task: TaskId(i), attempt: 0 }, spec })
            })
            .collect();
        let (_, body) = ToWorker::Tries(tries.clone()).encode_over(&mut functions::Sent::default());
        assert!(body.len() < 2 * 20_000, "{} bytes", body.len());
        assert_eq!(decode::<Vec<WorkerTry>>(&body), Some(tries));
    }

    /// Over a worker's link the function travels in the first message only; the worker
    /// resolves later ones from what it keeps, and reports a function it does not hold.
    #[test]
    fn a_worker_keeps_a_python_function_across_messages() {
        use strand::task::{App, ClientId, PythonCall, PythonFunction, Resources, TaskId, TaskSpec, TryId};
        let f = PythonFunction::new(vec![4u8; 20_000]);
        let one = |i| {
            let app = App::Python(PythonCall { interpreter: "python3".into(), function: f.clone(), args: vec![1] });
            let spec =
                TaskSpec { app, walltime_ms: None, priority: 0, outputs: vec![], resources: Resources::default() };
            ToWorker::Tries(vec![WorkerTry::plain(Try {
                id: TryId { client: ClientId(1), task: TaskId(i), attempt: 0 },
                spec,
            })])
        };
        let (mut sent, mut held) = (functions::Sent::default(), functions::Held::default());
        let (_, first) = one(0).encode_over(&mut sent);
        let (_, second) = one(1).encode_over(&mut sent);
        assert!(first.len() > 20_000 && second.len() < 1_000, "{} then {} bytes", first.len(), second.len());
        let (_, missing) = decode_over::<Vec<WorkerTry>>(&first, &mut held).expect("first");
        assert!(missing.is_empty());
        let (b, missing) = decode_over::<Vec<WorkerTry>>(&second, &mut held).expect("second");
        assert!(missing.is_empty());
        let ToWorker::Tries(want) = one(1) else { unreachable!() };
        assert_eq!(b, want);
        let (_, missing) = decode_over::<Vec<WorkerTry>>(&second, &mut functions::Held::default()).expect("decodes");
        assert_eq!(missing, vec![f.key], "a fresh worker does not hold it");
    }
}
