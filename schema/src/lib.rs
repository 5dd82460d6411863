//! Tally's contract between the agent, the collector and everything that
//! reads their output.
//!
//! - [`identity`]: who a measurement belongs to (node, pod, container,
//!   workload) and how that maps onto Prometheus labels and OpenTelemetry
//!   semantic-convention resource attributes.
//! - [`catalog`]: every metric family Tally emits, with its type, unit,
//!   help and labels. `docs/metrics.md` is generated from it.
//! - [`otlp`]: helpers that build OTLP protobuf requests, shared by the
//!   agent (sender) and the collector (receiver).
//! - [`semconv`]: OpenTelemetry hardware semantic-convention names for
//!   the GPU families, sent on request and mapped back on ingest.
//! - [`exphist`]: base-2 exponential histograms, the edge pre-aggregation
//!   the agent ships to the collector.

pub mod catalog;
pub mod exphist;
pub mod fasthash;
pub mod identity;
pub mod otlp;
pub mod semconv;
