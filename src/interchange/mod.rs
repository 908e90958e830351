//! The interchange: the broker between clients (DFKs) and managers.
//!
//! [`dispatch`] holds the logic as a plain state machine; [`server`] puts it
//! behind two ZeroMQ ROUTER sockets; [`process`] starts it as a child process.

pub mod dispatch;
pub mod process;
pub mod server;

pub use dispatch::{Comm, DispatchConfig, Dispatcher};
pub use server::{Interchange, InterchangeConfig, InterchangeError};
