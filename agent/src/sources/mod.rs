//! Everything the agent measures, one module per source.

pub mod pods;
