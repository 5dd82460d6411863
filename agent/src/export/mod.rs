//! Shipping batches to the collector: a crash-safe disk spool and the
//! OTLP/HTTP sender that drains it.

pub mod sender;
pub mod spool;
