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
    /// `rule` at learning rate `lr`, without regularisation.
    pub fn new(rule: Rule, lr: f64) -> OptimizerConfig {
        OptimizerConfig { rule, lr, l2: 0.0, decay: 0.0 }
    }

    /// Plain SGD: `w ← w − η g`.
    pub fn sgd(lr: f64) -> OptimizerConfig {
        OptimizerConfig::new(Rule::Sgd, lr)
    }

    /// Momentum with μ = 0.9.
    pub fn momentum(lr: f64) -> OptimizerConfig {
        OptimizerConfig::new(Rule::Momentum { mu: 0.9, nesterov: false }, lr)
    }

    /// Nesterov momentum with μ = 0.9.
    pub fn nesterov(lr: f64) -> OptimizerConfig {
        OptimizerConfig::new(Rule::Momentum { mu: 0.9, nesterov: true }, lr)
    }

    /// Adagrad with ε = 1e-10.
    pub fn adagrad(lr: f64) -> OptimizerConfig {
        OptimizerConfig::new(Rule::Adagrad { eps: 1e-10 }, lr)
    }

    /// RMSprop with ρ = 0.99, ε = 1e-8.
    pub fn rmsprop(lr: f64) -> OptimizerConfig {
        OptimizerConfig::new(Rule::RmsProp { rho: 0.99, eps: 1e-8 }, lr)
    }

    /// Adam with β = (0.9, 0.999), ε = 1e-8.
    pub fn adam(lr: f64) -> OptimizerConfig {
        OptimizerConfig::new(Rule::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 }, lr)
    }

    /// AdamW: Adam with decoupled weight decay 0.01.
    pub fn adamw(lr: f64) -> OptimizerConfig {
        OptimizerConfig::adam(lr).with_decay(0.01)
    }

    /// iRPROP− with η⁻ = 0.5, η⁺ = 1.2, Δ ∈ [1e-6, 50] and initial step `lr` (full batch only).
    pub fn rprop(lr: f64) -> OptimizerConfig {
        OptimizerConfig::new(Rule::Rprop { eta_minus: 0.5, eta_plus: 1.2, step_min: 1e-6, step_max: 50.0 }, lr)
    }

    /// With coupled L2 regularisation λ₂ on the weights (`g ← g + λ₂ w`).
    pub fn with_l2(self, l2: f64) -> OptimizerConfig {
        OptimizerConfig { l2, ..self }
    }

    /// With decoupled weight decay λ on the weights (`w ← w − η λ w`).
    pub fn with_decay(self, decay: f64) -> OptimizerConfig {
        OptimizerConfig { decay, ..self }
    }

    /// The optimizer called `name` ([`OPTIMIZER_NAMES`]) with its customary defaults (those of
    /// the constructors above) and learning rate `lr`, checked.
    pub fn named(name: &str, lr: f64) -> Result<OptimizerConfig> {
        let make: fn(f64) -> OptimizerConfig = match name.to_ascii_lowercase().as_str() {
            "sgd" => OptimizerConfig::sgd,
            "momentum" => OptimizerConfig::momentum,
            "nesterov" => OptimizerConfig::nesterov,
            "adagrad" => OptimizerConfig::adagrad,
            "rmsprop" => OptimizerConfig::rmsprop,
            "adam" => OptimizerConfig::adam,
            "adamw" => OptimizerConfig::adamw,
            "rprop" => OptimizerConfig::rprop,
            _ => {
                return Err(Error::invalid("optimizer", format!("`{name}`; accepted: {OPTIMIZER_NAMES}")));
            }
        };
        let config = make(lr);
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

    /// Parses `NAME` or `NAME:LR` (e.g. `adam:0.001`); the learning rate defaults to 0.01.
    fn from_str(s: &str) -> Result<Self> {
        match s.split_once(':') {
            Some((name, lr)) => {
                let lr = lr.parse::<f64>().map_err(|_| {
                    Error::invalid(
                        "optimizer",
                        format!("`{s}`: `{lr}` is not a learning rate (NAME:LR, e.g. adam:0.001)"),
                    )
                })?;
                OptimizerConfig::named(name, lr)
            }
            None => OptimizerConfig::named(s, 0.01),
        }
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

impl<Buf> fmt::Debug for Optimizer<Buf> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Optimizer").field("config", &self.config).field("lr", &self.lr).field("t", &self.t).finish()
    }
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

    /// The typed constructors are what the names give; `NAME:LR` parses.
    #[test]
    fn typed_constructors_and_from_str() {
        assert_eq!(OptimizerConfig::named("adamw", 0.3).unwrap(), OptimizerConfig::adamw(0.3));
        assert_eq!(OptimizerConfig::adamw(0.3).decay, 0.01);
        assert_eq!(OptimizerConfig::nesterov(0.1).rule, Rule::Momentum { mu: 0.9, nesterov: true });
        assert_eq!(OptimizerConfig::sgd(0.1).with_l2(0.5).l2, 0.5);
        assert_eq!("adam:0.002".parse::<OptimizerConfig>().unwrap(), OptimizerConfig::adam(0.002));
        assert_eq!("rmsprop".parse::<OptimizerConfig>().unwrap().lr, 0.01);
        let e = "adam:fast".parse::<OptimizerConfig>().unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }) && e.to_string().contains("NAME:LR"), "{e}");
    }
}
