//! Strand: an MPI-native many-task launcher for extreme-scale HPC.
//!
//! This crate is the login-node side: the wire protocol, the interchange, the
//! DFK and the `strand` CLI. It never links MPI; the `strand-launcher` crate in
//! `launcher/` is the only one that does.

pub mod bench;
pub mod client;
pub mod connection;
pub mod dfk;
pub mod elasticity;
pub mod executor;
pub mod host;
pub mod interchange;
pub mod local;
pub mod log;
pub mod map;
pub mod programs;
pub mod progress;
pub mod provider;
pub mod sim;
pub mod task;
pub mod waker;
pub mod wire;
pub mod workflow;
