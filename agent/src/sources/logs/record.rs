//! A whole message → a log record: the message parsed as JSON when it is
//! a JSON object (kept as text when not, and counted), with the fields
//! Tally reads picked out by name.
//!
//! The default names cover common structured loggers (Go's slog and zap,
//! Python's structlog and json-logging, pino, vLLM's and TGI's JSON
//! output): `level`/`severity`, `msg`/`message`, `ts`/`time`,
//! `latency_ms`/`duration`, `model`, `prompt_tokens`, `completion_tokens`,
//! `status`, `trace_id`, `span_id`.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::value::RawValue;

use super::reassemble::Message;

/// Which JSON keys carry the fields Tally reads; the first key present
/// wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldNames {
    /// Severity, as text (`warn`) or a number (pino's 40).
    #[serde(
        default = "default_level",
        deserialize_with = "crate::config::text_list"
    )]
    pub level: Vec<String>,
    /// The human-readable message, the record's body.
    #[serde(
        default = "default_message",
        deserialize_with = "crate::config::text_list"
    )]
    pub message: Vec<String>,
    /// Request latency in milliseconds.
    #[serde(
        default = "default_latency_ms",
        deserialize_with = "crate::config::text_list"
    )]
    pub latency_ms: Vec<String>,
    /// Request latency in seconds.
    #[serde(
        default = "default_latency_seconds",
        deserialize_with = "crate::config::text_list"
    )]
    pub latency_seconds: Vec<String>,
    /// The model served or called.
    #[serde(
        default = "default_model",
        deserialize_with = "crate::config::text_list"
    )]
    pub model: Vec<String>,
    /// Prompt tokens.
    #[serde(
        default = "default_prompt_tokens",
        deserialize_with = "crate::config::text_list"
    )]
    pub prompt_tokens: Vec<String>,
    /// Generated tokens.
    #[serde(
        default = "default_completion_tokens",
        deserialize_with = "crate::config::text_list"
    )]
    pub completion_tokens: Vec<String>,
    /// Outcome: an HTTP status or a word.
    #[serde(
        default = "default_status",
        deserialize_with = "crate::config::text_list"
    )]
    pub status: Vec<String>,
    /// W3C trace id (32 hex digits).
    #[serde(
        default = "default_trace_id",
        deserialize_with = "crate::config::text_list"
    )]
    pub trace_id: Vec<String>,
    /// W3C span id (16 hex digits).
    #[serde(
        default = "default_span_id",
        deserialize_with = "crate::config::text_list"
    )]
    pub span_id: Vec<String>,
    /// Key → (role, rank in its list), built once.
    #[serde(skip)]
    index: FieldIndex,
}

/// The roles a key can have, by position in [`FieldNames::lists`].
const LEVEL: usize = 0;
const MESSAGE: usize = 1;
const LATENCY_MS: usize = 2;
const LATENCY_SECONDS: usize = 3;
const MODEL: usize = 4;
const PROMPT_TOKENS: usize = 5;
const COMPLETION_TOKENS: usize = 6;
const STATUS: usize = 7;
const TRACE_ID: usize = 8;
const SPAN_ID: usize = 9;
const ROLES: usize = 10;

/// Each key's roles, so a message's fields are matched in one pass (one
/// hash a field) instead of every list against every field.
#[derive(Debug, Clone, Default)]
struct FieldIndex(std::sync::OnceLock<HashMap<String, Vec<(usize, usize)>>>);

impl PartialEq for FieldIndex {
    fn eq(&self, _: &Self) -> bool {
        // A cache of the lists, which are compared themselves.
        true
    }
}

impl FieldNames {
    fn lists(&self) -> [&Vec<String>; ROLES] {
        [
            &self.level,
            &self.message,
            &self.latency_ms,
            &self.latency_seconds,
            &self.model,
            &self.prompt_tokens,
            &self.completion_tokens,
            &self.status,
            &self.trace_id,
            &self.span_id,
        ]
    }

    fn index(&self) -> &HashMap<String, Vec<(usize, usize)>> {
        self.index.0.get_or_init(|| {
            let mut index: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
            for (role, list) in self.lists().into_iter().enumerate() {
                for (rank, key) in list.iter().enumerate() {
                    index.entry(key.clone()).or_default().push((role, rank));
                }
            }
            index
        })
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}
fn default_level() -> Vec<String> {
    names(&["level", "severity", "lvl", "levelname", "log.level"])
}
fn default_message() -> Vec<String> {
    names(&["msg", "message", "event"])
}
fn default_latency_ms() -> Vec<String> {
    names(&["latency_ms", "duration_ms", "elapsed_ms"])
}
fn default_latency_seconds() -> Vec<String> {
    names(&["duration", "latency", "latency_s", "elapsed"])
}
fn default_model() -> Vec<String> {
    names(&["model", "model_name", "model_id"])
}
fn default_prompt_tokens() -> Vec<String> {
    names(&["prompt_tokens", "input_tokens"])
}
fn default_completion_tokens() -> Vec<String> {
    names(&["completion_tokens", "output_tokens", "generated_tokens"])
}
fn default_status() -> Vec<String> {
    names(&["status", "status_code", "http.status_code"])
}
fn default_trace_id() -> Vec<String> {
    names(&["trace_id", "traceId", "trace.id"])
}
fn default_span_id() -> Vec<String> {
    names(&["span_id", "spanId", "span.id"])
}

impl Default for FieldNames {
    fn default() -> Self {
        Self {
            level: default_level(),
            message: default_message(),
            latency_ms: default_latency_ms(),
            latency_seconds: default_latency_seconds(),
            model: default_model(),
            prompt_tokens: default_prompt_tokens(),
            completion_tokens: default_completion_tokens(),
            status: default_status(),
            trace_id: default_trace_id(),
            span_id: default_span_id(),
            index: FieldIndex::default(),
        }
    }
}

/// OpenTelemetry severity numbers (the first of each range).
pub mod severity {
    /// TRACE.
    pub const TRACE: i32 = 1;
    /// DEBUG.
    pub const DEBUG: i32 = 5;
    /// INFO.
    pub const INFO: i32 = 9;
    /// WARN.
    pub const WARN: i32 = 13;
    /// ERROR.
    pub const ERROR: i32 = 17;
    /// FATAL.
    pub const FATAL: i32 = 21;
}

/// A log record, ready for OTLP; its text borrowed from the message
/// where it can be (no copy until it is encoded).
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord<'a> {
    /// Seconds since the epoch, from the runtime's timestamp.
    pub time_seconds: f64,
    /// Stream the line came from.
    pub stream: &'static str,
    /// OpenTelemetry severity number, 0 when unknown.
    pub severity_number: i32,
    /// Severity as written.
    pub severity_text: Cow<'a, str>,
    /// The message (the whole line when it is not JSON or has no message
    /// key).
    pub body: Cow<'a, str>,
    /// The JSON object's other top-level fields, as text.
    pub attributes: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// The line was a JSON object.
    pub structured: bool,
    /// The line was not UTF-8 (replaced characters).
    pub invalid_utf8: bool,
    /// Bytes cut past the message limit.
    pub truncated_bytes: u64,
    /// Request latency, seconds.
    pub latency_seconds: Option<f64>,
    /// Model.
    pub model: Option<Cow<'a, str>>,
    /// Prompt tokens.
    pub prompt_tokens: Option<f64>,
    /// Generated tokens.
    pub completion_tokens: Option<f64>,
    /// Outcome as written.
    pub status: Option<Cow<'a, str>>,
    /// Trace id, 16 bytes.
    pub trace_id: Option<[u8; 16]>,
    /// Span id, 8 bytes.
    pub span_id: Option<[u8; 8]>,
}

impl LogRecord<'_> {
    /// An error by its severity (ERROR and above) or, without one, an HTTP
    /// status of 500 or more.
    pub fn is_error(&self) -> bool {
        if self.severity_number > 0 {
            return self.severity_number >= severity::ERROR;
        }
        self.status
            .as_deref()
            .and_then(|s| s.parse::<u16>().ok())
            .is_some_and(|code| code >= 500)
    }
}

impl LogRecord<'_> {
    /// The record with its text owned.
    pub fn into_owned(self) -> LogRecord<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        LogRecord {
            severity_text: own(self.severity_text),
            body: own(self.body),
            attributes: self
                .attributes
                .into_iter()
                .map(|(k, v)| (own(k), own(v)))
                .collect(),
            model: self.model.map(own),
            status: self.status.map(own),
            time_seconds: self.time_seconds,
            stream: self.stream,
            severity_number: self.severity_number,
            structured: self.structured,
            invalid_utf8: self.invalid_utf8,
            truncated_bytes: self.truncated_bytes,
            latency_seconds: self.latency_seconds,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            trace_id: self.trace_id,
            span_id: self.span_id,
        }
    }
}

/// A JSON string, borrowed from the line unless it holds escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(Visit)
    }
}

/// A JSON object's top-level fields in order, keys and values borrowed
/// from the line (values as raw JSON): parsing allocates nothing per
/// field but escaped keys.
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    fields.push((key, value));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// A raw value as a string: a JSON string unescaped (borrowed when it
/// can be), anything else as written.
fn raw_text<'a>(value: &'a RawValue) -> Cow<'a, str> {
    let raw = value.get();
    if raw.starts_with('"') {
        match serde_json::from_str::<Text<'_>>(raw) {
            Ok(Text(text)) => text,
            Err(_) => Cow::Borrowed(raw),
        }
    } else {
        Cow::Borrowed(raw)
    }
}

/// The severity number of a level as loggers write it.
pub fn severity_of(level: &RawValue) -> i32 {
    if !level.get().starts_with('"') {
        // pino / bunyan: 10 trace … 60 fatal.
        return match level.get().parse::<f64>().unwrap_or(0.0) as i64 {
            ..=0 => 0,
            1..=10 => severity::TRACE,
            11..=20 => severity::DEBUG,
            21..=30 => severity::INFO,
            31..=40 => severity::WARN,
            41..=50 => severity::ERROR,
            _ => severity::FATAL,
        };
    }
    let text = raw_text(level);
    let known = |names: &[&str]| names.iter().any(|n| text.eq_ignore_ascii_case(n));
    if known(&["info", "information", "notice"]) {
        severity::INFO
    } else if known(&["error", "err"]) {
        severity::ERROR
    } else if known(&["warn", "warning"]) {
        severity::WARN
    } else if known(&["debug", "dbug"]) {
        severity::DEBUG
    } else if known(&["trace"]) {
        severity::TRACE
    } else if known(&[
        "critical",
        "crit",
        "fatal",
        "panic",
        "alert",
        "emerg",
        "emergency",
        "dpanic",
    ]) {
        severity::FATAL
    } else {
        0
    }
}

fn number(value: &RawValue) -> Option<f64> {
    raw_text(value)
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
}

fn hex<const N: usize>(value: &RawValue) -> Option<[u8; N]> {
    if !value.get().starts_with('"') {
        return None;
    }
    let s = raw_text(value);
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    // The all-zero id is invalid in W3C trace context.
    out.iter().any(|b| *b != 0).then_some(out)
}

/// Turns a message into a record (borrowing its text).
pub fn record<'a>(message: &'a Message, fields: &FieldNames) -> LogRecord<'a> {
    match std::str::from_utf8(&message.text) {
        Ok(line) => parse(line, message, fields, false),
        Err(_) => {
            let line = String::from_utf8_lossy(&message.text).into_owned();
            parse(&line, message, fields, true).into_owned()
        }
    }
}

fn parse<'a>(
    line: &'a str,
    message: &Message,
    fields: &FieldNames,
    invalid_utf8: bool,
) -> LogRecord<'a> {
    let mut out = LogRecord {
        time_seconds: crate::sources::pods::convert::parse_rfc3339(&message.time).unwrap_or(0.0),
        stream: message.stream.as_str(),
        severity_number: 0,
        severity_text: Cow::Borrowed(""),
        body: Cow::Borrowed(""),
        attributes: Vec::new(),
        structured: false,
        invalid_utf8,
        truncated_bytes: message.truncated_bytes,
        latency_seconds: None,
        model: None,
        prompt_tokens: None,
        completion_tokens: None,
        status: None,
        trace_id: None,
        span_id: None,
    };
    let object = line
        .trim_start()
        .starts_with('{')
        .then(|| serde_json::from_str::<Fields<'a>>(line).ok())
        .flatten();
    let Some(object) = object else {
        if let Some(access) = super::access::parse_gin(line) {
            // Gin's request line (Ollama): the request's outcome and
            // latency; its severity follows the status.
            out.severity_number = if access.status >= 500 {
                severity::ERROR
            } else {
                severity::INFO
            };
            out.status = Some(Cow::Owned(access.status.to_string()));
            out.latency_seconds = Some(access.latency_seconds);
            out.attributes = vec![
                (
                    Cow::Borrowed("http.request.method"),
                    Cow::Owned(access.method),
                ),
                (Cow::Borrowed("url.path"), Cow::Owned(access.path)),
                (Cow::Borrowed("client.address"), Cow::Owned(access.client)),
            ];
        }
        out.body = Cow::Borrowed(line);
        return out;
    };
    out.structured = true;
    // The first key of each role's list that the message has.
    let index = fields.index();
    let mut found: [Option<(usize, usize)>; ROLES] = [None; ROLES];
    for (i, (key, _)) in object.0.iter().enumerate() {
        for &(role, rank) in index.get(key.as_ref()).into_iter().flatten() {
            if found[role].is_none_or(|(best, _)| rank < best) {
                found[role] = Some((rank, i));
            }
        }
    }
    let first = |role: usize| found[role].map(|(_, i)| (i, object.0[i].1));
    let mut used: Vec<usize> = Vec::new();
    if let Some((key, level)) = first(LEVEL) {
        out.severity_number = severity_of(level);
        out.severity_text = raw_text(level);
        used.push(key);
    }
    match first(MESSAGE) {
        Some((key, message)) => {
            out.body = raw_text(message);
            used.push(key);
        }
        None => out.body = Cow::Borrowed(line),
    }
    if let Some((key, ms)) = first(LATENCY_MS) {
        out.latency_seconds = number(ms).map(|v| v / 1000.0);
        used.push(key);
    } else if let Some((key, s)) = first(LATENCY_SECONDS) {
        out.latency_seconds = number(s);
        used.push(key);
    }
    if let Some((_, model)) = first(MODEL) {
        out.model = Some(raw_text(model));
    }
    if let Some((_, n)) = first(PROMPT_TOKENS) {
        out.prompt_tokens = number(n);
    }
    if let Some((_, n)) = first(COMPLETION_TOKENS) {
        out.completion_tokens = number(n);
    }
    if let Some((_, status)) = first(STATUS) {
        out.status = Some(raw_text(status));
    }
    if let Some((key, id)) = first(TRACE_ID) {
        out.trace_id = hex::<16>(id);
        used.push(key);
    }
    if let Some((key, id)) = first(SPAN_ID) {
        out.span_id = hex::<8>(id);
        used.push(key);
    }
    out.attributes = object
        .0
        .iter()
        .enumerate()
        .filter(|(i, _)| !used.contains(i))
        .map(|(_, (k, v))| (k.clone(), raw_text(v)))
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::logs::cri::Stream;

    /// A record that owns its text (the message is a temporary).
    fn owned(message: Message, fields: &FieldNames) -> LogRecord<'static> {
        record(&message, fields).into_owned()
    }

    fn message(text: &str) -> Message {
        Message {
            time: "2026-12-01T16:15:00.5Z".into(),
            stream: Stream::Stdout,
            text: text.as_bytes().to_vec(),
            truncated_bytes: 0,
            pieces: 1,
        }
    }

    #[test]
    fn json_lines_give_fields_and_attributes() {
        let r = owned(
            message(
                r#"{"level":"warning","msg":"slow request","latency_ms":1250,"model":"qwen-7b","prompt_tokens":"512","completion_tokens":128,"status":200,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","route":"/v1/chat"}"#,
            ),
            &FieldNames::default(),
        );
        assert!(r.structured);
        assert_eq!(r.severity_number, severity::WARN);
        assert_eq!(r.severity_text, "warning");
        assert_eq!(r.body, "slow request");
        assert_eq!(r.latency_seconds, Some(1.25));
        assert_eq!(r.model.as_deref(), Some("qwen-7b"));
        assert_eq!(r.prompt_tokens, Some(512.0));
        assert_eq!(r.completion_tokens, Some(128.0));
        assert_eq!(r.status.as_deref(), Some("200"));
        assert_eq!(r.trace_id.map(|t| t[0]), Some(0x4b));
        assert_eq!(r.span_id.map(|s| s[7]), Some(0xb7));
        assert!(r.attributes.contains(&("route".into(), "/v1/chat".into())));
        assert!(r.attributes.iter().all(|(k, _)| k != "msg" && k != "level"));
        assert!((r.time_seconds - 1_796_141_700.5).abs() < 1e-3);
        assert!(!r.is_error());
    }

    #[test]
    fn text_lines_numbers_levels_and_errors() {
        let plain = owned(message("GET /health 200"), &FieldNames::default());
        assert!(!plain.structured);
        assert_eq!(plain.body, "GET /health 200");
        let pino = owned(
            message(r#"{"level":50,"msg":"boom"}"#),
            &FieldNames::default(),
        );
        assert_eq!(pino.severity_number, severity::ERROR);
        assert!(pino.is_error());
        let status = owned(message(r#"{"status":503}"#), &FieldNames::default());
        assert!(status.is_error());
        assert_eq!(status.body, r#"{"status":503}"#, "no message key: the line");
        let broken = owned(
            message(r#"{"level":"info","msg": oops"#),
            &FieldNames::default(),
        );
        assert!(!broken.structured, "invalid JSON stays text");
        let bad_ids = owned(
            message(r#"{"trace_id":"00000000000000000000000000000000","span_id":"xyz"}"#),
            &FieldNames::default(),
        );
        assert_eq!((bad_ids.trace_id, bad_ids.span_id), (None, None));
        let mut invalid = message("");
        invalid.text = b"caf\xe9 au lait".to_vec();
        let r = record(&invalid, &FieldNames::default());
        assert!(r.invalid_utf8);
        assert_eq!(r.body, "caf\u{fffd} au lait");
        let escaped = owned(
            message(r#"{"msg":"say \"hi\"","k\u0065y":"a\nb","n":1.50,"o":{"x":[1, 2]}}"#),
            &FieldNames::default(),
        );
        assert_eq!(escaped.body, "say \"hi\"");
        let attributes: Vec<(String, String)> = escaped
            .attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            attributes,
            [
                ("key".to_owned(), "a\nb".to_owned()),
                ("n".to_owned(), "1.50".to_owned()),
                ("o".to_owned(), r#"{"x":[1, 2]}"#.to_owned()),
            ],
            "numbers and objects as written"
        );
        let seconds = owned(message(r#"{"duration":0.25}"#), &FieldNames::default());
        assert_eq!(seconds.latency_seconds, Some(0.25));
        let ollama = owned(
            message(
                r#"[GIN] 2026/12/01 - 16:15:00 | 503 |     1.5s |  127.0.0.1 | POST  "/api/chat""#,
            ),
            &FieldNames::default(),
        );
        assert_eq!(ollama.latency_seconds, Some(1.5));
        assert_eq!(ollama.status.as_deref(), Some("503"));
        assert!(ollama.is_error());
        assert!(
            ollama
                .attributes
                .contains(&("url.path".into(), "/api/chat".into()))
        );
    }
}
