//! The one codec: versioned, authenticated frames carrying bincode-encoded messages.
//!
//! Every ZeroMQ frame Strand sends is
//!
//! ```text
//! magic "STRD" | version u16 LE | channel u8 | reserved u8 | run id u64 LE | seq u64 LE | body | mac [32]
//! ```
//!
//! where `mac` is BLAKE3 in keyed mode (a MAC) over everything before it, keyed
//! with the run's secret from the connection file. The vendored libzmq has no
//! CURVE, so this is what stops a stray or hostile peer from injecting tasks or
//! results (in the spirit of Jupyter's signed messages). A frame that fails any
//! check is dropped and counted by the receiver; decoding never panics.

mod batch;
pub mod functions;
pub use batch::{encoded_len, split_by_size, TooLarge, BATCH_OVERHEAD};

use crate::block::BlockId;
use crate::sample::Samples;
use crate::task::{ManagerId, Try, TryId, TryResult};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Protocol version; bump on any incompatible change to a message below.
pub const PROTOCOL_VERSION: u16 = 4;
/// Bytes of header before the body.
pub const HEADER_LEN: usize = 4 + 2 + 1 + 1 + 8 + 8;
/// Bytes of MAC after the body.
pub const MAC_LEN: usize = 32;
/// Default upper bound on one frame (64 MiB): larger frames are dropped unread.
pub const DEFAULT_MAX_FRAME: usize = 64 << 20;
const MAGIC: &[u8; 4] = b"STRD";

/// Which conversation a frame belongs to, so a frame of one kind is never decoded as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Channel {
    /// Client (DFK, `strand submit`) to interchange.
    FromClient = 1,
    /// Interchange to client.
    ToClient = 2,
    /// Manager to interchange.
    FromManager = 3,
    /// Interchange to manager.
    ToManager = 4,
}

/// A message type with a fixed channel.
pub trait Message: Serialize + DeserializeOwned {
    /// The channel frames of this type travel on.
    const CHANNEL: Channel;
}

/// What a client sends to the interchange.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum ClientMsg {
    /// First message of a connection; the interchange answers with `Welcome`.
    Hello,
    /// A batch of tries to queue.
    Submit(Vec<Try>),
    /// Liveness; any message counts, this one is for idle clients.
    Heartbeat,
    /// Ask for the interchange's status.
    Status,
    /// Ask the interchange to stop its managers and exit.
    Shutdown,
    /// Put a manager in a mode (hold, release, drain); answered by `Ack`.
    SetMode {
        /// The manager.
        manager: ManagerId,
        /// The new mode.
        mode: ManagerMode,
    },
    /// The client is leaving; its queued tries may be dropped.
    Bye,
    /// Take back this client's tries that no manager holds yet; answered by `Withdrawn`.
    Withdraw,
}

impl Message for ClientMsg {
    const CHANNEL: Channel = Channel::FromClient;
}

/// A snapshot of the interchange for `strand status` and for clients.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct StatusReport {
    /// Tries waiting for a manager.
    pub queued: u64,
    /// Tries held by managers.
    pub in_flight: u64,
    /// Connected managers.
    pub managers: Vec<ManagerStatus>,
    /// Frames dropped, by reason.
    pub dropped: DropCounts,
}

/// Whether a manager gets new tries.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagerMode {
    /// Gets tries as capacity allows.
    Active,
    /// Held by a client: gets no new tries, keeps what it has; can be released.
    Held,
    /// Finishing what it holds, then stopping (announced by the manager or asked by a client).
    Draining,
}

/// One connected manager as `strand status` shows it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ManagerStatus {
    /// Its id.
    pub id: ManagerId,
    /// Where it runs.
    pub host: String,
    /// Its block.
    pub block: BlockId,
    /// Task slots it advertised.
    pub slots: u32,
    /// Tries it holds now.
    pub in_flight: u32,
    /// Whether it gets new tries.
    pub mode: ManagerMode,
    /// Milliseconds since it last held no task, or since it was last busy.
    pub idle_ms: u64,
}

/// Frames and results a receiver dropped, by reason (never a crash).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropCounts {
    /// Shorter than a header plus MAC.
    pub truncated: u64,
    /// Wrong magic or undecodable body.
    pub malformed: u64,
    /// Another protocol version.
    pub wrong_version: u64,
    /// Another run's frame, or a MAC that does not verify.
    pub unauthenticated: u64,
    /// Larger than the frame limit.
    pub oversized: u64,
    /// Well-formed but on the wrong channel, or from an unregistered peer.
    pub unexpected: u64,
    /// Results for a try the sender does not own (stale or duplicate).
    pub stale_results: u64,
    /// Authentic frames whose sequence number was not above the sender's last (replays).
    #[serde(default)]
    pub replayed: u64,
}

/// What the interchange sends to a client.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum ToClientMsg {
    /// Answer to `Hello`.
    Welcome {
        /// Managers connected now.
        managers: u32,
        /// Random per interchange process: a change means it restarted and lost what it held.
        incarnation: u64,
    },
    /// Results of the client's tries.
    Results(Vec<TryResult>),
    /// The queue is full: these tries were not accepted; resubmit them later.
    Refused {
        /// Tries not queued.
        tries: Vec<TryId>,
        /// Queue limit of the interchange.
        limit: u64,
    },
    /// Answer to `Status`.
    Status(StatusReport),
    /// Answer to `Heartbeat`.
    Heartbeat {
        /// As in `Welcome`.
        incarnation: u64,
    },
    /// Answer to a command: whether it was done, and what happened.
    Ack {
        /// Done or not.
        ok: bool,
        /// What happened, for people.
        message: String,
    },
    /// The interchange is shutting down.
    Stopping,
    /// Answer to `Withdraw` (in batches): these tries were taken out of the queue and will not run.
    Withdrawn(Vec<TryId>),
    /// What the client's running tries, and the nodes that run them, used lately.
    Samples(Samples),
    /// These tries were not queued: each named by key a Python function the interchange does
    /// not hold (it restarted, or a frame that carried it was lost). Send them again, every
    /// function whole ([`crate::client::Client::forget_functions`]); no try is counted.
    NotHeld(Vec<TryId>),
}

impl Message for ToClientMsg {
    const CHANNEL: Channel = Channel::ToClient;
}

/// What a manager says about itself when it registers.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The manager's self-chosen id (random; also its ZeroMQ routing id).
    pub manager: ManagerId,
    /// The block it belongs to.
    pub block: BlockId,
    /// Host name of the manager's node.
    pub host: String,
    /// Ranks in its pool, the manager included.
    pub pool_size: u32,
    /// Tries it can run at once.
    pub slots: u32,
    /// Extra tries it wants queued locally so workers never wait a round trip.
    pub prefetch: u32,
    /// `strand-launcher` version.
    pub launcher_version: String,
    /// MPI library version string.
    pub mpi_version: String,
}

/// What a manager sends to the interchange.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum ManagerMsg {
    /// First message; answered by `Registered`.
    Register(Registration),
    /// Results of finished tries.
    Results(Vec<TryResult>),
    /// Liveness.
    Heartbeat,
    /// Finishing what it holds (e.g. its block's walltime is near): send nothing more.
    Draining,
    /// The pool is stopping: send nothing more.
    Goodbye,
    /// Its capacity changed (a worker rank was lost): what it can run at once and what it
    /// wants queued beyond that, replacing the numbers it registered with.
    Capacity {
        /// Tries it can run at once.
        slots: u32,
        /// Extra tries it wants queued.
        prefetch: u32,
    },
    /// What its running tries and nodes used since the last such message (sent at the
    /// launcher's `--resource-interval`).
    Samples(Samples),
    /// Tries handed back unrun: each names by key a Python function this manager does not
    /// hold (see [`functions`]); they come back with empty function bytes, for the
    /// interchange to fill in and queue again. Not a try's end: nothing is counted against it.
    NotHeld(Vec<Try>),
}

impl Message for ManagerMsg {
    const CHANNEL: Channel = Channel::FromManager;
}

/// What the interchange sends to a manager.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum ToManagerMsg {
    /// Registration accepted; heartbeat settings to use.
    Registered {
        /// Seconds between heartbeats.
        heartbeat_period_ms: u64,
        /// After this long without hearing from the interchange, stop the pool.
        heartbeat_threshold_ms: u64,
    },
    /// Tries to run.
    Tasks(Vec<Try>),
    /// Liveness answer.
    Heartbeat,
    /// The interchange does not know this manager (it restarted, or declared the manager
    /// lost): register again; tries held from before are no longer owned by anyone.
    Reregister,
    /// Stop the pool and exit.
    Stop,
}

impl Message for ToManagerMsg {
    const CHANNEL: Channel = Channel::ToManager;
}

/// Per-sender sequence numbers: each sender numbers its frames 1, 2, 3 ...; a frame that
/// does not number above the last one accepted from the same sender is a replay.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    last: std::collections::HashMap<u64, u64>,
}

impl ReplayGuard {
    /// Accept `seq` from `peer` if it is newer than anything seen from it.
    pub fn accept(&mut self, peer: u64, seq: u64) -> bool {
        let last = self.last.entry(peer).or_insert(0);
        if seq <= *last {
            return false;
        }
        *last = seq;
        true
    }

    /// Forget a peer that has left.
    pub fn forget(&mut self, peer: u64) {
        self.last.remove(&peer);
    }
}

/// The parsed header of a frame that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Sender's sequence number on this connection.
    pub seq: u64,
}

/// Why a frame was dropped.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than a header plus MAC.
    #[error("frame of {0} bytes is shorter than header and MAC")]
    Truncated(usize),
    /// Larger than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    Oversized {
        /// Frame length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Wrong magic bytes.
    #[error("not a Strand frame (bad magic)")]
    BadMagic,
    /// Another protocol version.
    #[error("protocol version {got}, expected {want}")]
    WrongVersion {
        /// Version in the frame.
        got: u16,
        /// Ours.
        want: u16,
    },
    /// MAC did not verify, or another run's frame.
    #[error("frame not authenticated with this run's key")]
    Unauthenticated,
    /// Right key, wrong channel.
    #[error("frame for channel {got}, expected {want}")]
    WrongChannel {
        /// Channel byte in the frame.
        got: u8,
        /// Expected channel.
        want: u8,
    },
    /// Body did not decode.
    #[error("undecodable body: {0}")]
    Malformed(String),
}

impl std::fmt::Display for DropCounts {
    /// The reasons that counted, as `truncated 1, replayed 2` (`none` when nothing was dropped).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let said: Vec<String> =
            self.by_reason().iter().filter(|(_, n)| *n > 0).map(|(r, n)| format!("{r} {n}")).collect();
        if said.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&said.join(", "))
        }
    }
}

impl DropCounts {
    /// Count one dropped frame under its reason.
    pub fn count(&mut self, e: &WireError) {
        match e {
            WireError::Truncated(_) => self.truncated += 1,
            WireError::Oversized { .. } => self.oversized += 1,
            WireError::BadMagic | WireError::Malformed(_) => self.malformed += 1,
            WireError::WrongVersion { .. } => self.wrong_version += 1,
            WireError::Unauthenticated => self.unauthenticated += 1,
            WireError::WrongChannel { .. } => self.unexpected += 1,
        }
    }

    /// Each count with its reason's name, in the order warnings list them.
    pub fn by_reason(&self) -> [(&'static str, u64); 8] {
        [
            ("truncated", self.truncated),
            ("malformed", self.malformed),
            ("wrong version", self.wrong_version),
            ("unauthenticated", self.unauthenticated),
            ("oversized", self.oversized),
            ("unexpected", self.unexpected),
            ("stale results", self.stale_results),
            ("replayed", self.replayed),
        ]
    }

    /// Total dropped frames and results.
    pub fn total(&self) -> u64 {
        self.by_reason().iter().map(|(_, n)| n).sum()
    }
}

/// The run's secret key (32 bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct Key(pub [u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)") // never print the secret
    }
}

impl Key {
    /// A fresh random key from the OS.
    pub fn generate() -> std::io::Result<Key> {
        let mut k = [0u8; 32];
        getrandom::getrandom(&mut k)?;
        Ok(Key(k))
    }

    /// Hex form for the connection file.
    pub fn to_hex(&self) -> String {
        crate::text::hex(&self.0)
    }

    /// Parse the hex form; `None` unless it is exactly 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Key> {
        let s = s.as_bytes();
        if s.len() != 64 {
            return None;
        }
        let mut k = [0u8; 32];
        for (i, pair) in s.chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            k[i] = (hi * 16 + lo) as u8;
        }
        Some(Key(k))
    }
}

/// A random 64-bit id from the OS, for run, client and manager ids.
pub fn random_id() -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Encodes and checks frames for one run.
#[derive(Clone, Debug)]
pub struct Codec {
    key: Key,
    run_id: u64,
    max_frame: usize,
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Most memory that decoding one message may claim (string and byte contents, vector capacity).
/// Without a limit bincode allocates whatever length a frame claims before reading it, so one
/// authentic but bogus length (2^60 bytes of string) would abort the receiver.
const DECODE_LIMIT: usize = 4 * DEFAULT_MAX_FRAME;

fn bincode_decode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

impl Codec {
    /// A codec for the run with this key and id.
    pub fn new(key: Key, run_id: u64) -> Codec {
        Codec { key, run_id, max_frame: DEFAULT_MAX_FRAME }
    }

    /// Set the largest frame accepted and produced.
    pub fn with_max_frame(mut self, max: usize) -> Codec {
        self.max_frame = max;
        self
    }

    /// Largest frame accepted.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Encode `msg` as one authenticated frame with sequence number `seq`.
    pub fn encode<M: Message>(&self, msg: &M, seq: u64) -> Vec<u8> {
        self.seal::<M>(seq, |out| {
            functions::encoding(|| bincode::serde::encode_into_std_write(msg, out, bincode_config()))
        })
    }

    /// Encode `msg` as one frame of the link whose sending end is `link`: the Python functions
    /// its receiver keeps are named by key.
    pub fn encode_over<M: Message>(&self, msg: &M, seq: u64, link: &mut functions::Sent) -> Vec<u8> {
        self.seal::<M>(seq, |out| {
            functions::encoding_over(link, || bincode::serde::encode_into_std_write(msg, out, bincode_config()))
        })
    }

    /// Header, the body `write` appends, MAC.
    fn seal<M: Message>(
        &self,
        seq: u64,
        write: impl FnOnce(&mut Vec<u8>) -> Result<usize, bincode::error::EncodeError>,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        out.push(M::CHANNEL as u8);
        out.push(0);
        out.extend_from_slice(&self.run_id.to_le_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
        // Encoding into a Vec cannot fail for our own plain-data messages.
        if let Err(e) = write(&mut out) {
            unreachable!("encoding a Strand message into memory failed: {e}");
        }
        let mac = blake3::keyed_hash(&self.key.0, &out);
        out.extend_from_slice(mac.as_bytes());
        out
    }

    /// Check and decode one frame. Cheap checks come first so garbage costs little.
    pub fn decode<M: Message>(&self, frame: &[u8]) -> Result<(Header, M), WireError> {
        self.open(frame, |body| functions::decoding(|| Self::body::<M>(body)))
    }

    /// Check and decode one frame of the link whose receiving end is `link`. Also returns the
    /// keys of Python functions the frame named that `link` does not hold: tries calling them
    /// decoded with empty function bytes and go back unrun ([`ManagerMsg::NotHeld`]).
    pub fn decode_over<M: Message>(
        &self,
        frame: &[u8],
        link: &mut functions::Held,
    ) -> Result<(Header, M, Vec<functions::FunctionKey>), WireError> {
        let mut missing = vec![];
        let (h, msg) = self.open(frame, |body| {
            let (msg, m) = functions::decoding_over(link, || Self::body::<M>(body));
            missing = m;
            msg
        })?;
        Ok((h, msg, missing))
    }

    /// The checks of one frame, then `decode` of its body.
    fn open<M: Message>(
        &self,
        frame: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<M, WireError>,
    ) -> Result<(Header, M), WireError> {
        if frame.len() > self.max_frame {
            return Err(WireError::Oversized { len: frame.len(), max: self.max_frame });
        }
        if frame.len() < HEADER_LEN + MAC_LEN {
            return Err(WireError::Truncated(frame.len()));
        }
        if &frame[0..4] != MAGIC {
            return Err(WireError::BadMagic);
        }
        let version = u16::from_le_bytes([frame[4], frame[5]]);
        if version != PROTOCOL_VERSION {
            return Err(WireError::WrongVersion { got: version, want: PROTOCOL_VERSION });
        }
        let (signed, mac) = frame.split_at(frame.len() - MAC_LEN);
        let expected = blake3::keyed_hash(&self.key.0, signed);
        // blake3::Hash equality is constant-time.
        if blake3::Hash::from_slice(mac).ok() != Some(expected) {
            return Err(WireError::Unauthenticated);
        }
        let run_id = u64::from_le_bytes(read8(&frame[8..16]));
        if run_id != self.run_id {
            return Err(WireError::Unauthenticated);
        }
        if frame[6] != M::CHANNEL as u8 {
            return Err(WireError::WrongChannel { got: frame[6], want: M::CHANNEL as u8 });
        }
        let seq = u64::from_le_bytes(read8(&frame[16..24]));
        let msg = decode(&signed[HEADER_LEN..])?;
        Ok((Header { seq }, msg))
    }

    /// A message body, every byte of it.
    fn body<M: Message>(body: &[u8]) -> Result<M, WireError> {
        let (msg, used) = bincode::serde::decode_from_slice::<M, _>(body, bincode_decode_config())
            .map_err(|e| WireError::Malformed(e.to_string()))?;
        if used != body.len() {
            return Err(WireError::Malformed(format!("{} trailing bytes after the message", body.len() - used)));
        }
        Ok(msg)
    }
}

fn read8(b: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    a
}

#[cfg(test)]
mod tests;
