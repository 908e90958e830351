//! `strand map`'s inputs and command lines, in GNU parallel's terms (see docs/map.md):
//! [`template`] fills replacement strings, [`input`] combines input sources, [`joblog`]
//! writes and reads GNU parallel's job log, [`json`] reads tasks as JSON lines.

pub mod input;
pub mod joblog;
pub mod json;
pub mod template;
