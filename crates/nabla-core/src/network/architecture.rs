//! The shape of a network: layer sizes, activations, loss and dropout, validated and bounded.

use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::backend::Dims;
use crate::error::{Error, Result};
use crate::loss::Loss;

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
