//! The host-facing side of a network: batches given as host slices (staged on the backend),
//! predictions and evaluations in chunks of the workspace, parameters and per-layer values
//! copied to and from the host.

use crate::backend::Backend;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::memory;
use crate::optim::Optimizer;

use super::{LayerValue, Mode, Network, Score, Staging, check_len, no_forward, rows_of};

impl<E: Element, B: Backend<E>> Network<E, B> {
    /// [`Network::train_step`] on host slices (copied into staging buffers on the backend).
    pub fn train_batch(&mut self, x: &[E], y: &[E], opt: &mut Optimizer<B::Buf>) -> Result<()> {
        let rows = self.stage(x, Some(y))?;
        self.with_staging(|net, s| net.train_step(&s.x, &s.y, rows, opt))
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

    /// Downloads one of the values of layer `l` (0-based) for the last `rows` samples (for
    /// inspection and diagnosis).
    pub fn layer_values(&self, l: usize, which: LayerValue, rows: usize) -> Result<Vec<E>> {
        let work = self.work.as_ref().filter(|w| w.rows >= rows).ok_or_else(|| no_forward("layer_values"))?;
        let lw = work.layers.get(l).ok_or_else(|| Error::shape("layer_values", format!("no layer {l}")))?;
        let buf = match which {
            LayerValue::Z => &lw.z,
            LayerValue::A => &lw.a,
            LayerValue::Delta => &lw.delta,
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
            if self.layer_values(l, LayerValue::Z, rows)?.iter().any(|v| !v.is_finite()) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activation, Architecture, Init, Loss, Reference};

    /// Each `LayerValue` names its own buffer: `A = tanh(Z)` in the hidden layer, and the
    /// output layer's `δ` is MSE's `2(a − y)/(nk)` (identity output, `a = z`).
    #[test]
    fn layer_values_returns_the_value_asked_for() {
        let arch = Architecture::new(&[2, 3, 2], Activation::Tanh, Loss::Mse).unwrap();
        let mut net = Network::new(Reference, arch, Init::Auto, 3).unwrap();
        let (x, y) = ([0.5_f64, -1.0, 2.0, 0.25], [1.0, 0.0, -1.0, 0.5]);
        net.compute_gradients(&x, &y).unwrap();
        let (z, a) = (net.layer_values(0, LayerValue::Z, 2).unwrap(), net.layer_values(0, LayerValue::A, 2).unwrap());
        assert_eq!(z.len(), 6);
        z.iter().zip(&a).for_each(|(z, a)| assert!((z.tanh() - a).abs() < 1e-15, "{z} {a}"));
        let out = net.layer_values(1, LayerValue::A, 2).unwrap();
        let delta = net.layer_values(1, LayerValue::Delta, 2).unwrap();
        for ((d, a), y) in delta.iter().zip(&out).zip(&y) {
            assert!((d - 2.0 * (a - y) / 4.0).abs() < 1e-15, "δ {d} for a {a}, y {y}");
        }
        assert!(net.layer_values(2, LayerValue::Z, 2).is_err(), "no layer 2");
    }

    /// The update covers every parameter: a gradient buffer shorter than its weight (as the
    /// data-parallel reducer's empty stand-in would be, were it left behind) is a shape error,
    /// not a silently shorter update.
    #[test]
    fn an_update_with_a_short_gradient_is_an_error() {
        let arch = Architecture::new(&[2, 3, 2], Activation::Tanh, Loss::Mse).unwrap();
        let mut net = Network::new(Reference, arch, Init::Auto, 3).unwrap();
        net.compute_gradients(&[0.5_f64, -1.0], &[1.0, 0.0]).unwrap();
        let mut opt = net.optimizer(crate::OptimizerConfig::named("adam", 0.01).unwrap()).unwrap();
        let before = net.parameters_to_host().unwrap();
        net.gradients_mut().1[1].weight = Vec::new();
        let err = net.update(&mut opt).unwrap_err();
        assert!(err.to_string().contains("update"), "{err}");
        assert_eq!(net.parameters_to_host().unwrap()[2], before[2], "layer 1's weights untouched");
    }
}
