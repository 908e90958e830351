use super::*;
use crate::task::*;
use std::sync::Arc;

fn codec() -> Codec {
    Codec::new(Key([7u8; 32]), 42)
}

fn sample() -> ManagerMsg {
    ManagerMsg::Results(vec![TryResult {
        id: TryId { client: ClientId(1), task: TaskId(2), attempt: 0 },
        outcome: Outcome::Failed(Failure::ExitCode { code: 3, stderr: "boom".into(), stdout: vec![] }),
        ran: crate::task::Ran { started_us: 1_796_138_137_619_000, run_us: 5_000, ..Default::default() },
    }])
}

#[test]
fn round_trip() {
    let c = codec();
    let f = c.encode(&sample(), 9);
    let (h, m): (Header, ManagerMsg) = c.decode(&f).expect("decodes");
    assert_eq!(h.seq, 9);
    assert_eq!(m, sample());
}

#[test]
fn wrong_key_is_unauthenticated() {
    let f = Codec::new(Key([8u8; 32]), 42).encode(&sample(), 0);
    assert_eq!(codec().decode::<ManagerMsg>(&f).unwrap_err(), WireError::Unauthenticated);
}

#[test]
fn wrong_run_is_unauthenticated() {
    let f = Codec::new(Key([7u8; 32]), 43).encode(&sample(), 0);
    assert_eq!(codec().decode::<ManagerMsg>(&f).unwrap_err(), WireError::Unauthenticated);
}

#[test]
fn tampered_body_is_unauthenticated() {
    let c = codec();
    let mut f = c.encode(&sample(), 0);
    f[HEADER_LEN + 1] ^= 1;
    assert_eq!(c.decode::<ManagerMsg>(&f).unwrap_err(), WireError::Unauthenticated);
}

#[test]
fn truncated_and_garbage_are_dropped() {
    let c = codec();
    let f = c.encode(&sample(), 0);
    for n in 0..f.len() {
        assert!(c.decode::<ManagerMsg>(&f[..n]).is_err(), "prefix of {n} bytes accepted");
    }
    assert_eq!(c.decode::<ManagerMsg>(&[0u8; 100]).unwrap_err(), WireError::BadMagic);
}

#[test]
fn wrong_version_and_channel() {
    let c = codec();
    let mut f = c.encode(&sample(), 0);
    f[4] = 99;
    assert!(matches!(c.decode::<ManagerMsg>(&f), Err(WireError::WrongVersion { got: 99, .. })));
    let f = c.encode(&sample(), 0);
    assert!(matches!(c.decode::<ClientMsg>(&f), Err(WireError::WrongChannel { .. })));
}

#[test]
fn oversized_is_dropped_unread() {
    let c = codec().with_max_frame(64);
    let f = codec().encode(&ToManagerMsg::Tasks(vec![]), 0);
    assert!(f.len() <= 64);
    let big = vec![0u8; 65];
    assert!(matches!(c.decode::<ToManagerMsg>(&big), Err(WireError::Oversized { .. })));
}

/// An authentic frame around a hand-made body.
fn seal(c: &Codec, channel: Channel, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(MAGIC);
    f.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    f.extend_from_slice(&[channel as u8, 0]);
    f.extend_from_slice(&c.run_id.to_le_bytes());
    f.extend_from_slice(&1u64.to_le_bytes());
    f.extend_from_slice(body);
    let mac = blake3::keyed_hash(&c.key.0, &f);
    f.extend_from_slice(mac.as_bytes());
    f
}

#[test]
fn authentic_frame_claiming_a_huge_string_is_malformed_not_an_abort() {
    // Found by the wire_decode fuzz target: `Ack { ok: true, message }` whose message
    // length (varint 0xfd + u64) claims 2^60 bytes; bincode allocated it before reading.
    let c = codec();
    let mut body = vec![5u8, 1, 0xfd];
    body.extend_from_slice(&(1u64 << 60).to_le_bytes());
    let f = seal(&c, Channel::ToClient, &body);
    assert!(matches!(c.decode::<ToClientMsg>(&f), Err(WireError::Malformed(_))));
    // The same shape with an honest length still decodes.
    let mut body = vec![5u8, 1, 2];
    body.extend_from_slice(b"ok");
    let f = seal(&c, Channel::ToClient, &body);
    let (_, m) = c.decode::<ToClientMsg>(&f).expect("decodes");
    assert_eq!(m, ToClientMsg::Ack { ok: true, message: "ok".into() });
}

#[test]
fn replays_are_refused() {
    let mut g = ReplayGuard::default();
    assert!(g.accept(1, 1));
    assert!(g.accept(1, 2));
    assert!(!g.accept(1, 2), "same frame again");
    assert!(!g.accept(1, 1), "older frame");
    assert!(g.accept(2, 1), "senders are independent");
    g.forget(1);
    assert!(g.accept(1, 1));
}

#[test]
fn key_hex_round_trip() {
    let k = Key::generate().expect("random key");
    assert_eq!(Key::from_hex(&k.to_hex()), Some(k));
    assert_eq!(Key::from_hex("zz"), None);
    assert_eq!(Key::from_hex(&"g".repeat(64)), None);
}

#[test]
fn byte_fields_go_as_one_string_with_the_layout_of_a_u8_sequence() {
    // Byte fields are written by serde_bytes (one copy, not one call per byte); the bytes on
    // the wire are those of the plain `Vec<u8>` they replaced, so either side may be older.
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Plain(Vec<u8>, Vec<u8>);
    let bytes: Vec<u8> = (0..=255).chain(0..40).collect();
    let plain = bincode::serde::encode_to_vec(Plain(bytes.clone(), vec![]), bincode_config()).expect("encodes");
    let done = bincode::serde::encode_to_vec(Outcome::Done(bytes.clone()), bincode_config()).expect("encodes");
    // Outcome's variant index (0) comes first.
    assert_eq!(&done[1..], &plain[..plain.len() - 1]);
    let (back, _): (Outcome, usize) =
        bincode::serde::decode_from_slice(&done, bincode_decode_config()).expect("decodes");
    assert_eq!(back, Outcome::Done(bytes.clone()));
    let f = PythonFunction::new(bytes.clone());
    let call = PythonCall { interpreter: "python3".into(), function: f.clone(), args: bytes };
    let enc = bincode::serde::encode_to_vec(&call, bincode_config()).expect("encodes");
    let (back, _): (PythonCall, usize) =
        bincode::serde::decode_from_slice(&enc, bincode_decode_config()).expect("decodes");
    assert_eq!(back, call);
}

/// A try of Python function `f` with arguments `args`.
fn python_try(task: u64, f: &PythonFunction, args: &[u8]) -> Try {
    Try {
        id: TryId { client: ClientId(1), task: TaskId(task), attempt: 0 },
        spec: TaskSpec {
            app: App::Python(PythonCall { interpreter: "python3".into(), function: f.clone(), args: args.to_vec() }),
            walltime_ms: None,
            priority: 0,
            outputs: vec![],
            resources: Resources::default(),
        },
    }
}

fn function_of(t: &Try) -> &PythonFunction {
    match &t.spec.app {
        App::Python(p) => &p.function,
        other => panic!("{other:?}"),
    }
}

/// A frame of 100 tries of two 10 kB functions carries each function once, decodes to the same
/// tries, and its tries of one function share one copy; the next frame carries them again.
#[test]
fn python_functions_travel_once_per_frame() {
    let c = codec();
    let (f, g) = (PythonFunction::new(vec![1u8; 10_000]), PythonFunction::new(vec![2u8; 10_000]));
    let tries: Vec<Try> = (0..100).map(|i| python_try(i, if i % 2 == 0 { &f } else { &g }, b"args")).collect();
    let whole: usize = tries.iter().map(encoded_len).sum();
    assert!(whole > 100 * 10_000, "counted alone, each try carries its function: {whole}");
    for seq in [1, 2] {
        let frame = c.encode(&ToManagerMsg::Tasks(tries.clone()), seq);
        assert!(frame.len() < 2 * 10_000 + 100 * 100, "both functions once: {} bytes", frame.len());
        let (_, back): (Header, ToManagerMsg) = c.decode(&frame).expect("decodes");
        let ToManagerMsg::Tasks(back) = back else { panic!("{back:?}") };
        assert_eq!(back, tries);
        let shared = |i: usize, j: usize| Arc::ptr_eq(&function_of(&back[i]).pickled, &function_of(&back[j]).pickled);
        assert!(shared(0, 98) && shared(1, 99) && !shared(0, 1));
    }
}

/// A frame whose try names a function by key before any try carried it is malformed, not a
/// try with no function.
#[test]
fn a_function_named_before_it_was_carried_is_malformed() {
    let c = codec();
    let f = PythonFunction::new(vec![3u8; 100]);
    let msg = ToManagerMsg::Tasks(vec![python_try(0, &f, b"a")]);
    // Encoded in a frame that has (it believes) carried the function already.
    let body = functions::encoding(|| {
        assert_eq!(functions::write(&f.key, &f.pickled), functions::Write::Whole { keep: false });
        bincode::serde::encode_to_vec(&msg, bincode_config()).expect("encodes")
    });
    let frame = seal(&c, Channel::ToManager, &body);
    assert!(matches!(c.decode::<ToManagerMsg>(&frame), Err(WireError::Malformed(m)) if m.contains("named by key")));
}

/// Over a link the second frame names the function by key and decodes to the same tries; a
/// receiver that does not hold it gets the frame's tries with the key reported, not an error.
#[test]
fn python_functions_travel_once_per_link() {
    let c = codec();
    let f = PythonFunction::new(vec![7u8; 10_000]);
    let (mut sent, mut held) = (functions::Sent::default(), functions::Held::default());
    let msg = |i| ToManagerMsg::Tasks(vec![python_try(i, &f, b"args")]);
    let first = c.encode_over(&msg(0), 1, &mut sent);
    let second = c.encode_over(&msg(1), 2, &mut sent);
    assert!(first.len() > 10_000 && second.len() < 200, "{} then {} bytes", first.len(), second.len());
    let (_, back, missing) = c.decode_over::<ToManagerMsg>(&first, &mut held).expect("first");
    assert_eq!((back, missing), (msg(0), vec![]));
    let (_, back, missing) = c.decode_over::<ToManagerMsg>(&second, &mut held).expect("second");
    assert_eq!((back, missing), (msg(1), vec![]));
    // A plain decode has no link to look in: the frame is malformed there.
    assert!(matches!(c.decode::<ToManagerMsg>(&second), Err(WireError::Malformed(_))));
    let (_, back, missing) = c.decode_over::<ToManagerMsg>(&second, &mut functions::Held::default()).expect("decodes");
    assert_eq!(missing, vec![f.key]);
    let ToManagerMsg::Tasks(back) = back else { panic!("{back:?}") };
    assert!(function_of(&back[0]).pickled.is_empty(), "the try is marked, not run with made-up bytes");
}
