//! Container logs (issue #7): the formats and records so far.
//!
//! - [`path`]: who a `/var/log/pods/…` file belongs to.
//! - [`cri`] and [`docker`]: one line of each runtime's format.
//! - [`reassemble`]: partial pieces → whole messages, bounded.
//! - [`record`]: a message → a log record with the fields Tally reads.
//!
//! Tailing with file identity, acknowledged checkpoints and OTLP export
//! come next; nothing here reads files yet.

pub mod cri;
pub mod docker;
pub mod path;
pub mod reassemble;
pub mod record;
