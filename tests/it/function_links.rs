//! A Python function's bytes cross each link once: a real interchange between a client and a
//! hand-driven manager socket that checks each frame's size, then forgets the function and
//! hands its try back, as a manager does when the two ends of a link disagree; and the same
//! from a hand-driven client to the interchange, and from a real DFK.

use crate::common::*;
use std::time::{Duration, Instant};
use strand::task::*;
use strand::wire::{functions, ClientMsg, Codec, ManagerMsg, Registration, ToClientMsg, ToManagerMsg};

/// A manager's socket, driven by the test.
struct HandManager {
    socket: zmq::Socket,
    codec: Codec,
    seq: u64,
    _ctx: zmq::Context,
}

impl HandManager {
    fn send(&mut self, msg: &ManagerMsg) {
        self.seq += 1;
        self.socket.send(self.codec.encode(msg, self.seq), 0).expect("send to the interchange");
    }

    /// The next frame from the interchange (bounded by the socket's receive timeout).
    fn frame(&self) -> Vec<u8> {
        self.socket.recv_bytes(0).expect("a frame from the interchange within 20 s")
    }
}

fn python_try(task: u64, f: &PythonFunction) -> Try {
    let app = App::Python(PythonCall { interpreter: "python3".into(), function: f.clone(), args: vec![task as u8] });
    Try {
        id: TryId { client: ClientId(0), task: TaskId(task), attempt: 0 },
        spec: TaskSpec { app, walltime_ms: None, priority: 0, outputs: vec![], resources: Resources::default() },
    }
}

fn function_of(t: &Try) -> &PythonFunction {
    match &t.spec.app {
        App::Python(call) => &call.function,
        other => panic!("not a Python try: {other:?}"),
    }
}

/// A manager socket registered with one slot, and its end of the link (empty).
fn hand_manager(conn: &strand::connection::ConnectionInfo) -> (HandManager, functions::Held) {
    let ctx = zmq::Context::new();
    let socket = ctx.socket(zmq::DEALER).expect("socket");
    let manager = ManagerId(0x5eed);
    socket.set_identity(&manager.0.to_le_bytes()).expect("identity");
    socket.set_rcvtimeo(20_000).expect("timeout");
    socket.connect(&conn.manager_endpoint()).expect("connect");
    let mut m = HandManager { socket, codec: conn.codec(), seq: 0, _ctx: ctx };
    m.send(&ManagerMsg::Register(Registration {
        manager,
        block: strand::block::BlockId("hand".into()),
        host: "hand".into(),
        pool_size: 2,
        slots: 1,
        prefetch: 0,
        launcher_version: "test".into(),
        mpi_version: "none".into(),
    }));
    let mut held = functions::Held::default();
    let (_, registered, _) = m.codec.decode_over::<ToManagerMsg>(&m.frame(), &mut held).expect("decodes");
    assert!(matches!(registered, ToManagerMsg::Registered { .. }), "{registered:?}");
    (m, held)
}

#[test]
fn a_function_crosses_to_a_manager_once_and_again_when_it_is_not_held() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ix, conn) = interchange(dir.path(), &[]);
    let (mut m, mut held) = hand_manager(&conn);
    let mut client = strand::client::Client::connect(&conn).expect("client");
    client.hello(Duration::from_secs(20)).expect("hello");
    let f = PythonFunction::new(vec![0xf0; 100_000]);
    let mut submit = |task| {
        let mut t = python_try(task, &f);
        t.id.client = client.id();
        let unsent = client.submit(vec![t]);
        assert!(unsent.too_large.is_empty() && unsent.failed.is_empty(), "submitted");
    };
    // One slot: each try comes in its own frame, after the last one's result.
    let run = |m: &mut HandManager, held: &mut functions::Held, whole: bool| -> Try {
        let frame = m.frame();
        assert_eq!(frame.len() > 100_000, whole, "{} bytes; the function whole: {whole}", frame.len());
        let (_, msg, missing) = m.codec.decode_over::<ToManagerMsg>(&frame, held).expect("decodes");
        assert!(missing.is_empty(), "{missing:?}");
        let ToManagerMsg::Tasks(mut tries) = msg else { panic!("{msg:?}") };
        assert_eq!(tries.len(), 1);
        let t = tries.remove(0);
        assert_eq!(*function_of(&t).pickled, *f.pickled, "the function's bytes");
        let out = vec![t.id.task.0 as u8];
        m.send(&ManagerMsg::Results(vec![TryResult::new(t.id, Outcome::Done(out))]));
        t
    };
    submit(0);
    run(&mut m, &mut held, true);
    submit(1);
    run(&mut m, &mut held, false);

    // The manager forgets what it keeps (as a restarted or diverged end would): the next try
    // names a function it does not hold, goes back, and comes again with the function whole.
    let mut fresh = functions::Held::default();
    submit(2);
    let (_, msg, missing) = m.codec.decode_over::<ToManagerMsg>(&m.frame(), &mut fresh).expect("decodes");
    assert_eq!(missing, vec![f.key]);
    let ToManagerMsg::Tasks(tries) = msg else { panic!("{msg:?}") };
    m.send(&ManagerMsg::NotHeld(tries));
    let again = run(&mut m, &mut fresh, true);
    assert_eq!(again.id.attempt, 0, "handing back is not a new try");
    submit(3);
    run(&mut m, &mut fresh, false);

    // Every try ended once, with its own output, and nothing was counted as dropped.
    let mut seen = std::collections::BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 4 && Instant::now() < deadline {
        if let Some(ToClientMsg::Results(rs)) = client.recv_timeout(Duration::from_millis(200)) {
            for r in rs {
                assert!(seen.insert(r.id.task.0, r.outcome).is_none(), "{:?} ended twice", r.id);
            }
        }
    }
    let want: std::collections::BTreeMap<u64, Outcome> = (0..4).map(|i| (i, Outcome::Done(vec![i as u8]))).collect();
    assert_eq!(seen, want);
    let report = client.status(Duration::from_secs(10)).expect("status");
    assert_eq!((report.queued, report.in_flight), (0, 0));
    assert_eq!(report.dropped.total(), 0, "{:?}", report.dropped);
    assert!(ix.is_running());
}

#[test]
fn a_function_crosses_from_a_client_once_and_again_when_it_is_not_held() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ix, conn) = interchange(dir.path(), &[]);
    let (mut m, mut held) = hand_manager(&conn);
    // A client socket driven by hand, so its frames can be measured and its link's end set.
    let ctx = zmq::Context::new();
    let client = ClientId(0xc1);
    let socket = ctx.socket(zmq::DEALER).expect("socket");
    socket.set_identity(&client.0.to_le_bytes()).expect("identity");
    socket.set_rcvtimeo(20_000).expect("timeout");
    socket.connect(&conn.client_endpoint()).expect("connect");
    let codec = conn.codec();
    let (mut sent, mut seq) = (functions::Sent::default(), 0u64);
    let mut submit = |t: Try, sent: &mut functions::Sent, send: bool| -> usize {
        seq += 1;
        let frame = codec.encode_over(&ClientMsg::Submit(vec![t]), seq, sent);
        if send {
            socket.send(&frame, 0).expect("submit");
        }
        frame.len()
    };
    let mine = |task, f: &PythonFunction| {
        let mut t = python_try(task, f);
        t.id.client = client;
        t
    };
    // The manager answers each try with its task number; it must come with `f`'s bytes.
    let answer = |m: &mut HandManager, held: &mut functions::Held, f: &PythonFunction| {
        let (_, msg, missing) = m.codec.decode_over::<ToManagerMsg>(&m.frame(), held).expect("decodes");
        assert!(missing.is_empty(), "{missing:?}");
        let ToManagerMsg::Tasks(tries) = msg else { panic!("{msg:?}") };
        let [t] = &tries[..] else { panic!("{tries:?}") };
        assert_eq!(*function_of(t).pickled, *f.pickled);
        m.send(&ManagerMsg::Results(vec![TryResult::new(t.id, Outcome::Done(vec![t.id.task.0 as u8]))]));
    };
    let f = PythonFunction::new(vec![0x0f; 100_000]);
    assert!(submit(mine(0, &f), &mut sent, true) > 100_000, "the first frame carries the function");
    answer(&mut m, &mut held, &f);
    assert!(submit(mine(1, &f), &mut sent, true) < 1_000, "the next names it by key");
    answer(&mut m, &mut held, &f);

    // A frame that told the interchange to keep `g` is lost: the next one names `g` by key, and
    // the interchange says it does not hold it instead of queueing a try without its function.
    let g = PythonFunction::new(vec![0x99; 50_000]);
    submit(mine(2, &g), &mut sent, false);
    submit(mine(3, &g), &mut sent, true);
    let next = |socket: &zmq::Socket| -> ToClientMsg {
        let frame = socket.recv_bytes(0).expect("a frame from the interchange within 20 s");
        codec.decode::<ToClientMsg>(&frame).expect("decodes").1
    };
    let mut results = vec![];
    let not_held = loop {
        match next(&socket) {
            ToClientMsg::NotHeld(ids) => break ids,
            ToClientMsg::Results(r) => results.extend(r),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(not_held, [mine(3, &g).id]);
    let mut fresh = functions::Sent::default();
    assert!(submit(mine(3, &g), &mut fresh, true) > 50_000, "sent again whole");
    answer(&mut m, &mut held, &g);
    while results.len() < 3 {
        match next(&socket) {
            ToClientMsg::Results(r) => results.extend(r),
            other => panic!("{other:?}"),
        }
    }
    let mut ended: Vec<(u64, Outcome)> = results.into_iter().map(|r| (r.id.task.0, r.outcome)).collect();
    ended.sort_by_key(|e| e.0);
    assert_eq!(ended, [0, 1, 3].map(|i| (i, Outcome::Done(vec![i as u8]))));
    let report =
        strand::client::Client::connect(&conn).expect("client").status(Duration::from_secs(10)).expect("status");
    assert_eq!((report.queued, report.in_flight), (0, 0));
    assert_eq!(report.dropped.total(), 0, "{:?}", report.dropped);
    assert!(ix.is_running());
}

/// The same from a real DFK: an interchange that let a silent client go (its link with it)
/// answers the DFK's next try, which names the function by key, with `NotHeld`; the DFK
/// forgets its end of the link, and the try comes again whole and ends once.
#[test]
fn a_real_dfk_sends_a_function_whole_again_when_the_interchange_no_longer_holds_it() {
    use strand::dfk::{Call, Dfk, DfkConfig};
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ix, conn) = interchange(dir.path(), &["--client-timeout", "0.5"]);
    let (mut m, mut held) = hand_manager(&conn);
    let dfk = Dfk::connect(&conn, DfkConfig::default()).expect("dfk");
    let f = PythonFunction::new(vec![0x5a; 100_000]);
    let call = |task: u8| {
        Call::app(App::Python(PythonCall { interpreter: "python3".into(), function: f.clone(), args: vec![task] }))
    };
    // The manager runs each try it gets, answering with its argument; the flag: the frame
    // carried the function's bytes.
    let run = |m: &mut HandManager, held: &mut functions::Held| -> (bool, Try) {
        let frame = m.frame();
        let (_, msg, missing) = m.codec.decode_over::<ToManagerMsg>(&frame, held).expect("decodes");
        assert!(missing.is_empty(), "{missing:?}");
        let ToManagerMsg::Tasks(mut tries) = msg else { panic!("{msg:?}") };
        let t = tries.remove(0);
        let App::Python(p) = &t.spec.app else { panic!("{t:?}") };
        assert_eq!(*p.function.pickled, *f.pickled);
        m.send(&ManagerMsg::Results(vec![TryResult::new(t.id, Outcome::Done(p.args.clone()))]));
        (frame.len() > 100_000, t)
    };
    let done = |fut: &strand::dfk::TaskFuture, want: u8| match fut.wait_timeout(Duration::from_secs(20)) {
        Some(Ok(out)) => assert_eq!(out, vec![want]),
        other => panic!("task {want}: {other:?}"),
    };
    let first = dfk.submit(call(1));
    assert!(run(&mut m, &mut held).0, "the first try carries the function");
    done(&first, 1);
    // Idle, the DFK sends nothing; past --client-timeout the interchange lets it go.
    let log = dir.path().join("interchange.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("client gone") {
        assert!(Instant::now() < deadline, "the idle client was not let go within 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The DFK's end still keeps `f`, so its frame names it by key; the interchange answers
    // NotHeld, and the try comes to the manager (whose own link still holds `f`) and ends.
    let second = dfk.submit(call(2));
    let (_, t) = run(&mut m, &mut held);
    assert_eq!(t.id.task, second.id());
    done(&second, 2);
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(said.contains("named Python functions not held here"), "no NotHeld at the interchange:\n{said}");
    assert_eq!(dfk.dropped().total(), 0, "{:?}", dfk.dropped());
    let mut client = strand::client::Client::connect(&conn).expect("client");
    let report = client.status(Duration::from_secs(10)).expect("status");
    assert_eq!((report.queued, report.in_flight), (0, 0));
    assert_eq!(report.dropped.total(), 0, "{:?}", report.dropped);
    dfk.shutdown();
    assert!(ix.is_running());
}
