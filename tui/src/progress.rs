//! A one-line progress bar for long CLI operations (backfills, exports),
//! drawn on standard error only when it is a terminal.

use std::io::{IsTerminal, Write};
use std::time::Instant;

/// A progress bar.
#[derive(Debug)]
pub struct Bar {
    label: String,
    started: Instant,
    /// Draw at all (standard error is a terminal).
    enabled: bool,
    unicode: bool,
}

impl Bar {
    /// A bar that draws when standard error is a terminal.
    pub fn new(label: &str) -> Self {
        Self {
            label: label.to_owned(),
            started: Instant::now(),
            enabled: std::io::stderr().is_terminal(),
            unicode: std::env::var("LANG")
                .or_else(|_| std::env::var("LC_ALL"))
                .is_ok_and(|l| l.to_ascii_uppercase().contains("UTF-8")),
        }
    }

    /// The line for `done` of `total`, `rate` units a second.
    pub fn line(&self, done: u64, total: u64, rate: Option<(f64, &str)>, seconds: f64) -> String {
        const WIDTH: usize = 24;
        let share = if total == 0 {
            1.0
        } else {
            (done as f64 / total as f64).clamp(0.0, 1.0)
        };
        let filled = (share * WIDTH as f64).round() as usize;
        let (full, empty) = if self.unicode {
            ("█", "░")
        } else {
            ("#", "-")
        };
        let eta = if done > 0 && done < total {
            let remaining = seconds / done as f64 * (total - done) as f64;
            format!("  ETA {remaining:.0}s")
        } else {
            String::new()
        };
        let rate = rate.map_or_else(String::new, |(r, unit)| {
            if r >= 1e3 {
                format!("  {:.1}k {unit}/s", r / 1e3)
            } else {
                format!("  {r:.0} {unit}/s")
            }
        });
        format!(
            "{} [{}{}] {:>3.0}%  {done}/{total}{rate}{eta}",
            self.label,
            full.repeat(filled),
            empty.repeat(WIDTH - filled),
            share * 100.0
        )
    }

    /// Redraws the bar (a no-op off a terminal).
    pub fn update(&self, done: u64, total: u64, amount: u64, unit: &str) {
        if !self.enabled {
            return;
        }
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = (seconds > 0.0).then(|| (amount as f64 / seconds, unit));
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[2K{}", self.line(done, total, rate, seconds));
        let _ = stderr.flush();
    }

    /// Ends the bar's line.
    pub fn finish(&self) {
        if self.enabled {
            let _ = writeln!(std::io::stderr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_share_rate_and_eta() {
        let bar = Bar {
            label: "backfill".to_owned(),
            started: Instant::now(),
            enabled: false,
            unicode: false,
        };
        let line = bar.line(18, 72, Some((19_122.0, "points")), 3.0);
        assert_eq!(
            line,
            "backfill [######------------------]  25%  18/72  19.1k points/s  ETA 9s"
        );
        assert!(bar.line(72, 72, None, 9.0).contains("100%  72/72"));
        assert!(!bar.line(72, 72, None, 9.0).contains("ETA"));
    }
}
