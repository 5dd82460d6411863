//! A zero-copy protobuf reader for the metrics ingest path.
//!
//! Decoding a request with prost allocates a `String` for every attribute
//! key and value and a `Vec` for every list, only for flattening to turn
//! them into label sets the store already holds: in profiles, allocating
//! and freeing was over a third of the collector's ingest CPU. This reader
//! walks the encoded bytes in place, so flattening can look a resource's
//! labels up by its bytes and allocate nothing for series it has seen.

/// Why bytes are not a valid protobuf message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A field runs past the end of its message.
    #[error("truncated message in {0}")]
    Truncated(&'static str),
    /// A varint longer than ten bytes.
    #[error("invalid varint in {0}")]
    Varint(&'static str),
    /// A tag with field number 0 or over 2^29 − 1.
    #[error("invalid field number in {0}")]
    FieldNumber(&'static str),
    /// Groups (wire types 3 and 4) are deprecated and unused by OTLP.
    #[error("unsupported wire type {wire_type} in {message}")]
    WireType {
        /// The wire type found.
        wire_type: u8,
        /// The message being read.
        message: &'static str,
    },
    /// A known field encoded with another wire type than its own.
    #[error("field {field} of {message} has the wrong wire type")]
    WrongType {
        /// The field number.
        field: u32,
        /// The message being read.
        message: &'static str,
    },
    /// A string field that is not UTF-8.
    #[error("invalid UTF-8 in {0}")]
    Utf8(&'static str),
    /// A sub-message decoded with prost (histogram points, nested
    /// attribute values) that did not decode.
    #[error("malformed {message}: {reason}")]
    Nested {
        /// The message being read.
        message: &'static str,
        /// What prost said.
        reason: String,
    },
}

/// One field's value, borrowing from the message bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1 (fixed64, sfixed64, double).
    Fixed64(u64),
    /// Wire type 2 (strings, bytes, sub-messages, packed lists).
    Bytes(&'a [u8]),
    /// Wire type 5 (fixed32, sfixed32, float).
    Fixed32(u32),
}

impl<'a> Value<'a> {
    /// The bytes of a length-delimited field, or a wire-type error.
    pub fn bytes(self, field: u32, message: &'static str) -> Result<&'a [u8], WireError> {
        match self {
            Value::Bytes(bytes) => Ok(bytes),
            _ => Err(WireError::WrongType { field, message }),
        }
    }

    /// A string field, checked for UTF-8.
    pub fn text(self, field: u32, message: &'static str) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes(field, message)?).map_err(|_| WireError::Utf8(message))
    }

    /// A varint field.
    pub fn varint(self, field: u32, message: &'static str) -> Result<u64, WireError> {
        match self {
            Value::Varint(value) => Ok(value),
            _ => Err(WireError::WrongType { field, message }),
        }
    }

    /// A fixed64, sfixed64 or double field's bits.
    pub fn fixed64(self, field: u32, message: &'static str) -> Result<u64, WireError> {
        match self {
            Value::Fixed64(value) => Ok(value),
            _ => Err(WireError::WrongType { field, message }),
        }
    }
}

/// The fields of one message, in encoded order. After an error the
/// iterator ends.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    rest: &'a [u8],
    message: &'static str,
}

impl<'a> Fields<'a> {
    /// The fields of `bytes`, a `message` (named in errors).
    pub fn new(bytes: &'a [u8], message: &'static str) -> Self {
        Self {
            rest: bytes,
            message,
        }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (i, byte) in self.rest.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return Ok(value);
            }
        }
        Err(if self.rest.len() < 10 {
            WireError::Truncated(self.message)
        } else {
            WireError::Varint(self.message)
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.rest.len() < n {
            return Err(WireError::Truncated(self.message));
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn field(&mut self) -> Result<(u32, Value<'a>), WireError> {
        let tag = self.varint()?;
        let number = tag >> 3;
        if number == 0 || number > (1 << 29) - 1 {
            return Err(WireError::FieldNumber(self.message));
        }
        let value = match tag & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(fixed(self.take(8)?))),
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| WireError::Truncated(self.message))?;
                Value::Bytes(self.take(len)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(fixed(self.take(4)?))),
            wire_type => {
                return Err(WireError::WireType {
                    wire_type: wire_type as u8,
                    message: self.message,
                });
            }
        };
        Ok((number as u32, value))
    }
}

fn fixed<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let field = self.field();
        if field.is_err() {
            self.rest = &[];
        }
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use prost::Message;

    #[test]
    fn reads_what_prost_writes() {
        let kv = KeyValue {
            key: "k8s.pod.name".to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(-3)),
            }),
            ..Default::default()
        };
        let bytes = kv.encode_to_vec();
        let fields: Vec<_> = Fields::new(&bytes, "KeyValue")
            .collect::<Result<_, _>>()
            .expect("valid");
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[0].1.text(1, "KeyValue").ok(), Some("k8s.pod.name"));
        let value = fields[1].1.bytes(2, "KeyValue").expect("bytes");
        let inner: Vec<_> = Fields::new(value, "AnyValue")
            .collect::<Result<_, _>>()
            .expect("valid");
        // int64 -3 is a ten-byte varint holding the two's complement.
        assert_eq!(inner, vec![(3, Value::Varint(-3i64 as u64))]);
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        let cases: [(&[u8], WireError); 6] = [
            (&[0x0a, 0x05, 1, 2], WireError::Truncated("m")),
            (
                &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x07],
                WireError::Truncated("m"),
            ),
            (&[0x08; 1], WireError::Truncated("m")),
            (
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                WireError::Varint("m"),
            ),
            (&[0x00, 0x01], WireError::FieldNumber("m")),
            (
                &[0x0b],
                WireError::WireType {
                    wire_type: 3,
                    message: "m",
                },
            ),
        ];
        for (bytes, expected) in cases {
            let mut fields = Fields::new(bytes, "m");
            assert_eq!(fields.next(), Some(Err(expected)), "{bytes:?}");
            assert_eq!(fields.next(), None);
        }
        let (_, value) = Fields::new(&[0x0a, 0x01, 0xff], "m")
            .next()
            .expect("a field")
            .expect("valid");
        assert_eq!(value.text(1, "m"), Err(WireError::Utf8("m")));
        assert_eq!(
            value.varint(1, "m"),
            Err(WireError::WrongType {
                field: 1,
                message: "m"
            })
        );
    }
}
