#![deny(missing_docs)]
//! # nabla-data
//!
//! Data sets as host matrices: features `X` (`n × d`, one row per sample) and targets (class
//! labels or real values). Built-in synthetic sets are generated from a seed; files are read by
//! the loaders: [`csv`] (a header line, then rows of numbers), [`idx`] (MNIST's format, gzip'd or
//! not) and [`npy`] (NumPy arrays). [`scale`] fits and applies feature scaling.

pub mod csv;
mod dataset;
mod error;
pub mod idx;
pub mod npy;
pub mod scale;
pub mod split;
pub mod synthetic;
mod targets;

pub use dataset::{Dataset, Targets, Task};
pub use error::{DataError, Result};
pub use split::split;
