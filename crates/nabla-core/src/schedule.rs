//! Learning-rate schedules: the learning rate of each epoch as a multiple of the base rate η₀.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A learning-rate schedule, evaluated once per epoch `e` (0-based) of `E` epochs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Schedule {
    /// `η = η₀`.
    Constant,
    /// `η = η₀ γ^⌊e / every⌋`.
    Step {
        /// Epochs between reductions.
        every: usize,
        /// The factor of each reduction.
        gamma: f64,
    },
    /// `η = η₀ γ^e`.
    Exponential {
        /// The factor per epoch.
        gamma: f64,
    },
    /// Linear warm-up `η₀ (e+1)/W` for `e < W`, then cosine annealing from `η₀` to `η₀·min_factor`:
    /// `η = η₀ (m + (1 − m)(1 + cos(π (e − W)/(E − W)))/2)`.
    Cosine {
        /// Epochs of linear warm-up.
        warmup: usize,
        /// The final rate as a multiple of η₀.
        min_factor: f64,
    },
    /// Multiply the rate by `factor` when the monitored loss has not improved by more than
    /// `threshold` (relative) for `patience` epochs, never below `η₀·min_factor`.
    Plateau {
        /// The factor of each reduction.
        factor: f64,
        /// Epochs without improvement before reducing.
        patience: usize,
        /// The relative improvement that counts.
        threshold: f64,
        /// The lowest rate, as a multiple of η₀.
        min_factor: f64,
    },
}

/// The schedule names accepted on the command line.
pub const SCHEDULE_NAMES: &str = "constant, step:EVERY:GAMMA, exponential:GAMMA, cosine[:WARMUP[:MIN_FACTOR]], \
plateau[:FACTOR[:PATIENCE]]";

/// The mutable part of a schedule (only reduce-on-plateau has any), saved in checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// The current multiple of η₀ set by reduce-on-plateau.
    pub factor: f64,
    /// The best monitored loss so far.
    pub best: f64,
    /// Epochs since it last improved.
    pub bad_epochs: usize,
}

impl Default for ScheduleState {
    fn default() -> Self {
        ScheduleState { factor: 1.0, best: f64::MAX, bad_epochs: 0 }
    }
}

impl Schedule {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        let bad = |detail: String| Err(Error::invalid("schedule", detail));
        match *self {
            Schedule::Constant => Ok(()),
            Schedule::Step { every, gamma } if every == 0 || !(gamma > 0.0 && gamma.is_finite()) => {
                bad(format!("step needs EVERY ≥ 1 and GAMMA > 0 (got {every}, {gamma})"))
            }
            Schedule::Exponential { gamma } if !(gamma > 0.0 && gamma.is_finite()) => {
                bad(format!("exponential needs GAMMA > 0 (got {gamma})"))
            }
            Schedule::Cosine { min_factor, .. } if !(0.0..=1.0).contains(&min_factor) => {
                bad(format!("cosine needs MIN_FACTOR in [0, 1] (got {min_factor})"))
            }
            Schedule::Plateau { factor, patience, threshold, min_factor }
                if !(factor > 0.0 && factor < 1.0)
                    || patience == 0
                    || threshold < 0.0
                    || !(0.0..=1.0).contains(&min_factor) =>
            {
                bad(format!("plateau needs 0 < FACTOR < 1 and PATIENCE ≥ 1 (got {factor}, {patience})"))
            }
            _ => Ok(()),
        }
    }

    /// The multiple of η₀ for epoch `e` of `epochs`.
    pub fn factor(&self, e: usize, epochs: usize, state: &ScheduleState) -> f64 {
        match *self {
            Schedule::Constant => 1.0,
            Schedule::Step { every, gamma } => gamma.powi(i32::try_from(e / every.max(1)).unwrap_or(i32::MAX)),
            Schedule::Exponential { gamma } => gamma.powi(i32::try_from(e).unwrap_or(i32::MAX)),
            Schedule::Cosine { warmup, min_factor } => {
                if e < warmup {
                    (e + 1) as f64 / warmup as f64
                } else {
                    let span = epochs.saturating_sub(warmup).max(1) as f64;
                    let progress = ((e - warmup) as f64 / span).min(1.0);
                    min_factor + (1.0 - min_factor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
                }
            }
            Schedule::Plateau { .. } => state.factor,
        }
    }

    /// Records the monitored loss at the end of an epoch (reduce-on-plateau's only input).
    pub fn observe(&self, loss: f64, state: &mut ScheduleState) {
        if let Schedule::Plateau { factor, patience, threshold, min_factor } = *self {
            if loss < state.best * (1.0 - threshold) {
                state.best = loss;
                state.bad_epochs = 0;
            } else {
                state.bad_epochs += 1;
                if state.bad_epochs > patience {
                    state.factor = (state.factor * factor).max(min_factor);
                    state.bad_epochs = 0;
                }
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Constant => f.write_str("constant"),
            Schedule::Step { every, gamma } => write!(f, "step:{every}:{gamma}"),
            Schedule::Exponential { gamma } => write!(f, "exponential:{gamma}"),
            Schedule::Cosine { warmup, min_factor } => write!(f, "cosine:{warmup}:{min_factor}"),
            Schedule::Plateau { factor, patience, .. } => write!(f, "plateau:{factor}:{patience}"),
        }
    }
}

impl FromStr for Schedule {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid("schedule", format!("`{s}`; accepted: {SCHEDULE_NAMES}"));
        let mut parts = s.split(':');
        let name = parts.next().unwrap_or_default().to_ascii_lowercase();
        let args: Vec<f64> = parts.map(|p| p.parse::<f64>().map_err(|_| bad())).collect::<Result<_>>()?;
        let arg = |i: usize, default: f64| args.get(i).copied().unwrap_or(default);
        let count = |v: f64| {
            if v >= 0.0 && v.fract() == 0.0 { Ok(v as usize) } else { Err(bad()) }
        };
        let schedule = match (name.as_str(), args.len()) {
            ("constant", 0) => Schedule::Constant,
            ("step", 2) => Schedule::Step { every: count(args[0])?, gamma: args[1] },
            ("exponential", 0 | 1) => Schedule::Exponential { gamma: arg(0, 0.95) },
            ("cosine", 0..=2) => Schedule::Cosine { warmup: count(arg(0, 0.0))?, min_factor: arg(1, 0.0) },
            ("plateau", 0..=2) => Schedule::Plateau {
                factor: arg(0, 0.5),
                patience: count(arg(1, 10.0))?,
                threshold: 1e-4,
                min_factor: 1e-3,
            },
            _ => return Err(bad()),
        };
        schedule.validate()?;
        Ok(schedule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn factors(s: Schedule, epochs: usize) -> Vec<f64> {
        (0..epochs).map(|e| s.factor(e, epochs, &ScheduleState::default())).collect()
    }

    #[test]
    fn closed_forms() {
        assert_eq!(factors("step:2:0.5".parse().unwrap(), 5), [1.0, 1.0, 0.5, 0.5, 0.25]);
        assert_eq!(factors("exponential:0.5".parse().unwrap(), 3), [1.0, 0.5, 0.25]);
        let cos = factors("cosine:2:0.1".parse().unwrap(), 6);
        assert_eq!(&cos[..3], &[0.5, 1.0, 1.0]);
        assert!((cos[4] - 0.55).abs() < 1e-12, "{cos:?}");
        assert!(cos.windows(2).skip(2).all(|w| w[1] < w[0]));
    }

    #[test]
    fn plateau_reduces_after_patience() {
        let s: Schedule = "plateau:0.5:2".parse().unwrap();
        let mut st = ScheduleState::default();
        for loss in [1.0, 0.9, 0.9, 0.9, 0.9] {
            s.observe(loss, &mut st);
        }
        assert_eq!(st.factor, 0.5);
        assert_eq!(s.factor(10, 20, &st), 0.5);
    }

    #[test]
    fn bad_schedules() {
        for bad in ["step:0:0.5", "step:3", "exponential:-1", "cosine:1:2", "plateau:2", "warm"] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad}");
        }
    }
}
