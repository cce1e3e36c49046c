//! Optimizers: a configuration (rule + hyper-parameters) and the per-tensor state it keeps on
//! the backend. The element-wise arithmetic is the backend's [`crate::Backend::update`] op.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::update::{Rule, Update};

/// An optimizer's settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// The element-wise rule and its own hyper-parameters.
    pub rule: Rule,
    /// The base learning rate η (a schedule scales it per epoch).
    pub lr: f64,
    /// Coupled L2 penalty λ₂ on weights (not biases): adds `λ₂ Σ w²/2` to the cost.
    pub l2: f64,
    /// Decoupled weight decay λ on weights (not biases): `w ← w − η λ w`.
    pub decay: f64,
}

/// The optimizer names accepted on the command line and in files.
pub const OPTIMIZER_NAMES: &str = "sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw, rprop";

impl OptimizerConfig {
    /// The optimizer called `name` with its customary defaults and learning rate `lr`:
    /// momentum μ = 0.9; Adagrad ε = 1e-10; RMSprop ρ = 0.99, ε = 1e-8; Adam β = (0.9, 0.999),
    /// ε = 1e-8; AdamW the same with decay 0.01; RPROP η⁻ = 0.5, η⁺ = 1.2, Δ ∈ [1e-6, 50].
    pub fn named(name: &str, lr: f64) -> Result<OptimizerConfig> {
        let adam = Rule::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 };
        let (rule, decay) = match name.to_ascii_lowercase().as_str() {
            "sgd" => (Rule::Sgd, 0.0),
            "momentum" => (Rule::Momentum { mu: 0.9, nesterov: false }, 0.0),
            "nesterov" => (Rule::Momentum { mu: 0.9, nesterov: true }, 0.0),
            "adagrad" => (Rule::Adagrad { eps: 1e-10 }, 0.0),
            "rmsprop" => (Rule::RmsProp { rho: 0.99, eps: 1e-8 }, 0.0),
            "adam" => (adam, 0.0),
            "adamw" => (adam, 0.01),
            "rprop" => (Rule::Rprop { eta_minus: 0.5, eta_plus: 1.2, step_min: 1e-6, step_max: 50.0 }, 0.0),
            _ => {
                return Err(Error::invalid("optimizer", format!("`{name}`; accepted: {OPTIMIZER_NAMES}")));
            }
        };
        let config = OptimizerConfig { rule, lr, l2: 0.0, decay };
        config.validate()?;
        Ok(config)
    }

    /// The conventional name of this configuration.
    pub fn name(&self) -> &'static str {
        match self.rule {
            Rule::Sgd => "sgd",
            Rule::Momentum { nesterov: false, .. } => "momentum",
            Rule::Momentum { nesterov: true, .. } => "nesterov",
            Rule::Adagrad { .. } => "adagrad",
            Rule::RmsProp { .. } => "rmsprop",
            Rule::Adam { .. } if self.decay > 0.0 => "adamw",
            Rule::Adam { .. } => "adam",
            Rule::Rprop { .. } => "rprop",
        }
    }

    /// Checks every hyper-parameter, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        let finite_nonneg = |what: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::invalid(what, format!("{v}; it must be a finite number ≥ 0")))
            }
        };
        let unit = |what: &str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::invalid(what, format!("{v}; it must be in [0, 1)")))
            }
        };
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid("learning rate", format!("{}; it must be a finite number > 0", self.lr)));
        }
        finite_nonneg("l2", self.l2)?;
        finite_nonneg("weight decay", self.decay)?;
        match self.rule {
            Rule::Sgd => Ok(()),
            Rule::Momentum { mu, .. } => unit("momentum", mu),
            Rule::Adagrad { eps } => finite_nonneg("epsilon", eps),
            Rule::RmsProp { rho, eps } => unit("rho", rho).and(finite_nonneg("epsilon", eps)),
            Rule::Adam { beta1, beta2, eps } => {
                unit("beta1", beta1).and(unit("beta2", beta2)).and(finite_nonneg("epsilon", eps))
            }
            Rule::Rprop { eta_minus, eta_plus, step_min, step_max } => {
                if !(0.0 < eta_minus && eta_minus < 1.0 && eta_plus > 1.0 && eta_plus.is_finite()) {
                    return Err(Error::invalid("rprop factors", "need 0 < η⁻ < 1 < η⁺"));
                }
                if !(0.0 <= step_min && step_min <= step_max && step_max.is_finite()) {
                    return Err(Error::invalid("rprop step bounds", "need 0 ≤ Δmin ≤ Δmax"));
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for OptimizerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (lr {})", self.name(), self.lr)
    }
}

impl FromStr for OptimizerConfig {
    type Err = Error;

    /// Parses a name with the default learning rate 0.01.
    fn from_str(s: &str) -> Result<Self> {
        OptimizerConfig::named(s, 0.01)
    }
}

/// Which kind of parameter tensor an update is for: regularisation applies to weights only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// A weight matrix (regularised).
    Weight,
    /// A bias vector (not regularised).
    Bias,
}

/// An optimizer in use: its settings, the current learning rate, the step count and, for each
/// parameter tensor (`W¹, b¹, W², b², …`), the state buffers its rule keeps on the backend.
pub struct Optimizer<Buf> {
    pub(crate) config: OptimizerConfig,
    pub(crate) lr: f64,
    pub(crate) t: u64,
    pub(crate) state: Vec<Vec<Buf>>,
}

impl<Buf> Optimizer<Buf> {
    /// The settings.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The learning rate the next step will use.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Sets the learning rate of the next steps (what a schedule does).
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// The number of steps taken.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// Overwrites the step count (when resuming from a checkpoint).
    pub fn set_steps(&mut self, t: u64) {
        self.t = t;
    }

    /// Counts one more step (Adam's `t`), refusing to wrap.
    pub(crate) fn advance(&mut self) -> Result<()> {
        self.t = self.t.checked_add(1).ok_or_else(|| {
            Error::invalid("optimizer steps", "the step counter is at its maximum (a crafted checkpoint?)")
        })?;
        Ok(())
    }

    /// The state buffers of every tensor (for checkpoints).
    pub fn state(&self) -> &[Vec<Buf>] {
        &self.state
    }

    /// The state buffers of every tensor, mutably (for restoring checkpoints).
    pub fn state_mut(&mut self) -> &mut [Vec<Buf>] {
        &mut self.state
    }

    /// The learning rate when the rule is plain SGD without regularisation (whose update the
    /// driver can fold into the weight-gradient GEMM), else `None`.
    pub fn plain_sgd(&self) -> Option<f64> {
        (self.config.rule == Rule::Sgd && self.config.l2 == 0.0 && self.config.decay == 0.0).then_some(self.lr)
    }

    /// The update of step `t` for a tensor of kind `param`.
    pub(crate) fn update_for(&self, param: Param) -> Update {
        let (l2, decay) = match param {
            Param::Weight => (self.config.l2, self.config.decay),
            Param::Bias => (0.0, 0.0),
        };
        Update { rule: self.config.rule, lr: self.lr, t: self.t, l2, decay }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_validation() {
        for name in OPTIMIZER_NAMES.split(", ") {
            assert_eq!(OptimizerConfig::named(name, 0.1).unwrap().name(), name);
        }
        assert!(OptimizerConfig::named("lion", 0.1).unwrap_err().to_string().contains("adamw"));
        for lr in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = OptimizerConfig::named("sgd", lr).unwrap_err().to_string();
            assert!(e.contains("learning rate"), "{e}");
        }
    }
}
