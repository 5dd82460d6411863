//! Number formatting for cells: short, fixed units, "–" for absent.

/// The cell text of an absent figure.
pub const NONE: &str = "–";

/// Dollars: `$1.2k`, `$35.10`, `$0.27`.
pub fn dollars(value: Option<f64>) -> String {
    // No "$-0.00": amounts under a cent are 0.
    let value = value.map(|v| if v.abs() < 0.005 { 0.0 } else { v });
    match value {
        None => NONE.to_owned(),
        Some(v) if !v.is_finite() => NONE.to_owned(),
        Some(v) if v.abs() >= 1e6 => format!("${:.1}M", v / 1e6),
        Some(v) if v.abs() >= 1e4 => format!("${:.1}k", v / 1e3),
        Some(v) if v.abs() >= 100.0 => format!("${v:.0}"),
        Some(v) => format!("${v:.2}"),
    }
}

/// Bytes in binary units: `512 B`, `1.5 GiB`.
pub fn bytes(value: Option<f64>) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let Some(mut v) = value.filter(|v| v.is_finite()) else {
        return NONE.to_owned();
    };
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else if v.abs() >= 100.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A ratio as a percentage: `42%`.
pub fn percent(value: Option<f64>) -> String {
    match value.filter(|v| v.is_finite()) {
        None => NONE.to_owned(),
        Some(v) => format!("{:.0}%", v * 100.0),
    }
}

/// Cores: `0.25`, `12.0`.
pub fn cores(value: Option<f64>) -> String {
    match value.filter(|v| v.is_finite()) {
        None => NONE.to_owned(),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// Seconds as a latency: `85ms`, `1.2s`.
pub fn latency(value: Option<f64>) -> String {
    match value.filter(|v| v.is_finite()) {
        None => NONE.to_owned(),
        Some(v) if v < 1.0 => format!("{:.0}ms", v * 1000.0),
        Some(v) => format!("{v:.1}s"),
    }
}

/// A plain number with an SI suffix: `950`, `12.3k`, `4.1M`.
pub fn count(value: Option<f64>) -> String {
    match value.filter(|v| v.is_finite()) {
        None => NONE.to_owned(),
        Some(v) if v.abs() >= 1e9 => format!("{:.1}G", v / 1e9),
        Some(v) if v.abs() >= 1e6 => format!("{:.1}M", v / 1e6),
        Some(v) if v.abs() >= 1e3 => format!("{:.1}k", v / 1e3),
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

/// A duration in seconds as `45s`, `12m`, `3h`, `2d`.
pub fn age(seconds: f64) -> String {
    match seconds {
        s if !s.is_finite() => NONE.to_owned(),
        s if s < 60.0 => format!("{s:.0}s"),
        s if s < 3600.0 => format!("{:.0}m", s / 60.0),
        s if s < 86_400.0 => format!("{:.0}h", s / 3600.0),
        s => format!("{:.0}d", s / 86_400.0),
    }
}

/// A text sparkline of values in 0..=1 (others are clamped).
pub fn sparkline(values: impl IntoIterator<Item = f64>, unicode: bool) -> String {
    const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    const ASCII: [char; 8] = ['_', '.', ':', '-', '=', '+', '*', '#'];
    let glyphs = if unicode { BLOCKS } else { ASCII };
    values
        .into_iter()
        .map(|v| {
            let level = (v.clamp(0.0, 1.0) * 7.0).round() as usize;
            glyphs[level.min(7)]
        })
        .collect()
}

/// Cuts `text` to `width` characters, marking the cut.
pub fn truncate(text: &str, width: usize, unicode: bool) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mark = if unicode { "…" } else { "~" };
    let mut out: String = text.chars().take(width - 1).collect();
    out.push_str(mark);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_absence() {
        assert_eq!(dollars(Some(3761.79)), "$3762");
        assert_eq!(dollars(Some(12_345.0)), "$12.3k");
        assert_eq!(dollars(Some(0.27)), "$0.27");
        assert_eq!(dollars(None), "–");
        assert_eq!(dollars(Some(-0.0001)), "$0.00");
        assert_eq!(bytes(Some(1536.0 * 1024.0 * 1024.0)), "1.5 GiB");
        assert_eq!(bytes(Some(100.0)), "100 B");
        assert_eq!(percent(Some(0.425)), "42%");
        assert_eq!(percent(Some(f64::NAN)), "–");
        assert_eq!(latency(Some(0.085)), "85ms");
        assert_eq!(latency(Some(1.25)), "1.2s");
        assert_eq!(count(Some(9626.0)), "9.6k");
        assert_eq!(age(7200.0), "2h");
    }

    #[test]
    fn sparklines_clamp_and_degrade() {
        assert_eq!(sparkline([0.0, 0.5, 1.0, 2.0], true), "▁▅██");
        assert_eq!(sparkline([0.0, 1.0], false), "_#");
    }

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate("inference", 5, true), "infe…");
        assert_eq!(truncate("inference", 5, false), "infe~");
        assert_eq!(truncate("web", 5, true), "web");
    }
}
