//! OTLP ingest: body decoding and flattening into store samples.

pub mod decode;
pub mod points;
