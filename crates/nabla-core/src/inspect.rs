//! Per-layer inspection: what backprop is doing inside the network, layer by layer — the norms
//! of `δˡ`, `∂C/∂Wˡ`, `∂C/∂bˡ` and `Wˡ`, the relative size of an SGD step, and how the units
//! behave (mean and spread of `Aˡ`, dead and saturated units).

use serde::Serialize;

use crate::activation::Activation;
use crate::backend::Backend;
use crate::element::Element;
use crate::error::Result;
use crate::network::{LayerValue, Network};

/// The statistics of one layer on one batch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerStats {
    /// 1-based layer number.
    pub layer: usize,
    /// `‖δˡ‖` (Frobenius, over the batch).
    pub delta_norm: f64,
    /// `‖∂C/∂Wˡ‖`.
    pub weight_grad_norm: f64,
    /// `‖∂C/∂bˡ‖`.
    pub bias_grad_norm: f64,
    /// `‖Wˡ‖`.
    pub weight_norm: f64,
    /// `η ‖∂C/∂Wˡ‖ / ‖Wˡ‖`: the relative size of a plain gradient step (≈1e-3 is healthy).
    pub update_ratio: f64,
    /// Mean of the activations `Aˡ`.
    pub activation_mean: f64,
    /// Standard deviation of the activations.
    pub activation_std: f64,
    /// Fraction of units whose derivative `σ'(z)` is 0 for every sample (dead ReLUs).
    pub dead_fraction: f64,
    /// Fraction of activations whose derivative is below 0.01 (saturated sigmoid/tanh units).
    pub saturated_fraction: f64,
}

fn norm<E: Element>(v: &[E]) -> f64 {
    v.iter().map(|x| x.f64() * x.f64()).sum::<f64>().sqrt()
}

impl<E: Element, B: Backend<E>> Network<E, B> {
    /// Computes the gradients of the batch `x`, `y` (no dropout, no update) and reports every
    /// layer's statistics, with `lr` for the update ratio.
    pub fn inspect(&mut self, x: &[E], y: &[E], lr: f64) -> Result<Vec<LayerStats>> {
        self.compute_gradients(x, y)?;
        let rows = x.len() / self.architecture().inputs();
        let params = self.parameters_to_host()?;
        let grads = self.gradients_to_host()?;
        let mut out = Vec::with_capacity(self.architecture().layers());
        for l in 0..self.architecture().layers() {
            let (units, f) = (self.architecture().sizes[l + 1], self.architecture().activations[l]);
            let (z, a, delta) = (
                self.layer_values(l, LayerValue::Z, rows)?,
                self.layer_values(l, LayerValue::A, rows)?,
                self.layer_values(l, LayerValue::Delta, rows)?,
            );
            let n = a.len().max(1) as f64;
            let mean = a.iter().map(|v| v.f64()).sum::<f64>() / n;
            let var = a.iter().map(|v| (v.f64() - mean).powi(2)).sum::<f64>() / n;
            let (dead, saturated) = if f == Activation::Softmax {
                (0.0, 0.0)
            } else {
                let slope = |i: usize| f.derivative(z[i], a[i]).f64().abs();
                let dead_units = (0..units).filter(|&u| (0..rows).all(|r| slope(r * units + u) == 0.0)).count();
                let flat = (0..a.len()).filter(|&i| slope(i) < 0.01).count();
                (dead_units as f64 / units as f64, flat as f64 / n)
            };
            let (w, gw, gb) = (&params[2 * l], &grads[2 * l], &grads[2 * l + 1]);
            let (wn, gwn) = (norm(w), norm(gw));
            out.push(LayerStats {
                layer: l + 1,
                delta_norm: norm(&delta),
                weight_grad_norm: gwn,
                bias_grad_norm: norm(gb),
                weight_norm: wn,
                update_ratio: if wn > 0.0 { lr * gwn / wn } else { 0.0 },
                activation_mean: mean,
                activation_std: var.sqrt(),
                dead_fraction: dead,
                saturated_fraction: saturated,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Activation, Architecture, Init, Loss, Network, Reference};

    #[test]
    fn dead_relus_are_counted() {
        let arch = Architecture::new(&[2, 4, 2], Activation::Relu, Loss::SoftmaxCe).unwrap();
        let mut net = Network::<f64, _>::new(Reference, arch, Init::Auto, 1).unwrap();
        // A large negative bias kills units 0 and 1 for every input in [0, 1]².
        net.set_parameter(1, &[-100.0, -100.0, 0.5, 0.5]).unwrap();
        let x = [0.1, 0.2, 0.9, 0.4, 0.5, 0.5];
        let y = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0];
        let stats = net.inspect(&x, &y, 0.1).unwrap();
        assert_eq!(stats.len(), 2);
        assert_eq!(stats[0].dead_fraction, 0.5);
        assert!(stats[0].weight_grad_norm > 0.0 && stats[1].delta_norm > 0.0);
        let w = net.parameters_to_host().unwrap();
        let wn = w[0].iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((stats[0].weight_norm - wn).abs() < 1e-12);
        assert!((stats[0].update_ratio - 0.1 * stats[0].weight_grad_norm / wn).abs() < 1e-15);
    }
}
