//! The Tally analyzer: pricing, cost allocation and recommendations.
//!
//! A pure library: the collector turns its store into an
//! [`input::FleetSnapshot`] and calls [`recommend::analyze`]; tests and the replay
//! harness build snapshots by hand. One file per analysis.

pub mod allocation;
pub mod config;
pub mod distribution;
pub mod eval;
pub mod input;
pub mod output;
pub mod parquet;
pub mod pricing;
pub mod recommend;
pub mod recommendation;
pub mod rightsizing;

/// Hours in the 730-hour month that cloud price sheets use.
pub const HOURS_PER_MONTH: f64 = 730.0;
