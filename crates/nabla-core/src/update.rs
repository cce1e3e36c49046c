//! Element-wise parameter update rules: one fused backend op per parameter tensor.
//!
//! Each rule maps a parameter `w`, its gradient `g = ∂C/∂w` and the rule's state to a new `w`.
//! Before the rule runs, coupled L2 regularisation adds `λ₂ w` to the gradient, and decoupled
//! weight decay (AdamW's) shrinks the parameter: `w ← w − η λ w`.

use serde::{Deserialize, Serialize};

/// The element-wise part of an optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Rule {
    /// `w ← w − η g`.
    Sgd,
    /// `v ← μ v + g`, then `w ← w − η v` or, with Nesterov, `w ← w − η (g + μ v)`.
    Momentum {
        /// The momentum μ.
        mu: f64,
        /// Nesterov's look-ahead form.
        nesterov: bool,
    },
    /// `s ← s + g²`, `w ← w − η g / (√s + ε)`.
    Adagrad {
        /// ε in the denominator.
        eps: f64,
    },
    /// `s ← ρ s + (1 − ρ) g²`, `w ← w − η g / (√s + ε)`.
    RmsProp {
        /// The decay ρ of the squared-gradient average.
        rho: f64,
        /// ε in the denominator.
        eps: f64,
    },
    /// `m ← β₁ m + (1 − β₁) g`, `v ← β₂ v + (1 − β₂) g²`,
    /// `w ← w − η m̂ / (√v̂ + ε)` with `m̂ = m/(1 − β₁ᵗ)`, `v̂ = v/(1 − β₂ᵗ)`.
    Adam {
        /// Decay of the first moment.
        beta1: f64,
        /// Decay of the second moment.
        beta2: f64,
        /// ε in the denominator.
        eps: f64,
    },
    /// iRPROP− (full batch): each weight has its own step Δ (state 1) and remembers its last
    /// gradient (state 0). When the gradient keeps its sign Δ grows by η⁺ (up to Δmax) and
    /// `w ← w − sign(g) Δ`; when it flips Δ shrinks by η⁻ (down to Δmin), the step is skipped and
    /// the remembered gradient is zeroed. The learning rate η is the initial Δ.
    Rprop {
        /// The step's shrink factor η⁻ when the gradient flips sign.
        eta_minus: f64,
        /// The step's growth factor η⁺ when it keeps its sign.
        eta_plus: f64,
        /// The smallest step Δmin.
        step_min: f64,
        /// The largest step Δmax.
        step_max: f64,
    },
}

impl Rule {
    /// Every rule, once per code (momentum plain and Nesterov), with typical hyper-parameters.
    pub const ALL: [Rule; 7] = [
        Rule::Sgd,
        Rule::Momentum { mu: 0.9, nesterov: false },
        Rule::Momentum { mu: 0.9, nesterov: true },
        Rule::Adagrad { eps: 1e-10 },
        Rule::RmsProp { rho: 0.99, eps: 1e-8 },
        Rule::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
        Rule::Rprop { eta_minus: 0.5, eta_plus: 1.2, step_min: 1e-6, step_max: 50.0 },
    ];

    /// How many state tensors (each the size of the parameter) the rule keeps.
    pub fn state_count(self) -> usize {
        match self {
            Rule::Sgd => 0,
            Rule::Momentum { .. } | Rule::Adagrad { .. } | Rule::RmsProp { .. } => 1,
            Rule::Adam { .. } | Rule::Rprop { .. } => 2,
        }
    }

    /// The initial value of state tensor `i` (`η` for RPROP's step sizes, else 0).
    pub fn initial_state(self, i: usize, lr: f64) -> f64 {
        match self {
            Rule::Rprop { .. } if i == 1 => lr,
            _ => 0.0,
        }
    }

    /// A stable integer code, used by the plugin ABI and the CUDA kernels.
    pub fn code(self) -> u32 {
        match self {
            Rule::Sgd => 0,
            Rule::Momentum { nesterov: false, .. } => 1,
            Rule::Momentum { nesterov: true, .. } => 2,
            Rule::Adagrad { .. } => 3,
            Rule::RmsProp { .. } => 4,
            Rule::Adam { .. } => 5,
            Rule::Rprop { .. } => 6,
        }
    }

    /// The code's name in C and CUDA: `NABLA_RULE_{name}` in the C header, `RULE_{name}` in
    /// kernels.cu, defined as [`Rule::code`].
    pub fn code_name(self) -> &'static str {
        match self {
            Rule::Sgd => "SGD",
            Rule::Momentum { nesterov: false, .. } => "MOMENTUM",
            Rule::Momentum { nesterov: true, .. } => "NESTEROV",
            Rule::Adagrad { .. } => "ADAGRAD",
            Rule::RmsProp { .. } => "RMSPROP",
            Rule::Adam { .. } => "ADAM",
            Rule::Rprop { .. } => "RPROP",
        }
    }

    /// The rule's hyper-parameters, in the order of the plugin ABI's `p[4]`.
    pub fn params(self) -> [f64; 4] {
        match self {
            Rule::Sgd => [0.0; 4],
            Rule::Momentum { mu, .. } => [mu, 0.0, 0.0, 0.0],
            Rule::Adagrad { eps } => [eps, 0.0, 0.0, 0.0],
            Rule::RmsProp { rho, eps } => [rho, eps, 0.0, 0.0],
            Rule::Adam { beta1, beta2, eps } => [beta1, beta2, eps, 0.0],
            Rule::Rprop { eta_minus, eta_plus, step_min, step_max } => [eta_minus, eta_plus, step_min, step_max],
        }
    }

    /// The names of [`Rule::params`]'s entries that the rule uses, in order.
    pub fn param_names(self) -> &'static [&'static str] {
        match self {
            Rule::Sgd => &[],
            Rule::Momentum { .. } => &["mu"],
            Rule::Adagrad { .. } => &["eps"],
            Rule::RmsProp { .. } => &["rho", "eps"],
            Rule::Adam { .. } => &["beta1", "beta2", "eps"],
            Rule::Rprop { .. } => &["eta_minus", "eta_plus", "step_min", "step_max"],
        }
    }

    /// The inverse of [`Rule::code`] and [`Rule::params`].
    pub fn from_code(code: u32, p: [f64; 4]) -> Option<Rule> {
        Some(match code {
            0 => Rule::Sgd,
            1 | 2 => Rule::Momentum { mu: p[0], nesterov: code == 2 },
            3 => Rule::Adagrad { eps: p[0] },
            4 => Rule::RmsProp { rho: p[0], eps: p[1] },
            5 => Rule::Adam { beta1: p[0], beta2: p[1], eps: p[2] },
            6 => Rule::Rprop { eta_minus: p[0], eta_plus: p[1], step_min: p[2], step_max: p[3] },
            _ => return None,
        })
    }
}

/// One update of one parameter tensor: the rule plus this step's learning rate, step count and
/// regularisation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Update {
    /// The element-wise rule.
    pub rule: Rule,
    /// The learning rate η at this step (after the schedule).
    pub lr: f64,
    /// The 1-based number of this step, for Adam's bias correction.
    pub t: u64,
    /// Coupled L2 coefficient λ₂: `g ← g + λ₂ w`.
    pub l2: f64,
    /// Decoupled weight decay λ: `w ← w − η λ w`.
    pub decay: f64,
}

impl Update {
    /// Adam's bias corrections `(1 − β₁ᵗ, 1 − β₂ᵗ)`, computed once per step in `f64`.
    pub fn adam_corrections(&self) -> (f64, f64) {
        match self.rule {
            Rule::Adam { beta1, beta2, .. } => {
                let t = i32::try_from(self.t).unwrap_or(i32::MAX);
                (1.0 - beta1.powi(t), 1.0 - beta2.powi(t))
            }
            _ => (1.0, 1.0),
        }
    }
}
