#![warn(missing_docs)]
//! # nabla
//!
//! Neural networks trained by backpropagation, with one driver for every backend.
//!
//! This facade re-exports the core ([`nabla_core`]), the data sets ([`data`]) and the backends
//! compiled in, and adds [`AnyBackend`], the backend chosen at run time.

mod any;
pub mod bench;
pub mod linear_regression_demo;
mod model;
#[cfg(feature = "mpi")]
pub mod mpi;

pub use any::{AnyBackend, AnyBuf, AnyElement, BACKEND_NAMES, BackendName, BackendOptions, BackendStatus};
pub use model::{Model, ModelBuilder, Targets};
pub use nabla_core::*;
#[cfg(feature = "cuda")]
pub use nabla_cuda as cuda;
pub use nabla_data as data;
#[cfg(feature = "openblas")]
pub use nabla_openblas as openblas;
#[cfg(feature = "openblas")]
pub use nabla_openblas::OpenBlas;
#[cfg(feature = "plugins")]
pub use nabla_plugin as plugin;

/// The README's code blocks, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
