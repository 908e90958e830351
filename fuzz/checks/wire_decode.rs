//! Fuzz the frame decoder: every byte string is either decoded or dropped and counted, never a panic.
//!
//! Each input is tried two ways. As a raw frame, on all four channels: almost nothing gets past
//! the MAC, so this covers the size, magic, version and MAC checks. Then, with its first byte
//! choosing a channel, the rest becomes the body of an authentic frame (sealed here with the
//! fixed key), so the bincode decoding of every message type is reached too.
//!
//! The checks of one input, shared by the fuzz target (`fuzz/fuzz_targets/wire_decode.rs`) and
//! the ordinary test that replays the seeds and any local corpus (`tests/it/fuzz_replay.rs`), so a
//! regression on a known input fails CI without nightly.

use strand::wire::{
    ClientMsg, Codec, DropCounts, Key, ManagerMsg, Message, ToClientMsg, ToManagerMsg, WireError, HEADER_LEN, MAC_LEN,
    PROTOCOL_VERSION,
};

const KEY: [u8; 32] = [0x5a; 32];
const RUN_ID: u64 = 0x0123_4567_89ab_cdef;
const SEQ: u64 = 77;

/// An authentic frame around `body` for channel `channel` (what `Codec::encode` writes).
fn seal(channel: u8, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(HEADER_LEN + body.len() + MAC_LEN);
    f.extend_from_slice(b"STRD");
    f.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    f.push(channel);
    f.push(0);
    f.extend_from_slice(&RUN_ID.to_le_bytes());
    f.extend_from_slice(&SEQ.to_le_bytes());
    f.extend_from_slice(body);
    let mac = blake3::keyed_hash(&KEY, &f);
    f.extend_from_slice(mac.as_bytes());
    f
}

/// Decode `frame` as `M`: a success must survive a round trip; a failure must be counted.
fn check<M: Message + PartialEq + std::fmt::Debug>(codec: &Codec, frame: &[u8]) -> Result<(), WireError> {
    match codec.decode::<M>(frame) {
        Ok((header, msg)) => {
            let again = codec.encode(&msg, header.seq);
            let (h2, m2) = codec.decode::<M>(&again).expect("a decoded message encodes to a frame that decodes");
            assert_eq!(h2, header);
            assert_eq!(m2, msg);
            Ok(())
        }
        Err(e) => {
            let mut counts = DropCounts::default();
            counts.count(&e);
            assert_eq!(counts.total(), 1, "{e} was not counted");
            let _ = e.to_string();
            Err(e)
        }
    }
}

/// Check one input; panics on a violated property.
pub fn one_input(data: &[u8]) {
    let codec = Codec::new(Key(KEY), RUN_ID);
    let _ = check::<ClientMsg>(&codec, data);
    let _ = check::<ToClientMsg>(&codec, data);
    let _ = check::<ManagerMsg>(&codec, data);
    let _ = check::<ToManagerMsg>(&codec, data);
    let small = codec.clone().with_max_frame(256);
    let _ = check::<ManagerMsg>(&small, data);

    let Some((&select, body)) = data.split_first() else { return };
    let channel = 1 + select % 4;
    let frame = seal(channel, body);
    let got = match channel {
        1 => check::<ClientMsg>(&codec, &frame),
        2 => check::<ToClientMsg>(&codec, &frame),
        3 => check::<ManagerMsg>(&codec, &frame),
        _ => check::<ToManagerMsg>(&codec, &frame),
    };
    // The header and MAC are right, so only the body can be wrong.
    if let Err(e) = got {
        assert!(matches!(e, WireError::Malformed(_)), "an authentic frame was refused as {e:?}");
    }
}
