//! Strand: an MPI-native many-task launcher for extreme-scale HPC.
//!
//! This crate is the login-node side: the wire protocol, the interchange, the DFK, the
//! executors (strategy, scaler, providers, launch commands) and the `strand` CLI. It never
//! links MPI; the `strand-launcher` crate in `launcher/` is the only one that does.
//!
//! Layout, by the concepts of the Parsl paper: [`task`] and [`block`] name things;
//! [`wire`] and [`connection`] are how processes talk; [`interchange`] brokers tries;
//! [`dfk`] holds the task graph of a driver; [`executor`] starts an interchange and its
//! blocks through a [`provider`], each launcher started with [`launcher_options`];
//! [`run_dir`] is where a run keeps its files; [`sample`] is what running tries and nodes use;
//! [`monitoring`] is what a run records and shows; [`bench`](mod@bench) measures all of it.

pub mod bench;
pub mod block;
pub mod client;
pub mod connection;
pub mod dfk;
pub mod executor;
pub mod host;
pub mod interchange;
pub mod launcher_options;
pub mod log;
pub mod map;
pub mod monitoring;
pub mod process;
pub mod provider;
pub mod run_dir;
pub mod sample;
pub mod task;
pub mod text;
pub(crate) mod waker;
pub mod wire;
pub mod workflow;
