//! Providers: how blocks are submitted to, watched on and cancelled from a batch system.
