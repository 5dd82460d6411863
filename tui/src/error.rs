//! The dashboard's errors.

/// Why `tally top` could not run.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    /// Standard output is not a terminal.
    #[error(
        "standard output is not a terminal: `tally top` needs one (use `tally recommend` or the JSON API in scripts)"
    )]
    NotATerminal,
    /// The terminal could not be set up or drawn to.
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
    /// A configuration file could not be read.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
}
