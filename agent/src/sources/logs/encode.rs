//! Log records on the OTLP wire, encoded by hand straight from the
//! record's borrowed text: building prost's `LogRecord` first cost a
//! `String` per attribute key and value and computed each nested length
//! once per level above it. Layout (opentelemetry-proto `logs.proto`,
//! `common.proto`): `ExportLogsServiceRequest.resource_logs = 1`;
//! `ResourceLogs { resource = 1, scope_logs = 2 }`;
//! `ScopeLogs { scope = 1, log_records = 2 }`; `LogRecord {
//! time_unix_nano = 1 (fixed64), severity_number = 2, severity_text = 3,
//! body = 5, attributes = 6, trace_id = 9, span_id = 10,
//! observed_time_unix_nano = 11 (fixed64) }`; `KeyValue { key = 1,
//! value = 2 }`; `AnyValue { string_value = 1 }`.

use prost::Message as _;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use tally_schema::otlp;

use super::record::LogRecord;

/// A length-delimited field's size: key, length, body.
fn delimited_len(tag: u32, body: usize) -> usize {
    key_len(tag) + encoded_len_varint(body as u64) + body
}

fn put_header(tag: u32, body: usize, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(body as u64, out);
}

fn put_bytes(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    put_header(tag, bytes.len(), out);
    out.extend_from_slice(bytes);
}

fn put_fixed64(tag: u32, value: u64, out: &mut Vec<u8>) {
    encode_key(tag, WireType::SixtyFourBit, out);
    out.extend_from_slice(&value.to_le_bytes());
}

/// An `AnyValue` holding a string.
fn any_string_len(value: &str) -> usize {
    delimited_len(1, value.len())
}

fn put_attribute(key: &str, value: &str, out: &mut Vec<u8>) {
    let any = any_string_len(value);
    put_header(6, delimited_len(1, key.len()) + delimited_len(2, any), out);
    put_bytes(1, key.as_bytes(), out);
    put_header(2, any, out);
    put_bytes(1, value.as_bytes(), out);
}

/// Appends `record` as `ScopeLogs.log_records` (field 2, with its length)
/// to `out`; `scratch` is reused between records.
pub fn put_record(
    record: &LogRecord<'_>,
    observed_ns: u64,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    scratch.clear();
    put_fixed64(1, (record.time_seconds * 1e9) as u64, scratch);
    if record.severity_number != 0 {
        encode_key(2, WireType::Varint, scratch);
        encode_varint(record.severity_number as u64, scratch);
    }
    if !record.severity_text.is_empty() {
        put_bytes(3, record.severity_text.as_bytes(), scratch);
    }
    put_header(5, any_string_len(&record.body), scratch);
    put_bytes(1, record.body.as_bytes(), scratch);
    put_attribute("log.iostream", record.stream, scratch);
    for (key, value) in &record.attributes {
        put_attribute(key, value, scratch);
    }
    if record.truncated_bytes > 0 {
        put_attribute(
            "tally.log.truncated_bytes",
            &record.truncated_bytes.to_string(),
            scratch,
        );
    }
    if let Some(model) = &record.model {
        put_attribute("gen_ai.request.model", model, scratch);
    }
    if let Some(status) = &record.status {
        put_attribute("tally.log.status", status, scratch);
    }
    if let Some(trace_id) = &record.trace_id {
        put_bytes(9, trace_id, scratch);
    }
    if let Some(span_id) = &record.span_id {
        put_bytes(10, span_id, scratch);
    }
    put_fixed64(11, observed_ns, scratch);
    put_bytes(2, scratch, out);
}

/// Appends one `ResourceLogs` (as `ExportLogsServiceRequest.resource_logs`)
/// holding `records`, encoded by [`put_record`], under the agent's scope.
pub fn put_resource_logs(resource: &[(&'static str, String)], records: &[u8], out: &mut Vec<u8>) {
    let resource = otlp::resource(resource.iter().map(|(k, v)| (*k, v.clone()))).encode_to_vec();
    let scope = opentelemetry_proto::tonic::common::v1::InstrumentationScope {
        name: otlp::AGENT_SCOPE.to_owned(),
        ..Default::default()
    }
    .encode_to_vec();
    let scope_logs = delimited_len(1, scope.len()) + records.len();
    put_header(
        1,
        delimited_len(1, resource.len()) + delimited_len(2, scope_logs),
        out,
    );
    put_bytes(1, &resource, out);
    put_header(2, scope_logs, out);
    put_bytes(1, &scope, out);
    out.extend_from_slice(records);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::logs::cri::Stream;
    use crate::sources::logs::reassemble::Message;
    use crate::sources::logs::record::{FieldNames, record};
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;

    fn message(text: &str) -> Message {
        Message {
            time: "2026-12-01T16:15:00Z".into(),
            stream: Stream::Stderr,
            text: text.as_bytes().to_vec(),
            truncated_bytes: 7,
            pieces: 1,
        }
    }

    #[test]
    fn hand_encoded_records_decode_with_prost() {
        let fields = FieldNames::default();
        let lines = [
            r#"{"level":"error","msg":"boom \"x\"","model":"q","status":503,"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","k":"v"}"#,
            "plain text",
        ];
        let messages: Vec<Message> = lines.iter().map(|l| message(l)).collect();
        let mut scratch = Vec::new();
        let mut records = Vec::new();
        for m in &messages {
            put_record(&record(m, &fields), 42, &mut scratch, &mut records);
        }
        let mut body = Vec::new();
        put_resource_logs(&[("k8s.pod.name", "p".to_owned())], &records, &mut body);
        put_resource_logs(&[("k8s.pod.name", "q".to_owned())], &records, &mut body);
        let request = ExportLogsServiceRequest::decode(body.as_slice()).expect("valid OTLP");
        assert_eq!(request.resource_logs.len(), 2);
        let scope = &request.resource_logs[1].scope_logs[0];
        assert_eq!(
            scope.scope.as_ref().map(|s| s.name.as_str()),
            Some(otlp::AGENT_SCOPE)
        );
        let first = &scope.log_records[0];
        assert_eq!(first.time_unix_nano, 1_796_141_700_000_000_000);
        assert_eq!(first.observed_time_unix_nano, 42);
        assert_eq!(first.severity_number, 17);
        assert_eq!(first.severity_text, "error");
        assert_eq!(
            first.body.as_ref().and_then(|b| b.value.clone()),
            Some(Value::StringValue("boom \"x\"".into()))
        );
        let attribute = |key: &str| {
            first
                .attributes
                .iter()
                .find(|a| a.key == key)
                .and_then(|a| a.value.as_ref()?.value.clone())
        };
        assert_eq!(
            attribute("log.iostream"),
            Some(Value::StringValue("stderr".into()))
        );
        assert_eq!(attribute("k"), Some(Value::StringValue("v".into())));
        assert_eq!(
            attribute("gen_ai.request.model"),
            Some(Value::StringValue("q".into()))
        );
        assert_eq!(
            attribute("tally.log.status"),
            Some(Value::StringValue("503".into()))
        );
        assert_eq!(
            attribute("tally.log.truncated_bytes"),
            Some(Value::StringValue("7".into()))
        );
        assert_eq!(first.trace_id.len(), 16);
        assert_eq!(
            first.span_id,
            [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31]
        );
        let second = &scope.log_records[1];
        assert_eq!(second.severity_number, 0);
        assert!(second.trace_id.is_empty());
        assert_eq!(
            second.body.as_ref().and_then(|b| b.value.clone()),
            Some(Value::StringValue("plain text".into()))
        );
    }
}
