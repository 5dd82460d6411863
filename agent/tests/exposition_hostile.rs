//! The exposition parser on hostile pages: unterminated label values, a
//! 10 MiB line, a million series, invalid UTF-8, NUL bytes, truncation,
//! runs of `{`, a huge label set. Every bad line must be reported with its
//! line, column and kind, and the lines after it still parsed.

use tally_agent::sources::serving::exposition::{
    self, ErrorKind, FamilyType, MAX_LINE_BYTES, ParseError, Sample, Summary, Visitor,
};

/// A sample, owned.
#[derive(Debug, Clone, PartialEq)]
struct Owned {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    timestamp: Option<f64>,
}

#[derive(Default)]
struct Collect {
    samples: Vec<Owned>,
    types: Vec<(String, FamilyType)>,
    errors: Vec<ParseError>,
}

impl<'a> Visitor<'a> for Collect {
    fn sample(&mut self, s: &Sample<'a, '_>) {
        self.samples.push(Owned {
            name: s.name.to_owned(),
            labels: s
                .labels
                .iter()
                .map(|l| (l.name.to_owned(), l.value.to_string()))
                .collect(),
            value: s.value,
            timestamp: s.timestamp,
        });
    }
    fn family_type(&mut self, family: &'a str, kind: FamilyType) {
        self.types.push((family.to_owned(), kind));
    }
    fn error(&mut self, error: ParseError) {
        self.errors.push(error);
    }
}

fn run(page: &[u8]) -> (Summary, Collect) {
    let mut out = Collect::default();
    let summary = exposition::parse(page, &mut out);
    assert_eq!(summary.samples, out.samples.len());
    assert_eq!(summary.errors, out.errors.len());
    (summary, out)
}

fn positions(out: &Collect) -> Vec<(usize, usize, ErrorKind)> {
    out.errors
        .iter()
        .map(|e| (e.line, e.column, e.kind))
        .collect()
}

fn names(out: &Collect) -> Vec<&str> {
    out.samples.iter().map(|s| s.name.as_str()).collect()
}

#[test]
fn unterminated_label_values_point_at_their_opening_quote() {
    let page = b"a{x=\"open 1\n\
b{x=\"ok\",y=\"open\n\
c{x=\"escaped quote \\\" 1\n\
d{x=\"trailing backslash\\\n\
e{x=\"\n\
good{x=\"closed\"} 1\n";
    let (summary, out) = run(page);
    assert_eq!(
        positions(&out),
        [
            (1, 5, ErrorKind::UnterminatedLabelValue),
            (2, 12, ErrorKind::UnterminatedLabelValue),
            (3, 5, ErrorKind::UnterminatedLabelValue),
            (4, 5, ErrorKind::UnterminatedLabelValue),
            (5, 5, ErrorKind::UnterminatedLabelValue),
        ]
    );
    assert_eq!(names(&out), ["good"]);
    assert_eq!(out.samples[0].labels, [("x".into(), "closed".into())]);
    assert_eq!(summary.lines, 6);
}

#[test]
fn a_10_mib_line_is_rejected_and_the_next_lines_parse() {
    let mut page = b"before 1\n".to_vec();
    page.extend_from_slice(b"huge{x=\"");
    page.resize(page.len() + (10 << 20), b'v');
    page.extend_from_slice(b"\"} 1\nafter 2\n");
    let (summary, out) = run(&page);
    assert_eq!(positions(&out), [(2, 1, ErrorKind::LineTooLong)]);
    assert_eq!(names(&out), ["before", "after"]);
    assert_eq!(out.samples[1].value, 2.0);
    assert_eq!(summary.lines, 3);

    // The same line last on the page, with no newline after it.
    page.truncate(page.len() - b"\"} 1\nafter 2\n".len());
    let (summary, out) = run(&page);
    assert_eq!(positions(&out), [(2, 1, ErrorKind::LineTooLong)]);
    assert_eq!(summary.lines, 2);
}

#[test]
fn lines_up_to_the_limit_are_read_and_longer_ones_are_not() {
    // `v{x="…"} 1` padded to exactly the limit, then one byte longer.
    let line = |len: usize| {
        let mut line = b"v{x=\"".to_vec();
        line.resize(len - b"\"} 1".len(), b'v');
        line.extend_from_slice(b"\"} 1");
        assert_eq!(line.len(), len);
        line
    };
    let mut page = line(MAX_LINE_BYTES);
    // A CR before the newline is not part of the line.
    page.extend_from_slice(b"\r\n");
    page.extend(line(MAX_LINE_BYTES + 1));
    page.extend_from_slice(b"\nnext 3\n");
    let (_, out) = run(&page);
    assert_eq!(positions(&out), [(2, 1, ErrorKind::LineTooLong)]);
    assert_eq!(names(&out), ["v", "next"]);
    assert_eq!(out.samples[0].labels[0].1.len(), MAX_LINE_BYTES - 9);
}

/// Counts and checks samples without keeping them: a million owned
/// samples would measure the allocator, not the parser.
#[derive(Default)]
struct Series {
    samples: usize,
    out_of_order: usize,
    families: usize,
    errors: usize,
}

impl<'a> Visitor<'a> for Series {
    fn sample(&mut self, s: &Sample<'a, '_>) {
        // Sample n has value n and label series="n".
        let n = self.samples;
        if s.value != n as f64 || s.label("series") != Some(n.to_string().as_str()) {
            self.out_of_order += 1;
        }
        self.samples += 1;
    }
    fn family_type(&mut self, _family: &'a str, kind: FamilyType) {
        if kind == FamilyType::Gauge {
            self.families += 1;
        }
    }
    fn error(&mut self, _error: ParseError) {
        self.errors += 1;
    }
}

#[test]
fn a_million_series_parse_completely() {
    use std::fmt::Write as _;
    const FAMILIES: usize = 1_000;
    const PER_FAMILY: usize = 1_050;
    let mut page = String::with_capacity(FAMILIES * PER_FAMILY * 64);
    let mut n = 0;
    for family in 0..FAMILIES {
        let _ = writeln!(
            page,
            "# HELP f{family} Family {family}.\n# TYPE f{family} gauge"
        );
        for pod in 0..PER_FAMILY {
            let _ = writeln!(page, "f{family}{{series=\"{n}\",pod=\"p-{pod}\"}} {n}");
            n += 1;
        }
    }
    let mut series = Series::default();
    let summary = exposition::parse(page.as_bytes(), &mut series);
    assert_eq!(series.samples, FAMILIES * PER_FAMILY);
    assert_eq!(summary.samples, 1_050_000);
    assert_eq!(summary.lines, FAMILIES * (PER_FAMILY + 2));
    assert_eq!(series.families, FAMILIES);
    assert_eq!(
        (series.out_of_order, series.errors, summary.errors),
        (0, 0, 0)
    );
}

#[test]
fn invalid_utf8_is_positioned_in_names_labels_and_values() {
    let page: &[u8] = b"na\xffme 1\n\
a{l\xc3=\"v\"} 1\n\
a{l=\"v\xe2\x82\"} 1\n\
a 1\xff\n\
ok{l=\"h\xc3\xa9llo \xf0\x9f\xa6\x80\"} 2\n\
# HELP a \xfe\n\
overlong{l=\"\xc0\xaf\"} 1\n\
surrogate{l=\"\xed\xa0\x80\"} 1\n\
also_ok 3\n\
last{l=\"\xf0\x9f\"} 4";
    let (summary, out) = run(page);
    assert_eq!(
        positions(&out),
        [
            (1, 3, ErrorKind::Utf8),
            (2, 4, ErrorKind::Utf8),
            (3, 7, ErrorKind::Utf8),
            (4, 4, ErrorKind::Utf8),
            (6, 10, ErrorKind::Utf8),
            (7, 13, ErrorKind::Utf8),
            (8, 14, ErrorKind::Utf8),
            (10, 9, ErrorKind::Utf8),
        ]
    );
    // Valid UTF-8 between bad lines is read: validation restarts after
    // each bad line.
    assert_eq!(names(&out), ["ok", "also_ok"]);
    assert_eq!(out.samples[0].labels[0].1, "héllo 🦀");
    assert_eq!(summary.lines, 10);
}

#[test]
fn invalid_utf8_after_a_long_clean_stretch_and_inside_a_too_long_line() {
    let mut page = Vec::new();
    for i in 0..1_000 {
        page.extend_from_slice(format!("clean{{i=\"{i}\"}} {i}\n").as_bytes());
    }
    page.extend_from_slice(b"bad\x80 1\n");
    page.extend(std::iter::repeat_n(0xff, MAX_LINE_BYTES + 1));
    page.extend_from_slice(b"\nend 1\n");
    let (_, out) = run(&page);
    assert_eq!(
        positions(&out),
        [
            (1_001, 4, ErrorKind::Utf8),
            (1_002, 1, ErrorKind::LineTooLong)
        ]
    );
    assert_eq!(out.samples.len(), 1_001);
    assert_eq!(out.samples[999].value, 999.0);
    assert_eq!(out.samples[1_000].name, "end");
}

#[test]
fn nul_bytes_are_not_names_or_values_but_may_sit_in_label_values() {
    let page: &[u8] = b"a\0 1\n\
\0\n\
a 1\0\n\
a{x\0=\"y\"} 1\n\
kept{x=\"\0\"} 5\n";
    let (_, out) = run(page);
    assert_eq!(
        positions(&out),
        [
            (1, 2, ErrorKind::Name),
            (2, 1, ErrorKind::Name),
            (3, 3, ErrorKind::Value),
            (4, 4, ErrorKind::Label),
        ]
    );
    assert_eq!(names(&out), ["kept"]);
    assert_eq!(out.samples[0].labels, [("x".into(), "\0".into())]);

    let (summary, out) = run(&[0; 4096]);
    assert_eq!(summary.lines, 1);
    assert_eq!(positions(&out), [(1, 1, ErrorKind::Name)]);
}

#[test]
fn a_page_cut_anywhere_keeps_every_whole_line() {
    let page = "# HELP h Latency.\n\
# TYPE h histogram\n\
h_bucket{le=\"0.5\",path=\"/a\\\"b\"} 10 1700000000000\n\
h_bucket{le=\"+Inf\",path=\"/a\\\"b\"} 12 1700000000000\n\
h_sum{path=\"/a\\\"b\"} 3.25e+01\n\
h_count{path=\"/a\\\"b\"} 12\n";
    let (_, whole) = run(page.as_bytes());
    assert!(whole.errors.is_empty(), "{:?}", whole.errors);
    assert_eq!(whole.samples.len(), 4);
    let line_ends: Vec<usize> = page.match_indices('\n').map(|(at, _)| at).collect();
    for cut in 0..page.len() {
        let (summary, out) = run(&page.as_bytes()[..cut]);
        let complete = line_ends.iter().filter(|end| **end < cut).count();
        // Complete lines: 2 comments, then samples.
        let whole_samples = complete.saturating_sub(2);
        assert!(
            out.samples.len() >= whole_samples && out.samples.len() <= whole_samples + 1,
            "cut at {cut}: {} samples from {complete} complete lines",
            out.samples.len()
        );
        assert_eq!(out.samples[..whole_samples], whole.samples[..whole_samples]);
        // The cut line is a sample (a shorter value or timestamp), an
        // error on the cut line, or nothing (a cut comment or no line).
        let partial = cut
            > line_ends
                .iter()
                .rev()
                .find(|e| **e < cut)
                .map_or(0, |e| e + 1);
        assert_eq!(
            summary.lines,
            complete + usize::from(partial),
            "cut at {cut}"
        );
        assert!(
            out.errors.iter().all(|e| e.line == complete + 1),
            "cut at {cut}"
        );
        assert!(out.errors.len() + out.samples.len() - whole_samples <= 1);
    }
    // Named cuts: in a label value, mid-escape, after `{`, after the name,
    // after the labels.
    let third = line_ends[1] + 1;
    let at = |text: &str| third + page[third..].find(text).expect("on the third line");
    let cases = [
        (at("/a") + 1, 3, 24, ErrorKind::UnterminatedLabelValue),
        (at("\\\"b") + 1, 3, 24, ErrorKind::UnterminatedLabelValue),
        (at("le"), 3, 10, ErrorKind::Label),
        (at("{"), 3, 9, ErrorKind::Value),
        (at(" 10"), 3, 32, ErrorKind::Value),
    ];
    for (cut, line, column, kind) in cases {
        let (_, out) = run(&page.as_bytes()[..cut]);
        assert_eq!(positions(&out), [(line, column, kind)], "cut at {cut}");
    }
    // A cut inside the value or timestamp leaves a shorter, valid number.
    let (_, out) = run(&page.as_bytes()[..at(" 10") + 2]);
    assert_eq!(out.samples.last().map(|s| s.value), Some(1.0));
    let (_, out) = run(&page.as_bytes()[..at(" 1700") + 5]);
    assert_eq!(out.samples.last().and_then(|s| s.timestamp), Some(1700.0));
}

#[test]
fn runs_of_braces_are_label_errors() {
    let mut page = vec![b'{'; 100_000];
    page.push(b'\n');
    page.extend_from_slice(b"a");
    page.extend(std::iter::repeat_n(b'{', 100_000));
    page.extend_from_slice(b" 1\n");
    page.extend(std::iter::repeat_n(b'}', 100_000));
    page.push(b'\n');
    page.extend_from_slice(b"b{x=\"{{{{}}}}\"} 2\n");
    // A quoted name may hold braces.
    page.extend_from_slice(b"{\"{{{{\"} 3\n");
    let (_, out) = run(&page);
    assert_eq!(
        positions(&out),
        [
            (1, 2, ErrorKind::Label),
            (2, 3, ErrorKind::Label),
            (3, 1, ErrorKind::Name),
        ]
    );
    assert_eq!(names(&out), ["b", "{{{{"]);
    assert_eq!(out.samples[0].labels, [("x".into(), "{{{{}}}}".into())]);
}

#[test]
fn a_huge_label_set_is_read_whole_and_the_next_line_starts_empty() {
    use std::fmt::Write as _;
    const LABELS: usize = 50_000;
    let mut line = String::from("wide{");
    for i in 0..LABELS {
        let _ = write!(line, "l{i}=\"v{i}\",");
    }
    line.push_str("} 7\n");
    assert!(line.len() < MAX_LINE_BYTES);
    let page = format!("{line}narrow{{only=\"one\"}} 8\n");
    let (_, out) = run(page.as_bytes());
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.samples[0].labels.len(), LABELS);
    assert_eq!(
        out.samples[0].labels[LABELS - 1],
        (format!("l{}", LABELS - 1), format!("v{}", LABELS - 1))
    );
    assert_eq!(out.samples[0].value, 7.0);
    assert_eq!(out.samples[1].labels, [("only".into(), "one".into())]);

    // Past the line limit, the same shape is one error.
    let mut line = String::from("wider{");
    let mut i = 0;
    while line.len() <= MAX_LINE_BYTES {
        let _ = write!(line, "l{i}=\"v{i}\",");
        i += 1;
    }
    line.push_str("} 7\nafter 1\n");
    let (_, out) = run(line.as_bytes());
    assert_eq!(positions(&out), [(1, 1, ErrorKind::LineTooLong)]);
    assert_eq!(names(&out), ["after"]);
}

#[test]
fn garbage_lines_between_good_ones_are_each_reported_once() {
    let page = b"# TYPE ok counter\n\
ok_total 1\n\
}{\n\
= \"\n\
ok_total{a=b} 2\n\
ok_total{a=\"b\" 2\n\
ok_total{\"\"=\"v\"} 2\n\
ok_total{a=\"b\"}2\n\
ok_total 2 3 4\n\
# TYPE ok\n\
# TYPE 9bad gauge\n\
# HELP\n\
ok_total 9 # an exemplar or a comment\n";
    let (summary, out) = run(page);
    assert_eq!(
        positions(&out),
        [
            (3, 1, ErrorKind::Name),
            (4, 1, ErrorKind::Name),
            (5, 12, ErrorKind::Label),
            (6, 16, ErrorKind::Label),
            (7, 10, ErrorKind::Label),
            (8, 16, ErrorKind::Value),
            (9, 14, ErrorKind::Trailing),
            (10, 10, ErrorKind::Type),
            (11, 8, ErrorKind::Name),
            (12, 7, ErrorKind::Name),
        ]
    );
    assert_eq!(summary.samples, 2);
    assert_eq!(out.samples[1].value, 9.0);
    assert_eq!(out.types, [("ok".to_owned(), FamilyType::Counter)]);
}
