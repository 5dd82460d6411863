//! Access-log lines that are not JSON but carry what the analyzer needs:
//! Gin's default request line, which Ollama writes for every API call
//! (Ollama has no `/metrics`, so its request count, status and latency
//! come from here):
//!
//! `[GIN] 2026/12/01 - 16:15:00 | 200 |  1.234567s |  127.0.0.1 | POST  "/api/chat"`
//!
//! The latency is Go's `time.Duration` text (`512.3µs`, `12.5ms`,
//! `1m2.5s`). Colour codes (a terminal) are ignored.

/// One request, from its access-log line.
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    /// HTTP status.
    pub status: u16,
    /// Time to serve it, seconds.
    pub latency_seconds: f64,
    /// Client address.
    pub client: String,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
}

/// Seconds in a Go duration's text, `None` when it is not one.
pub fn go_duration(text: &str) -> Option<f64> {
    let mut rest = text.trim();
    if rest == "0s" || rest == "0" {
        return Some(0.0);
    }
    let mut total = 0.0;
    let mut any = false;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (scale, unit_len) = [
            ("ns", 1e-9),
            ("µs", 1e-6),
            ("μs", 1e-6),
            ("us", 1e-6),
            ("ms", 1e-3),
            ("s", 1.0),
            ("m", 60.0),
            ("h", 3600.0),
        ]
        .iter()
        .find(|(unit, _)| rest.starts_with(unit))
        .map(|(unit, scale)| (*scale, unit.len()))?;
        total += value * scale;
        rest = &rest[unit_len..];
        any = true;
    }
    any.then_some(total)
}

/// The text without ANSI colour sequences (`ESC [ … m`).
fn without_colour(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for next in chars.by_ref() {
                if next == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Gin's default request line.
pub fn parse_gin(line: &str) -> Option<Access> {
    let rest = line.trim_start().strip_prefix("[GIN]")?;
    let clean;
    let rest = if rest.contains('\u{1b}') {
        clean = without_colour(rest);
        clean.as_str()
    } else {
        rest
    };
    let mut fields = rest.split('|').map(str::trim);
    let _time = fields.next()?;
    let status = fields.next()?.parse().ok()?;
    let latency_seconds = go_duration(fields.next()?)?;
    let client = fields.next()?.to_owned();
    let request = fields.next()?;
    let (method, path) = request.split_once(char::is_whitespace)?;
    let path = path.trim();
    let path = path
        .strip_prefix('"')
        .and_then(|p| p.split('"').next())
        .unwrap_or(path);
    Some(Access {
        status,
        latency_seconds,
        client,
        method: method.to_owned(),
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("1.5s"), Some(1.5));
        assert_eq!(go_duration("250ms"), Some(0.25));
        assert!((go_duration("512.3µs").expect("µs") - 0.0005123).abs() < 1e-12);
        assert_eq!(go_duration("1m2.5s"), Some(62.5));
        assert_eq!(go_duration("2h0m1s"), Some(7201.0));
        assert_eq!(go_duration("0s"), Some(0.0));
        assert_eq!(go_duration("12 parsecs"), None);
        assert_eq!(go_duration(""), None);
        assert_eq!(go_duration("1.5"), None);
    }

    #[test]
    fn ollama_request_lines() {
        let line = r#"[GIN] 2026/12/01 - 16:15:00 | 200 |  1.234567s |       127.0.0.1 | POST     "/api/chat""#;
        assert_eq!(
            parse_gin(line),
            Some(Access {
                status: 200,
                latency_seconds: 1.234567,
                client: "127.0.0.1".into(),
                method: "POST".into(),
                path: "/api/chat".into(),
            })
        );
        let coloured = "[GIN] 2026/12/01 - 16:15:00 |\u{1b}[97;41m 500 \u{1b}[0m|    25.3ms |  10.0.0.7 |\u{1b}[97;46m POST    \u{1b}[0m \"/api/generate\"";
        let access = parse_gin(coloured).expect("coloured");
        assert_eq!(
            (access.status, access.path.as_str()),
            (500, "/api/generate")
        );
        assert!((access.latency_seconds - 0.0253).abs() < 1e-12);
        assert_eq!(parse_gin("[GIN-debug] GET /api/tags --> handler"), None);
        assert_eq!(parse_gin("GET /health 200"), None);
        assert_eq!(parse_gin("[GIN] x | notastatus | 1s | a | GET \"/\""), None);
    }
}
