//! The backprop driver: one implementation of the five equations, generic over the backend.
//!
//! A [`Network`] owns its parameters, their gradients and a workspace sized for its largest
//! batch, all on the backend. After the workspace exists, a training step allocates nothing.

use std::marker::PhantomData;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::backend::{Backend, Dims, Gemm, Trans, with_state_refs};
use crate::check;
use crate::dropout::mix64;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::init::Init;
use crate::loss::Loss;
use crate::memory;
use crate::optim::{Optimizer, OptimizerConfig, Param};

/// The shape of a network: layer sizes, one activation per layer, the loss, and dropout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    /// `[inputs, hidden₁, …, outputs]`.
    pub sizes: Vec<usize>,
    /// `σ` of each layer (`sizes.len() − 1` of them); the last is the output activation.
    pub activations: Vec<Activation>,
    /// The cost function.
    pub loss: Loss,
    /// Inverted-dropout rate after every hidden layer, in `[0, 1)` (0: none).
    #[serde(default)]
    pub dropout: f64,
}

impl Architecture {
    /// Layers of `sizes`, hidden activation `hidden`, and the output activation the loss implies
    /// (softmax for `softmax-ce`, sigmoid for `bce`, identity otherwise).
    pub fn new(sizes: &[usize], hidden: Activation, loss: Loss) -> Result<Architecture> {
        let layers = sizes.len().saturating_sub(1);
        let mut activations = vec![hidden; layers];
        if let Some(last) = activations.last_mut() {
            *last = loss.default_output_activation();
        }
        let arch = Architecture { sizes: sizes.to_vec(), activations, loss, dropout: 0.0 };
        arch.validate()?;
        Ok(arch)
    }

    /// The same network with output activation `output`.
    pub fn with_output(mut self, output: Activation) -> Result<Architecture> {
        if let Some(last) = self.activations.last_mut() {
            *last = output;
        }
        self.validate()?;
        Ok(self)
    }

    /// The same network with dropout `rate` after every hidden layer.
    pub fn with_dropout(mut self, rate: f64) -> Result<Architecture> {
        self.dropout = rate;
        self.validate()?;
        Ok(self)
    }

    /// Checks sizes, activations, the loss/output pairing and the dropout rate.
    pub fn validate(&self) -> Result<()> {
        if self.sizes.len() < 2 {
            return Err(Error::invalid(
                "layers",
                format!("{:?}; give at least an input and an output size, e.g. 2,16,1", self.sizes),
            ));
        }
        if let Some(i) = self.sizes.iter().position(|&s| s == 0) {
            return Err(Error::invalid(
                "layers",
                format!("{:?}: size {i} is zero; every layer needs ≥ 1 unit", self.sizes),
            ));
        }
        if self.activations.len() != self.layers() {
            return Err(Error::invalid(
                "activations",
                format!("{} given for {} layers", self.activations.len(), self.layers()),
            ));
        }
        let output = self.output_activation();
        if let Some(fused) = self.loss.fused_activation()
            && output != fused
        {
            return Err(Error::invalid(
                "output activation",
                format!("`{output}` with loss `{}`: this loss is fused with a `{fused}` output", self.loss),
            ));
        }
        if self.loss == Loss::SoftmaxCe && self.outputs() < 2 {
            return Err(Error::invalid("layers", "softmax-ce needs at least 2 outputs; use bce for one"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::invalid("dropout", format!("{}; it must be in [0, 1)", self.dropout)));
        }
        let count = (0..self.layers()).try_fold(0usize, |total, l| {
            let (out, inp) = (self.sizes[l + 1], self.sizes[l]);
            out.checked_mul(inp).and_then(|w| w.checked_add(out)).and_then(|p| total.checked_add(p))
        });
        if count.is_none_or(|c| c > MAX_PARAMETERS) {
            return Err(Error::invalid(
                "layers",
                format!("{:?} has more than {MAX_PARAMETERS} parameters; no machine holds that", self.sizes),
            ));
        }
        Ok(())
    }

    /// The number of weight layers `L`.
    pub fn layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// The input size.
    pub fn inputs(&self) -> usize {
        self.sizes[0]
    }

    /// The output size.
    pub fn outputs(&self) -> usize {
        self.sizes[self.layers()]
    }

    /// The output activation `σᴸ`.
    pub fn output_activation(&self) -> Activation {
        self.activations[self.layers() - 1]
    }

    /// Shape `(out, in)` of layer `l`'s weights.
    pub fn weight_dims(&self, l: usize) -> Dims {
        Dims::new(self.sizes[l + 1], self.sizes[l])
    }

    /// The number of trainable parameters, `Σ out·in + out`.
    pub fn parameter_count(&self) -> usize {
        (0..self.layers()).map(|l| self.weight_dims(l).len() + self.sizes[l + 1]).sum()
    }
}

/// The most parameters an architecture may have (2³⁶, 256 GiB in f32): beyond any machine, so a
/// larger count in a file or a flag is an error before anything is allocated.
pub const MAX_PARAMETERS: usize = 1 << 36;

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

    /// Equation 1, the forward pass over `rows` samples of `x` (`rows × inputs`):
    /// `Zˡ = Aˡ⁻¹ Wˡᵀ ⊕ bˡ`, `Aˡ = σˡ(Zˡ)` with `A⁰ = x`. In [`Mode::Train`] hidden activations
    /// pass through the dropout mask, and a fused output activation is left to the loss.
    pub fn forward(&mut self, x: &B::Buf, rows: usize, mode: Mode) -> Result<()> {
        self.reserve(rows)?;
        check::fits("forward", "x", Dims::new(rows, self.arch.inputs()), self.backend.len(x))?;
        let dropout = mode == Mode::Train && self.arch.dropout > 0.0;
        if mode == Mode::Train {
            self.forward_passes += 1;
        }
        let step_seed = mix64(self.dropout_seed ^ mix64(self.forward_passes));
        let (b, arch) = (&self.backend, &self.arch);
        let work = self.work.as_mut().ok_or_else(|| Error::invalid("batch", "no workspace"))?;
        work.dropped = dropout;
        let last = arch.layers() - 1;
        for l in 0..arch.layers() {
            let (done, rest) = work.layers.split_at_mut(l);
            let cur = &mut rest[0];
            let input = if l == 0 { x } else { done[l - 1].output(dropout) };
            let d = Dims::new(rows, arch.sizes[l + 1]);
            let shape = Gemm { ta: Trans::No, tb: Trans::Yes, m: rows, n: d.cols, k: arch.sizes[l] };
            b.gemm(shape, E::one(), input, &self.params[l].weight, E::zero(), &mut cur.z)?;
            if l == last && mode == Mode::Train && arch.loss.fused_activation().is_some() {
                b.bias_add(d, &self.params[l].bias, &mut cur.z)?;
            } else {
                b.bias_add_activate(arch.activations[l], d, &self.params[l].bias, &mut cur.z, &mut cur.a)?;
            }
            if let (true, Some((mask, dropped))) = (dropout, cur.dropout.as_mut()) {
                let first = (self.row_offset as u64).wrapping_mul(d.cols as u64);
                b.dropout_mask(d.len(), arch.dropout, mix64(step_seed ^ l as u64), first, mask)?;
                b.copy(d.len(), &cur.a, dropped)?;
                b.hadamard(d.len(), mask, dropped)?;
            }
        }
        Ok(())
    }

    /// Equation 2, the output error of the batch whose forward pass just ran, against targets
    /// `y` (`rows × outputs`): the loss op writes `δᴸ` (fused losses, from `Zᴸ`) or `∇ₐC`, which
    /// is then multiplied by `σ'(Zᴸ)`: `δᴸ = ∇ₐC ⊙ σ'(Zᴸ)`. Also records the batch's loss.
    pub fn output_error(&mut self, y: &B::Buf, rows: usize) -> Result<()> {
        let (b, arch) = (&self.backend, &self.arch);
        let work = self.work.as_mut().filter(|w| w.rows >= rows).ok_or_else(|| no_forward("output_error"))?;
        let d = Dims::new(rows, arch.outputs());
        check::fits("output_error", "y", d, b.len(y))?;
        let out = work.layers.last_mut().ok_or_else(|| no_forward("output_error"))?;
        if arch.loss.fused_activation().is_some() {
            b.loss(arch.loss, d, &out.z, y, &mut out.delta, &mut work.stats)
        } else {
            b.loss(arch.loss, d, &out.a, y, &mut out.delta, &mut work.stats)?;
            b.activate_grad(arch.output_activation(), d, &out.z, &out.a, &mut out.delta)
        }
    }

    /// Equations 3 and 4, from the output error down to the first layer:
    /// `δˡ⁻¹ = (δˡ Wˡ) ⊙ σ'(Zˡ⁻¹)` (through the dropout mask when the forward pass used one),
    /// `∂C/∂Wˡ = δˡᵀ Aˡ⁻¹` and `∂C/∂bˡ = Σ_rows δˡ`. `x` is the forward pass's input.
    pub fn backward(&mut self, x: &B::Buf, rows: usize) -> Result<()> {
        self.backpropagate(x, rows, None)
    }

    /// Equations 3, 4 and 5 in one sweep for plain SGD: instead of storing `∂C/∂Wˡ`, the weight
    /// GEMM accumulates straight into the weights with `β = 1`: `Wˡ ← Wˡ − η δˡᵀ Aˡ⁻¹`, and
    /// `bˡ ← bˡ − η Σ_rows δˡ`. Each `δˡ⁻¹` is computed before its `Wˡ` changes.
    pub fn backward_sgd(&mut self, x: &B::Buf, rows: usize, lr: f64) -> Result<()> {
        self.backpropagate(x, rows, Some(E::of(lr)))
    }

    /// [`Network::backward`] (`sgd = None`) or [`Network::backward_sgd`] (`sgd = Some(η)`).
    fn backpropagate(&mut self, x: &B::Buf, rows: usize, sgd: Option<E>) -> Result<()> {
        let (b, arch) = (&self.backend, &self.arch);
        let work = self.work.as_mut().filter(|w| w.rows >= rows).ok_or_else(|| no_forward("backward"))?;
        let dropped = work.dropped;
        for l in (0..arch.layers()).rev() {
            let (done, rest) = work.layers.split_at_mut(l);
            let cur = &rest[0];
            let (n_in, n_out) = (arch.sizes[l], arch.sizes[l + 1]);
            if l > 0 {
                let prev = &mut done[l - 1];
                let da = Gemm { ta: Trans::No, tb: Trans::No, m: rows, n: n_in, k: n_out };
                b.gemm(da, E::one(), &cur.delta, &self.params[l].weight, E::zero(), &mut prev.delta)?;
                let d = Dims::new(rows, n_in);
                if let (true, Some((mask, _))) = (dropped, prev.dropout.as_ref()) {
                    b.hadamard(d.len(), mask, &mut prev.delta)?;
                }
                b.activate_grad(arch.activations[l - 1], d, &prev.z, &prev.a, &mut prev.delta)?;
            }
            let input = if l == 0 { x } else { done[l - 1].output(dropped) };
            let dw = Gemm { ta: Trans::Yes, tb: Trans::No, m: n_out, n: n_in, k: rows };
            let d = Dims::new(rows, n_out);
            let (alpha, beta, target) = match sgd {
                Some(lr) => (-lr, E::one(), &mut self.params[l]),
                None => (E::one(), E::zero(), &mut self.grads[l]),
            };
            b.gemm(dw, alpha, &cur.delta, input, beta, &mut target.weight)?;
            b.sum_rows(d, alpha, &cur.delta, beta, &mut target.bias)?;
        }
        Ok(())
    }

    /// Equation 5, one optimizer step on every tensor: `W ← W − η ∂C/∂W` for SGD, the rule of
    /// `opt` in general (regularisation on weights only).
    pub fn update(&mut self, opt: &mut Optimizer<B::Buf>) -> Result<()> {
        if opt.state.len() != 2 * self.params.len() {
            return Err(Error::shape("update", "the optimizer was made for another network"));
        }
        opt.advance()?;
        let (uw, ub) = (opt.update_for(Param::Weight), opt.update_for(Param::Bias));
        for ((p, g), state) in self.params.iter_mut().zip(&self.grads).zip(opt.state.chunks_exact_mut(2)) {
            let (sw, sb) = state.split_at_mut(1);
            let b = &self.backend;
            with_state_refs(&mut sw[0], |s| b.update(&uw, b.len(&g.weight), &mut p.weight, &g.weight, s))?;
            with_state_refs(&mut sb[0], |s| b.update(&ub, b.len(&g.bias), &mut p.bias, &g.bias, s))?;
        }
        Ok(())
    }

    /// One training step on `rows` samples already on the backend: forward, output error,
    /// backward, update. The batch's loss stays on the backend until [`Network::score`] reads it.
    /// Plain SGD takes the fused [`Network::backward_sgd`]; every other rule stores the
    /// gradients and then runs [`Network::update`].
    pub fn train_step(&mut self, x: &B::Buf, y: &B::Buf, rows: usize, opt: &mut Optimizer<B::Buf>) -> Result<()> {
        self.forward(x, rows, Mode::Train)?;
        self.output_error(y, rows)?;
        match opt.plain_sgd() {
            Some(lr) => {
                opt.advance()?;
                self.backward_sgd(x, rows, lr)
            }
            None => {
                self.backward(x, rows)?;
                self.update(opt)
            }
        }
    }

    /// [`Network::train_step`] on host slices (copied into staging buffers on the backend).
    pub fn train_batch(&mut self, x: &[E], y: &[E], opt: &mut Optimizer<B::Buf>) -> Result<()> {
        let rows = self.stage(x, Some(y))?;
        self.with_staging(|net, s| net.train_step(&s.x, &s.y, rows, opt))
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

    /// Predictions `Aᴸ` for the host inputs `x` (`rows × inputs`), written to `out`
    /// (`rows × outputs`). Runs in chunks of the workspace's size.
    pub fn predict_into(&mut self, x: &[E], out: &mut [E]) -> Result<()> {
        let (n_in, n_out) = (self.arch.inputs(), self.arch.outputs());
        let rows = rows_of("predict", x.len(), n_in, "inputs")?;
        check_len("predict", "the output", rows * n_out, out.len())?;
        let chunk = self.chunk_rows(rows);
        for (xs, outs) in x.chunks(chunk * n_in).zip(out.chunks_mut(chunk * n_out)) {
            let r = self.stage(xs, None)?;
            self.with_staging(|net, s| net.forward(&s.x, r, Mode::Eval))?;
            let work = self.work.as_ref().ok_or_else(|| no_forward("predict"))?;
            let last = work.layers.last().ok_or_else(|| no_forward("predict"))?;
            self.backend.download(&last.a, outs)?;
        }
        Ok(())
    }

    /// [`Network::predict_into`] returning a new vector.
    pub fn predict(&mut self, x: &[E]) -> Result<Vec<E>> {
        let rows = rows_of("predict", x.len(), self.arch.inputs(), "inputs")?;
        let mut out =
            memory::filled(memory::count(&[rows, self.arch.outputs()], "predictions")?, E::zero(), "predictions")?;
        self.predict_into(x, &mut out)?;
        Ok(out)
    }

    /// The mean loss and correct count over host data `x`, `y` (no dropout, no update).
    pub fn evaluate(&mut self, x: &[E], y: &[E]) -> Result<Score> {
        let (n_in, n_out) = (self.arch.inputs(), self.arch.outputs());
        let rows = rows_of("evaluate", x.len(), n_in, "inputs")?;
        check_len("evaluate", "the targets", rows * n_out, y.len())?;
        let chunk = self.chunk_rows(rows);
        let mut total = Score::default();
        for (xs, ys) in x.chunks(chunk * n_in).zip(y.chunks(chunk * n_out)) {
            let r = self.stage(xs, Some(ys))?;
            self.with_staging(|net, s| {
                net.forward(&s.x, r, Mode::Eval)?;
                net.output_error(&s.y, r)
            })?;
            let s = self.score()?;
            total.loss += s.loss * r as f64;
            total.correct += s.correct;
            total.predictions += self.arch.loss.predictions(r, n_out);
        }
        total.loss /= rows as f64;
        Ok(total)
    }

    /// Gradients of the mean loss over host data `x`, `y` without dropout and without an
    /// update (for gradient checks and inspection); read them with [`Network::gradients`].
    pub fn compute_gradients(&mut self, x: &[E], y: &[E]) -> Result<Score> {
        let rows = self.stage(x, Some(y))?;
        self.with_staging(|net, s| {
            net.forward(&s.x, rows, Mode::Eval)?;
            net.output_error(&s.y, rows)?;
            net.backward(&s.x, rows)
        })?;
        let mut s = self.score()?;
        s.predictions = self.arch.loss.predictions(rows, self.arch.outputs());
        Ok(s)
    }

    /// Downloads every parameter tensor (`W¹, b¹, W², b², …`) to the host.
    pub fn parameters_to_host(&self) -> Result<Vec<Vec<E>>> {
        self.params.iter().flat_map(|p| [&p.weight, &p.bias]).map(|buf| self.download(buf)).collect()
    }

    /// Downloads every gradient tensor (`∂W¹, ∂b¹, …`) to the host.
    pub fn gradients_to_host(&self) -> Result<Vec<Vec<E>>> {
        self.grads.iter().flat_map(|p| [&p.weight, &p.bias]).map(|buf| self.download(buf)).collect()
    }

    /// Overwrites parameter tensor `i` (`W¹, b¹, W², b², …` order) from the host.
    pub fn set_parameter(&mut self, i: usize, host: &[E]) -> Result<()> {
        let p = self
            .params
            .get_mut(i / 2)
            .ok_or_else(|| Error::shape("set_parameter", format!("tensor {i} does not exist")))?;
        let buf = if i.is_multiple_of(2) { &mut p.weight } else { &mut p.bias };
        check_len("set_parameter", &format!("tensor {i}"), self.backend.len(buf), host.len())?;
        self.backend.write(host, buf)
    }

    /// Downloads the activations `Aˡ` (`which = 'a'`), pre-activations `Zˡ` (`'z'`) or errors
    /// `δˡ` (`'d'`) of layer `l` for the last `rows` samples (for inspection and diagnosis).
    pub fn layer_values(&self, l: usize, which: char, rows: usize) -> Result<Vec<E>> {
        let work = self.work.as_ref().filter(|w| w.rows >= rows).ok_or_else(|| no_forward("layer_values"))?;
        let lw = work.layers.get(l).ok_or_else(|| Error::shape("layer_values", format!("no layer {l}")))?;
        let buf = match which {
            'z' => &lw.z,
            'a' => &lw.a,
            _ => &lw.delta,
        };
        let len = memory::count(&[rows, self.arch.sizes[l + 1]], "layer values")?;
        let mut out = memory::filled(len, E::zero(), "layer values")?;
        self.backend.download(buf, &mut out)?;
        Ok(out)
    }

    /// Where a non-finite loss of the last batch of `rows` samples came from: the first layer
    /// whose pre-activations are not finite, else the loss itself.
    pub fn locate_non_finite(&self, rows: usize) -> Result<String> {
        for l in 0..self.arch.layers() {
            if self.layer_values(l, 'z', rows)?.iter().any(|v| !v.is_finite()) {
                let params = self.download(&self.params[l].weight)?;
                let cause = if params.iter().any(|v| !v.is_finite()) { "its weights" } else { "its inputs" };
                return Ok(format!("layer {} (pre-activations Z; non-finite values in {cause})", l + 1));
            }
        }
        Ok(format!("the loss `{}` (outputs finite; check the targets)", self.arch.loss))
    }

    fn download(&self, buf: &B::Buf) -> Result<Vec<E>> {
        let mut out = memory::filled(self.backend.len(buf), E::zero(), "a downloaded tensor")?;
        self.backend.download(buf, &mut out)?;
        Ok(out)
    }

    /// Rows per chunk for host-driven passes: the workspace's size, at least 256.
    fn chunk_rows(&self, rows: usize) -> usize {
        rows.min(self.capacity().max(256)).max(1)
    }

    /// Copies a host batch into the staging buffers and returns its row count.
    fn stage(&mut self, x: &[E], y: Option<&[E]>) -> Result<usize> {
        let (n_in, n_out) = (self.arch.inputs(), self.arch.outputs());
        let rows = rows_of("batch", x.len(), n_in, "inputs")?;
        if let Some(y) = y {
            check_len("batch", "the targets", rows * n_out, y.len())?;
        }
        self.reserve(rows)?;
        let capacity = self.capacity();
        if self.staging.as_ref().is_none_or(|s| self.backend.len(&s.x) < capacity * n_in) {
            self.staging = None;
            let b = &self.backend;
            self.staging = Some(Staging { x: b.alloc(capacity * n_in)?, y: b.alloc(capacity * n_out)? });
        }
        let s = self.staging.as_mut().ok_or_else(|| no_forward("stage"))?;
        self.backend.write(x, &mut s.x)?;
        if let Some(y) = y {
            self.backend.write(y, &mut s.y)?;
        }
        Ok(rows)
    }

    /// Runs `f` with the staging buffers lent out of the network.
    fn with_staging<T>(&mut self, f: impl FnOnce(&mut Self, &Staging<B::Buf>) -> Result<T>) -> Result<T> {
        let staging = self.staging.take().ok_or_else(|| no_forward("staging"))?;
        let result = f(self, &staging);
        self.staging = Some(staging);
        result
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
