//! Executors: blocks of `strand-launcher` on a provider, grown and shrunk by the strategy.
//!
//! `strategy` decides how many blocks to hold (plain data, tested without a scheduler);
//! `scaler` runs it against a provider; `config` reads executors from TOML; `launch` builds the
//! command that starts the launcher over a block's nodes; `script` writes a block's batch script.

pub mod config;
pub mod launch;
pub mod scaler;
pub mod script;
pub mod strategy;
