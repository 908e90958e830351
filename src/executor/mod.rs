//! Executors: blocks of `strand-launcher` on a provider, grown and shrunk by the strategy.
//!
//! `strategy` decides how many blocks to hold (plain data, tested without a scheduler).

pub mod scaler;
pub mod strategy;
