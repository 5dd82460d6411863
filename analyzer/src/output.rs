//! Recommendations for people and scripts (`tally recommend`): an aligned
//! table, JSON, YAML, CSV or Parquet. Every format carries the same
//! fields; CSV flattens current and proposed values to `name=value` lists,
//! Parquet keeps numbers typed and the value maps as JSON text (DuckDB's
//! `json_extract`, pandas' `json.loads`).

use std::fmt::Write as _;

use crate::recommendation::Recommendation;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns, largest saving first, and a total line.
    Table,
    /// The cards as a JSON array.
    Json,
    /// The cards as a YAML sequence.
    Yaml,
    /// One CSV row per card (RFC 4180 quoting).
    Csv,
    /// One Parquet row per card (binary: to a file or a pipe).
    Parquet,
}

impl Format {
    /// Parses `table`, `json`, `yaml`, `csv`, `parquet`.
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "table" => Some(Format::Table),
            "json" => Some(Format::Json),
            "yaml" => Some(Format::Yaml),
            "csv" => Some(Format::Csv),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }
}

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// JSON encoding failed.
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// YAML encoding failed.
    #[error("cannot encode YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// Parquet encoding failed.
    #[error(transparent)]
    Parquet(#[from] crate::parquet::ParquetError),
}

impl Format {
    /// Whether the output is binary (not for a terminal).
    pub fn is_binary(self) -> bool {
        self == Format::Parquet
    }
}

/// Renders `cards`; `total` is the de-duplicated total the collector
/// computed (the table's last line), `currency` its unit.
pub fn render(
    cards: &[Recommendation],
    format: Format,
    total: Option<f64>,
    currency: &str,
) -> Result<Vec<u8>, OutputError> {
    match format {
        Format::Json => Ok((serde_json::to_string_pretty(cards)? + "\n").into_bytes()),
        Format::Yaml => Ok(serde_yaml_ng::to_string(cards)?.into_bytes()),
        Format::Csv => Ok(csv(cards, currency).into_bytes()),
        Format::Table => Ok(table(cards, total, currency).into_bytes()),
        Format::Parquet => parquet(cards, currency),
    }
}

/// The cards as Parquet columns, in the CSV's order plus the evidence.
fn parquet(cards: &[Recommendation], currency: &str) -> Result<Vec<u8>, OutputError> {
    use crate::parquet::{Column, ColumnData};
    let text = |name: &str, f: &dyn Fn(&Recommendation) -> String| Column {
        name: name.to_owned(),
        data: ColumnData::Utf8(cards.iter().map(f).collect()),
    };
    let number = |name: &str, f: &dyn Fn(&Recommendation) -> f64| Column {
        name: name.to_owned(),
        data: ColumnData::Float64(cards.iter().map(f).collect()),
    };
    let map = |values: &std::collections::BTreeMap<String, f64>| {
        serde_json::to_string(values).unwrap_or_else(|_| "{}".to_owned())
    };
    let columns = [
        text("id", &|c| c.id.clone()),
        text("kind", &|c| c.kind.as_str().to_owned()),
        text("namespace", &|c| c.workload.namespace.clone()),
        text("workload_kind", &|c| c.workload.kind.clone()),
        text("workload_name", &|c| c.workload.name.clone()),
        text("target", &|c| c.target.clone()),
        number("monthly_savings", &|c| c.monthly_savings),
        text("currency", &|_| currency.to_owned()),
        number("confidence", &|c| c.confidence),
        text("risk_level", &|c| {
            format!("{:?}", c.risk.level).to_lowercase()
        }),
        text("risk", &|c| c.risk.description.clone()),
        text("current", &|c| map(&c.current)),
        text("proposed", &|c| map(&c.proposed)),
        text("evidence", &|c| map(&c.evidence)),
        text("explanation", &|c| c.explanation.clone()),
    ];
    Ok(crate::parquet::to_bytes(&columns)?)
}

fn values(map: &std::collections::BTreeMap<String, f64>) -> String {
    let parts: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", short(*v)))
        .collect();
    parts.join(";")
}

/// A number in at most 4 significant digits, bytes as GiB/MiB.
fn short(value: f64) -> String {
    if value.abs() >= 1024.0 * 1024.0 {
        crate::rightsizing::bytes_text(value)
    } else if value.fract() == 0.0 {
        format!("{value}")
    } else {
        let text = format!("{value:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

fn csv(cards: &[Recommendation], currency: &str) -> String {
    let mut out = String::from(
        "id,kind,namespace,workload_kind,workload_name,target,monthly_savings,currency,confidence,risk_level,risk,current,proposed,explanation\n",
    );
    for c in cards {
        let fields = [
            c.id.clone(),
            c.kind.as_str().to_owned(),
            c.workload.namespace.clone(),
            c.workload.kind.clone(),
            c.workload.name.clone(),
            c.target.clone(),
            format!("{:.2}", c.monthly_savings),
            currency.to_owned(),
            format!("{:.3}", c.confidence),
            format!("{:?}", c.risk.level).to_lowercase(),
            c.risk.description.clone(),
            values(&c.current),
            values(&c.proposed),
            c.explanation.clone(),
        ];
        let row: Vec<String> = fields.iter().map(|f| quote(f)).collect();
        let _ = writeln!(out, "{}", row.join(","));
    }
    out
}

fn table(cards: &[Recommendation], total: Option<f64>, currency: &str) -> String {
    let header = [
        "SAVINGS/MO",
        "KIND",
        "WORKLOAD",
        "TARGET",
        "CURRENT",
        "PROPOSED",
        "CONF",
        "RISK",
    ];
    let rows: Vec<[String; 8]> = cards
        .iter()
        .map(|c| {
            [
                format!("{:.2}", c.monthly_savings),
                c.kind.as_str().to_owned(),
                c.workload.to_string(),
                c.target.clone(),
                values(&c.current),
                values(&c.proposed),
                format!("{:.2}", c.confidence),
                format!("{:?}", c.risk.level).to_lowercase(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[&str]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, width))| {
                if i == 0 {
                    format!("{cell:>width$}")
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(&mut out, &header);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&mut out, &cells);
    }
    let shown: f64 = cards.iter().map(|c| c.monthly_savings).sum();
    let _ = writeln!(
        out,
        "{} recommendations, {shown:.2} {currency}/month listed{}",
        cards.len(),
        total
            .map(|t| format!(
                "; all cards: {t:.2} {currency}/month with overlapping cards counted once"
            ))
            .unwrap_or_default()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::WorkloadKey;
    use crate::recommendation::{Kind, Risk, RiskLevel};
    use std::collections::BTreeMap;

    fn card(savings: f64, explanation: &str) -> Recommendation {
        Recommendation {
            id: "0123456789abcdef".into(),
            kind: Kind::CpuRequest,
            workload: WorkloadKey {
                namespace: "web".into(),
                kind: "Deployment".into(),
                name: "api".into(),
            },
            target: "main".into(),
            current: BTreeMap::from([("cpu_request_cores".into(), 2.0)]),
            proposed: BTreeMap::from([("cpu_request_cores".into(), 0.25)]),
            monthly_savings: savings,
            confidence: 0.5,
            risk: Risk {
                level: RiskLevel::Low,
                description: "2.0 % of time above the request".into(),
            },
            evidence: BTreeMap::new(),
            explanation: explanation.into(),
        }
    }

    fn render_text(cards: &[Recommendation], format: Format, total: Option<f64>) -> String {
        String::from_utf8(render(cards, format, total, "USD").expect("render")).expect("UTF-8")
    }

    #[test]
    fn csv_quotes_commas_and_quotes() {
        let text = render_text(&[card(12.5, "lower it, \"now\"")], Format::Csv, None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[1].starts_with(
                "0123456789abcdef,cpu_request,web,Deployment,api,main,12.50,USD,0.500,low,"
            ),
            "{}",
            lines[1]
        );
        assert!(
            lines[1]
                .ends_with(",cpu_request_cores=2,cpu_request_cores=0.25,\"lower it, \"\"now\"\"\""),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn table_aligns_and_totals() {
        let text = render_text(
            &[card(12.5, "x"), card(3.0, "y")],
            Format::Table,
            Some(14.0),
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("SAVINGS/MO  KIND"), "{text}");
        assert!(
            lines[1].starts_with("     12.50  cpu_request  web/Deployment/api"),
            "{text}"
        );
        assert_eq!(
            lines[3],
            "2 recommendations, 15.50 USD/month listed; all cards: 14.00 USD/month with overlapping cards counted once"
        );
    }

    #[test]
    fn json_and_yaml_round_trip() {
        let cards = vec![card(1.0, "x")];
        let json = render_text(&cards, Format::Json, None);
        let back: Vec<Recommendation> = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, cards);
        let yaml = render_text(&cards, Format::Yaml, None);
        let back: Vec<Recommendation> = serde_yaml_ng::from_str(&yaml).expect("parse");
        assert_eq!(back, cards);
        assert_eq!(Format::parse("csv"), Some(Format::Csv));
        assert_eq!(Format::parse("xml"), None);
    }

    #[test]
    fn parquet_is_a_parquet_file_with_one_row_per_card() {
        let bytes = render(
            &[card(1.0, "x"), card(2.0, "y")],
            Format::Parquet,
            None,
            "USD",
        )
        .expect("parquet");
        assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
        // Every card's explanation is in the file, in order.
        let text = String::from_utf8_lossy(&bytes);
        let (x, y) = (text.find("\u{1}\0\0\0x"), text.find("\u{1}\0\0\0y"));
        assert!(x.is_some() && y.is_some() && x < y, "{bytes:?}");
        assert!(Format::parse("parquet").is_some_and(Format::is_binary));
        assert!(!Format::Csv.is_binary());
        // No cards is still a file with the columns.
        let empty = render(&[], Format::Parquet, None, "USD").expect("parquet");
        assert!(empty.starts_with(b"PAR1") && empty.len() > 8);
    }
}
