//! A client's connection to the interchange: one DEALER socket and the run's codec.

use crate::connection::{ConnectionInfo, Side};
use crate::task::{ClientId, Try, TryId};
use crate::wire::{
    functions, random_id, split_by_size, ClientMsg, Codec, DropCounts, StatusReport, ToClientMsg, TooLarge,
};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Why talking to the interchange failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// ZeroMQ failed.
    #[error("{what}: {source}")]
    Zmq {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: zmq::Error,
    },
    /// No answer in time.
    #[error("no answer from the interchange at {endpoint} within {secs} s (is `strand interchange` running?)")]
    Timeout {
        /// Where we asked.
        endpoint: String,
        /// How long we waited.
        secs: u64,
    },
    /// The OS gave no randomness for a client id.
    #[error("no random client id: {0}")]
    Random(std::io::Error),
}

fn zerr(what: &'static str) -> impl FnOnce(zmq::Error) -> ClientError {
    move |source| ClientError::Zmq { what, source }
}

/// One connection to the interchange.
pub struct Client {
    id: ClientId,
    socket: zmq::Socket,
    codec: Codec,
    endpoint: String,
    seq: u64,
    /// Highest sequence number accepted from the interchange (replays are dropped).
    last_seen_seq: u64,
    drops: DropCounts,
    /// The sending end of the link to the interchange: the Python functions it keeps.
    link: functions::Sent,
    _ctx: zmq::Context,
}

/// What [`Client::submit`] did not send.
#[derive(Debug)]
pub struct Unsent {
    /// Tries that alone encode larger than a frame may be: no send can ever carry them.
    pub too_large: Vec<TooLarge<Try>>,
    /// Tries not sent because a send failed: queue them again.
    pub failed: Vec<TryId>,
}

impl Client {
    /// Connect (ZeroMQ connects lazily; nothing is known about the interchange until it answers).
    pub fn connect(conn: &ConnectionInfo) -> Result<Client, ClientError> {
        let ctx = zmq::Context::new();
        let id = ClientId(random_id().map_err(ClientError::Random)?);
        let socket = conn
            .dealer(&ctx, Side::Client, id.0, Duration::from_secs(1))
            .map_err(|e| ClientError::Zmq { what: e.what, source: e.source })?;
        let endpoint = conn.client_endpoint();
        Ok(Client {
            id,
            socket,
            codec: conn.codec(),
            endpoint,
            seq: 0,
            last_seen_seq: 0,
            drops: DropCounts::default(),
            link: functions::Sent::default(),
            _ctx: ctx,
        })
    }

    /// This client's id (every try it submits must carry it).
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// The interchange's client endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Frames from the interchange that failed checks.
    pub fn drops(&self) -> DropCounts {
        self.drops
    }

    /// The socket's file descriptor, to sleep on beside others (edge-triggered: see [`Client::readable`]).
    pub fn fd(&self) -> Option<std::os::fd::RawFd> {
        self.socket.get_fd().ok()
    }

    /// Whether a message is waiting now.
    pub fn readable(&self) -> bool {
        self.socket.get_events().map(|e| e.contains(zmq::POLLIN)).unwrap_or(false)
    }

    /// Submit tries in as many frames as the run's frame limit needs; returns what was not sent.
    pub fn submit(&mut self, tries: Vec<Try>) -> Unsent {
        let (batches, too_large) = split_by_size(tries, self.codec.batch_budget());
        let mut failed = Vec::new();
        let mut batches = batches.into_iter();
        for b in batches.by_ref() {
            let msg = ClientMsg::Submit(b);
            if self.send(&msg).is_err() {
                if let ClientMsg::Submit(b) = msg {
                    failed.extend(b.iter().map(|t| t.id));
                }
                // The interchange may not have what that frame told it to keep.
                self.forget_functions();
                break;
            }
        }
        failed.extend(batches.flatten().map(|t| t.id));
        Unsent { too_large, failed }
    }

    /// The run's frame limit in bytes.
    pub fn max_frame(&self) -> usize {
        self.codec.max_frame()
    }

    /// From now on send every Python function whole once more, and tell the interchange to
    /// keep it: after [`ToClientMsg::NotHeld`], or when the interchange restarted.
    pub fn forget_functions(&mut self) {
        self.link = functions::Sent::default();
    }

    /// Send one message (Python functions the interchange keeps are named by key).
    pub fn send(&mut self, msg: &ClientMsg) -> Result<(), ClientError> {
        self.seq += 1;
        let frame = self.codec.encode_over(msg, self.seq, &mut self.link);
        self.socket.send(frame, 0).map_err(zerr("send to the interchange"))
    }

    /// Take one message if one is waiting; frames that fail checks are counted and skipped.
    pub fn try_recv(&mut self) -> Option<ToClientMsg> {
        while let Ok(frame) = self.socket.recv_bytes(zmq::DONTWAIT) {
            match self.codec.decode::<ToClientMsg>(&frame) {
                Ok((h, _)) if h.seq <= self.last_seen_seq => self.drops.replayed += 1,
                Ok((h, msg)) => {
                    self.last_seen_seq = h.seq;
                    return Some(msg);
                }
                Err(e) => self.drops.count(&e),
            }
        }
        None
    }

    /// Wait up to `timeout` for one message.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<ToClientMsg> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.try_recv() {
                return Some(m);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            if !self.readable() {
                match self.fd() {
                    Some(fd) => crate::waker::wait_readable(&[fd], left),
                    None => std::thread::sleep(left.min(Duration::from_millis(1))),
                }
            }
        }
    }

    /// Ask for a message and wait for the reply that `pick` accepts, ignoring others.
    pub fn request<T>(
        &mut self,
        msg: &ClientMsg,
        timeout: Duration,
        mut pick: impl FnMut(ToClientMsg) -> Option<T>,
    ) -> Result<T, ClientError> {
        self.send(msg)?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout { endpoint: self.endpoint.clone(), secs: timeout.as_secs() });
            }
            if let Some(m) = self.recv_timeout(left) {
                if let Some(v) = pick(m) {
                    return Ok(v);
                }
            }
        }
    }

    /// The interchange's status.
    pub fn status(&mut self, timeout: Duration) -> Result<StatusReport, ClientError> {
        self.request(&ClientMsg::Status, timeout, |m| match m {
            ToClientMsg::Status(s) => Some(s),
            _ => None,
        })
    }

    /// Put a manager in `mode` (held, active, draining); returns whether it was done and what happened.
    pub fn set_mode(
        &mut self,
        manager: crate::task::ManagerId,
        mode: crate::wire::ManagerMode,
        timeout: Duration,
    ) -> Result<(bool, String), ClientError> {
        self.request(&ClientMsg::SetMode { manager, mode }, timeout, |r| match r {
            ToClientMsg::Ack { ok, message } => Some((ok, message)),
            _ => None,
        })
    }

    /// Say hello and wait for the welcome: proves the interchange is there and has our key.
    /// Returns the managers connected and the interchange's incarnation.
    pub fn hello(&mut self, timeout: Duration) -> Result<(u32, u64), ClientError> {
        self.request(&ClientMsg::Hello, timeout, |m| match m {
            ToClientMsg::Welcome { managers, incarnation } => Some((managers, incarnation)),
            _ => None,
        })
    }
}
