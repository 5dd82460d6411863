//! Docker's json-file log line:
//! `{"log":"content\n","stream":"stdout","time":"2016-10-20T18:39:20.57606443Z"}`.
//! A message longer than 16 KiB is split over several objects; every one
//! but the last lacks the trailing newline.

use std::borrow::Cow;

use serde::Deserialize;

use super::cri::{FormatError, Piece, Stream};

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    stream: &'a str,
    time: &'a str,
}

/// Parses one json-file line (without its newline).
pub fn parse(line: &[u8]) -> Result<Piece<'_>, FormatError> {
    let parsed: Line<'_> = serde_json::from_slice(line).map_err(|_| FormatError::Json)?;
    let stream = match parsed.stream {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return Err(FormatError::Stream),
    };
    if crate::sources::pods::convert::parse_rfc3339(parsed.time).is_none() {
        return Err(FormatError::Time);
    }
    let (text, partial) = match parsed.log {
        Cow::Borrowed(text) => match text.strip_suffix('\n') {
            Some(whole) => (Cow::Borrowed(whole.as_bytes()), false),
            None => (Cow::Borrowed(text.as_bytes()), true),
        },
        Cow::Owned(mut text) => {
            let partial = !text.ends_with('\n');
            if !partial {
                text.pop();
            }
            (Cow::Owned(text.into_bytes()), partial)
        }
    };
    Ok(Piece {
        time: parsed.time,
        stream,
        partial,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_split_and_escaped_messages() {
        let whole =
            parse(br#"{"log":"ready\n","stream":"stdout","time":"2016-10-20T18:39:20.57606443Z"}"#)
                .expect("whole");
        assert!(!whole.partial);
        assert_eq!(&*whole.text, b"ready");
        let piece =
            parse(br#"{"log":"first half","stream":"stderr","time":"2016-10-20T18:39:20Z"}"#)
                .expect("piece");
        assert!(piece.partial);
        assert_eq!(piece.stream, Stream::Stderr);
        let escaped = parse(
            br#"{"log":"{\"msg\":\"a\\tb\"}\n","stream":"stdout","time":"2016-10-20T18:39:20Z"}"#,
        )
        .expect("escaped");
        assert_eq!(&*escaped.text, br#"{"msg":"a\tb"}"#);
    }

    #[test]
    fn malformed_objects_say_why() {
        assert_eq!(parse(b"not json").unwrap_err(), FormatError::Json);
        assert_eq!(parse(br#"{"log":"x\n"}"#).unwrap_err(), FormatError::Json);
        assert_eq!(
            parse(br#"{"log":"x\n","stream":"stdin","time":"2016-10-20T18:39:20Z"}"#).unwrap_err(),
            FormatError::Stream
        );
        assert_eq!(
            parse(br#"{"log":"x\n","stream":"stdout","time":"now"}"#).unwrap_err(),
            FormatError::Time
        );
    }
}
