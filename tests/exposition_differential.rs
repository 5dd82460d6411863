//! Differential test of the agent's exposition parser
//! (`tally_agent::sources::serving::exposition`) against the reference
//! parser, Python's prometheus_client (installed by
//! `scripts/install-test-peers.sh` into `.venv-peers`; the reader is
//! `tests/peers/exposition_reference.py`). On seeded generated pages in
//! both formats, and on the project's fixture pages
//! (`agent/tests/fixtures/exposition/*.txt`), both must agree on every
//! family (name, type, help, unit), sample, label, value and timestamp.
//!
//! prometheus_client reports some things differently by design; the test
//! maps ours onto its form rather than skipping them:
//! - its text parser converts to OpenMetrics' model: a counter family
//!   loses `_total` from its name, and a counter's samples written without
//!   `_total` gain it (so samples are compared by name with that rename,
//!   families by the stripped name); `untyped` is `unknown`;
//! - a sample outside the family declared above it (`x_created` after a
//!   counter, a histogram's lines under a `HELP`-only family) becomes a
//!   family of its own, and so do the family's later samples; those must
//!   be untyped, undocumented and hold only samples of their own name;
//! - text timestamps are divided by 1000 (milliseconds to seconds);
//!   `HELP` text is unescaped (`\\`, `\n`, and `\"` in OpenMetrics) and
//!   stripped of leading and trailing blanks, which the agent keeps;
//! - values are Python ints where `int()` accepts them, so `-0` is `0`
//!   (compared with `==`, which holds for ±0), and NaN equals NaN;
//! - exemplars are parsed by Python and skipped by the agent (it has no
//!   use for them), so they are not compared.
//!
//! The generator writes only what both parsers accept: Python raises on
//! the whole page for one bad line, so bad lines are the hostile suite's
//! business (`agent/tests/exposition_hostile.rs`).

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tally_agent::sources::serving::exposition::{self, FamilyType, ParseError, Sample, Visitor};

const TEXT_PAGES: u64 = 300;
const OPENMETRICS_PAGES: u64 = 150;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Format {
    Text,
    OpenMetrics,
}

// ---------------------------------------------------------------------------
// Our side.

#[derive(Debug)]
struct OurSample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    timestamp: Option<f64>,
}

/// A run of `HELP`/`TYPE`/`UNIT` lines naming one family.
#[derive(Debug, Default)]
struct Declared {
    name: String,
    kind: Option<FamilyType>,
    help: Option<String>,
    unit: Option<String>,
}

#[derive(Default)]
struct Ours {
    samples: Vec<OurSample>,
    declared: Vec<Declared>,
    errors: Vec<ParseError>,
    sample_since_metadata: bool,
}

impl Ours {
    fn family(&mut self, name: &str) -> &mut Declared {
        let same =
            !self.sample_since_metadata && self.declared.last().is_some_and(|d| d.name == name);
        self.sample_since_metadata = false;
        if !same {
            self.declared.push(Declared {
                name: name.to_owned(),
                ..Declared::default()
            });
        }
        let last = self.declared.len() - 1;
        &mut self.declared[last]
    }
}

impl<'a> Visitor<'a> for Ours {
    fn sample(&mut self, s: &Sample<'a, '_>) {
        self.sample_since_metadata = true;
        self.samples.push(OurSample {
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
        self.family(family).kind = Some(kind);
    }
    fn help(&mut self, family: &'a str, text: &'a str) {
        self.family(family).help = Some(text.to_owned());
    }
    fn unit(&mut self, family: &'a str, unit: &'a str) {
        self.family(family).unit = Some(unit.to_owned());
    }
    fn error(&mut self, error: ParseError) {
        self.errors.push(error);
    }
}

fn type_name(kind: Option<FamilyType>) -> &'static str {
    match kind {
        Some(FamilyType::Counter) => "counter",
        Some(FamilyType::Gauge) => "gauge",
        Some(FamilyType::Histogram) => "histogram",
        Some(FamilyType::GaugeHistogram) => "gaugehistogram",
        Some(FamilyType::Summary) => "summary",
        Some(FamilyType::Info) => "info",
        Some(FamilyType::StateSet) => "stateset",
        Some(FamilyType::Unknown) | None => "unknown",
    }
}

/// HELP text as prometheus_client reads it.
fn help_as_python(format: Format, raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if format == Format::OpenMetrics => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    match format {
        Format::Text => out.trim_matches([' ', '\t']).to_owned(),
        Format::OpenMetrics => out.trim_start_matches([' ', '\t']).to_owned(),
    }
}

fn same_number(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

fn number(value: &Value) -> Option<f64> {
    value.as_str()?.parse().ok()
}

/// What the comparison saw, so a generator that stops producing a quirk
/// fails the test instead of silently testing less.
#[derive(Default, Debug)]
struct Seen {
    samples: usize,
    families: usize,
    renamed_counters: usize,
    split_families: usize,
    nan: usize,
    infinite: usize,
    timestamps: usize,
    escaped_labels: usize,
    quoted_names: usize,
    units: usize,
}

/// Compares one page; `Err` says where they first disagree.
fn compare(format: Format, ours: &Ours, python: &[Value], seen: &mut Seen) -> Result<(), String> {
    // Samples, in page order (Python yields families in page order and
    // each family's samples in order).
    let flat: Vec<(&Value, &Value)> = python
        .iter()
        .flat_map(|family| {
            family["samples"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |sample| (family, sample))
        })
        .collect();
    if flat.len() != ours.samples.len() {
        return Err(format!(
            "{} samples here, {} in prometheus_client",
            ours.samples.len(),
            flat.len()
        ));
    }
    for (index, (our, (family, theirs))) in ours.samples.iter().zip(&flat).enumerate() {
        let family_name = family["name"].as_str().unwrap_or_default();
        let renamed =
            format == Format::Text && family["type"] == "counter" && our.name == family_name;
        let name = if renamed {
            seen.renamed_counters += 1;
            format!("{}_total", our.name)
        } else {
            our.name.clone()
        };
        let labels: Vec<(String, String)> = theirs[1]
            .as_array()
            .into_iter()
            .flatten()
            .map(|pair| {
                (
                    pair[0].as_str().unwrap_or_default().to_owned(),
                    pair[1].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let value = number(&theirs[2]);
        let timestamp = if theirs[3].is_null() {
            None
        } else {
            Some(number(&theirs[3]))
        };
        let our_timestamp = our.timestamp.map(|t| match format {
            Format::Text => t / 1000.0,
            Format::OpenMetrics => t,
        });
        let agrees = theirs[0] == name.as_str()
            && labels == our.labels
            && value.is_some_and(|v| same_number(v, our.value))
            && match (our_timestamp, timestamp) {
                (None, None) => true,
                (Some(a), Some(Some(b))) => same_number(a, b),
                _ => false,
            };
        if !agrees {
            return Err(format!(
                "sample {index}: here {our:?} (compared as {name}, timestamp {our_timestamp:?}); prometheus_client {theirs} in family {family_name}"
            ));
        }
        seen.samples += 1;
        seen.nan += usize::from(our.value.is_nan());
        seen.infinite += usize::from(our.value.is_infinite());
        seen.timestamps += usize::from(our.timestamp.is_some());
        seen.escaped_labels += our
            .labels
            .iter()
            .filter(|(_, v)| v.contains(['\n', '"', '\\']))
            .count();
        seen.quoted_names += usize::from(our.name.contains('.'));
    }

    // Families: ours are the declared ones; Python's others are the
    // families it starts for samples outside the declared one.
    let mut declared = ours.declared.iter().peekable();
    for family in python {
        let name = family["name"].as_str().unwrap_or_default();
        let kind = match family["type"].as_str().unwrap_or_default() {
            "untyped" => "unknown",
            other => other,
        };
        let help = family["help"].as_str().unwrap_or_default();
        let unit = family["unit"].as_str().unwrap_or_default();
        let matches = declared.peek().is_some_and(|d| {
            let our_kind = type_name(d.kind);
            let our_name = match (format, our_kind) {
                (Format::Text, "counter") => d.name.strip_suffix("_total").unwrap_or(&d.name),
                _ => d.name.as_str(),
            };
            let our_help = d
                .help
                .as_deref()
                .map(|h| help_as_python(format, h))
                .unwrap_or_default();
            let our_unit = match format {
                Format::Text => "",
                Format::OpenMetrics => d.unit.as_deref().unwrap_or_default(),
            };
            our_name == name && our_kind == kind && our_help == help && our_unit == unit
        });
        if matches {
            declared.next();
            seen.families += 1;
            seen.units += usize::from(!unit.is_empty());
            continue;
        }
        let only_its_own = family["samples"]
            .as_array()
            .is_some_and(|s| s.iter().all(|s| s[0] == name));
        if kind != "unknown" || !help.is_empty() || !unit.is_empty() || !only_its_own {
            return Err(format!(
                "prometheus_client family {family} is not the next declared family here, {:?}",
                declared.peek()
            ));
        }
        seen.split_families += 1;
    }
    match declared.next() {
        Some(left) => Err(format!(
            "declared family {left:?} has no match in prometheus_client"
        )),
        None => Ok(()),
    }
}

/// Runs the reference parser over `pages`: one JSON object per page.
fn reference(python: &Path, format: Format, pages: &[PathBuf]) -> Vec<Value> {
    let mut command = Command::new(python);
    command.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/exposition_reference.py"
    ));
    if format == Format::OpenMetrics {
        command.arg("--openmetrics");
    }
    let output = command
        .args(pages)
        .output()
        .expect("run the reference parser");
    assert!(
        output.status.success(),
        "exposition_reference.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), pages.len(), "one line per page");
    lines
}

fn parse_ours(page: &[u8]) -> Ours {
    let mut ours = Ours::default();
    let summary = exposition::parse(page, &mut ours);
    assert_eq!(summary.samples, ours.samples.len());
    ours
}

/// The page's text for a failure message, cut to a readable length.
fn excerpt(page: &[u8]) -> String {
    let text = String::from_utf8_lossy(page);
    let cut: String = text.chars().take(4000).collect();
    if cut.len() < text.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// Generates `count` pages, has both parsers read them, and compares.
fn differential(python: &Path, format: Format, count: u64) -> Seen {
    let mut seen = Seen::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pages = Vec::new();
    let mut paths = Vec::new();
    for seed in 1..=count {
        let mut rng = Rng::new(seed);
        let page = match format {
            Format::Text => text_page(&mut rng),
            Format::OpenMetrics => openmetrics_page(&mut rng),
        };
        let path = dir.path().join(format!("page-{seed}.txt"));
        std::fs::write(&path, &page).expect("write page");
        pages.push(page);
        paths.push(path);
    }
    let answers = reference(python, format, &paths);
    for (seed, (page, answer)) in (1..).zip(pages.iter().zip(&answers)) {
        let ours = parse_ours(page.as_bytes());
        let outcome = match (&answer["families"], &ours.errors[..]) {
            (Value::Array(families), []) => compare(format, &ours, families, &mut seen),
            (Value::Array(_), errors) => Err(format!("rejected here: {errors:?}")),
            (_, _) => Err(format!("prometheus_client rejects it: {}", answer["error"])),
        };
        if let Err(why) = outcome {
            panic!(
                "{format:?} page of seed {seed} (generator bug or parser disagreement): {why}\n{}",
                excerpt(page.as_bytes())
            );
        }
    }
    seen
}

#[test]
fn generated_text_pages_agree_with_prometheus_client() {
    let Some(python) = common::venv_peer(
        "python",
        "generated_text_pages_agree_with_prometheus_client",
    ) else {
        return;
    };
    let seen = differential(&python, Format::Text, TEXT_PAGES);
    eprintln!("compared: {seen:?}");
    // Every quirk the generator writes was compared, not just written.
    assert!(seen.samples > 5_000, "{seen:?}");
    assert!(seen.families > 1_000, "{seen:?}");
    for (what, count) in [
        ("counters without _total", seen.renamed_counters),
        ("families Python split", seen.split_families),
        ("NaN values", seen.nan),
        ("infinite values", seen.infinite),
        ("timestamps", seen.timestamps),
        ("escaped label values", seen.escaped_labels),
        ("quoted names", seen.quoted_names),
    ] {
        assert!(count > 10, "too few {what}: {seen:?}");
    }
}

#[test]
fn generated_openmetrics_pages_agree_with_prometheus_client() {
    let Some(python) = common::venv_peer(
        "python",
        "generated_openmetrics_pages_agree_with_prometheus_client",
    ) else {
        return;
    };
    let seen = differential(&python, Format::OpenMetrics, OPENMETRICS_PAGES);
    eprintln!("compared: {seen:?}");
    assert!(seen.samples > 3_000, "{seen:?}");
    for (what, count) in [
        ("families", seen.families),
        ("units", seen.units),
        ("NaN values", seen.nan),
        ("infinite values", seen.infinite),
        ("timestamps", seen.timestamps),
        ("escaped label values", seen.escaped_labels),
    ] {
        assert!(count > 10, "too few {what}: {seen:?}");
    }
}

/// The project's recorded pages. One that prometheus_client rejects must
/// be rejected here too (at least one bad line); one it reads must read
/// the same here, without errors. A page is OpenMetrics when it has a
/// `# EOF` line.
#[test]
fn fixture_pages_agree_with_prometheus_client() {
    let test = "fixture_pages_agree_with_prometheus_client";
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("agent/tests/fixtures/exposition");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "txt"))
        .collect();
    fixtures.sort();
    if fixtures.is_empty() {
        eprintln!("SKIP {test}: no *.txt pages in {}", dir.display());
        return;
    }
    let Some(python) = common::venv_peer("python", test) else {
        return;
    };
    let mut seen = Seen::default();
    let mut compared = 0;
    for path in &fixtures {
        let page = std::fs::read(path).expect("read fixture");
        let format = if page.split(|b| *b == b'\n').any(|line| line == b"# EOF") {
            Format::OpenMetrics
        } else {
            Format::Text
        };
        let answer = &reference(&python, format, std::slice::from_ref(path))[0];
        let ours = parse_ours(&page);
        let outcome = match (&answer["families"], &ours.errors[..]) {
            (Value::Array(families), []) => {
                compared += 1;
                compare(format, &ours, families, &mut seen)
            }
            (Value::Array(_), errors) => Err(format!(
                "rejected here ({errors:?}) but read by prometheus_client"
            )),
            (_, []) => Err(format!(
                "read here but rejected by prometheus_client: {}",
                answer["error"]
            )),
            // Both reject it: a page of bad lines for the error paths.
            (_, _) => Ok(()),
        };
        if let Err(why) = outcome {
            panic!("{} ({format:?}): {why}", path.display());
        }
    }
    eprintln!(
        "{test}: {} pages, {compared} compared sample by sample ({} samples, {} families)",
        fixtures.len(),
        seen.samples,
        seen.families
    );
}

// ---------------------------------------------------------------------------
// Generated pages.

/// xorshift64*: small, seeded, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'p, T>(&mut self, items: &'p [T]) -> &'p T {
        &items[self.below(items.len())]
    }
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

const LABEL_NAMES: [&str; 9] = [
    "model_name",
    "engine",
    "route",
    "code",
    "path",
    "_private",
    "Pod",
    "a1",
    "finished_reason",
];

/// Label values as written, escapes included.
const LABEL_VALUES: [&str; 16] = [
    "",
    "0",
    "meta-llama/Llama-3.1-8B-Instruct",
    "a b",
    "q\\\"uoted\\\"",
    "back\\\\slash",
    "new\\nline",
    "ends with backslash\\\\",
    "{braces}",
    "comma,sep",
    "eq=sign",
    " # not an exemplar ",
    "héllo 🦀",
    "tab\there",
    "\\\\\\\"\\n",
    "/v1/chat/completions",
];

const HELP_TEXTS: [&str; 7] = [
    "Requests served.",
    "Backslash \\\\ and newline \\n escapes.",
    "Unicode: héllo 🦀.",
    "Quotes \" stay as written.",
    "Inner  double  spaces\tand a tab.",
    "Looks like # TYPE x gauge but is help.",
    "Number of requests in model execution batches.",
];

/// A value both formats accept for any sample.
fn value(rng: &mut Rng) -> String {
    let sign = *rng.pick(&["", "", "-", "+"]);
    match rng.below(12) {
        0 => format!("{sign}{}", rng.below(1_000_000)),
        1 => format!("{}.{:06}", rng.below(100_000), rng.below(1_000_000)),
        2 => (*rng.pick(&[".5", "5.", "-.25", "0", "-0", "00012", "1.0"])).to_owned(),
        3 => format!(
            "{sign}{}.{}{}{}",
            1 + rng.below(9),
            rng.below(1000),
            rng.pick(&["e", "E"]),
            rng.pick(&["3", "-3", "+10", "-300", "23", "-310", "308"])
        ),
        4 => (*rng.pick(&["NaN", "+Inf", "-Inf", "Inf"])).to_owned(),
        5 => (*rng.pick(&["123456789012345678901", "9007199254740993", "1e400"])).to_owned(),
        6 => format!("{}", rng.next() as f64 / 7.0),
        _ => format!("{sign}{}.{}", rng.below(10_000), rng.below(100)),
    }
}

/// A non-negative value (OpenMetrics counters, sums, quantiles).
fn non_negative(rng: &mut Rng) -> String {
    match rng.below(5) {
        0 => format!("{}", rng.below(1_000_000)),
        1 => format!("{}.{:06}", rng.below(100_000), rng.below(1_000_000)),
        2 => format!(
            "{}.{}e{}",
            1 + rng.below(9),
            rng.below(1000),
            rng.pick(&["3", "-3", "+12"])
        ),
        3 => "+Inf".to_owned(),
        _ => format!("{}", rng.next() as f64 / 3.0),
    }
}

/// `count` label pairs as written, distinct names.
fn labels(rng: &mut Rng, count: usize) -> Vec<(String, String)> {
    let mut names = LABEL_NAMES.to_vec();
    rng.shuffle(&mut names);
    names
        .iter()
        .take(count)
        .map(|name| ((*name).to_owned(), (*rng.pick(&LABEL_VALUES)).to_owned()))
        .collect()
}

/// `name{a="b",…}` in the text format, with its tolerated spellings.
fn text_series(rng: &mut Rng, name: &str, quoted: bool, pairs: &[(String, String)]) -> String {
    let mut parts: Vec<String> = Vec::new();
    if quoted {
        parts.push(format!("\"{name}\""));
    }
    for (label, value) in pairs {
        let label = if rng.chance(10) {
            format!("\"{label}.q\"")
        } else {
            label.clone()
        };
        let eq = *rng.pick(&["=", "=", "=", " = "]);
        parts.push(format!("{label}{eq}\"{value}\""));
    }
    if parts.is_empty() && rng.chance(70) {
        return name.to_owned();
    }
    let separator = *rng.pick(&[",", ",", ", "]);
    let mut out = String::new();
    if !quoted {
        out.push_str(name);
    }
    out.push('{');
    out.push_str(&parts.join(separator));
    if !parts.is_empty() && rng.chance(15) {
        out.push(',');
    }
    out.push('}');
    out
}

/// One text sample line: series, value, maybe a millisecond timestamp,
/// one kind of blank between them, maybe indented, maybe CRLF.
fn text_line(rng: &mut Rng, out: &mut String, series: &str, value: &str) {
    let blank = *rng.pick(&[" ", " ", " ", "  ", "\t"]);
    if rng.chance(5) {
        out.push_str("  ");
    }
    let _ = write!(out, "{series}{blank}{value}");
    if rng.chance(25) {
        let timestamp = match rng.below(3) {
            0 => format!("{}", 1_700_000_000_000 + rng.below(1 << 30)),
            1 => format!("-{}", rng.below(100_000)),
            _ => format!("1.7{}e12", rng.below(1000)),
        };
        let _ = write!(out, "{blank}{timestamp}");
    }
    if rng.chance(5) {
        out.push(' ');
    }
    out.push_str(if rng.chance(10) { "\r\n" } else { "\n" });
}

fn text_page(rng: &mut Rng) -> String {
    let mut out = String::new();
    let families = 1 + rng.below(12);
    for f in 0..families {
        if rng.chance(30) {
            out.push('\n');
        }
        if rng.chance(20) {
            let comment = *rng.pick(&[
                "# NOTE not a directive\n",
                "#\n",
                "# a comment # with hashes\n",
                "#comment without a space\n",
                "# HELPER not help\n",
            ]);
            out.push_str(comment);
        }
        let kind = *rng.pick(&["counter", "gauge", "histogram", "summary", "untyped"]);
        let quoted = matches!(kind, "gauge" | "untyped") && rng.chance(20);
        let base = if quoted {
            format!("dotted.name.{f}")
        } else {
            format!(
                "{}{f}",
                rng.pick(&["vllm:requests_", "http_requests_", "a", "x_y:z", "_under"])
            )
        };
        let name = if kind == "counter" && rng.chance(50) {
            format!("{base}_total")
        } else {
            base.clone()
        };
        let written = if quoted {
            format!("\"{name}\"")
        } else {
            name.clone()
        };
        let help = match rng.below(4) {
            0 => format!("# HELP {written}\n"),
            1 => format!("# HELP {written} \n"),
            _ => format!("# HELP {written} {}\n", rng.pick(&HELP_TEXTS)),
        };
        let type_line = format!("# TYPE {written} {kind}\n");
        match rng.below(5) {
            0 => {
                out.push_str(&type_line);
                out.push_str(&help);
            }
            1 => out.push_str(&type_line),
            // Python reads a HELP-only histogram's lines as families of
            // their own; the comparison checks that split.
            2 => out.push_str(&help),
            _ => {
                out.push_str(&help);
                out.push_str(&type_line);
            }
        }
        let series = 1 + rng.below(5);
        let mut lines = String::new();
        for s in 0..series {
            let count = rng.below(4);
            let mut pairs = labels(rng, count);
            pairs.push(("series".to_owned(), s.to_string()));
            rng.shuffle(&mut pairs);
            match kind {
                "histogram" => {
                    let mut family = Vec::new();
                    let mut count = 0;
                    for le in ["0.005", "0.1", "1", "2.5e1", "+Inf"] {
                        if le != "+Inf" && rng.chance(30) {
                            continue;
                        }
                        count += rng.below(100);
                        let mut with_le = pairs.clone();
                        let at = rng.below(pairs.len() + 1);
                        with_le.insert(at, ("le".into(), le.into()));
                        family.push((format!("{name}_bucket"), with_le, count.to_string()));
                    }
                    family.push((format!("{name}_sum"), pairs.clone(), value(rng)));
                    family.push((format!("{name}_count"), pairs.clone(), count.to_string()));
                    // Histograms in any line order.
                    rng.shuffle(&mut family);
                    for (sample, pairs, v) in family {
                        let series = text_series(rng, &sample, false, &pairs);
                        text_line(rng, &mut lines, &series, &v);
                    }
                }
                "summary" => {
                    for q in ["0.5", "0.9", "0.99"] {
                        let mut with_q = pairs.clone();
                        with_q.push(("quantile".into(), q.into()));
                        let series = text_series(rng, &name, false, &with_q);
                        let v = value(rng);
                        text_line(rng, &mut lines, &series, &v);
                    }
                    for suffix in ["_sum", "_count"] {
                        let series = text_series(rng, &format!("{name}{suffix}"), false, &pairs);
                        let v = value(rng);
                        text_line(rng, &mut lines, &series, &v);
                    }
                }
                _ => {
                    let series = text_series(rng, &name, quoted, &pairs);
                    let v = value(rng);
                    text_line(rng, &mut lines, &series, &v);
                }
            }
            if matches!(kind, "counter" | "histogram" | "summary") && rng.chance(20) {
                let series = text_series(rng, &format!("{base}_created"), false, &pairs);
                let v = format!("1.7{}e9", rng.below(1000));
                text_line(rng, &mut lines, &series, &v);
            }
        }
        out.push_str(&lines);
    }
    out
}

/// `name{a="b",…}` in OpenMetrics (no trailing commas or blanks).
fn om_series(name: &str, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return name.to_owned();
    }
    let parts: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", parts.join(","))
}

fn om_timestamp(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => format!("{}", 1_700_000_000 + rng.below(1 << 20)),
        1 => format!("{}.{}", 1_700_000_000 + rng.below(1 << 20), rng.below(1000)),
        2 => format!("1.7{}e9", rng.below(1000)),
        _ => "0".to_owned(),
    }
}

fn openmetrics_page(rng: &mut Rng) -> String {
    let mut out = String::new();
    let families = 1 + rng.below(8);
    for f in 0..families {
        let kind = *rng.pick(&[
            "counter",
            "gauge",
            "histogram",
            "summary",
            "info",
            "stateset",
            "gaugehistogram",
            "unknown",
        ]);
        let unit = !matches!(kind, "info" | "stateset") && rng.chance(30);
        let name = if unit {
            format!("om_{kind}_{f}_seconds")
        } else {
            format!("om_{kind}_{f}")
        };
        let mut metadata = Vec::new();
        if kind != "unknown" || rng.chance(50) {
            metadata.push(format!("# TYPE {name} {kind}\n"));
        }
        if unit {
            metadata.push(format!("# UNIT {name} seconds\n"));
        }
        if rng.chance(60) {
            let help = rng.pick(&HELP_TEXTS).replace('"', "\\\"");
            metadata.push(format!("# HELP {name} {help}\n"));
        }
        rng.shuffle(&mut metadata);
        out.push_str(&metadata.concat());
        // Info samples are all one group, so share timestamp presence.
        let family_timestamp = rng.chance(30).then(|| om_timestamp(rng));
        let groups = 1 + rng.below(4);
        for g in 0..groups {
            let count = rng.below(3);
            let mut pairs = labels(rng, count);
            pairs.push(("instance".to_owned(), g.to_string()));
            rng.shuffle(&mut pairs);
            let timestamp = if kind == "info" {
                family_timestamp.clone()
            } else {
                rng.chance(30).then(|| om_timestamp(rng))
            };
            let ts = timestamp.map(|t| format!(" {t}")).unwrap_or_default();
            let exemplar = |rng: &mut Rng| {
                if rng.chance(30) {
                    format!(
                        " # {{trace_id=\"{:x}\"}} {}{}",
                        rng.next(),
                        non_negative(rng),
                        if rng.chance(50) { " 1700000000.25" } else { "" }
                    )
                } else {
                    String::new()
                }
            };
            let mut line = |series: String, value: String, exemplar: String| {
                let _ = writeln!(out, "{series} {value}{ts}{exemplar}");
            };
            match kind {
                "counter" => {
                    let e = exemplar(rng);
                    line(
                        om_series(&format!("{name}_total"), &pairs),
                        non_negative(rng),
                        e,
                    );
                    if rng.chance(40) {
                        line(
                            om_series(&format!("{name}_created"), &pairs),
                            om_timestamp(rng),
                            String::new(),
                        );
                    }
                }
                "histogram" | "gaugehistogram" => {
                    let mut count = 0;
                    for le in ["0.005", "0.1", "1.0", "25.0", "+Inf"] {
                        if le != "+Inf" && rng.chance(30) {
                            continue;
                        }
                        count += rng.below(100);
                        let mut with_le = pairs.clone();
                        with_le.push(("le".into(), le.into()));
                        let e = exemplar(rng);
                        line(
                            om_series(&format!("{name}_bucket"), &with_le),
                            count.to_string(),
                            e,
                        );
                    }
                    let (count_name, sum_name) = if kind == "histogram" {
                        ("_count", "_sum")
                    } else {
                        ("_gcount", "_gsum")
                    };
                    line(
                        om_series(&format!("{name}{count_name}"), &pairs),
                        count.to_string(),
                        String::new(),
                    );
                    line(
                        om_series(&format!("{name}{sum_name}"), &pairs),
                        non_negative(rng),
                        String::new(),
                    );
                    if kind == "histogram" && rng.chance(30) {
                        line(
                            om_series(&format!("{name}_created"), &pairs),
                            om_timestamp(rng),
                            String::new(),
                        );
                    }
                }
                "summary" => {
                    for q in ["0.5", "0.9", "0.99"] {
                        let mut with_q = pairs.clone();
                        with_q.push(("quantile".into(), q.into()));
                        let v = if rng.chance(10) {
                            "NaN".to_owned()
                        } else {
                            non_negative(rng)
                        };
                        line(om_series(&name, &with_q), v, String::new());
                    }
                    line(
                        om_series(&format!("{name}_sum"), &pairs),
                        non_negative(rng),
                        String::new(),
                    );
                    line(
                        om_series(&format!("{name}_count"), &pairs),
                        rng.below(1000).to_string(),
                        String::new(),
                    );
                }
                "info" => line(
                    om_series(&format!("{name}_info"), &pairs),
                    "1".into(),
                    String::new(),
                ),
                "stateset" => {
                    for (state, on) in [("ready", "1"), ("draining", "0")] {
                        let mut with_state = pairs.clone();
                        with_state.push((name.clone(), state.into()));
                        line(om_series(&name, &with_state), on.into(), String::new());
                    }
                }
                _ => line(om_series(&name, &pairs), value(rng), String::new()),
            }
        }
    }
    out.push_str("# EOF\n");
    out
}
