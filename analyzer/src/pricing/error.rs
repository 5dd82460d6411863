//! Errors of loading a catalog or applying overrides.

use super::catalog::CATALOG_VERSION;

/// Why a catalog or an override set was refused. Messages name the entry
/// (instance type, GPU model, provider, override key) and the field.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    /// The text is not JSON of the catalog's schema.
    #[error("pricing catalog does not parse: {0}")]
    Parse(serde_json::Error),
    /// The catalog declares a schema version this build cannot read.
    #[error(
        "pricing catalog version {found} is not supported: this build reads version {CATALOG_VERSION}"
    )]
    UnsupportedVersion {
        /// The version the file declares.
        found: u64,
    },
    /// A field holds a value outside its domain.
    #[error("pricing {entry}: {field} is {value}, expected {expected}")]
    Invalid {
        /// The entry holding the field, e.g. `instance p5.48xlarge`.
        entry: String,
        /// The field's name.
        field: &'static str,
        /// The offending value as written.
        value: String,
        /// What the field must hold.
        expected: &'static str,
    },
    /// Entries contradict each other (a duplicate, a dangling reference).
    #[error("pricing {entry}: {problem}")]
    Inconsistent {
        /// The entry at fault.
        entry: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl PricingError {
    /// An [`PricingError::Invalid`] for a numeric field.
    pub(crate) fn invalid(
        entry: impl Into<String>,
        field: &'static str,
        value: f64,
        expected: &'static str,
    ) -> PricingError {
        PricingError::Invalid {
            entry: entry.into(),
            field,
            value: value.to_string(),
            expected,
        }
    }
}

/// Checks a price: finite and not negative.
pub(crate) fn check_price(
    entry: &str,
    field: &'static str,
    value: f64,
) -> Result<(), PricingError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(PricingError::invalid(
            entry,
            field,
            value,
            "a finite number >= 0",
        ))
    }
}

/// Checks a discount: a fraction in [0, 1). A discount of 1 would make the
/// resource free, which no price sheet means.
pub(crate) fn check_fraction(
    entry: &str,
    field: &'static str,
    value: f64,
) -> Result<(), PricingError> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(PricingError::invalid(
            entry,
            field,
            value,
            "a fraction in [0, 1)",
        ))
    }
}
