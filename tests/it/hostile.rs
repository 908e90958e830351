//! Bad peers on the manager port: wrong key, truncated frames, random bytes.

use crate::common::*;
use std::time::Duration;
use strand::connection::ConnectionInfo;
use strand::dfk::{Call, Dfk, DfkConfig};
use strand::wire::{Key, ManagerMsg};

#[test]
fn bad_frames_are_dropped_and_the_good_launcher_keeps_serving() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ix, conn) = interchange(dir.path(), &[]);
    let conn_file = dir.path().join("connection.json");
    let _good = launcher(dir.path(), "good", 2, &conn_file, &[]);
    wait_managers(&conn, 1, Duration::from_secs(60));

    // A launcher with the wrong key: its registration is unauthenticated, so it never
    // hears back and gives up after its connect timeout.
    let mut bad = conn.clone();
    bad.key = Key([0x55; 32]).to_hex();
    let bad_file = dir.path().join("wrong-key.json");
    bad.write(&bad_file).expect("write bad connection file");
    let mut wrong = launcher(dir.path(), "wrong-key", 2, &bad_file, &["--connect-timeout", "2"]);

    // Raw garbage straight onto the manager port.
    let ctx = zmq::Context::new();
    let s = ctx.socket(zmq::DEALER).expect("socket");
    s.set_identity(&7u64.to_le_bytes()).expect("identity");
    s.connect(&conn.manager_endpoint()).expect("connect");
    let good_frame = conn.codec().encode(&ManagerMsg::Heartbeat, 1);
    s.send(&good_frame[..good_frame.len() / 2], 0).expect("send truncated");
    s.send(&good_frame[..10], 0).expect("send short");
    let mut noise = vec![0u8; 4096];
    for (i, b) in noise.iter_mut().enumerate() {
        *b = (i * 7919 % 251) as u8;
    }
    s.send(&noise, 0).expect("send noise");
    // Multi-part garbage too: a ROUTER sees three frames from one peer.
    s.send_multipart([&b"a"[..], &b"b"[..]], 0).expect("send multipart");
    // A correctly signed heartbeat captured and sent again from its own identity: the first
    // copy counts as "unexpected" (peer 7 never registered), the second as a replay.
    let hb = conn.codec().encode(&ManagerMsg::Heartbeat, 5);
    s.send(&hb[..], 0).expect("send heartbeat");
    s.send(&hb[..], 0).expect("replay heartbeat");

    // The good launcher still serves.
    let dfk = Dfk::connect(&conn, DfkConfig::default()).expect("dfk");
    let fs: Vec<_> = (0..200).map(|i| dfk.submit(Call::function("echo", vec![i as u8]))).collect();
    assert_eq!(dfk.wait_all(Some(Duration::from_secs(60))), 0);
    for (i, f) in fs.iter().enumerate() {
        assert_eq!(f.peek(), Some(Ok(vec![i as u8])));
    }
    dfk.shutdown();

    let st = wrong.wait(Duration::from_secs(30));
    assert!(st.success(), "the wrong-key launcher gives up cleanly: {st}\n{}", tail(&dir.path().join("wrong-key.log")));
    assert!(ix.is_running(), "the interchange survived");

    let mut c = strand::client::Client::connect(&conn).expect("client");
    let report = c.status(Duration::from_secs(10)).expect("status");
    assert_eq!(report.managers.len(), 1, "only the good manager is registered");
    let d = report.dropped;
    assert!(d.unauthenticated >= 1, "wrong-key registration counted: {d:?}");
    assert!(d.truncated >= 1, "short frame counted: {d:?}");
    assert!(d.malformed >= 2, "noise and multipart counted: {d:?}");
    assert_eq!(d.replayed, 1, "the replayed frame is dropped and counted: {d:?}");

    // A client with the wrong key gets nothing back either.
    let mut bad_client_conn: ConnectionInfo = conn.clone();
    bad_client_conn.key = Key([0x66; 32]).to_hex();
    let mut bc = strand::client::Client::connect(&bad_client_conn).expect("client");
    assert!(bc.hello(Duration::from_millis(500)).is_err(), "an unauthenticated client is ignored");
}
