//! Gradient check: backprop's gradients against central finite differences, in `f64`.
//!
//! For every parameter `θᵢ`, `∂C/∂θᵢ ≈ (C(θ + εeᵢ) − C(θ − εeᵢ)) / 2ε`, whose error is
//! `O(ε²)`. Each tensor is scored by the norm-wise relative error
//! `‖g_backprop − g_numeric‖₂ / (‖g_backprop‖₂ + ‖g_numeric‖₂)`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::backend::Backend;
use crate::error::Result;
use crate::network::Network;

/// The agreement of one layer's gradients.
#[derive(Clone, Debug, Serialize)]
pub struct LayerCheck {
    /// 1-based layer number.
    pub layer: usize,
    /// Relative error of `∂C/∂W`.
    pub weight_rel_error: f64,
    /// Relative error of `∂C/∂b`.
    pub bias_rel_error: f64,
    /// Largest absolute difference over the layer's parameters.
    pub max_abs_error: f64,
}

/// The result of [`gradient_check`].
#[derive(Clone, Debug, Serialize)]
pub struct GradCheck {
    /// One entry per layer.
    pub layers: Vec<LayerCheck>,
    /// The largest relative error of any tensor.
    pub max_rel_error: f64,
    /// The step ε.
    pub epsilon: f64,
    /// The number of parameters checked.
    pub parameters: usize,
}

/// Sets every bias to a seeded random value in `[−scale, scale]`. Freshly initialised biases are
/// zero, and an input of zero (the centre of the spirals, say) then puts a ReLU unit exactly on
/// its kink, where a finite difference straddles two slopes; random biases move units off it.
pub fn randomize_biases<B: Backend<f64>>(net: &mut Network<f64, B>, scale: f64, seed: u64) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for l in 0..net.architecture().layers() {
        let b: Vec<f64> = (0..net.architecture().sizes[l + 1]).map(|_| rng.random_range(-scale..=scale)).collect();
        net.set_parameter(2 * l + 1, &b)?;
    }
    Ok(())
}

/// `‖a − b‖₂ / (‖a‖₂ + ‖b‖₂)`, 0 when both are zero.
pub fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
    let diff = norm(&mut a.iter().zip(b).map(|(x, y)| x - y));
    let scale = norm(&mut a.iter().copied()) + norm(&mut b.iter().copied());
    if scale == 0.0 { 0.0 } else { diff / scale }
}

/// Compares backprop's gradients of the mean loss over `x`, `y` with central differences of
/// step `epsilon`, for every weight and bias. Dropout is off; the parameters are left as found.
pub fn gradient_check<B: Backend<f64>>(
    net: &mut Network<f64, B>,
    x: &[f64],
    y: &[f64],
    epsilon: f64,
) -> Result<GradCheck> {
    net.compute_gradients(x, y)?;
    let analytic = net.gradients_to_host()?;
    let mut params = net.parameters_to_host()?;
    let mut numeric = Vec::with_capacity(params.len());
    for (i, tensor) in params.iter_mut().enumerate() {
        let mut g = vec![0.0; tensor.len()];
        for j in 0..tensor.len() {
            let original = tensor[j];
            tensor[j] = original + epsilon;
            net.set_parameter(i, tensor)?;
            let plus = net.evaluate(x, y)?.loss;
            tensor[j] = original - epsilon;
            net.set_parameter(i, tensor)?;
            let minus = net.evaluate(x, y)?.loss;
            tensor[j] = original;
            g[j] = (plus - minus) / (2.0 * epsilon);
        }
        net.set_parameter(i, tensor)?;
        numeric.push(g);
    }
    let layers: Vec<LayerCheck> = (0..params.len() / 2)
        .map(|l| {
            let (w, b) = (2 * l, 2 * l + 1);
            let max_abs_error = [w, b]
                .iter()
                .flat_map(|&t| analytic[t].iter().zip(&numeric[t]).map(|(a, n)| (a - n).abs()))
                .fold(0.0, f64::max);
            LayerCheck {
                layer: l + 1,
                weight_rel_error: relative_error(&analytic[w], &numeric[w]),
                bias_rel_error: relative_error(&analytic[b], &numeric[b]),
                max_abs_error,
            }
        })
        .collect();
    let max_rel_error = layers.iter().map(|l| l.weight_rel_error.max(l.bias_rel_error)).fold(0.0, f64::max);
    Ok(GradCheck { layers, max_rel_error, epsilon, parameters: params.iter().map(Vec::len).sum() })
}
