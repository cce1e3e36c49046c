//! Seeded train/test (or train/validation) splits, stratified by class when there are classes.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::dataset::{Dataset, Targets};
use crate::error::{DataError, Result};

/// Splits off `fraction` of the samples (at least one, and leaving at least one): returns
/// `(rest, held_out)`. With class labels each class is split in the same proportion
/// (stratified); the order within each part is shuffled by `seed`.
pub fn split(data: &Dataset, fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(DataError::invalid(
            "split fraction",
            format!("{fraction}; it must be between 0 and 1 (exclusive)"),
        ));
    }
    let n = data.len();
    if n < 2 {
        return Err(DataError::invalid("split", format!("{}: {n} sample(s) cannot be split", data.name)));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let groups: Vec<Vec<usize>> = match &data.targets {
        Targets::Classes { labels, classes } => {
            let mut by_class = vec![Vec::new(); *classes];
            for (i, &l) in labels.iter().enumerate() {
                by_class[l].push(i);
            }
            by_class
        }
        Targets::Values(_) => vec![(0..n).collect()],
    };
    let (mut keep, mut held) = (Vec::new(), Vec::new());
    for mut g in groups {
        g.shuffle(&mut rng);
        let take = ((g.len() as f64) * fraction).round() as usize;
        held.extend_from_slice(&g[..take]);
        keep.extend_from_slice(&g[take..]);
    }
    // Keep both parts non-empty whatever the rounding did.
    if held.is_empty() {
        held.push(keep.pop().unwrap_or_default());
    } else if keep.is_empty() {
        keep.push(held.pop().unwrap_or_default());
    }
    keep.shuffle(&mut rng);
    held.shuffle(&mut rng);
    Ok((data.select(&keep), data.select(&held)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{Spec, generate};

    fn counts(d: &Dataset) -> Vec<usize> {
        let Targets::Classes { labels, classes } = &d.targets else { return vec![] };
        (0..*classes).map(|c| labels.iter().filter(|&&l| l == c).count()).collect()
    }

    #[test]
    fn stratified_and_seeded() {
        let d = generate("spirals", Spec::default(), 1).unwrap();
        let (train, test) = split(&d, 0.2, 9).unwrap();
        assert_eq!((train.len(), test.len()), (240, 60));
        assert_eq!(counts(&test), [20, 20, 20]);
        assert_eq!(counts(&train), [80, 80, 80]);
        let (_, again) = split(&d, 0.2, 9).unwrap();
        assert_eq!(test, again);
        let (_, other) = split(&d, 0.2, 10).unwrap();
        assert_ne!(test, other);
    }

    #[test]
    fn bad_fractions() {
        let d = generate("sine", Spec::default(), 1).unwrap();
        for f in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(split(&d, f, 1).is_err(), "{f}");
        }
        let (a, b) = split(&d, 0.001, 1).unwrap();
        assert_eq!((a.len(), b.len()), (255, 1));
    }
}
