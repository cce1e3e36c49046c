//! The one error type of the core, shared by every backend.

use thiserror::Error;

/// Everything that can go wrong in nabla's core, each with a message that says what to fix.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A buffer or matrix has the wrong size for the operation.
    #[error("shape mismatch in {op}: {detail}")]
    Shape {
        /// The operation.
        op: &'static str,
        /// The operand and both shapes.
        detail: String,
    },

    /// A hyper-parameter, name or configuration value is not valid.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// The setting (a flag or key name).
        what: String,
        /// The value and what is accepted.
        detail: String,
    },

    /// The loss became NaN or infinite during training.
    #[error(
        "the loss became non-finite ({value}) at epoch {epoch}, step {step}; first seen in {origin}. \
         Lower the learning rate, scale the inputs, or check the data for NaN/inf"
    )]
    NonFinite {
        /// The loss value (NaN or ±∞).
        value: f64,
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        step: usize,
        /// Where it first appeared (a layer, or the loss).
        origin: String,
    },

    /// A backend failed (device error, allocation failure, plugin error code).
    #[error("{backend} backend: {detail}")]
    Backend {
        /// The backend's name.
        backend: String,
        /// What failed, with the backend's own message.
        detail: String,
    },

    /// An operand was allocated by another backend instance (another plugin, device or
    /// backend kind) than the one asked to use it.
    #[error(
        "{op} on the {backend} backend: `{operand}` was made by another backend instance; \
         make every buffer with the backend that uses it"
    )]
    ForeignBuffer {
        /// The backend asked to run the operation.
        backend: String,
        /// The operation.
        op: &'static str,
        /// The operand that is not its own.
        operand: String,
    },

    /// A backend does not provide an operation.
    #[error("the {backend} backend does not support {op}")]
    Unsupported {
        /// The backend's name.
        backend: String,
        /// The operation, variant and element type.
        op: String,
    },

    /// A backend is not available on this machine (no device, no library).
    #[error("the {backend} backend is not available: {reason}")]
    Unavailable {
        /// The backend's name.
        backend: String,
        /// Why, and what to install or change.
        reason: String,
    },

    /// A host buffer sized from input could not be allocated.
    #[error(
        "cannot allocate {bytes} bytes for {what}: not enough memory; use smaller sizes or check \
         the numbers in the input"
    )]
    OutOfMemory {
        /// What the memory was for.
        what: String,
        /// How much was asked for.
        bytes: usize,
    },

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// A model or checkpoint file is malformed or does not fit the network.
    #[error("{path}: {detail}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong (naming the tensor or the key).
        detail: String,
    },
}

/// `Result` with the core's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Invalid`] for the named setting.
    pub fn invalid(what: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Invalid { what: what.into(), detail: detail.into() }
    }

    /// An [`Error::Shape`] for operation `op`.
    pub fn shape(op: &'static str, detail: impl Into<String>) -> Error {
        Error::Shape { op, detail: detail.into() }
    }

    /// An [`Error::Backend`] from backend `backend`.
    pub fn backend(backend: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Backend { backend: backend.into(), detail: detail.into() }
    }
}
