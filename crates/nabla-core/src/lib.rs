#![deny(missing_docs)]
//! # nabla-core
//!
//! Backpropagation in matrix form, written once against the [`Backend`] trait.
//!
//! Layout: one row per sample. For layer `l` with weights `Wˡ` (`out × in`) and bias `bˡ`,
//! a batch `Aˡ⁻¹` (`n × in`) goes through the five equations of backprop:
//!
//! 1. forward: `Zˡ = Aˡ⁻¹ Wˡᵀ ⊕ bˡ`, `Aˡ = σ(Zˡ)` — [`Network::forward`]
//! 2. output error: `δᴸ = ∇ₐC ⊙ σ'(Zᴸ)` (fused for softmax/sigmoid + cross-entropy) — [`Network::output_error`]
//! 3. backward: `δˡ = (δˡ⁺¹ Wˡ⁺¹) ⊙ σ'(Zˡ)` — [`Network::backward`]
//! 4. gradients: `∂C/∂Wˡ = δˡᵀ Aˡ⁻¹`, `∂C/∂bˡ = Σ_rows δˡ` — [`Network::backward`]
//! 5. update: `W ← W − η ∂C/∂W` and the other rules — [`Network::update`]

// Links OpenBLAS (LAPACK for the orthogonal initialiser, CBLAS for ndarray's `blas` feature).
extern crate blas_src;
extern crate openblas_src;

#[doc(hidden)]
#[macro_export]
macro_rules! serde_via_str {
    ($t:ty) => {
        impl ::serde::Serialize for $t {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::core::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> ::serde::Deserialize<'de> for $t {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::core::result::Result<Self, D::Error> {
                let s = <String as ::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}

pub mod activation;
pub mod atomic;
pub mod backend;
pub mod check;
pub mod checkpoint;
pub mod codes;
pub mod cpu;
pub mod distributed;
pub mod dropout;
pub mod element;
pub mod error;
pub mod fastmath;
pub mod gradcheck;
pub mod init;
pub mod inspect;
pub mod loss;
pub mod memory;
pub mod metrics;
pub mod network;
pub mod optim;
mod orthogonal;
pub mod reference;
pub mod schedule;
pub mod train;
pub mod update;

pub use activation::Activation;
pub use backend::{Backend, Dims, Gemm, GemmProvider, Trans, with_state_refs};
pub use checkpoint::{load_model, save_model};
pub use element::{DType, Element};
pub use error::{Error, Result};
pub use gradcheck::{GradCheck, gradient_check, randomize_biases};
pub use init::Init;
pub use loss::Loss;
pub use network::{Architecture, LayerValue, Mode, Network, Score};
pub use optim::{Optimizer, OptimizerConfig};
pub use reference::Reference;
pub use schedule::Schedule;
pub use train::{
    BatchSize, Control, EarlyStopping, EpochReport, HostData, Monitor, Observer, Silent, StepReport, TrainConfig,
    Trainer,
};
pub use update::{Rule, Update};
