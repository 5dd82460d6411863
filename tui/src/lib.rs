//! `tally top`: the terminal dashboard over the collector's JSON API.
//!
//! Laid out now so the workspace has its final shape; the views arrive with
//! their own issue (#9).

/// The slowest refresh the dashboard allows, as k9s does.
pub const MIN_REFRESH_SECS: u64 = 2;
