//! Weight initialisers. Weights are drawn on the host in `f64` from a seeded ChaCha8 stream,
//! so the same seed gives the same network on every backend and in both precisions.
//! Biases start at zero.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Error, Result};

/// How a layer's weight matrix `W` (`out × in`, so `fan_in = in`, `fan_out = out`) is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Init {
    /// He for the ReLU family of the layer's activation, Xavier-uniform otherwise.
    Auto,
    /// All zeros (a network that cannot break symmetry; for tests and demonstrations).
    Zeros,
    /// `U(−a, a)`.
    Uniform {
        /// The half-width.
        a: f64,
    },
    /// `N(0, std²)`.
    Normal {
        /// The standard deviation.
        std: f64,
    },
    /// Glorot: `U(−√(6/(in+out)), √(6/(in+out)))`.
    XavierUniform,
    /// Glorot: `N(0, 2/(in+out))`.
    XavierNormal,
    /// Kaiming: `N(0, 2/in)`.
    HeNormal,
    /// Kaiming: `U(−√(6/in), √(6/in))`.
    HeUniform,
    /// LeCun: `N(0, 1/in)`.
    LeCun,
    /// The orthogonal factor `Q` of the QR decomposition of a Gaussian matrix (sign-corrected
    /// so that the distribution is uniform), scaled by `gain`.
    Orthogonal {
        /// The scale of the orthogonal matrix.
        gain: f64,
    },
}

/// The names accepted on the command line and in files, for error messages.
pub const INIT_NAMES: &str = "auto, zeros, uniform[:A], normal[:STD], xavier-uniform, xavier-normal, \
he-normal, he-uniform, lecun, orthogonal[:GAIN]";

impl Init {
    /// Draws a `rows × cols` weight matrix (row-major) for a layer with `fan_in = cols`,
    /// `fan_out = rows`. `he` resolves [`Init::Auto`].
    pub fn draw(self, rows: usize, cols: usize, he: bool, rng: &mut ChaCha8Rng) -> Result<Vec<f64>> {
        let (fan_in, fan_out) = (cols as f64, rows as f64);
        let n = rows * cols;
        let uniform = |a: f64, rng: &mut ChaCha8Rng| (0..n).map(|_| rng.random_range(-a..=a)).collect();
        let normal = |std: f64, rng: &mut ChaCha8Rng| {
            (0..n).map(|_| std * Distribution::<f64>::sample(&StandardNormal, rng)).collect::<Vec<f64>>()
        };
        Ok(match self {
            Init::Auto if he => normal((2.0 / fan_in).sqrt(), rng),
            Init::Auto | Init::XavierUniform => uniform((6.0 / (fan_in + fan_out)).sqrt(), rng),
            Init::Zeros => vec![0.0; n],
            Init::Uniform { a } => uniform(a, rng),
            Init::Normal { std } => normal(std, rng),
            Init::XavierNormal => normal((2.0 / (fan_in + fan_out)).sqrt(), rng),
            Init::HeNormal => normal((2.0 / fan_in).sqrt(), rng),
            Init::HeUniform => uniform((6.0 / fan_in).sqrt(), rng),
            Init::LeCun => normal((1.0 / fan_in).sqrt(), rng),
            Init::Orthogonal { gain } => crate::orthogonal::draw(rows, cols, gain, normal(1.0, rng))?,
        })
    }
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Init::Auto => f.write_str("auto"),
            Init::Zeros => f.write_str("zeros"),
            Init::Uniform { a } => write!(f, "uniform:{a}"),
            Init::Normal { std } => write!(f, "normal:{std}"),
            Init::XavierUniform => f.write_str("xavier-uniform"),
            Init::XavierNormal => f.write_str("xavier-normal"),
            Init::HeNormal => f.write_str("he-normal"),
            Init::HeUniform => f.write_str("he-uniform"),
            Init::LeCun => f.write_str("lecun"),
            Init::Orthogonal { gain } => write!(f, "orthogonal:{gain}"),
        }
    }
}

impl FromStr for Init {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid("init", format!("`{s}`; accepted: {INIT_NAMES}"));
        let (name, param) = match s.split_once(':') {
            Some((n, p)) => (n, Some(p.parse::<f64>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let positive = |default: f64| -> Result<f64> {
            let v = param.unwrap_or(default);
            if v.is_finite() && v > 0.0 { Ok(v) } else { Err(bad()) }
        };
        let plain = |init: Init| {
            if param.is_some() { Err(bad()) } else { Ok(init) }
        };
        match name.to_ascii_lowercase().as_str() {
            "auto" => plain(Init::Auto),
            "zeros" | "zero" => plain(Init::Zeros),
            "uniform" => Ok(Init::Uniform { a: positive(0.05)? }),
            "normal" => Ok(Init::Normal { std: positive(0.05)? }),
            "xavier-uniform" | "glorot-uniform" | "xavier" | "glorot" => plain(Init::XavierUniform),
            "xavier-normal" | "glorot-normal" => plain(Init::XavierNormal),
            "he-normal" | "kaiming-normal" | "he" | "kaiming" => plain(Init::HeNormal),
            "he-uniform" | "kaiming-uniform" => plain(Init::HeUniform),
            "lecun" | "lecun-normal" => plain(Init::LeCun),
            "orthogonal" => Ok(Init::Orthogonal { gain: positive(1.0)? }),
            _ => Err(bad()),
        }
    }
}

crate::serde_via_str!(Init);

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn moments(x: &[f64]) -> (f64, f64) {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        (mean, x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n)
    }

    #[test]
    fn statistics_match_the_definitions() {
        let (rows, cols) = (200, 300);
        let cases = [
            (Init::XavierUniform, 2.0 / 500.0),
            (Init::XavierNormal, 2.0 / 500.0),
            (Init::HeNormal, 2.0 / 300.0),
            (Init::HeUniform, 2.0 / 300.0),
            (Init::LeCun, 1.0 / 300.0),
            (Init::Normal { std: 0.3 }, 0.09),
            (Init::Uniform { a: 0.3 }, 0.03),
        ];
        for (init, variance) in cases {
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let w = init.draw(rows, cols, false, &mut rng).unwrap();
            let (mean, var) = moments(&w);
            assert!(mean.abs() < 3.0 * (variance / w.len() as f64).sqrt() + 1e-12, "{init}: mean {mean}");
            assert!((var / variance - 1.0).abs() < 0.02, "{init}: variance {var} vs {variance}");
        }
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!(Init::Zeros.draw(3, 4, false, &mut rng).unwrap().iter().all(|&w| w == 0.0));
    }

    #[test]
    fn auto_picks_he_for_relu() {
        let draw = |he| Init::Auto.draw(100, 400, he, &mut ChaCha8Rng::seed_from_u64(2)).unwrap();
        assert!((moments(&draw(true)).1 / (2.0 / 400.0) - 1.0).abs() < 0.03);
        assert!((moments(&draw(false)).1 / (2.0 / 500.0) - 1.0).abs() < 0.03);
    }

    #[test]
    fn names_round_trip() {
        for s in [
            "auto",
            "zeros",
            "uniform:0.1",
            "normal:0.2",
            "xavier-uniform",
            "xavier-normal",
            "he-normal",
            "he-uniform",
            "lecun",
            "orthogonal:2",
        ] {
            assert_eq!(s.parse::<Init>().unwrap().to_string(), s);
        }
        assert!("normal:-1".parse::<Init>().is_err());
        assert!("glorious".parse::<Init>().unwrap_err().to_string().contains("xavier-uniform"));
    }
}
