//! The CRI log line (containerd, CRI-O):
//! `<RFC 3339 time> <stdout|stderr> <P|F>[:more tags] <message>`. Split on
//! the first three spaces, no regex; the tag's first `:`-separated part
//! says partial (`P`, the runtime split a long line) or full (`F`).

use std::borrow::Cow;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One line of a container log file: a whole message or a piece of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece<'a> {
    /// The runtime's timestamp, as written.
    pub time: &'a str,
    /// The stream.
    pub stream: Stream,
    /// More pieces of the same message follow.
    pub partial: bool,
    /// The message bytes (not necessarily UTF-8).
    pub text: Cow<'a, [u8]>,
}

/// Why a line is not a log line of its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Fewer fields than the format has.
    #[error("missing fields")]
    Fields,
    /// The timestamp is not an RFC 3339 time.
    #[error("bad timestamp")]
    Time,
    /// Neither stdout nor stderr.
    #[error("bad stream")]
    Stream,
    /// Neither P nor F (CRI).
    #[error("bad tag")]
    Tag,
    /// Not a Docker json-file object.
    #[error("bad json-file object")]
    Json,
}

impl FormatError {
    /// The `kind` label of the error counter.
    pub fn kind(self) -> &'static str {
        match self {
            FormatError::Fields => "fields",
            FormatError::Time => "time",
            FormatError::Stream => "stream",
            FormatError::Tag => "tag",
            FormatError::Json => "json",
        }
    }
}

/// Parses one CRI line (without its newline).
pub fn parse(line: &[u8]) -> Result<Piece<'_>, FormatError> {
    let mut fields = line.splitn(4, |b| *b == b' ');
    let time = fields.next().ok_or(FormatError::Fields)?;
    let stream = fields.next().ok_or(FormatError::Fields)?;
    let tag = fields.next().ok_or(FormatError::Fields)?;
    // An empty message may come without its separating space.
    let text = fields.next().unwrap_or(&[]);
    let time = std::str::from_utf8(time).map_err(|_| FormatError::Time)?;
    if crate::sources::pods::convert::parse_rfc3339(time).is_none() {
        return Err(FormatError::Time);
    }
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return Err(FormatError::Stream),
    };
    let partial = match tag.split(|b| *b == b':').next() {
        Some(b"P") => true,
        Some(b"F") => false,
        _ => return Err(FormatError::Tag),
    };
    Ok(Piece {
        time,
        stream,
        partial,
        text: Cow::Borrowed(text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_partial_and_offset_times() {
        let full =
            parse(b"2026-12-01T16:15:00.123456789Z stdout F {\"msg\":\"ready\"}").expect("full");
        assert_eq!(full.stream, Stream::Stdout);
        assert!(!full.partial);
        assert_eq!(&*full.text, b"{\"msg\":\"ready\"}");
        let partial =
            parse(b"2024-04-13T07:59:37.505201169-05:00 stderr P:more first half ").expect("crio");
        assert!(partial.partial);
        assert_eq!(partial.stream, Stream::Stderr);
        assert_eq!(&*partial.text, b"first half ");
        let empty = parse(b"2026-12-01T16:15:00Z stdout F").expect("empty message");
        assert!(empty.text.is_empty());
    }

    #[test]
    fn malformed_lines_say_why() {
        assert_eq!(parse(b"").unwrap_err(), FormatError::Fields);
        assert_eq!(parse(b"hello world").unwrap_err(), FormatError::Fields);
        assert_eq!(
            parse(b"yesterday stdout F hi").unwrap_err(),
            FormatError::Time
        );
        assert_eq!(
            parse(b"2026-12-01T16:15:00Z stdin F hi").unwrap_err(),
            FormatError::Stream
        );
        assert_eq!(
            parse(b"2026-12-01T16:15:00Z stdout X hi").unwrap_err(),
            FormatError::Tag
        );
        assert_eq!(
            parse(b"\xff\xfe stdout F hi").unwrap_err(),
            FormatError::Time
        );
    }
}
