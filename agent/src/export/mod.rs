//! Shipping batches to the collector: building OTLP batches, a crash-safe
//! disk spool and the OTLP/HTTP sender that drains it.

pub mod batch;
pub mod sender;
pub mod spool;
