//! The interchange process: two ROUTER sockets around a [`Dispatcher`].
//!
//! Clients and managers are told apart by socket; each peer's ZeroMQ routing id
//! is its own `ClientId` / `ManagerId` (8 bytes, little endian), which it sets
//! before connecting.

use super::dispatch::{Comm, DispatchConfig, Dispatcher};
use crate::connection::ConnectionInfo;
use crate::run_dir::CONNECTION_FILE;
use crate::sample::Samples;
use crate::task::{App, ClientId, Failure, ManagerId, Outcome, Try, TryId, TryResult};
use crate::wire::{
    functions, random_id, split_by_size, ClientMsg, Codec, DropCounts, Key, ManagerMode, ManagerMsg, Message,
    ReplayGuard, ToClientMsg, ToManagerMsg, PROTOCOL_VERSION,
};
use slog::{debug, info, warn, Logger};
use std::collections::HashMap;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// How to start an interchange.
#[derive(Clone, Debug)]
pub struct InterchangeConfig {
    /// Run directory; the connection file is written here.
    pub run_dir: PathBuf,
    /// Interface address to bind and to advertise (IP or host name).
    pub address: String,
    /// Port for clients (0: any free port).
    pub client_port: u16,
    /// Port for managers (0: any free port).
    pub manager_port: u16,
    /// Managers heartbeat this often.
    pub heartbeat_period: Duration,
    /// Dispatch limits, including the heartbeat threshold.
    pub dispatch: DispatchConfig,
    /// Restart on an existing run directory: reuse its connection file (key, run id, ports),
    /// so launchers and clients reconnect by themselves.
    pub resume: bool,
    /// Largest frame in bytes, written into the connection file for every peer.
    pub max_frame: u64,
}

/// Why the interchange could not start or run.
#[derive(Debug, Error)]
pub enum InterchangeError {
    /// A ZeroMQ call failed.
    #[error("{what}: {source}")]
    Zmq {
        /// What was being done.
        what: String,
        /// The ZeroMQ error.
        source: zmq::Error,
    },
    /// The run directory or connection file could not be written.
    #[error(transparent)]
    Connection(#[from] crate::connection::ConnectionError),
    /// I/O on the run directory.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn zerr(what: impl Into<String>) -> impl FnOnce(zmq::Error) -> InterchangeError {
    let what = what.into();
    move |source| InterchangeError::Zmq { what, source }
}

/// Peers are addressed by their 8-byte routing id.
fn peer_id(frame: &[u8]) -> Option<u64> {
    let b: [u8; 8] = frame.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// What one receive from a ROUTER socket gave.
enum Frame<M> {
    /// Nothing was waiting.
    None,
    /// A frame failed a check (counted) and was skipped.
    Dropped,
    /// An authentic, fresh message, its sender's routing id, and the keys of Python functions
    /// it named that its link does not hold.
    Msg(u64, M, Vec<functions::FunctionKey>),
}

/// One of the interchange's two ROUTER sockets, as a source of checked messages.
struct Inbound<'a> {
    socket: &'a zmq::Socket,
    codec: &'a Codec,
    log: &'a Logger,
    /// Who sends on it, for the log.
    what: &'static str,
}

impl Inbound<'_> {
    /// Take one frame: the shape (routing id + one frame), then the codec's checks, then replay
    /// protection; every failure is counted in `drops`.
    /// Over `links` (the clients' socket), each sender's frames are decoded through the
    /// functions its link keeps.
    fn take<M: Message>(
        &self,
        seqs: &mut ReplayGuard,
        drops: &mut DropCounts,
        links: Option<&mut HashMap<u64, functions::Held>>,
    ) -> Frame<M> {
        let Ok(parts) = self.socket.recv_multipart(zmq::DONTWAIT) else { return Frame::None };
        let (Some(id), Some(frame), 2) = (parts.first().and_then(|f| peer_id(f)), parts.get(1), parts.len()) else {
            drops.malformed += 1;
            return Frame::Dropped;
        };
        let decoded = match links {
            // Only a link that keeps something is stored: peers that never send a Python
            // function (`strand status`, each with a new id) leave no entry behind.
            Some(links) => {
                let mut held = links.remove(&id).unwrap_or_default();
                let d = self.codec.decode_over::<M>(frame, &mut held);
                if !held.is_empty() {
                    links.insert(id, held);
                }
                d
            }
            None => self.codec.decode::<M>(frame).map(|(h, msg)| (h, msg, vec![])),
        };
        match decoded {
            Ok((h, ..)) if !seqs.accept(id, h.seq) => {
                drops.replayed += 1;
                Frame::Dropped
            }
            Ok((_, msg, missing)) => Frame::Msg(id, msg, missing),
            Err(e) => {
                debug!(self.log, "dropped frame"; "from" => self.what, "peer" => format!("{id:016x}"), "reason" => %e);
                drops.count(&e);
                Frame::Dropped
            }
        }
    }
}

/// Bind a ROUTER socket on `address:port` and return it with its bound port.
fn bind_router(ctx: &zmq::Context, address: &str, port: u16) -> Result<(zmq::Socket, u16), InterchangeError> {
    let s = ctx.socket(zmq::ROUTER).map_err(zerr("create ROUTER socket"))?;
    // Unbounded queues inside ZeroMQ: the protocol bounds what is in flight,
    // and a full HWM on a ROUTER silently drops, which would lose results.
    s.set_sndhwm(0).map_err(zerr("set SNDHWM"))?;
    s.set_rcvhwm(0).map_err(zerr("set RCVHWM"))?;
    s.set_linger(2000).map_err(zerr("set LINGER"))?;
    let port_spec = if port == 0 { "*".to_string() } else { port.to_string() };
    let ep = format!("tcp://{address}:{port_spec}");
    s.bind(&ep).map_err(zerr(format!("bind {ep}")))?;
    let last = s.get_last_endpoint().map_err(zerr("read bound endpoint"))?.unwrap_or_default();
    let bound = last.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(port);
    Ok((s, bound))
}

/// The running interchange.
pub struct Interchange {
    cfg: InterchangeConfig,
    info: ConnectionInfo,
    codec: Codec,
    clients: zmq::Socket,
    managers: zmq::Socket,
    dispatcher: Dispatcher,
    known_clients: HashSet<ClientId>,
    seq: u64,
    /// Random per process; clients compare it to notice a restart.
    incarnation: u64,
    manager_seqs: ReplayGuard,
    client_seqs: ReplayGuard,
    /// The sending end of each registered manager's link: the Python functions it keeps.
    links: HashMap<ManagerId, functions::Sent>,
    /// One copy of each Python function submitted, shared by every queued try and link.
    functions: functions::Interned,
    /// The receiving end of each client's link: the Python functions it told us to keep.
    client_links: HashMap<u64, functions::Held>,
    log: Logger,
    _ctx: zmq::Context,
}

/// The server's [`Comm`]: encodes and sends on the two ROUTER sockets.
struct ZmqComm<'a> {
    codec: &'a Codec,
    clients: &'a zmq::Socket,
    managers: &'a zmq::Socket,
    seq: &'a mut u64,
    links: &'a mut HashMap<ManagerId, functions::Sent>,
    log: &'a Logger,
}

impl ZmqComm<'_> {
    fn send<M: Message>(&mut self, socket: &zmq::Socket, peer: u64, msg: &M) {
        self.send_over(socket, peer, msg, None);
    }

    /// Send `msg`, over `link` where the peer keeps Python functions.
    fn send_over<M: Message>(&mut self, socket: &zmq::Socket, peer: u64, msg: &M, link: Option<&mut functions::Sent>) {
        *self.seq += 1;
        let frame = match link {
            Some(link) => self.codec.encode_over(msg, *self.seq, link),
            None => self.codec.encode(msg, *self.seq),
        };
        let parts: [&[u8]; 2] = [&peer.to_le_bytes(), &frame];
        if let Err(e) = socket.send_multipart(parts, 0) {
            warn!(self.log, "send failed"; "peer" => format!("{peer:016x}"), "error" => %e);
        }
    }
}

impl ZmqComm<'_> {
    /// Send `items` as as many frames as the frame limit needs. Every item here arrived in a
    /// frame of the same limit, so none is too large alone; if one is (a peer with another
    /// limit), it goes alone and its receiver counts it as oversized.
    fn send_batches<T: serde::Serialize, M: Message>(
        &mut self,
        socket: &zmq::Socket,
        peer: u64,
        items: Vec<T>,
        wrap: fn(Vec<T>) -> M,
    ) {
        self.send_batches_over(socket, peer, items, wrap, None);
    }

    /// [`Self::send_batches`] over `link` where the peer keeps Python functions. Sizes are
    /// counted with every function whole, so a batch that names some by key is only smaller.
    fn send_batches_over<T: serde::Serialize, M: Message>(
        &mut self,
        socket: &zmq::Socket,
        peer: u64,
        items: Vec<T>,
        wrap: fn(Vec<T>) -> M,
        mut link: Option<&mut functions::Sent>,
    ) {
        let (batches, too_large) = split_by_size(items, self.codec.batch_budget());
        for t in too_large {
            warn!(self.log, "an item exceeds the frame limit; sending it alone";
                "peer" => format!("{peer:016x}"), "bytes" => t.bytes, "limit" => self.codec.max_frame());
            self.send_over(socket, peer, &wrap(vec![t.item]), link.as_deref_mut());
        }
        for b in batches {
            self.send_over(socket, peer, &wrap(b), link.as_deref_mut());
        }
    }
}

impl Comm for ZmqComm<'_> {
    fn send_tasks(&mut self, manager: ManagerId, tries: Vec<Try>) {
        let socket = self.managers;
        let mut link = self.links.remove(&manager).unwrap_or_default();
        self.send_batches_over(socket, manager.0, tries, ToManagerMsg::Tasks, Some(&mut link));
        self.links.insert(manager, link);
    }
    fn send_results(&mut self, client: ClientId, results: Vec<TryResult>) {
        let socket = self.clients;
        self.send_batches(socket, client.0, results, ToClientMsg::Results);
    }
    fn send_refused(&mut self, client: ClientId, tries: Vec<TryId>, limit: u64) {
        let socket = self.clients;
        self.send(socket, client.0, &ToClientMsg::Refused { tries, limit });
    }
    fn send_samples(&mut self, client: ClientId, samples: Samples) {
        let socket = self.clients;
        let Samples { tries, nodes } = samples;
        self.send_batches(socket, client.0, tries, |tries| ToClientMsg::Samples(Samples { tries, nodes: vec![] }));
        self.send_batches(socket, client.0, nodes, |nodes| ToClientMsg::Samples(Samples { tries: vec![], nodes }));
    }
}

/// Most frames taken from one socket before looking at the other, so neither starves.
const RECV_BURST: usize = 4096;

impl Interchange {
    /// Bind the sockets and write the connection file (mode 0600) into the run directory.
    pub fn bind(cfg: InterchangeConfig, log: Logger) -> Result<Interchange, InterchangeError> {
        std::fs::create_dir_all(&cfg.run_dir)
            .map_err(|source| InterchangeError::Io { path: cfg.run_dir.clone(), source })?;
        let ctx = zmq::Context::new();
        let io = |source| InterchangeError::Io { path: cfg.run_dir.clone(), source };
        let previous = if cfg.resume { Some(ConnectionInfo::load(&cfg.run_dir.join(CONNECTION_FILE))?) } else { None };
        let (address, want_client, want_manager) = match &previous {
            Some(p) => (p.address.clone(), p.client_port, p.manager_port),
            None => (cfg.address.clone(), cfg.client_port, cfg.manager_port),
        };
        let (clients, client_port) = bind_router(&ctx, &address, want_client)?;
        let (managers, manager_port) = bind_router(&ctx, &address, want_manager)?;
        let (key, run_id) = match &previous {
            Some(p) => (p.key.clone(), p.run_id),
            None => (Key::generate().map_err(io)?.to_hex(), random_id().map_err(io)?),
        };
        // A resumed run keeps its peers' frame limit: they read it from the file before the restart.
        let max_frame = previous.as_ref().map_or(cfg.max_frame, |p| p.max_frame);
        let info = ConnectionInfo {
            protocol_version: PROTOCOL_VERSION,
            run_id,
            address,
            client_port,
            manager_port,
            key,
            max_frame,
        };
        let incarnation = random_id().map_err(io)?;
        // Sequence numbers continue above anything an earlier incarnation sent, so peers
        // that remember its numbers do not take the new ones for replays.
        let seq =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() << 32).unwrap_or(0);
        info.write(&cfg.run_dir.join(CONNECTION_FILE))?;
        info!(log, "interchange listening";
            "clients" => info.client_endpoint(), "managers" => info.manager_endpoint(),
            "connection_file" => %cfg.run_dir.join(CONNECTION_FILE).display());
        Ok(Interchange {
            codec: info.codec(),
            dispatcher: Dispatcher::new(cfg.dispatch.clone()),
            cfg,
            info,
            clients,
            managers,
            known_clients: HashSet::new(),
            seq,
            incarnation,
            manager_seqs: ReplayGuard::default(),
            client_seqs: ReplayGuard::default(),
            links: HashMap::new(),
            functions: functions::Interned::default(),
            client_links: HashMap::new(),
            log,
            _ctx: ctx,
        })
    }

    /// Where it listens and the run's key.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.info
    }

    /// Serve until `stop` is set or a client asks for shutdown; then stop every manager.
    pub fn serve(mut self, stop: Arc<AtomicBool>) -> Result<(), InterchangeError> {
        let tick = (self.cfg.heartbeat_period / 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut next_expiry = Instant::now() + tick;
        let mut shutdown = false;
        while !shutdown && !stop.load(Ordering::Relaxed) {
            let timeout = next_expiry.saturating_duration_since(Instant::now());
            let (c_ready, m_ready) = {
                let mut items = [self.clients.as_poll_item(zmq::POLLIN), self.managers.as_poll_item(zmq::POLLIN)];
                match zmq::poll(&mut items, timeout.as_millis().max(1) as i64) {
                    Ok(_) => (items[0].is_readable(), items[1].is_readable()),
                    // EINTR: a signal arrived; the loop condition looks at it.
                    Err(zmq::Error::EINTR) => (false, false),
                    Err(e) => return Err(zerr("poll")(e)),
                }
            };
            let now = Instant::now();
            if m_ready {
                self.drain_managers(now);
            }
            if c_ready {
                shutdown = self.drain_clients(now);
            }
            if now >= next_expiry {
                for m in self.dispatcher.expire(now) {
                    warn!(self.log, "manager lost: no message within the heartbeat threshold"; "manager" => %m);
                }
                for (c, n) in self.dispatcher.expire_clients(now) {
                    warn!(self.log, "client gone: silent past the client timeout; its queued tries are dropped";
                        "client" => %c, "dropped" => n);
                    self.known_clients.remove(&c);
                    self.client_links.remove(&c.0);
                }
                // A manager gone (lost, left, drained) takes its link's functions with it.
                let d = &self.dispatcher;
                self.links.retain(|m, _| d.is_registered(*m));
                self.functions.prune();
                next_expiry = now + tick;
            }
            for m in self.dispatcher.take_drained() {
                info!(self.log, "manager drained; stopping it"; "manager" => %m);
                self.send_to_manager(m, &ToManagerMsg::Stop);
                // It holds nothing, so forgetting it fails nothing.
                self.dispatcher.manager_lost(m);
            }
            self.flush();
        }
        self.stop_all();
        Ok(())
    }

    fn comm(&mut self) -> (ZmqComm<'_>, &mut Dispatcher) {
        (
            ZmqComm {
                codec: &self.codec,
                clients: &self.clients,
                managers: &self.managers,
                seq: &mut self.seq,
                links: &mut self.links,
                log: &self.log,
            },
            &mut self.dispatcher,
        )
    }

    fn flush(&mut self) {
        let (mut comm, d) = self.comm();
        d.flush(&mut comm);
    }

    fn send_to_manager(&mut self, m: ManagerId, msg: &ToManagerMsg) {
        let (mut comm, _) = self.comm();
        let socket = comm.managers;
        comm.send(socket, m.0, msg);
    }

    fn send_to_client(&mut self, c: ClientId, msg: &ToClientMsg) {
        let (mut comm, _) = self.comm();
        let socket = comm.clients;
        comm.send(socket, c.0, msg);
    }

    /// Receive one [routing id, frame] message without blocking.
    fn drain_managers(&mut self, now: Instant) {
        for _ in 0..RECV_BURST {
            let from = Inbound { socket: &self.managers, codec: &self.codec, log: &self.log, what: "manager" };
            let (id, msg) = match from.take::<ManagerMsg>(&mut self.manager_seqs, self.dispatcher.drops_mut(), None) {
                Frame::None => break,
                Frame::Dropped => continue,
                Frame::Msg(id, msg, _) => (id, msg),
            };
            let m = ManagerId(id);
            match msg {
                ManagerMsg::Register(reg) => {
                    if reg.manager != m {
                        self.dispatcher.drops_mut().unexpected += 1;
                        continue;
                    }
                    info!(self.log, "manager registered"; "manager" => %m, "host" => &reg.host,
                        "block" => %reg.block, "slots" => reg.slots, "pool_size" => reg.pool_size,
                        "mpi" => &reg.mpi_version);
                    // A new incarnation keeps no functions: its link starts empty.
                    self.links.remove(&m);
                    self.dispatcher.register(reg, now);
                    let reply = ToManagerMsg::Registered {
                        heartbeat_period_ms: self.cfg.heartbeat_period.as_millis() as u64,
                        heartbeat_threshold_ms: self.cfg.dispatch.heartbeat_threshold.as_millis() as u64,
                    };
                    self.send_to_manager(m, &reply);
                }
                ManagerMsg::Goodbye if !self.dispatcher.is_registered(m) => {}
                _ if !self.dispatcher.is_registered(m) => {
                    // A manager we do not know (declared lost, or registered with an earlier
                    // incarnation): whatever it sends is dropped; it may register afresh.
                    if let ManagerMsg::Results(r) = &msg {
                        self.dispatcher.drops_mut().stale_results += r.len() as u64;
                    } else {
                        self.dispatcher.drops_mut().unexpected += 1;
                    }
                    self.send_to_manager(m, &ToManagerMsg::Reregister);
                }
                ManagerMsg::Results(results) => self.dispatcher.results(m, results, now),
                ManagerMsg::Samples(samples) => self.dispatcher.samples(m, samples, now),
                ManagerMsg::NotHeld(tries) => self.not_held(m, tries, now),
                ManagerMsg::Heartbeat => {
                    self.dispatcher.touch(m, now);
                    self.send_to_manager(m, &ToManagerMsg::Heartbeat);
                }
                ManagerMsg::Draining => {
                    info!(self.log, "manager draining"; "manager" => %m);
                    self.dispatcher.set_mode(m, ManagerMode::Draining);
                }
                ManagerMsg::Capacity { slots, prefetch } => {
                    info!(self.log, "manager capacity changed"; "manager" => %m, "slots" => slots,
                        "prefetch" => prefetch);
                    self.dispatcher.set_capacity(m, slots, prefetch);
                }
                ManagerMsg::Goodbye => {
                    info!(self.log, "manager left"; "manager" => %m);
                    self.dispatcher.manager_lost(m);
                }
            }
        }
    }

    /// Manager `m` handed back tries whose Python function it does not hold: put each
    /// function back from the link and queue the tries again; the link sends those functions
    /// whole next time. A function the link never told it to keep cannot be put back (a bug
    /// on either side): its try fails with a reason that says so, rather than waiting forever.
    fn not_held(&mut self, m: ManagerId, tries: Vec<Try>, now: Instant) {
        let link = self.links.entry(m).or_default();
        let (mut back, mut failed) = (Vec::with_capacity(tries.len()), Vec::new());
        for mut t in tries {
            if let App::Python(call) = &mut t.spec.app {
                let key = call.function.key;
                link.not_held(&key);
                match link.function(&key) {
                    Some(bytes) => call.function.pickled = bytes,
                    None => {
                        let failure =
                            Failure::FunctionNotHeld { key: functions::hex(&key), at: "the interchange".into() };
                        failed.push(TryResult::new(t.id, Outcome::Failed(failure)));
                        continue;
                    }
                }
            }
            back.push(t);
        }
        info!(self.log, "a manager handed back tries whose Python function it does not hold; sending it again";
            "manager" => %m, "tries" => back.len(), "failed" => failed.len());
        self.dispatcher.hand_back(m, back, now);
        if !failed.is_empty() {
            self.dispatcher.results(m, failed, now);
        }
    }

    /// Returns true when a client asked the interchange to shut down.
    fn drain_clients(&mut self, _now: Instant) -> bool {
        let mut shutdown = false;
        for _ in 0..RECV_BURST {
            let from = Inbound { socket: &self.clients, codec: &self.codec, log: &self.log, what: "client" };
            let links = Some(&mut self.client_links);
            let (id, msg, missing) =
                match from.take::<ClientMsg>(&mut self.client_seqs, self.dispatcher.drops_mut(), links) {
                    Frame::None => break,
                    Frame::Dropped => continue,
                    Frame::Msg(id, msg, missing) => (id, msg, missing),
                };
            let c = ClientId(id);
            self.dispatcher.touch_client(c, Instant::now());
            match msg {
                ClientMsg::Hello => {
                    self.known_clients.insert(c);
                    let managers = self.dispatcher.manager_count() as u32;
                    let incarnation = self.incarnation;
                    self.send_to_client(c, &ToClientMsg::Welcome { managers, incarnation });
                }
                ClientMsg::Submit(tries) => {
                    // Tries must carry the sender's own client id, so one client cannot
                    // answer for, or collide with, another.
                    let (ok, bad): (Vec<Try>, Vec<Try>) = tries.into_iter().partition(|t| t.id.client == c);
                    self.dispatcher.drops_mut().unexpected += bad.len() as u64;
                    // Tries naming a function we do not hold go back, to come again with it.
                    let (not_held, mut ok): (Vec<Try>, Vec<Try>) = ok.into_iter().partition(|t| t.calls_any(&missing));
                    if !not_held.is_empty() {
                        info!(self.log, "a client named Python functions not held here; it sends them again";
                            "client" => %c, "tries" => not_held.len());
                        let (mut comm, _) = self.comm();
                        let socket = comm.clients;
                        let ids = not_held.iter().map(|t| t.id).collect();
                        comm.send_batches(socket, c.0, ids, ToClientMsg::NotHeld);
                    }
                    for t in &mut ok {
                        if let App::Python(call) = &mut t.spec.app {
                            self.functions.share(&call.function.key, &mut call.function.pickled);
                        }
                    }
                    let (mut comm, d) = self.comm();
                    d.submit(c, ok, &mut comm);
                }
                ClientMsg::Heartbeat => {
                    let incarnation = self.incarnation;
                    self.send_to_client(c, &ToClientMsg::Heartbeat { incarnation })
                }
                ClientMsg::Status => {
                    let report = self.dispatcher.status(Instant::now());
                    self.send_to_client(c, &ToClientMsg::Status(report));
                }
                ClientMsg::SetMode { manager, mode } => {
                    let ok = self.dispatcher.set_mode(manager, mode);
                    let message = if ok {
                        info!(self.log, "manager mode changed by a client"; "manager" => %manager, "mode" => ?mode);
                        format!("{manager} is now {mode:?}")
                    } else if self.dispatcher.is_registered(manager) {
                        format!("{manager} is draining; it cannot be held or released")
                    } else {
                        format!("no manager {manager} is registered")
                    };
                    self.send_to_client(c, &ToClientMsg::Ack { ok, message });
                }
                ClientMsg::Shutdown => {
                    info!(self.log, "shutdown requested by a client"; "client" => %c);
                    shutdown = true;
                }
                ClientMsg::Withdraw => {
                    let (mut comm, d) = self.comm();
                    let tries = d.withdraw(c);
                    info!(comm.log, "client withdrew its queued tries"; "client" => %c, "withdrawn" => tries.len());
                    let socket = comm.clients;
                    comm.send_batches(socket, c.0, tries, ToClientMsg::Withdrawn);
                }
                ClientMsg::Bye => {
                    let n = self.dispatcher.drop_client(c);
                    if n > 0 {
                        info!(self.log, "client left; its queued tries are dropped"; "client" => %c, "dropped" => n);
                    }
                    self.known_clients.remove(&c);
                    self.client_links.remove(&c.0);
                    self.client_seqs.forget(c.0);
                }
            }
        }
        shutdown
    }

    /// Tell every manager and client that we are going away.
    fn stop_all(&mut self) {
        let managers: Vec<ManagerId> = self.dispatcher.managers().collect();
        info!(self.log, "interchange stopping"; "managers" => managers.len());
        for m in managers {
            self.send_to_manager(m, &ToManagerMsg::Stop);
        }
        let clients: Vec<ClientId> = self.known_clients.iter().copied().collect();
        for c in clients {
            self.send_to_client(c, &ToClientMsg::Stopping);
        }
        // LINGER on the sockets lets these last frames leave before the context closes.
    }
}
