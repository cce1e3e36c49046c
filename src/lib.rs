#![deny(missing_docs)]
//! # nabla
//!
//! Neural networks trained by backpropagation, with one driver for every backend.
//!
//! This facade re-exports the core's library ([`nabla_core`]: the trait, the reference backend,
//! the driver, training, checkpoints), the data sets ([`data`]) and the backends compiled in,
//! and adds [`AnyBackend`], the backend chosen at run time, and [`Model`], the ndarray API.
//! The core's kernels for backend authors (`cpu`, `check`, `fastmath`, `memory`) are in
//! [`nabla_core`] itself, not here:
//!
//! ```compile_fail
//! use nabla::cpu::hadamard; // a kernel of nabla_core, not part of this API
//! ```

mod any;
// The workloads `nabla bench` and `benches/` time: shared by the two, not part of the API.
#[doc(hidden)]
pub mod bench;
mod model;
#[cfg(feature = "mpi")]
pub mod mpi;

pub use any::{AnyBackend, AnyBuf, AnyElement, BACKEND_NAMES, BackendName, BackendOptions, BackendStatus};
pub use model::{Model, ModelBuilder, Targets};
pub use nabla_core::{
    Activation, Architecture, Backend, BatchSize, Control, DType, Dims, EarlyStopping, Element, EpochReport, Error,
    Gemm, GemmProvider, GradCheck, HostData, Init, LayerValue, Loss, Mode, Monitor, Network, Observer, Optimizer,
    OptimizerConfig, Reference, Result, Rule, Schedule, Score, Silent, StepReport, TrainConfig, Trainer, Trans, Update,
    gradient_check, load_model, randomize_biases, save_model, with_state_refs,
};
pub use nabla_core::{
    activation, atomic, backend, checkpoint, codes, distributed, dropout, element, error, gradcheck, init, inspect,
    loss, metrics, network, optim, reference, schedule, train, update,
};
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
