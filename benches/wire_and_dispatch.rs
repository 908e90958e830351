//! Micro-benchmarks: encoding/decoding batches on the wire, and one dispatch round with 2,048 managers.

// criterion_group! generates a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::time::Instant;
use strand::block::BlockId;
use strand::interchange::{Comm, DispatchConfig, Dispatcher};
use strand::task::*;
use strand::wire::{Codec, Key, ManagerMsg, Registration, ToManagerMsg};

fn tries(n: u64) -> Vec<Try> {
    (0..n)
        .map(|i| Try {
            id: TryId { client: ClientId(1), task: TaskId(i), attempt: 0 },
            spec: TaskSpec {
                app: App::Function(FunctionCall { name: "noop".into(), args: vec![] }),
                walltime_ms: None,
                priority: 0,
                outputs: vec![],
                resources: Default::default(),
            },
        })
        .collect()
}

fn results(n: u64) -> Vec<TryResult> {
    (0..n)
        .map(|i| TryResult::new(TryId { client: ClientId(1), task: TaskId(i), attempt: 0 }, Outcome::Done(vec![])))
        .collect()
}

fn codec(c: &mut Criterion) {
    let codec = Codec::new(Key([3; 32]), 9);
    let mut g = c.benchmark_group("wire");
    for n in [1u64, 1024] {
        let t = ToManagerMsg::Tasks(tries(n));
        let r = ManagerMsg::Results(results(n));
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("encode_tasks_{n}"), |b| b.iter(|| codec.encode(&t, 1)));
        let frame = codec.encode(&t, 1);
        g.bench_function(format!("decode_tasks_{n}"), |b| b.iter(|| codec.decode::<ToManagerMsg>(&frame)));
        g.bench_function(format!("encode_results_{n}"), |b| b.iter(|| codec.encode(&r, 1)));
        let frame = codec.encode(&r, 1);
        g.bench_function(format!("decode_results_{n}"), |b| b.iter(|| codec.decode::<ManagerMsg>(&frame)));
    }
    g.finish();
}

struct Sink(usize);
impl Comm for Sink {
    fn send_tasks(&mut self, _m: ManagerId, t: Vec<Try>) {
        self.0 += t.len();
    }
    fn send_results(&mut self, _c: ClientId, r: Vec<TryResult>) {
        self.0 += r.len();
    }
    fn send_refused(&mut self, _c: ClientId, _t: Vec<TryId>, _l: u64) {}
    fn send_samples(&mut self, _c: ClientId, _s: strand::sample::Samples) {}
}

fn dispatch(c: &mut Criterion) {
    const MANAGERS: u64 = 2048;
    const SLOTS: u32 = 128;
    let mut g = c.benchmark_group("dispatch");
    // One round: 2,048 managers with 128 free slots each take 262,144 queued tries.
    g.throughput(Throughput::Elements(MANAGERS * SLOTS as u64));
    g.sample_size(10);
    g.bench_function("round_2048_managers", |b| {
        b.iter_batched(
            || {
                let now = Instant::now();
                let mut d = Dispatcher::new(DispatchConfig::default());
                for m in 0..MANAGERS {
                    d.register(
                        Registration {
                            manager: ManagerId(m),
                            block: BlockId("b".into()),
                            host: "h".into(),
                            pool_size: SLOTS + 1,
                            slots: SLOTS,
                            prefetch: 0,
                            launcher_version: "b".into(),
                            mpi_version: "b".into(),
                        },
                        now,
                    );
                }
                let mut sink = Sink(0);
                d.submit(ClientId(1), tries(MANAGERS * SLOTS as u64), &mut sink);
                d
            },
            |mut d| {
                let mut sink = Sink(0);
                d.flush(&mut sink);
                assert_eq!(sink.0 as u64, MANAGERS * SLOTS as u64);
                d
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, codec, dispatch);
criterion_main!(benches);
