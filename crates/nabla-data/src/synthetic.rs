//! Built-in data sets, generated from a seed (no files): `xor`, `spirals`, `moons`, `circles`
//! (classification, two features) and `sine` (1-D regression).

use std::f64::consts::PI;

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::dataset::{Dataset, Targets};
use crate::error::{DataError, Result};

/// The names of the built-in data sets.
pub const NAMES: &str = "xor, spirals, moons, circles, sine";

/// How to generate a built-in set. `samples` is the total count (per class for spirals);
/// `None` fields take each set's default.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spec {
    /// The sample count (per class for spirals).
    pub samples: Option<usize>,
    /// The class count (spirals only).
    pub classes: Option<usize>,
    /// The standard deviation of the Gaussian noise.
    pub noise: Option<f64>,
}

/// The most samples a generated set may have (2²⁴, 16.8 million; 256 MiB as 2-D f64 points),
/// so that a size from a file or a flag cannot exhaust memory.
pub const MAX_SAMPLES: usize = 1 << 24;

/// The most spiral arms.
pub const MAX_CLASSES: usize = 1 << 10;

/// Generates the built-in set `name` from `seed`.
pub fn generate(name: &str, spec: Spec, seed: u64) -> Result<Dataset> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = spec.noise.unwrap_or(match name {
        "spirals" => 0.2,
        "moons" => 0.1,
        "circles" => 0.05,
        "sine" => 0.05,
        _ => 0.0,
    });
    if !(noise.is_finite() && noise >= 0.0) {
        return Err(DataError::invalid("noise", format!("{noise}; it must be a finite number ≥ 0")));
    }
    if spec.classes.is_some() && name != "spirals" {
        return Err(DataError::invalid("classes", format!("only spirals has a class count; {name} has a fixed one")));
    }
    let samples = spec.samples.unwrap_or(match name {
        "xor" => 4,
        "spirals" => 100,
        "sine" => 256,
        _ => 400,
    });
    if samples == 0 {
        return Err(DataError::invalid("samples", "0; give at least 1"));
    }
    let classes = spec.classes.unwrap_or(1);
    if samples > MAX_SAMPLES || classes > MAX_CLASSES || samples.saturating_mul(classes) > MAX_SAMPLES {
        return Err(DataError::invalid(
            "samples",
            format!(
                "{samples} (× {classes} classes): a generated set holds at most {MAX_SAMPLES} samples and \
                 {MAX_CLASSES} classes; use a file for more"
            ),
        ));
    }
    match name {
        "xor" => xor(samples, noise, &mut rng),
        "spirals" => spirals(samples, spec.classes.unwrap_or(3), noise, &mut rng),
        "moons" => moons(samples, noise, &mut rng),
        "circles" => circles(samples, noise, &mut rng),
        "sine" => sine(samples, noise, &mut rng),
        _ => Err(DataError::UnknownSet { name: name.to_string() }),
    }
}

fn gauss(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

fn classes(name: &str, points: Vec<[f64; 2]>, labels: Vec<usize>, classes: usize) -> Result<Dataset> {
    let features = Array2::from_shape_fn((points.len(), 2), |(i, j)| points[i][j]);
    Dataset::new(name, features, Targets::Classes { labels, classes })
}

/// XOR: the four corners of the unit square (cycled to `samples`), label `x₁ ⊕ x₂`.
fn xor(samples: usize, noise: f64, rng: &mut ChaCha8Rng) -> Result<Dataset> {
    let (points, labels) = (0..samples)
        .map(|i| {
            let (a, b) = (i & 1, (i >> 1) & 1);
            ([a as f64 + noise * gauss(rng), b as f64 + noise * gauss(rng)], a ^ b)
        })
        .unzip();
    classes("xor", points, labels, 2)
}

/// `k` interleaved spirals of `per_class` points: for class `c` and `t ∈ [0, 1]`, radius `t`
/// and angle `4(c + t) + noise·N(0,1)` (the classic CS231n set).
fn spirals(per_class: usize, k: usize, noise: f64, rng: &mut ChaCha8Rng) -> Result<Dataset> {
    if k < 2 {
        return Err(DataError::invalid("classes", format!("{k}; spirals need at least 2")));
    }
    let mut points = Vec::with_capacity(per_class * k);
    let mut labels = Vec::with_capacity(per_class * k);
    for c in 0..k {
        for i in 0..per_class {
            let t = if per_class > 1 { i as f64 / (per_class - 1) as f64 } else { 0.5 };
            let angle = 4.0 * (c as f64 + t) + noise * gauss(rng);
            points.push([t * angle.sin(), t * angle.cos()]);
            labels.push(c);
        }
    }
    classes("spirals", points, labels, k)
}

/// Two interleaving half circles (scikit-learn's `make_moons`), with Gaussian noise.
fn moons(samples: usize, noise: f64, rng: &mut ChaCha8Rng) -> Result<Dataset> {
    let upper = samples.div_ceil(2);
    let (points, labels) = (0..samples)
        .map(|i| {
            let (c, j, n) = if i < upper { (0, i, upper) } else { (1, i - upper, samples - upper) };
            let t = PI * j as f64 / (n.max(2) - 1) as f64;
            let p = if c == 0 { [t.cos(), t.sin()] } else { [1.0 - t.cos(), 0.5 - t.sin()] };
            ([p[0] + noise * gauss(rng), p[1] + noise * gauss(rng)], c)
        })
        .unzip();
    classes("moons", points, labels, 2)
}

/// A circle of radius 1 around one of radius 0.5 (scikit-learn's `make_circles`).
fn circles(samples: usize, noise: f64, rng: &mut ChaCha8Rng) -> Result<Dataset> {
    let outer = samples.div_ceil(2);
    let (points, labels) = (0..samples)
        .map(|i| {
            let (c, j, n) = if i < outer { (0, i, outer) } else { (1, i - outer, samples - outer) };
            let t = 2.0 * PI * j as f64 / n as f64;
            let r = if c == 0 { 1.0 } else { 0.5 };
            ([r * t.cos() + noise * gauss(rng), r * t.sin() + noise * gauss(rng)], c)
        })
        .unzip();
    classes("circles", points, labels, 2)
}

/// `y = sin(x) + noise·N(0,1)` for `x` uniform in `[−π, π]`.
fn sine(samples: usize, noise: f64, rng: &mut ChaCha8Rng) -> Result<Dataset> {
    let x: Vec<f64> = (0..samples).map(|_| rng.random_range(-PI..=PI)).collect();
    let y: Vec<f64> = x.iter().map(|&x| x.sin() + noise * gauss(rng)).collect();
    let features = Array2::from_shape_fn((samples, 1), |(i, _)| x[i]);
    let targets = Array2::from_shape_fn((samples, 1), |(i, _)| y[i]);
    Dataset::new("sine", features, Targets::Values(targets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Task;

    #[test]
    fn shapes_and_balance() {
        let s = generate("spirals", Spec { classes: Some(4), ..Spec::default() }, 1).unwrap();
        assert_eq!((s.len(), s.features_per_sample(), s.task()), (400, 2, Task::Classification { classes: 4 }));
        for name in ["moons", "circles"] {
            let d = generate(name, Spec::default(), 1).unwrap();
            let Targets::Classes { labels, .. } = &d.targets else { panic!() };
            assert_eq!(labels.iter().filter(|&&l| l == 1).count(), 200, "{name}");
        }
        let x = generate("xor", Spec::default(), 1).unwrap();
        assert_eq!(x.features.as_slice().unwrap(), &[0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        assert_eq!(x.targets, Targets::Classes { labels: vec![0, 1, 1, 0], classes: 2 });
        let s = generate("sine", Spec { noise: Some(0.0), ..Spec::default() }, 1).unwrap();
        let Targets::Values(y) = &s.targets else { panic!() };
        for (x, y) in s.features.iter().zip(y.iter()) {
            assert!((x.sin() - y).abs() < 1e-6);
        }
    }

    #[test]
    fn seeded_and_reproducible() {
        let a = generate("moons", Spec::default(), 5).unwrap();
        assert_eq!(a, generate("moons", Spec::default(), 5).unwrap());
        assert_ne!(a, generate("moons", Spec::default(), 6).unwrap());
    }

    #[test]
    fn bad_settings_are_errors() {
        assert!(generate("mnist", Spec::default(), 1).unwrap_err().to_string().contains("spirals"));
        assert!(generate("moons", Spec { samples: Some(0), ..Spec::default() }, 1).is_err());
        assert!(generate("spirals", Spec { classes: Some(1), ..Spec::default() }, 1).is_err());
        assert!(generate("moons", Spec { noise: Some(f64::NAN), ..Spec::default() }, 1).is_err());
    }
}
