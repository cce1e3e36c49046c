//! The data crate's error type.

use std::path::Path;

use thiserror::Error;

/// What can go wrong while making, reading or checking a data set.
///
/// Every message names what is wrong and, where it can, what to do about it.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DataError {
    /// A setting (data set name, sample count, split fraction, …) is not valid.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// The setting, e.g. `split fraction`.
        what: String,
        /// What is wrong with it and what is accepted.
        detail: String,
    },
    /// A built-in data set name that does not exist.
    #[error("invalid dataset: `{name}`; built-in sets: {}", crate::synthetic::NAMES)]
    UnknownSet {
        /// The name given.
        name: String,
    },
    /// A file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file (or directory).
        path: String,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// A file's structure is wrong: truncated, a bad magic number or header, wrong dimensions,
    /// mismatched counts, ragged rows, values that are not finite.
    #[error("{path}: {detail}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong and what to do about it.
        detail: String,
    },
    /// A CSV cell could not be read; `line` and `column` are 1-based.
    #[error("{path}: line {line}, column {column}: {detail}")]
    Parse {
        /// The file.
        path: String,
        /// The 1-based line.
        line: usize,
        /// The 1-based column (cell) in the line.
        column: usize,
        /// What is wrong with the cell and what to do about it.
        detail: String,
    },
}

/// `Result` with [`DataError`].
pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    /// A [`DataError::Invalid`] for setting `what`.
    pub fn invalid(what: impl Into<String>, detail: impl Into<String>) -> DataError {
        DataError::Invalid { what: what.into(), detail: detail.into() }
    }

    /// A [`DataError::Io`] for the file at `path`.
    pub fn io(path: &Path, source: std::io::Error) -> DataError {
        DataError::Io { path: path.display().to_string(), source }
    }

    /// A [`DataError::Format`] for the file named `path`.
    pub fn format(path: impl Into<String>, detail: impl Into<String>) -> DataError {
        DataError::Format { path: path.into(), detail: detail.into() }
    }

    /// A [`DataError::Parse`] for the cell at 1-based `line` and `column` of the file named `path`.
    pub fn parse(path: impl Into<String>, line: usize, column: usize, detail: impl Into<String>) -> DataError {
        DataError::Parse { path: path.into(), line, column, detail: detail.into() }
    }
}

/// The whole file at `path`, as bytes.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

/// The name a data set read from `path` gets: the file stem (`data/iris.csv` → `iris`).
pub(crate) fn stem(path: &str) -> String {
    Path::new(path).file_stem().map_or_else(|| path.to_string(), |s| s.to_string_lossy().into_owned())
}
