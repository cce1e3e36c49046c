//! Activation functions σ and their derivatives σ'.
//!
//! Every function here is element-wise except [`Activation::Softmax`], which acts on one row
//! (one sample) at a time: `a_j = exp(z_j − max z) / Σ_k exp(z_k − max z)`.

use std::fmt;
use std::str::FromStr;

use crate::element::Element;
use crate::error::{Error, Result};

/// √(2/π), the constant of the tanh form of GELU.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
/// The cubic coefficient of the tanh form of GELU.
const GELU_CUBIC: f64 = 0.044_715;
/// 1/√(2π), the normal density's constant.
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// The standard normal CDF `Φ(z) = ½ (1 + erf(z/√2))`, computed in f64 (`libm`'s erf).
#[inline(always)]
fn normal_cdf<E: Element>(z: E) -> E {
    E::of(0.5 * (1.0 + libm::erf(z.f64() * std::f64::consts::FRAC_1_SQRT_2)))
}

/// An activation function σ, applied as `a = σ(z)`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Activation {
    /// `σ(z) = z`.
    Identity,
    /// `σ(z) = 1 / (1 + e^−z)`, `σ' = a(1 − a)`.
    Sigmoid,
    /// `σ(z) = tanh z`, `σ' = 1 − a²`.
    Tanh,
    /// `σ(z) = max(z, 0)`, `σ' = [z > 0]`.
    Relu,
    /// `σ(z) = z` for `z > 0`, else `αz`; `σ' = 1` or `α`.
    LeakyRelu {
        /// The slope α for negative inputs.
        alpha: f64,
    },
    /// `σ(z) = z` for `z > 0`, else `α(e^z − 1)`; `σ' = 1` or `α e^z`.
    Elu {
        /// The scale α of the negative part.
        alpha: f64,
    },
    /// GELU in its tanh form, `gelu` (alias `gelu-tanh`; PyTorch's `GELU(approximate="tanh")`):
    /// `σ(z) = ½ z (1 + tanh(√(2/π)(z + 0.044715 z³)))`.
    Gelu,
    /// `σ(z) = ln(1 + e^z)`, `σ' = 1 / (1 + e^−z)`.
    Softplus,
    /// `σ(z) = z / (1 + |z|)`, `σ' = 1 / (1 + |z|)²`.
    Softsign,
    /// Row-wise softmax; its derivative is the Jacobian–vector product
    /// `δ_j = a_j (g_j − Σ_k g_k a_k)`.
    Softmax,
    /// The exact GELU, `gelu-erf` (PyTorch's default `GELU()`): `σ(z) = z Φ(z)` with the normal
    /// CDF `Φ(z) = ½ (1 + erf(z/√2))`; `σ' = Φ(z) + z φ(z)`, `φ(z) = e^(−z²/2)/√(2π)`.
    GeluErf,
    /// SiLU (swish), `silu`: `σ(z) = z · s(z)` with the logistic `s(z) = 1 / (1 + e^−z)`;
    /// `σ' = s(z) (1 + z (1 − s(z)))`.
    Silu,
    /// Mish, `mish` (PyTorch's `nn.Mish`): `σ(z) = z · tanh(softplus(z))`;
    /// `σ' = t + z (1 − t²) s(z)` with `t = tanh(softplus(z))` and the logistic `s`.
    Mish,
}

/// The names accepted on the command line and in files, for error messages.
pub const ACTIVATION_NAMES: &str = "identity, sigmoid, tanh, relu, leaky-relu[:ALPHA], elu[:ALPHA], gelu (tanh form), gelu-erf (exact), silu, \
     mish, softplus, softsign, softmax";

impl Activation {
    /// Every activation, once each (leaky ReLU and ELU with a non-default α, so that a backend
    /// that ignores α is seen): the list tests, the conformance kit and the generated C and CUDA
    /// code definitions iterate over.
    pub const ALL: [Activation; 13] = [
        Activation::Identity,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Relu,
        Activation::LeakyRelu { alpha: 0.1 },
        Activation::Elu { alpha: 0.7 },
        Activation::Gelu,
        Activation::Softplus,
        Activation::Softsign,
        Activation::Softmax,
        Activation::GeluErf,
        Activation::Silu,
        Activation::Mish,
    ];

    /// `σ(z)` for an element-wise activation. Softmax is row-wise and is computed by
    /// [`softmax_row`]; here it returns `z` unchanged.
    #[inline(always)]
    pub fn apply<E: Element>(self, z: E) -> E {
        let one = E::one();
        match self {
            Activation::Identity | Activation::Softmax => z,
            Activation::Sigmoid => sigmoid(z),
            Activation::Tanh => z.tanh(),
            // `z < 0` rather than `max`, so that NaN stays NaN.
            Activation::Relu => {
                if z < E::zero() {
                    E::zero()
                } else {
                    z
                }
            }
            Activation::LeakyRelu { alpha } => {
                if z < E::zero() {
                    E::of(alpha) * z
                } else {
                    z
                }
            }
            Activation::Elu { alpha } => {
                if z < E::zero() {
                    E::of(alpha) * z.exp_m1()
                } else {
                    z
                }
            }
            Activation::Gelu => {
                let inner = E::of(SQRT_2_OVER_PI) * (z + E::of(GELU_CUBIC) * z * z * z);
                E::of(0.5) * z * (one + inner.tanh())
            }
            Activation::Softplus => softplus(z),
            Activation::Softsign => z / (one + z.abs()),
            Activation::GeluErf => z * normal_cdf(z),
            Activation::Silu => z * sigmoid(z),
            Activation::Mish => z * softplus(z).tanh(),
        }
    }

    /// `σ'(z)`, given `z` and `a = σ(z)` (each function uses whichever is exact and cheap).
    /// Not defined for softmax, whose derivative is not element-wise (see [`softmax_row_grad`]).
    #[inline(always)]
    pub fn derivative<E: Element>(self, z: E, a: E) -> E {
        let one = E::one();
        match self {
            Activation::Identity | Activation::Softmax => one,
            Activation::Sigmoid => a * (one - a),
            Activation::Tanh => one - a * a,
            Activation::Relu => {
                if z > E::zero() {
                    one
                } else {
                    E::zero()
                }
            }
            Activation::LeakyRelu { alpha } => {
                if z > E::zero() {
                    one
                } else {
                    E::of(alpha)
                }
            }
            Activation::Elu { alpha } => {
                if z > E::zero() {
                    one
                } else {
                    E::of(alpha) * z.exp()
                }
            }
            Activation::Gelu => {
                let c = E::of(SQRT_2_OVER_PI);
                let k = E::of(GELU_CUBIC);
                let t = (c * (z + k * z * z * z)).tanh();
                let half = E::of(0.5);
                half * (one + t) + half * z * (one - t * t) * c * (one + E::of(3.0) * k * z * z)
            }
            Activation::Softplus => sigmoid(z),
            Activation::Softsign => {
                let d = one + z.abs();
                one / (d * d)
            }
            Activation::GeluErf => normal_cdf(z) + z * E::of(FRAC_1_SQRT_2PI) * (E::of(-0.5) * z * z).exp(),
            Activation::Silu => {
                let s = sigmoid(z);
                s * (one + z * (one - s))
            }
            Activation::Mish => {
                let t = softplus(z).tanh();
                t + z * (one - t * t) * sigmoid(z)
            }
        }
    }

    /// Whether σ acts on whole rows (softmax) rather than element by element.
    pub fn is_row_wise(self) -> bool {
        matches!(self, Activation::Softmax)
    }

    /// The recommended initialisation gain family: He for the ReLU family, Xavier otherwise.
    pub fn prefers_he_init(self) -> bool {
        matches!(
            self,
            Activation::Relu
                | Activation::LeakyRelu { .. }
                | Activation::Elu { .. }
                | Activation::Gelu
                | Activation::Mish
        )
    }

    /// A stable integer code, used by the plugin ABI and the CUDA kernels.
    pub fn code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Sigmoid => 1,
            Activation::Tanh => 2,
            Activation::Relu => 3,
            Activation::LeakyRelu { .. } => 4,
            Activation::Elu { .. } => 5,
            Activation::Gelu => 6,
            Activation::Softplus => 7,
            Activation::Softsign => 8,
            Activation::Softmax => 9,
            Activation::GeluErf => 10,
            Activation::Silu => 11,
            Activation::Mish => 12,
        }
    }

    /// The code's name in C and CUDA: the C header defines `NABLA_ACT_{name}` and kernels.cu
    /// `ACT_{name}` as [`Activation::code`] (tests check both files against this).
    pub fn code_name(self) -> &'static str {
        match self {
            Activation::Identity => "IDENTITY",
            Activation::Sigmoid => "SIGMOID",
            Activation::Tanh => "TANH",
            Activation::Relu => "RELU",
            Activation::LeakyRelu { .. } => "LEAKY_RELU",
            Activation::Elu { .. } => "ELU",
            Activation::Gelu => "GELU",
            Activation::Softplus => "SOFTPLUS",
            Activation::Softsign => "SOFTSIGN",
            Activation::Softmax => "SOFTMAX",
            Activation::GeluErf => "GELU_ERF",
            Activation::Silu => "SILU",
            Activation::Mish => "MISH",
        }
    }

    /// The parameter α of leaky ReLU and ELU (0 for the others).
    pub fn alpha(self) -> f64 {
        match self {
            Activation::LeakyRelu { alpha } | Activation::Elu { alpha } => alpha,
            _ => 0.0,
        }
    }

    /// The inverse of [`Activation::code`] and [`Activation::alpha`].
    pub fn from_code(code: u32, alpha: f64) -> Option<Activation> {
        Some(match code {
            0 => Activation::Identity,
            1 => Activation::Sigmoid,
            2 => Activation::Tanh,
            3 => Activation::Relu,
            4 => Activation::LeakyRelu { alpha },
            5 => Activation::Elu { alpha },
            6 => Activation::Gelu,
            7 => Activation::Softplus,
            8 => Activation::Softsign,
            9 => Activation::Softmax,
            10 => Activation::GeluErf,
            11 => Activation::Silu,
            12 => Activation::Mish,
            _ => return None,
        })
    }
}

/// The logistic function, computed without overflow for either sign of `z`.
#[inline(always)]
pub fn sigmoid<E: Element>(z: E) -> E {
    let one = E::one();
    if z >= E::zero() {
        one / (one + (-z).exp())
    } else {
        let e = z.exp();
        e / (one + e)
    }
}

/// `ln(1 + e^z)`, computed without overflow as `max(z, 0) + ln(1 + e^−|z|)`.
#[inline(always)]
fn softplus<E: Element>(z: E) -> E {
    z.max(E::zero()) + (-z.abs()).exp().ln_1p()
}

/// `a = softmax(z)` for one row, shifted by the row maximum so that no exponent overflows.
pub fn softmax_row<E: Element>(z: &[E], a: &mut [E]) {
    let max = z.iter().copied().fold(E::neg_infinity(), E::max);
    let mut sum = E::zero();
    for (a, &z) in a.iter_mut().zip(z) {
        *a = (z - max).exp();
        sum = sum + *a;
    }
    let inv = E::one() / sum;
    a.iter_mut().for_each(|a| *a = *a * inv);
}

/// `δ ← a ⊙ (δ − (δ·a))` for one row: the softmax Jacobian `diag(a) − a aᵀ` applied to `δ`.
pub fn softmax_row_grad<E: Element>(a: &[E], delta: &mut [E]) {
    let dot: E = a.iter().zip(delta.iter()).map(|(&a, &d)| a * d).sum();
    delta.iter_mut().zip(a).for_each(|(d, &a)| *d = a * (*d - dot));
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activation::Identity => f.write_str("identity"),
            Activation::Sigmoid => f.write_str("sigmoid"),
            Activation::Tanh => f.write_str("tanh"),
            Activation::Relu => f.write_str("relu"),
            Activation::LeakyRelu { alpha } => write!(f, "leaky-relu:{alpha}"),
            Activation::Elu { alpha } => write!(f, "elu:{alpha}"),
            Activation::Gelu => f.write_str("gelu"),
            Activation::Softplus => f.write_str("softplus"),
            Activation::Softsign => f.write_str("softsign"),
            Activation::Softmax => f.write_str("softmax"),
            Activation::GeluErf => f.write_str("gelu-erf"),
            Activation::Silu => f.write_str("silu"),
            Activation::Mish => f.write_str("mish"),
        }
    }
}

impl FromStr for Activation {
    type Err = Error;

    /// Parses `relu`, `leaky-relu`, `leaky-relu:0.2`, `elu:1.0`, ….
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid("activation", format!("`{s}`; accepted: {ACTIVATION_NAMES}"));
        let (name, param) = match s.split_once(':') {
            Some((n, p)) => (n, Some(p.parse::<f64>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let alpha = |default: f64| -> Result<f64> {
            let a = param.unwrap_or(default);
            if a.is_finite() { Ok(a) } else { Err(bad()) }
        };
        let plain = |act: Activation| if param.is_some() { Err(bad()) } else { Ok(act) };
        match name.to_ascii_lowercase().as_str() {
            "identity" | "linear" => plain(Activation::Identity),
            "sigmoid" | "logistic" => plain(Activation::Sigmoid),
            "tanh" => plain(Activation::Tanh),
            "relu" => plain(Activation::Relu),
            "leaky-relu" | "leaky_relu" | "leakyrelu" => Ok(Activation::LeakyRelu { alpha: alpha(0.01)? }),
            "elu" => Ok(Activation::Elu { alpha: alpha(1.0)? }),
            "gelu" | "gelu-tanh" | "gelu_tanh" => plain(Activation::Gelu),
            "gelu-erf" | "gelu_erf" | "gelu-exact" => plain(Activation::GeluErf),
            "silu" | "swish" => plain(Activation::Silu),
            "mish" => plain(Activation::Mish),
            "softplus" => plain(Activation::Softplus),
            "softsign" => plain(Activation::Softsign),
            "softmax" => plain(Activation::Softmax),
            _ => Err(bad()),
        }
    }
}

crate::serde_via_str!(Activation);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivative_matches_central_difference() {
        for act in Activation::ALL.into_iter().filter(|a| !a.is_row_wise()) {
            for &z in &[-3.1_f64, -0.7, 0.2, 1.3, 4.0] {
                let h = 1e-6;
                let numeric = (act.apply(z + h) - act.apply(z - h)) / (2.0 * h);
                let analytic = act.derivative(z, act.apply(z));
                assert!((numeric - analytic).abs() < 1e-8, "{act} at {z}: {numeric} vs {analytic}");
            }
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(Activation::Sigmoid.apply(0.0_f64), 0.5);
        assert_eq!(Activation::Relu.apply(-2.0_f64), 0.0);
        assert_eq!(Activation::LeakyRelu { alpha: 0.1 }.apply(-2.0_f64), -0.2);
        assert!((Activation::Softplus.apply(0.0_f64) - 2f64.ln()).abs() < 1e-15);
        assert_eq!(Activation::Sigmoid.apply(-1000.0_f64), 0.0);
        assert_eq!(Activation::Sigmoid.apply(1000.0_f32), 1.0);
        assert!((Activation::Gelu.apply(1.0_f64) - 0.841_191_990_608_276_8).abs() < 1e-12);
        // z · ½(1 + erf(z/√2)) by Python's math.erf (what torch.nn.functional.gelu computes).
        for (z, want) in
            [(1.0_f64, 0.841_344_746_068_542_9), (-0.5, -0.154_268_769_362_993_44), (3.0, 2.995_950_305_905_11)]
        {
            assert!((Activation::GeluErf.apply(z) - want).abs() < 1e-15, "gelu-erf({z})");
        }
        assert_eq!("gelu-tanh".parse::<Activation>().unwrap(), Activation::Gelu);
        // torch.nn.functional.silu(torch.tensor(1.5, dtype=torch.float64)) = 1.5 / (1 + e^−1.5).
        assert!((Activation::Silu.apply(1.5_f64) - 1.5 / (1.0 + (-1.5f64).exp())).abs() < 1e-16);
        // torch.nn.functional.mish(torch.tensor([1.0, -2.0], dtype=torch.float64)).
        assert!((Activation::Mish.apply(1.0_f64) - 0.865_098_388_267_310_3).abs() < 1e-15);
        assert!((Activation::Mish.apply(-2.0_f64) + 0.252_501_482_695_708_9).abs() < 1e-15);
    }

    #[test]
    fn softmax_is_stable_and_sums_to_one() {
        let z = [1000.0_f64, 1001.0, 999.0];
        let mut a = [0.0; 3];
        softmax_row(&z, &mut a);
        assert!((a.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert!((a[1] - 0.665_240_955_774_821_2).abs() < 1e-12);
    }

    #[test]
    fn names_round_trip_and_reject_unknown() {
        for act in Activation::ALL {
            assert_eq!(act.to_string().parse::<Activation>().unwrap(), act);
            assert_eq!(Activation::from_code(act.code(), act.alpha()), Some(act));
        }
        assert_eq!("leaky-relu".parse::<Activation>().unwrap(), Activation::LeakyRelu { alpha: 0.01 });
        let err = "no-such-activation".parse::<Activation>().unwrap_err().to_string();
        assert!(err.contains("no-such-activation") && err.contains("leaky-relu"), "{err}");
        assert_eq!("swish".parse::<Activation>().unwrap(), Activation::Silu);
        assert!("relu:2".parse::<Activation>().is_err());
        assert!("elu:nan".parse::<Activation>().is_err());
    }
}
