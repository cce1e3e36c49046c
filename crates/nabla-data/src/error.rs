//! The data crate's error type.

use thiserror::Error;

/// What can go wrong while making, reading or checking a data set.
#[derive(Debug, Error)]
pub enum DataError {
    /// A setting (data set name, sample count, split fraction, …) is not valid.
    #[error("invalid {what}: {detail}")]
    Invalid { what: String, detail: String },
}

/// `Result` with [`DataError`].
pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    /// A [`DataError::Invalid`] for setting `what`.
    pub fn invalid(what: impl Into<String>, detail: impl Into<String>) -> DataError {
        DataError::Invalid { what: what.into(), detail: detail.into() }
    }
}
