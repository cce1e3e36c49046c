//! The backprop driver: one implementation of the five equations, generic over the backend.
//!
//! A [`Network`] owns its parameters, their gradients and a workspace sized for its largest
//! batch, all on the backend. After the workspace exists, a training step allocates nothing.
//! The equations are in `equations.rs`, the host-facing calls (host slices, predictions,
//! downloads) in `host.rs`, the shape in `architecture.rs`.

mod architecture;
mod equations;
mod host;

pub use architecture::Architecture;

use std::marker::PhantomData;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::backend::Backend;
use crate::dropout::mix64;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::init::Init;
use crate::memory;
use crate::optim::{Optimizer, OptimizerConfig};

/// One of the values a layer keeps for the last batch, for [`Network::layer_values`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerValue {
    /// `Zˡ`, the pre-activations.
    Z,
    /// `Aˡ = σ(Zˡ)`, the activations.
    A,
    /// `δˡ = ∂C/∂Zˡ`, the errors.
    Delta,
}

/// Whether a forward pass is for training (dropout active; the fused output activation is left
/// to the loss) or for evaluation (deterministic; every activation computed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Dropout on; a fused output activation left to the loss.
    Train,
    /// Deterministic; every activation computed.
    Eval,
}

/// The parameters (or their gradients) of one layer.
#[derive(Debug)]
pub struct Tensors<Buf> {
    /// `W` (`out × in`) or `∂C/∂W`.
    pub weight: Buf,
    /// `b` (`out`) or `∂C/∂b`.
    pub bias: Buf,
}

/// The per-layer values of one batch.
struct LayerWork<Buf> {
    /// `Zˡ`, pre-activations.
    z: Buf,
    /// `Aˡ = σ(Zˡ)`.
    a: Buf,
    /// `δˡ = ∂C/∂Zˡ`.
    delta: Buf,
    /// The dropout mask and `Aˡ ⊙ mask`, for hidden layers when dropout is on.
    dropout: Option<(Buf, Buf)>,
}

/// Everything a batch of up to `rows` samples needs on the backend.
struct Workspace<Buf> {
    rows: usize,
    layers: Vec<LayerWork<Buf>>,
    /// `[C, correct]` of the last batch.
    stats: Buf,
    /// Whether the last forward pass applied dropout masks.
    dropped: bool,
}

/// Host batches staged on the backend, for the calls that take host slices.
struct Staging<Buf> {
    x: Buf,
    y: Buf,
}

/// The loss and correct-prediction count of a batch or a data set.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Score {
    /// Mean loss `C`.
    pub loss: f64,
    /// Correct predictions (see [`crate::Backend::loss`]).
    pub correct: usize,
    /// Predictions scored (rows, or elements for `bce`).
    pub predictions: usize,
}

impl Score {
    /// `correct / predictions`.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.predictions.max(1) as f64
    }
}

/// A feed-forward network on backend `B`, computing in `E`.
pub struct Network<E: Element, B: Backend<E>> {
    backend: B,
    arch: Architecture,
    params: Vec<Tensors<B::Buf>>,
    grads: Vec<Tensors<B::Buf>>,
    work: Option<Workspace<B::Buf>>,
    staging: Option<Staging<B::Buf>>,
    dropout_seed: u64,
    forward_passes: u64,
    /// The global index of the first row of the batches this network is given: 0 in one
    /// process, a data-parallel shard's start otherwise (the dropout masks follow it).
    row_offset: usize,
    _element: PhantomData<E>,
}

impl<E: Element, B: Backend<E>> std::fmt::Debug for Network<E, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("backend", &self.backend.name())
            .field("dtype", &E::DTYPE)
            .field("architecture", &self.arch)
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl<E: Element, B: Backend<E>> Network<E, B> {
    /// A network of shape `arch` with weights drawn by `init` from `seed` and zero biases.
    pub fn new(backend: B, arch: Architecture, init: Init, seed: u64) -> Result<Self> {
        arch.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = Vec::with_capacity(arch.layers());
        for l in 0..arch.layers() {
            let d = arch.weight_dims(l);
            let he = arch.activations[l].prefers_he_init();
            let w: Vec<E> = init.draw(d.rows, d.cols, he, &mut rng)?.into_iter().map(E::of).collect();
            params.push(Tensors { weight: backend.upload(&w)?, bias: backend.alloc(d.rows)? });
        }
        Self::assemble(backend, arch, params, mix64(seed ^ 0xD80F_0D80))
    }

    /// A network of shape `arch` with the given host parameters (`W¹, b¹, W², b², …`).
    pub fn from_parameters(backend: B, arch: Architecture, tensors: &[Vec<E>]) -> Result<Self> {
        arch.validate()?;
        if tensors.len() != 2 * arch.layers() {
            return Err(Error::shape(
                "from_parameters",
                format!("{} tensors given for {} layers (a weight and a bias each)", tensors.len(), arch.layers()),
            ));
        }
        let mut params = Vec::with_capacity(arch.layers());
        for (l, pair) in tensors.chunks_exact(2).enumerate() {
            let d = arch.weight_dims(l);
            check_len("from_parameters", &format!("layers.{l}.weight ({d})"), d.len(), pair[0].len())?;
            check_len("from_parameters", &format!("layers.{l}.bias"), d.rows, pair[1].len())?;
            params.push(Tensors { weight: backend.upload(&pair[0])?, bias: backend.upload(&pair[1])? });
        }
        Self::assemble(backend, arch, params, 0)
    }

    fn assemble(backend: B, arch: Architecture, params: Vec<Tensors<B::Buf>>, dropout_seed: u64) -> Result<Self> {
        let grads = (0..arch.layers())
            .map(|l| {
                let d = arch.weight_dims(l);
                Ok(Tensors { weight: backend.alloc(d.len())?, bias: backend.alloc(d.rows)? })
            })
            .collect::<Result<_>>()?;
        Ok(Network {
            backend,
            arch,
            params,
            grads,
            work: None,
            staging: None,
            dropout_seed,
            forward_passes: 0,
            row_offset: 0,
            _element: PhantomData,
        })
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The architecture.
    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// The parameters of each layer, on the backend.
    pub fn parameters(&self) -> &[Tensors<B::Buf>] {
        &self.params
    }

    /// The gradients of the last backward pass, on the backend.
    pub fn gradients(&self) -> &[Tensors<B::Buf>] {
        &self.grads
    }

    /// The backend and the gradients, writable (the data-parallel reducer replaces them).
    pub(crate) fn gradients_mut(&mut self) -> (&B, &mut [Tensors<B::Buf>]) {
        (&self.backend, &mut self.grads)
    }

    /// The largest batch the workspace holds now (0 before the first batch).
    pub fn capacity(&self) -> usize {
        self.work.as_ref().map_or(0, |w| w.rows)
    }

    /// The dropout stream's position `(seed, forward passes)`, for checkpoints.
    pub fn dropout_state(&self) -> (u64, u64) {
        (self.dropout_seed, self.forward_passes)
    }

    /// Restores the dropout stream's position.
    pub fn set_dropout_state(&mut self, seed: u64, forward_passes: u64) {
        self.dropout_seed = seed;
        self.forward_passes = forward_passes;
    }

    /// Sets the global row index of the next batches' first row (a data-parallel shard's start),
    /// so that dropout draws for each row the mask one process would.
    pub fn set_row_offset(&mut self, row: usize) {
        self.row_offset = row;
    }

    /// Advances the dropout stream by one training pass without computing one: what a
    /// data-parallel rank whose shard of a batch is empty does, to stay in step.
    pub fn skip_training_pass(&mut self) {
        self.forward_passes += 1;
    }

    /// Makes sure the workspace holds batches of `rows` samples. This is the only place a
    /// training step can allocate, and it does so only when the batch is larger than any before.
    pub fn reserve(&mut self, rows: usize) -> Result<()> {
        if rows == 0 {
            return Err(Error::invalid("batch", "a batch needs at least one sample"));
        }
        if self.capacity() >= rows {
            return Ok(());
        }
        self.work = None;
        let b = &self.backend;
        let last = self.arch.layers() - 1;
        let layers = (0..self.arch.layers())
            .map(|l| {
                let len = rows * self.arch.sizes[l + 1];
                let dropout =
                    if l < last && self.arch.dropout > 0.0 { Some((b.alloc(len)?, b.alloc(len)?)) } else { None };
                Ok(LayerWork { z: b.alloc(len)?, a: b.alloc(len)?, delta: b.alloc(len)?, dropout })
            })
            .collect::<Result<_>>()?;
        self.work = Some(Workspace { rows, layers, stats: b.alloc(2)?, dropped: false });
        Ok(())
    }

    /// The loss and correct count of the last batch (two scalars copied from the backend).
    pub fn score(&self) -> Result<Score> {
        let work = self.work.as_ref().ok_or_else(|| no_forward("score"))?;
        let mut stats = [E::zero(); 2];
        self.backend.download(&work.stats, &mut stats)?;
        Ok(Score { loss: stats[0].f64(), correct: stats[1].f64() as usize, predictions: 0 })
    }

    /// A new optimizer for this network, its state zeroed (RPROP's step sizes set to η).
    pub fn optimizer(&self, config: OptimizerConfig) -> Result<Optimizer<B::Buf>> {
        config.validate()?;
        let mut state = Vec::with_capacity(2 * self.params.len());
        for p in &self.params {
            for buf in [&p.weight, &p.bias] {
                let len = self.backend.len(buf);
                let bufs = (0..config.rule.state_count())
                    .map(|i| {
                        let initial = E::of(config.rule.initial_state(i, config.lr));
                        self.backend.upload(&memory::filled(len, initial, "optimizer state")?)
                    })
                    .collect::<Result<_>>()?;
                state.push(bufs);
            }
        }
        Ok(Optimizer { config, lr: config.lr, t: 0, state })
    }
}

impl<Buf> LayerWork<Buf> {
    /// The input of the next layer: `Aˡ`, or `Aˡ ⊙ mask` when dropout was applied.
    fn output(&self, dropped: bool) -> &Buf {
        match (&self.dropout, dropped) {
            (Some((_, masked)), true) => masked,
            _ => &self.a,
        }
    }
}

fn no_forward(op: &str) -> Error {
    Error::invalid(op, "no forward pass has run on this batch size yet")
}

/// The number of rows in `len` values of `width` columns, or an error naming `what`.
fn rows_of(op: &'static str, len: usize, width: usize, what: &str) -> Result<usize> {
    if len == 0 || !len.is_multiple_of(width) {
        return Err(Error::shape(
            op,
            format!("{len} values are not a whole number (≥ 1) of rows of the network's {width} {what}"),
        ));
    }
    Ok(len / width)
}

fn check_len(op: &'static str, what: &str, expected: usize, have: usize) -> Result<()> {
    if expected != have {
        return Err(Error::shape(op, format!("{what} needs {expected} values but {have} were given")));
    }
    Ok(())
}
