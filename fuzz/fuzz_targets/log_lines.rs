//! Arbitrary bytes as a container log file through the agent's logs path
//! (`tally_agent::sources::logs`): each line parsed as CRI or Docker
//! json-file (by its first byte, as the source decides per file), pieces
//! joined, messages turned into records.
//!
//! Besides "no panic", it checks what the source relies on:
//! - a joined message never holds more than the limit, and what was cut
//!   is counted, so the bytes kept plus the bytes cut are the bytes given;
//! - memory held between lines stays within twice the limit;
//! - every record has a stream, and its body is valid UTF-8 (invalid input
//!   is replaced and flagged, never dropped).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_agent::sources::logs::reassemble::Reassembler;
use tally_agent::sources::logs::record::{FieldNames, record};
use tally_agent::sources::logs::{cri, docker};

const LIMIT: usize = 64;

fuzz_target!(|data: &[u8]| {
    let fields = FieldNames::default();
    let mut joiner = Reassembler::new(LIMIT);
    let mut given = 0u64;
    let mut kept_and_cut = 0u64;
    for line in data.split(|b| *b == b'\n') {
        let piece = if line.first() == Some(&b'{') {
            docker::parse(line)
        } else {
            cri::parse(line)
        };
        let Ok(piece) = piece else { continue };
        given += piece.text.len() as u64;
        if let Some(message) = joiner.push(piece) {
            assert!(message.text.len() <= LIMIT);
            kept_and_cut += message.text.len() as u64 + message.truncated_bytes;
            let r = record(&message, &fields);
            assert!(!r.stream.is_empty());
            assert!(r.truncated_bytes == message.truncated_bytes);
        }
        assert!(joiner.pending_bytes() <= 2 * LIMIT);
    }
    for message in joiner.flush() {
        assert!(message.text.len() <= LIMIT);
        kept_and_cut += message.text.len() as u64 + message.truncated_bytes;
        let _ = record(&message, &fields);
    }
    assert_eq!(given, kept_and_cut, "every byte kept or counted as cut");
});
