//! The Tally analyzer: pricing, cost allocation and recommendations.
//!
//! Laid out now so the workspace has its final shape; the analyses arrive
//! with their own issue (#4). polars is deliberately not a dependency yet:
//! it dominates cold build time and nothing here uses it.

/// Hours in the 730-hour month that cloud price sheets use.
pub const HOURS_PER_MONTH: f64 = 730.0;
