//! Parsers for cgroup interface files (v1 and v2).
//!
//! Each returns a typed error instead of guessing: a malformed file is
//! counted by the caller and its fields are left out, never reported as 0.

/// A cgroup file whose content did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed cgroup file content: {reason}")]
pub struct ParseError {
    /// What was wrong.
    pub reason: String,
}

fn bad(reason: impl Into<String>) -> ParseError {
    ParseError {
        reason: reason.into(),
    }
}

/// A single unsigned integer (`memory.current`, `cpuacct.usage`).
pub fn single_u64(content: &str) -> Result<u64, ParseError> {
    let text = content.trim();
    text.parse::<u64>()
        .map_err(|_| bad(format!("expected an integer, got {text:?}")))
}

/// A single integer that may be `max` (`memory.max`); `max` is `None`.
pub fn single_u64_or_max(content: &str) -> Result<Option<u64>, ParseError> {
    match content.trim() {
        "max" => Ok(None),
        _ => single_u64(content).map(Some),
    }
}

/// A single signed integer (`cpu.cfs_quota_us`, where -1 means unlimited).
pub fn single_i64(content: &str) -> Result<i64, ParseError> {
    let text = content.trim();
    text.parse::<i64>()
        .map_err(|_| bad(format!("expected an integer, got {text:?}")))
}

/// Looks `key` up in a flat-keyed file (`key value` per line:
/// `cpu.stat`, `memory.stat`, `memory.events`, `memory.oom_control`).
/// A missing key is `Ok(None)`; a present key with a bad value is an error.
pub fn flat_value(content: &str, key: &str) -> Result<Option<u64>, ParseError> {
    for line in content.lines() {
        let mut fields = line.split_ascii_whitespace();
        if fields.next() == Some(key) {
            let value = fields
                .next()
                .ok_or_else(|| bad(format!("key {key:?} has no value")))?;
            return value
                .parse::<u64>()
                .map(Some)
                .map_err(|_| bad(format!("key {key:?} has value {value:?}")));
        }
    }
    Ok(None)
}

/// `cpu.max`: `$MAX $PERIOD` → the limit in cores, `None` when `max`.
pub fn cpu_max(content: &str) -> Result<Option<f64>, ParseError> {
    let mut fields = content.split_ascii_whitespace();
    let quota = fields.next().ok_or_else(|| bad("cpu.max is empty"))?;
    let period = match fields.next() {
        Some(p) => p
            .parse::<u64>()
            .map_err(|_| bad(format!("cpu.max period {p:?}")))?,
        None => 100_000,
    };
    if quota == "max" {
        return Ok(None);
    }
    let quota = quota
        .parse::<u64>()
        .map_err(|_| bad(format!("cpu.max quota {quota:?}")))?;
    if period == 0 {
        return Err(bad("cpu.max period is 0"));
    }
    Ok(Some(quota as f64 / period as f64))
}

/// v1 CFS quota and period (µs) → the limit in cores; `None` when the
/// quota is -1 (unlimited).
pub fn cfs_limit(quota_us: i64, period_us: u64) -> Option<f64> {
    (quota_us > 0 && period_us > 0).then(|| quota_us as f64 / period_us as f64)
}

/// Converts v1 `cpu.shares` (2..262144) to the v2 weight scale (1..10000)
/// with runc's formula, so both versions report one unit.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares < 2 {
        return 1;
    }
    1 + ((shares.min(262_144) - 2) * 9_999) / 262_142
}

/// Totals of a v2 `io.stat` file, summed over devices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoTotals {
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Read operations.
    pub reads: u64,
    /// Write operations.
    pub writes: u64,
}

/// v2 `io.stat`: `MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N`.
pub fn io_stat(content: &str) -> Result<IoTotals, ParseError> {
    let mut totals = IoTotals::default();
    for line in content.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(device) = fields.next() else {
            continue;
        };
        if !device.contains(':') {
            return Err(bad(format!("io.stat line without a device: {line:?}")));
        }
        for field in fields {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| bad(format!("io.stat field {field:?}")))?;
            let value = value
                .parse::<u64>()
                .map_err(|_| bad(format!("io.stat value {field:?}")))?;
            match key {
                "rbytes" => totals.read_bytes += value,
                "wbytes" => totals.write_bytes += value,
                "rios" => totals.reads += value,
                "wios" => totals.writes += value,
                _ => {}
            }
        }
    }
    Ok(totals)
}

/// v1 blkio `io_service_bytes` / `io_serviced` files:
/// `MAJ:MIN Read N`, `MAJ:MIN Write N`, … and a final `Total N`.
/// Returns (read, write) summed over devices.
pub fn blkio_read_write(content: &str) -> Result<(u64, u64), ParseError> {
    let (mut read, mut write) = (0u64, 0u64);
    for line in content.lines() {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        match fields.as_slice() {
            [] | ["Total", _] => {}
            [_device, op, value] => {
                let value = value
                    .parse::<u64>()
                    .map_err(|_| bad(format!("blkio value in {line:?}")))?;
                match *op {
                    "Read" => read += value,
                    "Write" => write += value,
                    _ => {}
                }
            }
            _ => return Err(bad(format!("blkio line {line:?}"))),
        }
    }
    Ok((read, write))
}

/// Cumulative stall times from a PSI file, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pressure {
    /// `some total=`: time at least one task stalled.
    pub some_us: u64,
    /// `full total=`: time all non-idle tasks stalled (absent for cpu on
    /// older kernels, then `None`).
    pub full_us: Option<u64>,
}

/// A PSI file (`cpu.pressure`, `memory.pressure`, `io.pressure`).
pub fn pressure(content: &str) -> Result<Pressure, ParseError> {
    let mut some = None;
    let mut full = None;
    for line in content.lines() {
        let mut fields = line.split_ascii_whitespace();
        let kind = fields.next();
        let total = fields
            .find_map(|f| f.strip_prefix("total="))
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| bad(format!("PSI total in {line:?}")))
            })
            .transpose()?;
        match kind {
            Some("some") => some = total,
            Some("full") => full = total,
            _ => {}
        }
    }
    let some_us = some.ok_or_else(|| bad("PSI file without a some line"))?;
    Ok(Pressure {
        some_us,
        full_us: full,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singles() {
        assert_eq!(single_u64("123\n"), Ok(123));
        assert!(single_u64("12a").is_err());
        assert!(single_u64("").is_err());
        assert_eq!(single_u64_or_max("max\n"), Ok(None));
        assert_eq!(single_u64_or_max("4096\n"), Ok(Some(4096)));
        assert_eq!(single_i64("-1\n"), Ok(-1));
    }

    #[test]
    fn flat_files() {
        let stat = "usage_usec 100\nuser_usec 60\nsystem_usec 40\nnr_periods 5\n";
        assert_eq!(flat_value(stat, "usage_usec"), Ok(Some(100)));
        assert_eq!(flat_value(stat, "nr_throttled"), Ok(None));
        assert!(flat_value("usage_usec x\n", "usage_usec").is_err());
        assert!(flat_value("usage_usec\n", "usage_usec").is_err());
        // A prefix of a key is not the key.
        assert_eq!(flat_value("inactive_file_x 3\n", "inactive_file"), Ok(None));
    }

    #[test]
    fn cpu_limits() {
        assert_eq!(cpu_max("max 100000\n"), Ok(None));
        assert_eq!(cpu_max("150000 100000\n"), Ok(Some(1.5)));
        assert_eq!(cpu_max("50000 100000 1000\n"), Ok(Some(0.5)));
        assert!(cpu_max("").is_err());
        assert!(cpu_max("x 100000").is_err());
        assert!(cpu_max("100 0").is_err());
        assert_eq!(cfs_limit(-1, 100_000), None);
        assert_eq!(cfs_limit(200_000, 100_000), Some(2.0));
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn io_files() {
        let v2 = "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n\
                  259:0 rbytes=1 wbytes=1 rios=1 wios=1 dbytes=0 dios=0\n";
        assert_eq!(
            io_stat(v2),
            Ok(IoTotals {
                read_bytes: 4097,
                write_bytes: 8193,
                reads: 2,
                writes: 3
            })
        );
        assert!(io_stat("8:0 rbytes=\n").is_err());
        assert_eq!(io_stat(""), Ok(IoTotals::default()));
        let v1 = "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\n8:0 Async 4608\n8:0 Total 4608\nTotal 4608\n";
        assert_eq!(blkio_read_write(v1), Ok((4096, 512)));
        assert!(blkio_read_write("8:0 Read\n").is_err());
    }

    #[test]
    fn pressure_files() {
        let cpu = "some avg10=0.00 avg60=0.00 avg300=0.00 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=56\n";
        assert_eq!(
            pressure(cpu),
            Ok(Pressure {
                some_us: 1234,
                full_us: Some(56)
            })
        );
        assert_eq!(
            pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n"),
            Ok(Pressure {
                some_us: 7,
                full_us: None
            })
        );
        assert!(pressure("").is_err());
        assert!(pressure("some total=abc\n").is_err());
    }
}
