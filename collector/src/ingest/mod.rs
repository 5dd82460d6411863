//! OTLP ingest: body decoding and flattening into store samples and log
//! records.

pub mod decode;
pub mod genai;
pub mod logs;
pub mod points;
pub mod wire;
