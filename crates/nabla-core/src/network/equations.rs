//! The five equations of backprop on the backend, for a batch already there: the forward pass
//! (1), the output error (2), the backward pass with the gradients (3, 4) and the update (5).
//! Nothing here allocates once the workspace holds the batch.

use crate::backend::{Backend, Dims, Gemm, Trans, with_state_refs};
use crate::check;
use crate::dropout::mix64;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::optim::{Optimizer, Param};

use super::{Mode, Network, no_forward};

impl<E: Element, B: Backend<E>> Network<E, B> {
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
    /// Each `δˡ⁻¹` is computed before layer `l`'s gradient, which the fused step adds to `Wˡ`.
    fn backpropagate(&mut self, x: &B::Buf, rows: usize, sgd: Option<E>) -> Result<()> {
        for l in (0..self.arch.layers()).rev() {
            if l > 0 {
                self.propagate_error(rows, l)?;
            }
            match sgd {
                Some(lr) => self.layer_gradient(x, rows, l, -lr, true)?,
                None => self.layer_gradient(x, rows, l, E::one(), false)?,
            }
        }
        Ok(())
    }

    /// Equation 3 for one layer `l ≥ 1` of the batch whose output error (or layer `l + 1`'s
    /// propagation) just ran: `δˡ⁻¹ = (δˡ Wˡ) ⊙ σ'(Zˡ⁻¹)`, through the dropout mask when the
    /// forward pass used one.
    pub(crate) fn propagate_error(&mut self, rows: usize, l: usize) -> Result<()> {
        let (b, arch) = (&self.backend, &self.arch);
        let work = self.work.as_mut().filter(|w| w.rows >= rows).ok_or_else(|| no_forward("backward"))?;
        if l == 0 || l >= arch.layers() {
            return Err(Error::invalid("backward", format!("no layer below layer {l} to propagate the error to")));
        }
        let (done, rest) = work.layers.split_at_mut(l);
        let (cur, prev) = (&rest[0], &mut done[l - 1]);
        let (n_in, n_out) = (arch.sizes[l], arch.sizes[l + 1]);
        let da = Gemm { ta: Trans::No, tb: Trans::No, m: rows, n: n_in, k: n_out };
        b.gemm(da, E::one(), &cur.delta, &self.params[l].weight, E::zero(), &mut prev.delta)?;
        let d = Dims::new(rows, n_in);
        if let (true, Some((mask, _))) = (work.dropped, prev.dropout.as_ref()) {
            b.hadamard(d.len(), mask, &mut prev.delta)?;
        }
        b.activate_grad(arch.activations[l - 1], d, &prev.z, &prev.a, &mut prev.delta)
    }

    /// Equation 4 for one layer `l` whose error `δˡ` is known, scaled by `α`: `∂Wˡ ← α δˡᵀ Aˡ⁻¹`
    /// and `∂bˡ ← α Σ_rows δˡ` into the gradients, or added to the parameters
    /// (`into_parameters`; `α = −η` is the fused SGD step). `x` is the forward pass's input;
    /// with `rows = 0` the gradients are zero.
    pub(crate) fn layer_gradient(
        &mut self,
        x: &B::Buf,
        rows: usize,
        l: usize,
        alpha: E,
        into_parameters: bool,
    ) -> Result<()> {
        let (b, arch) = (&self.backend, &self.arch);
        let work = self.work.as_ref().filter(|w| w.rows >= rows).ok_or_else(|| no_forward("backward"))?;
        let cur = work.layers.get(l).ok_or_else(|| Error::invalid("backward", format!("no layer {l}")))?;
        let input = if l == 0 { x } else { work.layers[l - 1].output(work.dropped) };
        let (n_in, n_out) = (arch.sizes[l], arch.sizes[l + 1]);
        let dw = Gemm { ta: Trans::Yes, tb: Trans::No, m: n_out, n: n_in, k: rows };
        let d = Dims::new(rows, n_out);
        let (beta, target) =
            if into_parameters { (E::one(), &mut self.params[l]) } else { (E::zero(), &mut self.grads[l]) };
        b.gemm(dw, alpha, &cur.delta, input, beta, &mut target.weight)?;
        b.sum_rows(d, alpha, &cur.delta, beta, &mut target.bias)
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
            // Every parameter is updated: a gradient buffer shorter than it is an error, not
            // a shorter update.
            with_state_refs(&mut sw[0], |s| b.update(&uw, b.len(&p.weight), &mut p.weight, &g.weight, s))?;
            with_state_refs(&mut sb[0], |s| b.update(&ub, b.len(&p.bias), &mut p.bias, &g.bias, s))?;
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
}
