//! Arbitrary bytes through the agent's Prometheus text / OpenMetrics
//! parser (`tally_agent::sources::serving::exposition`), as a scrape of a
//! model server hands it a page.
//!
//! Besides "no panic", it checks what callers rely on:
//! - the summary agrees with the visitor (one call per sample and error),
//!   and every line gives at most one sample or one error;
//! - errors are in line order, one per line, with a column inside the
//!   line, and `utf8` and `line_too_long` only where they are true;
//! - names (samples, labels, families) are never empty;
//! - lines are independent: parsing each line alone gives the same calls
//!   (this is what lets the parser validate UTF-8 once for the page and
//!   reuse one label buffer);
//! - a parsed sample written back in canonical form parses to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_agent::sources::serving::exposition::{
    self, ErrorKind, FamilyType, MAX_LINE_BYTES, ParseError, Sample, Summary, Visitor,
};

#[derive(Debug, Clone, PartialEq)]
enum Event {
    /// Name, labels, value and timestamp bits (NaN compares by bits).
    Sample(String, Vec<(String, String)>, u64, Option<u64>),
    Type(String, FamilyType),
    Help(String, String),
    Unit(String, String),
    Error(ParseError),
}

#[derive(Default)]
struct Record(Vec<Event>);

impl<'a> Visitor<'a> for Record {
    fn sample(&mut self, s: &Sample<'a, '_>) {
        self.0.push(Event::Sample(
            s.name.to_owned(),
            s.labels
                .iter()
                .map(|l| (l.name.to_owned(), l.value.to_string()))
                .collect(),
            s.value.to_bits(),
            s.timestamp.map(f64::to_bits),
        ));
    }
    fn family_type(&mut self, family: &'a str, kind: FamilyType) {
        self.0.push(Event::Type(family.to_owned(), kind));
    }
    fn help(&mut self, family: &'a str, text: &'a str) {
        self.0.push(Event::Help(family.to_owned(), text.to_owned()));
    }
    fn unit(&mut self, family: &'a str, unit: &'a str) {
        self.0.push(Event::Unit(family.to_owned(), unit.to_owned()));
    }
    fn error(&mut self, error: ParseError) {
        self.0.push(Event::Error(error));
    }
}

fn record(page: &[u8]) -> (Summary, Vec<Event>) {
    let mut record = Record::default();
    let summary = exposition::parse(page, &mut record);
    (summary, record.0)
}

fuzz_target!(|data: &[u8]| {
    let (summary, events) = record(data);
    let samples = events
        .iter()
        .filter(|e| matches!(e, Event::Sample(..)))
        .count();
    let errors: Vec<&ParseError> = events
        .iter()
        .filter_map(|e| match e {
            Event::Error(error) => Some(error),
            _ => None,
        })
        .collect();
    assert_eq!(summary.samples, samples);
    assert_eq!(summary.errors, errors.len());
    assert!(summary.samples + summary.errors <= summary.lines);

    // The page's lines as the parser splits them (a last line without a
    // newline counts; `# EOF` may end the page early).
    let mut lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    if data.last() == Some(&b'\n') || data.is_empty() {
        lines.pop();
    }
    assert!(summary.lines <= lines.len());
    lines.truncate(summary.lines);

    let mut previous = 0;
    for error in &errors {
        assert!(error.line > previous, "errors out of order: {errors:?}");
        previous = error.line;
        assert!(error.line <= summary.lines);
        let line = lines[error.line - 1];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(
            error.column >= 1 && error.column <= line.len() + 1,
            "{error:?} on {line:?}"
        );
        match error.kind {
            ErrorKind::LineTooLong => assert!(line.len() > MAX_LINE_BYTES),
            ErrorKind::Utf8 => {
                let valid = std::str::from_utf8(line).err().map(|e| e.valid_up_to() + 1);
                assert_eq!(valid, Some(error.column), "{error:?} on {line:?}");
            }
            _ => assert!(std::str::from_utf8(line).is_ok() && line.len() <= MAX_LINE_BYTES),
        }
    }

    for event in &events {
        match event {
            Event::Sample(name, labels, ..) => {
                assert!(!name.is_empty());
                assert!(
                    labels.iter().all(|(name, _)| !name.is_empty()),
                    "{labels:?}"
                );
            }
            Event::Type(family, _) | Event::Help(family, _) | Event::Unit(family, _) => {
                assert!(!family.is_empty());
            }
            Event::Error(_) => {}
        }
    }

    // Each line alone gives the same calls, errors renumbered.
    let mut alone = Vec::with_capacity(events.len());
    for (index, line) in lines.iter().enumerate() {
        let (_, line_events) = record(line);
        alone.extend(line_events.into_iter().map(|event| match event {
            Event::Error(error) => Event::Error(ParseError {
                line: index + 1,
                ..error
            }),
            other => other,
        }));
    }
    assert_eq!(alone, events, "lines parsed alone differ from the page");

    for event in &events {
        if let Event::Sample(..) = event {
            let written = canonical(event);
            if written.len() > MAX_LINE_BYTES {
                continue;
            }
            let (_, again) = record(written.as_bytes());
            assert_eq!(again, [event.clone()], "{written:?} does not read back");
        }
    }
});

/// `name{label="value",…} value timestamp`, quoting names that are not
/// plain and escaping label values.
fn canonical(event: &Event) -> String {
    let Event::Sample(name, labels, value, timestamp) = event else {
        return String::new();
    };
    let plain = |name: &str| {
        name.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
            && !name.starts_with(|c: char| c.is_ascii_digit())
    };
    let quoted = |name: &str| {
        // The parser refuses escaped names, so these never need escaping.
        assert!(!name.contains(['"', '\\', '\n']), "{name:?}");
        format!("\"{name}\"")
    };
    let mut parts = Vec::with_capacity(labels.len() + 1);
    let mut out = String::new();
    if plain(name) {
        out.push_str(name);
    } else {
        parts.push(quoted(name));
    }
    for (label, text) in labels {
        let label = if plain(label) {
            label.clone()
        } else {
            quoted(label)
        };
        let text = text
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        parts.push(format!("{label}=\"{text}\""));
    }
    if !parts.is_empty() || !plain(name) {
        out.push('{');
        out.push_str(&parts.join(","));
        out.push('}');
    }
    out.push_str(&format!(" {:?}", f64::from_bits(*value)));
    if let Some(timestamp) = timestamp {
        out.push_str(&format!(" {:?}", f64::from_bits(*timestamp)));
    }
    out
}
