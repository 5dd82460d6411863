//! The Tally collector: receives OTLP from agents and any OpenTelemetry
//! SDK, keeps the embedded store (write-ahead log + hourly aggregates) and
//! serves the JSON API.

pub mod analysis;
pub mod api;
pub mod config;
pub mod forward;
pub mod ingest;
pub mod memory;
pub mod parallel;
pub mod replay;
pub mod server;
pub mod simulate;
pub mod store;
pub mod tls;

/// Default OTLP/HTTP port, as the OpenTelemetry specification fixes it.
pub const DEFAULT_OTLP_HTTP_PORT: u16 = 4318;
