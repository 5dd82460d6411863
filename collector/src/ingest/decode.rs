//! Turning an OTLP/HTTP request body into protobuf messages: content
//! encoding (gzip, zstd, none) with a hard size bound on the *decompressed*
//! size (a small gzip bomb must not become gigabytes), then protobuf or
//! JSON by content type, as the OTLP specification asks servers to accept.

use std::io::Read;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use serde::de::DeserializeOwned;

/// Why a body was refused. Each maps to a 4xx with this text as the reason.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not protobuf or JSON.
    #[error("unsupported content type {0:?}: send application/x-protobuf or application/json")]
    ContentType(String),
    /// Not gzip, zstd or identity.
    #[error("unsupported content encoding {0:?}: send gzip, zstd or no encoding")]
    Encoding(String),
    /// Over the configured limit (compressed or decompressed).
    #[error("request body exceeds the {limit}-byte limit")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The compressed stream is broken.
    #[error("cannot decompress the {encoding} body: {reason}")]
    Decompress {
        /// gzip or zstd.
        encoding: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// Protobuf that does not decode.
    #[error("malformed OTLP protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// JSON that does not decode.
    #[error("malformed OTLP JSON: {0}")]
    Json(String),
    /// Protobuf that does not walk (see [`crate::ingest::wire`]).
    #[error("malformed OTLP protobuf: {0}")]
    Wire(#[from] crate::ingest::wire::WireError),
}

impl DecodeError {
    /// The HTTP status the OTLP specification asks for.
    pub fn status(&self) -> u16 {
        match self {
            DecodeError::TooLarge { .. } => 413,
            DecodeError::ContentType(_) | DecodeError::Encoding(_) => 415,
            _ => 400,
        }
    }
}

/// The wire format of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

/// Picks the format from `Content-Type` (parameters ignored).
pub fn format_of(content_type: Option<&str>) -> Result<Format, DecodeError> {
    let essence = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
        "application/json" => Ok(Format::Json),
        other => Err(DecodeError::ContentType(other.to_owned())),
    }
}

/// Decompresses `body` per `Content-Encoding`, refusing output over `limit`.
pub fn decompress(
    encoding: Option<&str>,
    body: &[u8],
    limit: usize,
) -> Result<Vec<u8>, DecodeError> {
    if body.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    let encoding = encoding.unwrap_or("").trim().to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(body.to_vec()),
        "gzip" | "x-gzip" => bounded_read(flate2::read::GzDecoder::new(body), limit, "gzip"),
        "zstd" => {
            let mut source = body;
            let decoder = ruzstd::decoding::StreamingDecoder::new(&mut source).map_err(|e| {
                DecodeError::Decompress {
                    encoding: "zstd",
                    reason: e.to_string(),
                }
            })?;
            bounded_read(decoder, limit, "zstd")
        }
        other => Err(DecodeError::Encoding(other.to_owned())),
    }
}

fn bounded_read(
    reader: impl Read,
    limit: usize,
    encoding: &'static str,
) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Decompress {
            encoding,
            reason: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(out)
}

fn decode<T: Message + Default + DeserializeOwned>(
    format: Format,
    body: &[u8],
) -> Result<T, DecodeError> {
    match format {
        Format::Protobuf => Ok(T::decode(body)?),
        Format::Json => serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string())),
    }
}

/// A body read from untrusted bytes.
#[derive(Debug)]
pub struct Decoded<T> {
    /// The wire format (the response is sent in the same one).
    pub format: Format,
    /// The decompressed body.
    pub raw: Vec<u8>,
    /// The decoded export request.
    pub request: T,
}

/// The whole path of an OTLP/HTTP body from untrusted bytes, without the
/// HTTP layer: `Content-Type` picks the format, `Content-Encoding` the
/// decompression (bounded by `limit`), then the request is decoded.
pub fn body<T: Message + Default + DeserializeOwned>(
    content_type: Option<&str>,
    encoding: Option<&str>,
    body: &[u8],
    limit: usize,
) -> Result<Decoded<T>, DecodeError> {
    let format = format_of(content_type)?;
    let raw = decompress(encoding, body, limit)?;
    let request = decode(format, &raw)?;
    Ok(Decoded {
        format,
        raw,
        request,
    })
}

/// A metrics body as protobuf bytes, not yet decoded: flattening walks
/// them in place ([`crate::ingest::points::flatten`], which also reports
/// malformed bytes), and they are what the write-ahead log keeps.
#[derive(Debug)]
pub struct EncodedMetrics {
    /// The wire format (the response is sent in the same one).
    pub format: Format,
    /// An `ExportMetricsServiceRequest`, encoded.
    pub protobuf: Vec<u8>,
}

/// The whole path of an OTLP/HTTP metrics body from untrusted bytes up to
/// protobuf bytes: as [`body`], but a protobuf body is only decompressed
/// and a JSON body is decoded and encoded again as protobuf.
pub fn metrics_body(
    content_type: Option<&str>,
    encoding: Option<&str>,
    body: &[u8],
    limit: usize,
) -> Result<EncodedMetrics, DecodeError> {
    let format = format_of(content_type)?;
    let raw = decompress(encoding, body, limit)?;
    let protobuf = match format {
        Format::Protobuf => raw,
        Format::Json => metrics(Format::Json, &raw)?.encode_to_vec(),
    };
    Ok(EncodedMetrics { format, protobuf })
}

/// Decodes a metrics export request.
pub fn metrics(format: Format, body: &[u8]) -> Result<ExportMetricsServiceRequest, DecodeError> {
    decode(format, body)
}

/// Decodes a logs export request.
pub fn logs(format: Format, body: &[u8]) -> Result<ExportLogsServiceRequest, DecodeError> {
    decode(format, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn content_types() {
        assert_eq!(
            format_of(Some("application/x-protobuf")).ok(),
            Some(Format::Protobuf)
        );
        assert_eq!(
            format_of(Some("application/json; charset=utf-8")).ok(),
            Some(Format::Json)
        );
        let error = format_of(Some("text/plain")).expect_err("refused");
        assert_eq!(error.status(), 415);
        assert!(format_of(None).is_err());
    }

    #[test]
    fn gzip_bomb_is_refused() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&vec![0u8; 10 << 20]).expect("write");
        let bomb = encoder.finish().expect("finish");
        assert!(bomb.len() < 64 << 10);
        let error = decompress(Some("gzip"), &bomb, 1 << 20).expect_err("too large");
        assert_eq!(error.status(), 413);
        assert_eq!(
            decompress(Some("gzip"), &bomb, 16 << 20)
                .map(|v| v.len())
                .ok(),
            Some(10 << 20)
        );
    }

    #[test]
    fn broken_streams_and_unknown_encodings() {
        assert_eq!(
            decompress(Some("gzip"), b"not gzip", 100)
                .expect_err("bad")
                .status(),
            400
        );
        assert_eq!(
            decompress(Some("zstd"), b"not zstd", 100)
                .expect_err("bad")
                .status(),
            400
        );
        assert_eq!(
            decompress(Some("br"), b"x", 100).expect_err("bad").status(),
            415
        );
        assert_eq!(
            decompress(None, &[0; 200], 100).expect_err("big").status(),
            413
        );
    }

    #[test]
    fn truncated_protobuf_and_deep_json() {
        let request = ExportMetricsServiceRequest::default();
        assert!(metrics(Format::Protobuf, &request.encode_to_vec()).is_ok());
        // A length-delimited field claiming 2 GiB.
        assert!(metrics(Format::Protobuf, &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x07]).is_err());
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(metrics(Format::Json, deep.as_bytes()).is_err());
        assert!(metrics(Format::Json, b"{\"resourceMetrics\":[]}").is_ok());
    }
}
