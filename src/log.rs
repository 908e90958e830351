//! Logging: slog with an async drain, so a log line never blocks the hot loop.

use slog::{o, Drain, Level, Logger};

/// A logger to stderr at `level`, through an async drain that drops lines rather than block.
pub fn stderr_logger(level: Level) -> Logger {
    let decorator = slog_term::PlainSyncDecorator::new(std::io::stderr());
    let drain = slog_term::FullFormat::new(decorator).build().fuse();
    let drain = slog_async::Async::new(drain)
        .chan_size(4096)
        .overflow_strategy(slog_async::OverflowStrategy::DropAndReport)
        .build()
        .fuse();
    Logger::root(drain.filter_level(level).fuse(), o!())
}

/// Map `-v` counts to levels: 0 = info, 1 = debug, 2+ = trace; `quiet` = warnings only.
pub fn level(verbose: u8, quiet: bool) -> Level {
    match (quiet, verbose) {
        (true, _) => Level::Warning,
        (false, 0) => Level::Info,
        (false, 1) => Level::Debug,
        _ => Level::Trace,
    }
}
