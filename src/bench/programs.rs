//! The programs of the Parsl profiling study, over any DFK: `double` over N independent
//! tasks, an `increment` chain where each task takes the previous future, and Fibonacci
//! through join tasks. Used by `examples/parsl_programs.rs`, the tests and `strand bench chain`.

use crate::dfk::{Call, DfkHandle, TaskFuture};

/// N independent tasks, each printing 2·i.
pub fn double(h: &DfkHandle, n: u64) -> Vec<TaskFuture> {
    (0..n).map(|i| h.submit(Call::shell(format!("echo $((2 * {i}))")).named(format!("double-{i}")))).collect()
}

/// A chain of `depth` tasks, each adding 1 to the previous one's output; the last future.
pub fn increment(h: &DfkHandle, depth: u64) -> TaskFuture {
    let mut f = h.submit(Call::function("echo", b"0".to_vec()).named("increment-0"));
    for i in 1..=depth {
        f = h.submit(Call::shell("echo $(({0} + 1))").input(&f).named(format!("increment-{i}")));
    }
    f
}

/// A chain of `depth` no-op function tasks, each after the previous (for per-link overhead).
pub fn noop_chain(h: &DfkHandle, depth: u64) -> TaskFuture {
    let mut f = h.submit(Call::function("noop", Vec::new()).memoize(false));
    for _ in 1..depth {
        f = h.submit(Call::function("noop", Vec::new()).after(&f).memoize(false));
    }
    f
}

/// fib(n) through join tasks: each join submits fib(n-1), fib(n-2) and their sum when it runs.
pub fn fib(h: &DfkHandle, n: u64) -> TaskFuture {
    if n < 2 {
        return h.submit(Call::function("echo", n.to_string().into_bytes()));
    }
    let h2 = h.clone();
    h.submit(Call::join(move |_| {
        let a = fib(&h2, n - 1);
        let b = fib(&h2, n - 2);
        h2.submit(Call::shell("echo $(({0} + {1}))").input(&a).input(&b))
    }))
}
