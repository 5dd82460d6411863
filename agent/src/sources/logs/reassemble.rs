//! Partial pieces → whole messages, per stream (a runtime splits long
//! lines into pieces; stdout's and stderr's pieces may interleave). A
//! message longer than the limit keeps its first `max_bytes` and says how
//! much was cut, so nothing is dropped silently and memory stays bounded.

use super::cri::{Piece, Stream};

/// A whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The runtime's timestamp of its first piece.
    pub time: String,
    /// The stream.
    pub stream: Stream,
    /// The message bytes (at most the limit).
    pub text: Vec<u8>,
    /// Bytes cut past the limit.
    pub truncated_bytes: u64,
    /// How many pieces it was written in.
    pub pieces: u32,
}

#[derive(Debug)]
struct Pending {
    time: String,
    text: Vec<u8>,
    truncated_bytes: u64,
    pieces: u32,
}

/// Joins the pieces of one file's lines.
#[derive(Debug)]
pub struct Reassembler {
    max_bytes: usize,
    stdout: Option<Pending>,
    stderr: Option<Pending>,
}

impl Reassembler {
    /// A reassembler keeping at most `max_bytes` of a message.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes: max_bytes.max(1),
            stdout: None,
            stderr: None,
        }
    }

    /// Adds a piece; returns the message it completes, if any.
    pub fn push(&mut self, piece: Piece<'_>) -> Option<Message> {
        let max = self.max_bytes;
        let slot = match piece.stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        let pending = slot.get_or_insert_with(|| Pending {
            time: piece.time.to_owned(),
            text: Vec::new(),
            truncated_bytes: 0,
            pieces: 0,
        });
        pending.pieces += 1;
        let room = max.saturating_sub(pending.text.len());
        let keep = piece.text.len().min(room);
        pending.text.extend_from_slice(&piece.text[..keep]);
        pending.truncated_bytes += (piece.text.len() - keep) as u64;
        if piece.partial {
            return None;
        }
        slot.take().map(|p| Message {
            time: p.time,
            stream: piece.stream,
            text: p.text,
            truncated_bytes: p.truncated_bytes,
            pieces: p.pieces,
        })
    }

    /// Bytes held in unfinished messages (bounded by twice the limit).
    pub fn pending_bytes(&self) -> usize {
        [&self.stdout, &self.stderr]
            .iter()
            .filter_map(|p| p.as_ref())
            .map(|p| p.text.len())
            .sum()
    }

    /// Ends unfinished messages (the file ended for good: rotated away and
    /// read to its end, or deleted): what was joined so far, as is.
    pub fn flush(&mut self) -> Vec<Message> {
        [
            (Stream::Stdout, self.stdout.take()),
            (Stream::Stderr, self.stderr.take()),
        ]
        .into_iter()
        .filter_map(|(stream, p)| {
            p.map(|p| Message {
                time: p.time,
                stream,
                text: p.text,
                truncated_bytes: p.truncated_bytes,
                pieces: p.pieces,
            })
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::logs::cri;

    #[test]
    fn pieces_join_per_stream_and_long_messages_are_cut() {
        let mut joiner = Reassembler::new(10);
        let lines: [&[u8]; 5] = [
            b"2026-12-01T16:15:00Z stdout P abcd",
            b"2026-12-01T16:15:00Z stderr P err-",
            b"2026-12-01T16:15:01Z stdout P efgh",
            b"2026-12-01T16:15:01Z stderr F out",
            b"2026-12-01T16:15:02Z stdout F ijklmnop",
        ];
        let mut done = Vec::new();
        for line in lines {
            done.extend(joiner.push(cri::parse(line).expect("line")));
        }
        assert_eq!(done.len(), 2);
        assert_eq!(done[0].stream, Stream::Stderr);
        assert_eq!(done[0].text, b"err-out");
        assert_eq!(done[0].truncated_bytes, 0);
        assert_eq!(done[1].text, b"abcdefghij");
        assert_eq!(done[1].truncated_bytes, 6);
        assert_eq!(done[1].pieces, 3);
        assert_eq!(done[1].time, "2026-12-01T16:15:00Z");
        assert_eq!(joiner.pending_bytes(), 0);
        // A piece left open when the file ends is flushed, not lost.
        joiner.push(cri::parse(b"2026-12-01T16:15:03Z stdout P tail").expect("line"));
        let flushed = joiner.flush();
        assert_eq!(flushed.len(), 1);
        assert_eq!(flushed[0].text, b"tail");
    }
}
