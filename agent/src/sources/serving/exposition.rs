//! A streaming parser for the Prometheus text format (0.0.4) and
//! OpenMetrics 1.0 text, the pages model servers serve on `/metrics`.
//!
//! It walks the bytes once and hands each line to a [`Visitor`]: samples
//! borrow their name and label values from the page (a label value is
//! copied only when it holds an escape) and share one label buffer, so a
//! page costs no allocation per sample. A bad line is reported with its
//! line, column and kind and skipped; the lines around it still count, so
//! one broken family does not blind the whole target.
//!
//! Accepted quirks: blank lines anywhere, `TYPE` without `HELP`, empty
//! `HELP`, other `#` comments, `# EOF`, `_created` series, summaries and
//! histograms in any line order, exponent, `%f`, `NaN` and `±Inf` values,
//! escaped label values, trailing commas in label sets, counters without
//! `_total`, millisecond (text) or second (OpenMetrics) timestamps,
//! exemplars, CRLF line ends, and quoted metric names (`{"a.b"}`,
//! `# TYPE "a.b" gauge`).

use std::borrow::Cow;

/// The longest line accepted; longer ones are an error (`line_too_long`)
/// and skipped without being scanned past their end.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// A family's declared type (`# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyType {
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram`.
    Histogram,
    /// `gaugehistogram` (OpenMetrics).
    GaugeHistogram,
    /// `summary`.
    Summary,
    /// `info` (OpenMetrics).
    Info,
    /// `stateset` (OpenMetrics).
    StateSet,
    /// `untyped` (text) or `unknown` (OpenMetrics).
    Unknown,
}

impl FamilyType {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "counter" => Self::Counter,
            "gauge" => Self::Gauge,
            "histogram" => Self::Histogram,
            "gaugehistogram" => Self::GaugeHistogram,
            "summary" => Self::Summary,
            "info" => Self::Info,
            "stateset" => Self::StateSet,
            "untyped" | "unknown" => Self::Unknown,
            _ => return None,
        })
    }
}

/// One label of a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Label<'a> {
    /// Label name.
    pub name: &'a str,
    /// Value with escapes resolved.
    pub value: Cow<'a, str>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a, 'l> {
    /// Sample name (`x_bucket`, `x_total`, …), as written.
    pub name: &'a str,
    /// Labels in page order.
    pub labels: &'l [Label<'a>],
    /// Value.
    pub value: f64,
    /// Timestamp as written: milliseconds in the text format, seconds in
    /// OpenMetrics.
    pub timestamp: Option<f64>,
}

impl Sample<'_, '_> {
    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_ref())
    }
}

/// What went wrong on a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The line is not UTF-8.
    Utf8,
    /// Longer than [`MAX_LINE_BYTES`].
    LineTooLong,
    /// A metric name is missing or has a character names may not have.
    Name,
    /// A label set is malformed (name, `=`, quotes, separator).
    Label,
    /// A label value has no closing quote.
    UnterminatedLabelValue,
    /// A label value holds an unknown escape.
    Escape,
    /// The value is missing or not a number.
    Value,
    /// The timestamp is not a number.
    Timestamp,
    /// A `TYPE` line names an unknown type or no family.
    Type,
    /// Text after the sample that is neither a timestamp nor an exemplar.
    Trailing,
}

impl ErrorKind {
    /// Label value for error counters.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Utf8 => "utf8",
            Self::LineTooLong => "line_too_long",
            Self::Name => "name",
            Self::Label => "label",
            Self::UnterminatedLabelValue => "unterminated_label_value",
            Self::Escape => "escape",
            Self::Value => "value",
            Self::Timestamp => "timestamp",
            Self::Type => "type",
            Self::Trailing => "trailing",
        }
    }
}

/// A rejected line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {}", kind.as_str())]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based byte column where the problem starts.
    pub column: usize,
    /// What is wrong.
    pub kind: ErrorKind,
}

/// Receives a page's lines in order.
pub trait Visitor<'a> {
    /// A sample line.
    fn sample(&mut self, sample: &Sample<'a, '_>);
    /// A `# TYPE` line.
    fn family_type(&mut self, _family: &'a str, _kind: FamilyType) {}
    /// A `# HELP` line (escapes left as written: help is only shown).
    fn help(&mut self, _family: &'a str, _text: &'a str) {}
    /// A `# UNIT` line (OpenMetrics).
    fn unit(&mut self, _family: &'a str, _unit: &'a str) {}
    /// A line that was skipped.
    fn error(&mut self, error: ParseError);
}

/// What a parse saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Sample lines accepted.
    pub samples: usize,
    /// Lines rejected.
    pub errors: usize,
    /// Lines read (an `# EOF` ends the page).
    pub lines: usize,
}

/// Parses a whole page, calling `visitor` for every line.
pub fn parse<'a>(page: &'a [u8], visitor: &mut impl Visitor<'a>) -> Summary {
    let mut labels: Vec<Label<'a>> = Vec::new();
    let mut summary = Summary::default();
    let mut utf8 = Validated::new(page);
    let mut start = 0;
    let mut number = 0;
    while start < page.len() {
        number += 1;
        let (mut end, next) = match find_newline(&page[start..]) {
            Some(at) => (start + at, start + at + 1),
            None => (page.len(), page.len()),
        };
        let line_start = start;
        start = next;
        summary.lines = number;
        if end > line_start && page[end - 1] == b'\r' {
            end -= 1;
        }
        let mut fail = |column, kind| {
            visitor.error(ParseError {
                line: number,
                column,
                kind,
            });
            summary.errors += 1;
        };
        if end - line_start > MAX_LINE_BYTES {
            fail(1, ErrorKind::LineTooLong);
            continue;
        }
        let text = match utf8.line(line_start, end) {
            Ok(text) => text,
            Err(column) => {
                fail(column, ErrorKind::Utf8);
                continue;
            }
        };
        let trimmed = text.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() {
            continue;
        }
        let indent = text.len() - trimmed.len();
        let outcome = if let Some(comment) = trimmed.strip_prefix('#') {
            if comment.trim() == "EOF" {
                break;
            }
            comment_line(comment, visitor).map_err(|(offset, kind)| {
                // `comment` starts one byte into `trimmed`.
                (indent + 1 + offset, kind)
            })
        } else {
            labels.clear();
            match sample_line(trimmed, &mut labels) {
                Ok(sample) => {
                    visitor.sample(&sample);
                    summary.samples += 1;
                    Ok(())
                }
                Err((offset, kind)) => Err((indent + offset, kind)),
            }
        };
        if let Err((offset, kind)) = outcome {
            visitor.error(ParseError {
                line: number,
                column: offset + 1,
                kind,
            });
            summary.errors += 1;
        }
    }
    summary
}

/// The page as text, validated for as far as it is UTF-8 in one call
/// rather than one per line; after a bad byte, validation starts again at
/// the next line.
struct Validated<'a> {
    page: &'a [u8],
    /// Where `text` starts in `page`.
    start: usize,
    text: &'a str,
}

impl<'a> Validated<'a> {
    fn new(page: &'a [u8]) -> Self {
        Self {
            page,
            start: 0,
            text: "",
        }
    }

    /// The line `from..to` as text, or the 1-based column of its first
    /// byte that is not UTF-8.
    fn line(&mut self, from: usize, to: usize) -> Result<&'a str, usize> {
        if from < self.start || to > self.start + self.text.len() {
            let rest = &self.page[from..];
            let valid = match std::str::from_utf8(rest) {
                Ok(text) => text,
                // Checked already, so this cannot fail; `""` keeps it total.
                Err(e) => std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or_default(),
            };
            self.start = from;
            self.text = valid;
            if to > from + valid.len() {
                return Err(valid.len() + 1);
            }
        }
        // Line bounds sit next to ASCII bytes, so they are char boundaries.
        match self.text.get(from - self.start..to - self.start) {
            Some(text) => Ok(text),
            None => std::str::from_utf8(&self.page[from..to]).map_err(|e| e.valid_up_to() + 1),
        }
    }
}

/// The first `\n`, eight bytes at a time (lines average 100–200 bytes).
fn find_newline(haystack: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const NEWLINES: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut chunks = haystack.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(bytes) ^ NEWLINES;
        // The lowest flagged byte is the first zero byte of `x`.
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return Some(offset + (zeros.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|b| *b == b'\n')
        .map(|at| offset + at)
}

type LineResult<T> = Result<T, (usize, ErrorKind)>;

/// `# HELP`, `# TYPE`, `# UNIT`; any other comment is ignored.
fn comment_line<'a>(comment: &'a str, visitor: &mut impl Visitor<'a>) -> LineResult<()> {
    // Every piece below is a suffix of `comment`, so its offset is
    // `comment.len() - piece.len()`.
    let at = |piece: &str| comment.len() - piece.len();
    let body = comment.trim_start_matches([' ', '\t']);
    let (keyword, after) = split_word(body);
    if !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
        return Ok(());
    }
    let after = after.trim_start_matches([' ', '\t']);
    // The family, bare or quoted as UTF-8 names are (`# TYPE "a.b" gauge`).
    let (family, text) = if after.starts_with('"') {
        match quoted_string(after, 0) {
            Ok((Cow::Borrowed(family), end))
                if !family.is_empty()
                    && matches!(after.as_bytes().get(end), None | Some(b' ' | b'\t')) =>
            {
                (family, &after[end..])
            }
            _ => return Err((at(after), ErrorKind::Name)),
        }
    } else {
        let (family, text) = split_word(after);
        if !valid_name(family) {
            return Err((at(after), ErrorKind::Name));
        }
        (family, text)
    };
    let text = text.strip_prefix([' ', '\t']).unwrap_or(text);
    match keyword {
        "HELP" => visitor.help(family, text),
        "UNIT" => visitor.unit(family, text.trim()),
        _ => {
            let kind = text.trim_start_matches([' ', '\t']);
            match FamilyType::parse(kind.trim_end()) {
                Some(kind) => visitor.family_type(family, kind),
                None => return Err((at(kind), ErrorKind::Type)),
            }
        }
    }
    Ok(())
}

/// The first space- or tab-separated word and what follows it.
fn split_word(text: &str) -> (&str, &str) {
    match text.find([' ', '\t']) {
        Some(end) => (&text[..end], &text[end..]),
        None => (text, ""),
    }
}

/// Bytes allowed in names: `[a-zA-Z0-9_:]`.
const NAME_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'_' || c == b':';
        b += 1;
    }
    table
};

fn is_name_char(b: u8) -> bool {
    NAME_CHARS[usize::from(b)]
}

/// The end of the run of name bytes starting at `pos`.
fn name_end(bytes: &[u8], mut pos: usize) -> usize {
    while pos < bytes.len() && is_name_char(bytes[pos]) {
        pos += 1;
    }
    pos
}

/// A run of name bytes is a name when it is not empty and does not start
/// with a digit.
fn name_starts_well(name: &[u8]) -> bool {
    name.first().is_some_and(|b| !b.is_ascii_digit())
}

fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    name_starts_well(bytes) && name_end(bytes, 0) == bytes.len()
}

/// `name{labels} value [timestamp] [# exemplar]`, or OpenMetrics 2 /
/// Prometheus 3 `{"quoted.name", labels} value`.
fn sample_line<'a, 'l>(
    line: &'a str,
    labels: &'l mut Vec<Label<'a>>,
) -> LineResult<Sample<'a, 'l>> {
    let bytes = line.as_bytes();
    let mut pos = 0;
    let mut name = "";
    if bytes.first() != Some(&b'{') {
        pos = name_end(bytes, 0);
        if !name_starts_well(&bytes[..pos]) {
            return Err((0, ErrorKind::Name));
        }
        // `a.b 1`, `métric 1`: the name has a byte names may not have.
        if !matches!(bytes.get(pos), None | Some(b'{' | b' ' | b'\t')) {
            return Err((pos, ErrorKind::Name));
        }
        name = &line[..pos];
    }
    if bytes.get(pos) == Some(&b'{') {
        pos = label_set(line, pos + 1, &mut name, labels)?;
    }
    if name.is_empty() {
        return Err((0, ErrorKind::Name));
    }
    // The value, separated by at least one blank.
    let value_start = skip_blanks(bytes, pos);
    if value_start == pos || value_start >= bytes.len() {
        return Err((value_start, ErrorKind::Value));
    }
    let value_end = word_end(bytes, value_start);
    let value =
        parse_float(&line[value_start..value_end]).ok_or((value_start, ErrorKind::Value))?;
    let mut timestamp = None;
    let next = skip_blanks(bytes, value_end);
    if next < bytes.len() && bytes[next] != b'#' {
        let end = word_end(bytes, next);
        timestamp = Some(parse_float(&line[next..end]).ok_or((next, ErrorKind::Timestamp))?);
        let after = skip_blanks(bytes, end);
        if after < bytes.len() && bytes[after] != b'#' {
            return Err((after, ErrorKind::Trailing));
        }
    }
    Ok(Sample {
        name,
        labels,
        value,
        timestamp,
    })
}

fn skip_blanks(bytes: &[u8], mut pos: usize) -> usize {
    while pos < bytes.len() && (bytes[pos] == b' ' || bytes[pos] == b'\t') {
        pos += 1;
    }
    pos
}

fn word_end(bytes: &[u8], mut pos: usize) -> usize {
    while pos < bytes.len() && bytes[pos] != b' ' && bytes[pos] != b'\t' {
        pos += 1;
    }
    pos
}

/// Prometheus floats: Go's `ParseFloat` forms the exposition uses (`+Inf`,
/// `-Inf`, `NaN`, exponents, a leading `+`).
fn parse_float(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => {
            // Rust also takes "infinity" and "nan" spelled other ways; the
            // format does not, and neither should a value that only looks
            // numeric.
            let first = text.as_bytes().first()?;
            if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
                return None;
            }
            text.parse()
                .ok()
                .filter(|v: &f64| !v.is_nan() || text == "NaN")
        }
    }
}

/// The label set after `{` at `start`; returns the position after `}`.
/// A quoted string without `=` is the metric name (quoted-name syntax).
fn label_set<'a>(
    line: &'a str,
    start: usize,
    name: &mut &'a str,
    labels: &mut Vec<Label<'a>>,
) -> LineResult<usize> {
    let bytes = line.as_bytes();
    let mut pos = start;
    loop {
        pos = skip_blanks(bytes, pos);
        match bytes.get(pos) {
            Some(b'}') => return Ok(pos + 1),
            None => return Err((pos, ErrorKind::Label)),
            _ => {}
        }
        // A label name, bare or quoted.
        let (label_name, after_name, quoted) = if bytes[pos] == b'"' {
            let (value, end) = quoted_string(line, pos)?;
            match value {
                Cow::Borrowed(text) if !text.is_empty() => (text, end, true),
                // An escaped name is rare enough to refuse; an empty one is
                // no name.
                _ => return Err((pos, ErrorKind::Label)),
            }
        } else {
            let begin = pos;
            pos = name_end(bytes, pos);
            if !name_starts_well(&bytes[begin..pos]) {
                return Err((begin, ErrorKind::Label));
            }
            (&line[begin..pos], pos, false)
        };
        pos = skip_blanks(bytes, after_name);
        if quoted && matches!(bytes.get(pos), Some(b',' | b'}')) {
            // `{"metric.name", …}`: the name, not a label.
            if !name.is_empty() {
                return Err((pos, ErrorKind::Label));
            }
            *name = label_name;
        } else {
            if bytes.get(pos) != Some(&b'=') {
                return Err((pos, ErrorKind::Label));
            }
            pos = skip_blanks(bytes, pos + 1);
            if bytes.get(pos) != Some(&b'"') {
                return Err((pos, ErrorKind::Label));
            }
            let (value, end) = quoted_string(line, pos)?;
            labels.push(Label {
                name: label_name,
                value,
            });
            pos = skip_blanks(bytes, end);
        }
        match bytes.get(pos) {
            Some(b',') => pos += 1,
            Some(b'}') => return Ok(pos + 1),
            _ => return Err((pos, ErrorKind::Label)),
        }
    }
}

/// The string opening at `start` (a `"`): its unescaped text and the
/// position after the closing quote.
fn quoted_string(line: &str, start: usize) -> LineResult<(Cow<'_, str>, usize)> {
    let bytes = line.as_bytes();
    let begin = start + 1;
    let mut pos = begin;
    // Fast path: no backslash before the closing quote.
    while pos < bytes.len() {
        match bytes[pos] {
            b'"' => return Ok((Cow::Borrowed(&line[begin..pos]), pos + 1)),
            b'\\' => break,
            _ => pos += 1,
        }
    }
    if pos >= bytes.len() {
        return Err((start, ErrorKind::UnterminatedLabelValue));
    }
    let mut out = String::with_capacity(pos - begin + 16);
    out.push_str(&line[begin..pos]);
    let mut chunk = pos;
    while pos < bytes.len() {
        match bytes[pos] {
            b'"' => {
                out.push_str(&line[chunk..pos]);
                return Ok((Cow::Owned(out), pos + 1));
            }
            b'\\' => {
                out.push_str(&line[chunk..pos]);
                match bytes.get(pos + 1) {
                    Some(b'\\') => out.push('\\'),
                    Some(b'"') => out.push('"'),
                    Some(b'n') => out.push('\n'),
                    Some(_) => return Err((pos, ErrorKind::Escape)),
                    None => break,
                }
                pos += 2;
                chunk = pos;
            }
            _ => pos += 1,
        }
    }
    Err((start, ErrorKind::UnterminatedLabelValue))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Name, labels, value, timestamp.
    type Row = (String, Vec<(String, String)>, f64, Option<f64>);

    #[derive(Default)]
    struct Collect {
        samples: Vec<Row>,
        types: Vec<(String, FamilyType)>,
        helps: Vec<(String, String)>,
        errors: Vec<ParseError>,
    }

    impl<'a> Visitor<'a> for Collect {
        fn sample(&mut self, s: &Sample<'a, '_>) {
            self.samples.push((
                s.name.to_owned(),
                s.labels
                    .iter()
                    .map(|l| (l.name.to_owned(), l.value.to_string()))
                    .collect(),
                s.value,
                s.timestamp,
            ));
        }
        fn family_type(&mut self, family: &'a str, kind: FamilyType) {
            self.types.push((family.to_owned(), kind));
        }
        fn help(&mut self, family: &'a str, text: &'a str) {
            self.helps.push((family.to_owned(), text.to_owned()));
        }
        fn error(&mut self, error: ParseError) {
            self.errors.push(error);
        }
    }

    fn run(page: &str) -> Collect {
        let mut out = Collect::default();
        parse(page.as_bytes(), &mut out);
        out
    }

    #[test]
    fn quirks_are_accepted() {
        let page = "\
# HELP a_total Requests.\n\
\n\
# TYPE a_total counter\n\
a_total{route=\"/x\",code=\"200\",} 3 1700000000000\n\
# TYPE b gauge\n\
# HELP c \n\
# NOTE not a directive\n\
b 1.5e3\n\
b{x=\"q\\\"uo\\\\te\\nnl\"} NaN\n\
h_bucket{le=\"+Inf\"} 4\r\n\
h_bucket{le=\"0.5\"} 2\n\
h_sum 302.206000\n\
{\"dotted.name\",k=\"v\"} -Inf\n\
c_created 1.7e9 # {trace_id=\"a\"} 1 1.7e9\n\
# EOF\n\
after_eof 1\n";
        let out = run(page);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let names: Vec<&str> = out.samples.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "a_total",
                "b",
                "b",
                "h_bucket",
                "h_bucket",
                "h_sum",
                "dotted.name",
                "c_created"
            ]
        );
        assert_eq!(out.samples[0].3, Some(1_700_000_000_000.0));
        assert_eq!(out.samples[1].2, 1500.0);
        assert_eq!(out.samples[2].1[0].1, "q\"uo\\te\nnl");
        assert!(out.samples[2].2.is_nan());
        assert_eq!(out.samples[3].2, 4.0);
        assert_eq!(out.samples[5].2, 302.206);
        assert_eq!(out.samples[6].2, f64::NEG_INFINITY);
        assert_eq!(out.samples[7].3, None);
        assert_eq!(
            out.types,
            [
                ("a_total".to_owned(), FamilyType::Counter),
                ("b".to_owned(), FamilyType::Gauge)
            ]
        );
        assert_eq!(out.helps[1], ("c".to_owned(), String::new()));
    }

    #[test]
    fn bad_lines_are_positioned_and_skipped() {
        let page = "ok 1\nbad{x=\"open 1\nnum abc\n1bad 2\nx{a=\"\\q\"} 1\nt 1 nope\nok 2\n";
        let out = run(page);
        assert_eq!(out.samples.len(), 2);
        let errors: Vec<(usize, usize, ErrorKind)> = out
            .errors
            .iter()
            .map(|e| (e.line, e.column, e.kind))
            .collect();
        assert_eq!(
            errors,
            [
                (2, 7, ErrorKind::UnterminatedLabelValue),
                (3, 5, ErrorKind::Value),
                (4, 1, ErrorKind::Name),
                (5, 6, ErrorKind::Escape),
                (6, 5, ErrorKind::Timestamp),
            ]
        );
    }

    #[test]
    fn quoted_family_names_in_help_and_type() {
        let page = "# HELP \"a.b\" Dotted help.\n# TYPE \"a.b\" counter\n{\"a.b\"} 1\n\
# TYPE \"\" gauge\n# TYPE \"x\\\"y\" gauge\n# TYPE \"a.c\"gauge\n# TYPE \"open gauge\n";
        let out = run(page);
        assert_eq!(out.helps, [("a.b".to_owned(), "Dotted help.".to_owned())]);
        assert_eq!(out.types, [("a.b".to_owned(), FamilyType::Counter)]);
        assert_eq!(out.samples[0].0, "a.b");
        let errors: Vec<(usize, usize, ErrorKind)> = out
            .errors
            .iter()
            .map(|e| (e.line, e.column, e.kind))
            .collect();
        assert_eq!(
            errors,
            [
                (4, 8, ErrorKind::Name),
                (5, 8, ErrorKind::Name),
                (6, 8, ErrorKind::Name),
                (7, 8, ErrorKind::Name),
            ]
        );
    }

    #[test]
    fn invalid_utf8_and_long_lines_are_errors() {
        let mut page = b"a 1\nb{x=\"\xff\"} 1\n".to_vec();
        page.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 1));
        page.extend(b" 1\nc 3\n");
        let mut out = Collect::default();
        let summary = parse(&page, &mut out);
        assert_eq!(summary.samples, 2);
        assert_eq!(out.errors[0].kind, ErrorKind::Utf8);
        assert_eq!(out.errors[0].column, 6);
        assert_eq!(out.errors[1].kind, ErrorKind::LineTooLong);
    }
}
