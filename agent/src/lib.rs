//! Tally's node agent.
//!
//! Sources (`sources/`) measure the host, every container's cgroup and the
//! pods on this node; the runtime folds their readings into a [`snapshot`]
//! that `/metrics` renders at scrape time and the exporter ships to the
//! collector over OTLP/HTTP through a crash-safe disk spool.

pub mod config;
pub mod export;
pub mod exposition;
pub mod gpu_check;
pub mod runtime;
pub mod server;
pub mod snapshot;
pub mod sources;
pub mod telemetry;
