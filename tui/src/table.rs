//! The row model shared by every table view: cells with a sort key and a
//! tone, filtered by regex and sorted without touching the terminal.

use std::cmp::Ordering;

use regex::Regex;

use crate::theme::Tone;

/// A column: its title, how wide it wants to be and how much it matters
/// when the terminal is narrow (lower `priority` goes first).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub title: &'static str,
    pub width: u16,
    /// Right-aligned figures.
    pub numeric: bool,
    /// 0 is always shown; higher numbers are dropped first.
    pub priority: u8,
}

impl Column {
    /// A text column.
    pub const fn text(title: &'static str, width: u16, priority: u8) -> Self {
        Self {
            title,
            width,
            numeric: false,
            priority,
        }
    }

    /// A figure column.
    pub const fn number(title: &'static str, width: u16, priority: u8) -> Self {
        Self {
            title,
            width,
            numeric: true,
            priority,
        }
    }
}

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub text: String,
    /// Figures sort by value (absent ones last); text by itself.
    pub value: Option<f64>,
    pub tone: Tone,
}

impl Cell {
    /// A text cell.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            value: None,
            tone: Tone::Normal,
        }
    }

    /// A figure cell.
    pub fn number(text: String, value: Option<f64>) -> Self {
        let tone = if value.is_none() {
            Tone::Dim
        } else {
            Tone::Normal
        };
        Self { text, value, tone }
    }

    /// The same cell in another tone.
    pub fn tone(mut self, tone: Tone) -> Self {
        self.tone = tone;
        self
    }
}

/// One row; `key` identifies it across refreshes (selection follows it)
/// and for drill-downs.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: String,
    pub cells: Vec<Cell>,
}

/// A `/` filter: a case-insensitive regex, `!` in front inverts it.
#[derive(Debug, Clone)]
pub struct Filter {
    pub text: String,
    invert: bool,
    regex: Regex,
}

impl Filter {
    /// Parses the filter text; an invalid regex is matched literally.
    pub fn parse(text: &str) -> Option<Self> {
        let (invert, pattern) = match text.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if pattern.is_empty() {
            return None;
        }
        let regex = Regex::new(&format!("(?i){pattern}"))
            .or_else(|_| Regex::new(&format!("(?i){}", regex::escape(pattern))))
            .ok()?;
        Some(Self {
            text: text.to_owned(),
            invert,
            regex,
        })
    }

    /// Whether a row passes (any cell matches, or none when inverted).
    pub fn keeps(&self, row: &Row) -> bool {
        let hit = row.cells.iter().any(|c| self.regex.is_match(&c.text));
        hit != self.invert
    }
}

/// Sort order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub column: usize,
    /// Descending: the default for figures (the biggest spender first).
    pub descending: bool,
}

/// Compares two rows on one column: figures by value with absent ones
/// last whatever the direction, text case-insensitively.
fn compare(a: &Row, b: &Row, sort: Sort) -> Ordering {
    let (Some(x), Some(y)) = (a.cells.get(sort.column), b.cells.get(sort.column)) else {
        return Ordering::Equal;
    };
    let order = match (x.value, y.value) {
        (Some(p), Some(q)) => p.total_cmp(&q),
        (Some(_), None) => return Ordering::Less,
        (None, Some(_)) => return Ordering::Greater,
        // Case-insensitive without allocating (Kubernetes names are
        // ASCII): sorts run on every key.
        (None, None) => x
            .text
            .bytes()
            .map(|b| b.to_ascii_lowercase())
            .cmp(y.text.bytes().map(|b| b.to_ascii_lowercase())),
    };
    let order = if sort.descending {
        order.reverse()
    } else {
        order
    };
    order.then_with(|| a.key.cmp(&b.key))
}

/// The indices of `rows` that pass `filter`, in `sort` order.
pub fn arrange(rows: &[Row], filter: Option<&Filter>, sort: Option<Sort>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows.len())
        .filter(|i| filter.is_none_or(|f| f.keeps(&rows[*i])))
        .collect();
    if let Some(sort) = sort {
        order.sort_by(|a, b| compare(&rows[*a], &rows[*b], sort));
    }
    order
}

/// Which columns fit in `width` (one space between columns), keeping
/// the most important ones and the original order.
pub fn fitting(columns: &[Column], width: u16) -> Vec<usize> {
    let mut chosen: Vec<usize> = Vec::new();
    let mut by_priority: Vec<usize> = (0..columns.len()).collect();
    by_priority.sort_by_key(|i| (columns[*i].priority, *i));
    let mut used: u16 = 0;
    for i in by_priority {
        let need = columns[i].width + u16::from(!chosen.is_empty());
        if used + need <= width || columns[i].priority == 0 {
            used = used.saturating_add(need);
            chosen.push(i);
        }
    }
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, name: &str, value: Option<f64>) -> Row {
        Row {
            key: key.to_owned(),
            cells: vec![Cell::text(name), Cell::number(format!("{value:?}"), value)],
        }
    }

    #[test]
    fn figures_sort_with_absent_values_last_both_ways() {
        let rows = vec![
            row("a", "web", Some(1.0)),
            row("b", "ml", None),
            row("c", "batch", Some(5.0)),
        ];
        let down = Sort {
            column: 1,
            descending: true,
        };
        assert_eq!(arrange(&rows, None, Some(down)), vec![2, 0, 1]);
        let up = Sort {
            descending: false,
            ..down
        };
        assert_eq!(arrange(&rows, None, Some(up)), vec![0, 2, 1]);
        let by_name = Sort {
            column: 0,
            descending: false,
        };
        assert_eq!(arrange(&rows, None, Some(by_name)), vec![2, 1, 0]);
    }

    #[test]
    fn filters_match_any_cell_and_invert() {
        let rows = vec![row("a", "inference", Some(1.0)), row("b", "web", None)];
        let f = Filter::parse("INFER").expect("filter");
        assert_eq!(arrange(&rows, Some(&f), None), vec![0]);
        let f = Filter::parse("!infer").expect("filter");
        assert_eq!(arrange(&rows, Some(&f), None), vec![1]);
        // An invalid regex is taken literally instead of failing.
        let f = Filter::parse("web(").expect("filter");
        assert!(arrange(&rows, Some(&f), None).is_empty());
        assert!(Filter::parse("!").is_none());
    }

    #[test]
    fn narrow_terminals_drop_the_least_important_columns() {
        let columns = [
            Column::text("NAME", 20, 0),
            Column::number("A", 10, 2),
            Column::number("B", 10, 1),
        ];
        assert_eq!(fitting(&columns, 32), vec![0, 2]);
        assert_eq!(fitting(&columns, 80), vec![0, 1, 2]);
        assert_eq!(fitting(&columns, 5), vec![0]);
    }
}
