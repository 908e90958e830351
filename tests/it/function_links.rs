//! A Python function's bytes cross the interchange-to-manager link once: a real interchange,
//! a client, and a hand-driven manager socket that checks each frame's size, then forgets the
//! function and hands its try back, as a manager does when the two ends of a link disagree.

use crate::common::*;
use std::time::{Duration, Instant};
use strand::task::*;
use strand::wire::{functions, Codec, ManagerMsg, Registration, ToClientMsg, ToManagerMsg};

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

#[test]
fn a_function_crosses_to_a_manager_once_and_again_when_it_is_not_held() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ix, conn) = interchange(dir.path(), &[]);
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
