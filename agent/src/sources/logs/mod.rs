//! Container logs (issue #7).
//!
//! - [`path`]: who a `/var/log/pods/…` file belongs to.
//! - [`cri`] and [`docker`]: one line of each runtime's format.
//! - [`reassemble`]: partial pieces → whole messages, bounded.
//! - [`record`]: a message → a log record with the fields Tally reads;
//!   [`access`]: Gin's request lines (Ollama) for status and latency.
//! - [`tail`]: one file followed through rotation, copytruncate,
//!   truncation and deletion, by device, inode and fingerprint; [`gz`]:
//!   a gzipped rotation finished from where its plain file was left.
//! - [`checkpoint`]: delivered offsets, fsynced and renamed into place.
//! - [`watch`]: inotify wake-ups (the rescan stays the fallback).
//! - [`metrics`]: per-container metrics derived from the records.
//! - [`source`]: the source: files discovered, records batched and sent
//!   over OTLP, checkpoints committed on acknowledgement.

pub mod access;
pub mod checkpoint;
pub mod cri;
pub mod docker;
pub mod encode;
pub mod gz;
pub mod metrics;
pub mod path;
pub mod reassemble;
pub mod record;
pub mod source;
pub mod tail;
pub mod watch;
