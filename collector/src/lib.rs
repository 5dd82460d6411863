//! The Tally collector: receives OTLP from agents and SDKs, keeps the
//! embedded store and serves the analyzer's results.
//!
//! This crate is laid out now so the workspace has its final shape; the
//! ingest path, store and API arrive with their own issue (#3).

/// Default OTLP/HTTP port, as the OpenTelemetry specification fixes it.
pub const DEFAULT_OTLP_HTTP_PORT: u16 = 4318;
