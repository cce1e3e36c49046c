//! # nabla-data
//!
//! Data sets as host matrices: features `X` (`n × d`, one row per sample) and targets (class
//! labels or real values). Built-in synthetic sets are generated from a seed; files are read by
//! the loaders.

mod dataset;
mod error;
pub mod split;
pub mod synthetic;

pub use dataset::{Dataset, Targets, Task};
pub use error::{DataError, Result};
pub use split::split;
