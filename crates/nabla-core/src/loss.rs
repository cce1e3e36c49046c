//! Cost functions `C(a, y)`, averaged over the batch, and their output errors.
//!
//! With `n` samples of `k` outputs each:
//!
//! | loss | `C` | what the backend writes into `grad` |
//! | --- | --- | --- |
//! | `mse` | `1/(nk) Σ (a − y)²` | `∇ₐC = 2(a − y)/(nk)` |
//! | `mae` | `1/(nk) Σ │a − y│` | `∇ₐC = sign(a − y)/(nk)` |
//! | `huber:δ` | `1/(nk) Σ h(a − y)`, `h(r) = r²/2` for `│r│ ≤ δ`, else `δ(│r│ − δ/2)` | `∇ₐC = clamp(a − y, −δ, δ)/(nk)` |
//! | `bce` | `1/(nk) Σ max(z,0) − zy + ln(1 + e^−│z│)` on logits `z` | `δᴸ = (sigmoid(z) − y)/(nk)` |
//! | `softmax-ce` | `1/n Σ_rows Σ_j y_j (lse(z) − z_j)` on logits `z` | `δᴸ = (softmax(z) Σy − y)/n` |
//!
//! The last two are *fused* with their output activation: the backend receives the logits `zᴸ`
//! and writes `δᴸ = ∇ₐC ⊙ σ'(zᴸ)` directly, which is both cheaper and stable.

use std::fmt;
use std::str::FromStr;

use crate::activation::Activation;
use crate::error::{Error, Result};

/// A cost function.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Loss {
    /// Mean squared error.
    Mse,
    /// Mean absolute error.
    Mae,
    /// Huber loss with threshold `delta`.
    Huber {
        /// Where the loss turns from quadratic to linear.
        delta: f64,
    },
    /// Sigmoid + binary cross-entropy, on logits.
    Bce,
    /// Softmax + categorical cross-entropy, on logits.
    SoftmaxCe,
}

/// The names accepted on the command line and in files, for error messages.
pub const LOSS_NAMES: &str = "mse, mae, huber[:DELTA], bce, softmax-ce";

impl Loss {
    /// Every loss, once each (Huber with a non-default δ).
    pub const ALL: [Loss; 5] = [Loss::Mse, Loss::Mae, Loss::Huber { delta: 0.5 }, Loss::Bce, Loss::SoftmaxCe];

    /// The output activation this loss is fused with, if any.
    pub fn fused_activation(self) -> Option<Activation> {
        match self {
            Loss::Bce => Some(Activation::Sigmoid),
            Loss::SoftmaxCe => Some(Activation::Softmax),
            Loss::Mse | Loss::Mae | Loss::Huber { .. } => None,
        }
    }

    /// The output activation used when none is given: the fused one, else identity.
    pub fn default_output_activation(self) -> Activation {
        self.fused_activation().unwrap_or(Activation::Identity)
    }

    /// Whether the loss measures a classification (it then also counts correct predictions).
    pub fn is_classification(self) -> bool {
        self.fused_activation().is_some()
    }

    /// A stable integer code, used by the plugin ABI and the CUDA kernels.
    pub fn code(self) -> u32 {
        match self {
            Loss::Mse => 0,
            Loss::Mae => 1,
            Loss::Huber { .. } => 2,
            Loss::Bce => 3,
            Loss::SoftmaxCe => 4,
        }
    }

    /// The code's name in C and CUDA: `NABLA_LOSS_{name}` in the C header, `LOSS_{name}` in
    /// kernels.cu, defined as [`Loss::code`].
    pub fn code_name(self) -> &'static str {
        match self {
            Loss::Mse => "MSE",
            Loss::Mae => "MAE",
            Loss::Huber { .. } => "HUBER",
            Loss::Bce => "BCE",
            Loss::SoftmaxCe => "SOFTMAX_CE",
        }
    }

    /// The loss parameter (Huber's δ; 0 for the others).
    pub fn param(self) -> f64 {
        match self {
            Loss::Huber { delta } => delta,
            _ => 0.0,
        }
    }

    /// The inverse of [`Loss::code`] and [`Loss::param`].
    pub fn from_code(code: u32, param: f64) -> Option<Loss> {
        Some(match code {
            0 => Loss::Mse,
            1 => Loss::Mae,
            2 => Loss::Huber { delta: param },
            3 => Loss::Bce,
            4 => Loss::SoftmaxCe,
            _ => return None,
        })
    }

    /// The number of predictions a batch of `rows × cols` outputs is scored on: one per element
    /// for `bce` (each output is its own yes/no question), one per row otherwise.
    pub fn predictions(self, rows: usize, cols: usize) -> usize {
        if self == Loss::Bce { rows * cols } else { rows }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loss::Mse => f.write_str("mse"),
            Loss::Mae => f.write_str("mae"),
            Loss::Huber { delta } => write!(f, "huber:{delta}"),
            Loss::Bce => f.write_str("bce"),
            Loss::SoftmaxCe => f.write_str("softmax-ce"),
        }
    }
}

impl FromStr for Loss {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid("loss", format!("`{s}`; accepted: {LOSS_NAMES}"));
        let (name, param) = match s.split_once(':') {
            Some((n, p)) => (n, Some(p.parse::<f64>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let plain = |loss: Loss| {
            if param.is_some() { Err(bad()) } else { Ok(loss) }
        };
        match name.to_ascii_lowercase().as_str() {
            "mse" => plain(Loss::Mse),
            "mae" | "l1" => plain(Loss::Mae),
            "huber" => {
                let delta = param.unwrap_or(1.0);
                if delta.is_finite() && delta > 0.0 { Ok(Loss::Huber { delta }) } else { Err(bad()) }
            }
            "bce" => plain(Loss::Bce),
            "softmax-ce" | "ce" | "cross-entropy" => plain(Loss::SoftmaxCe),
            _ => Err(bad()),
        }
    }
}

crate::serde_via_str!(Loss);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for loss in [Loss::Mse, Loss::Mae, Loss::Huber { delta: 0.5 }, Loss::Bce, Loss::SoftmaxCe] {
            assert_eq!(loss.to_string().parse::<Loss>().unwrap(), loss);
            assert_eq!(Loss::from_code(loss.code(), loss.param()), Some(loss));
        }
        let err = "hinge".parse::<Loss>().unwrap_err().to_string();
        assert!(err.contains("hinge") && err.contains("softmax-ce"), "{err}");
        assert!("huber:-1".parse::<Loss>().is_err());
    }
}
