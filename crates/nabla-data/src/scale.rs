//! Feature scaling: per-column `x' = (x − offset) · scale`, fitted on training data and applied
//! unchanged to every other part (validation, test, later inputs).

use std::fmt;
use std::str::FromStr;

use ndarray::{Array2, ArrayView2, Axis};

use crate::dataset::Dataset;
use crate::error::{DataError, Result};

/// How to scale the features.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Scaling {
    /// Leave the features as they are.
    #[default]
    None,
    /// Zero mean and unit (population) standard deviation per column.
    Standard,
    /// Each column's minimum to 0 and maximum to 1.
    #[serde(alias = "min-max")]
    MinMax,
    /// Divide by 255 (8-bit pixel values to `[0, 1]`).
    Div255,
}

/// The names [`Scaling`] parses.
pub const NAMES: &str = "none, standard, minmax, div255";

impl FromStr for Scaling {
    type Err = DataError;

    /// `none`, `standard`, `minmax` (or `min-max`), `div255`.
    fn from_str(s: &str) -> Result<Scaling> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Scaling::None),
            "standard" => Ok(Scaling::Standard),
            "minmax" | "min-max" => Ok(Scaling::MinMax),
            "div255" => Ok(Scaling::Div255),
            _ => Err(DataError::invalid("scaling", format!("`{s}`; use one of {NAMES}"))),
        }
    }
}

impl fmt::Display for Scaling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scaling::None => "none",
            Scaling::Standard => "standard",
            Scaling::MinMax => "minmax",
            Scaling::Div255 => "div255",
        })
    }
}

/// A fitted scaling: one offset and one scale per feature column.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scaler {
    /// The kind it was fitted as.
    pub kind: Scaling,
    /// Subtracted from each column.
    pub offset: Vec<f64>,
    /// Then multiplied into each column.
    pub scale: Vec<f64>,
}

impl Scaler {
    /// Fits `kind` to the columns of `x`. A constant column (zero standard deviation or range)
    /// gets scale 1, so it is only shifted; with no rows every column gets offset 0, scale 1.
    pub fn fit(kind: Scaling, x: ArrayView2<f64>) -> Scaler {
        let d = x.ncols();
        let (offset, scale): (Vec<f64>, Vec<f64>) = match kind {
            Scaling::None => (vec![0.0; d], vec![1.0; d]),
            Scaling::Div255 => (vec![0.0; d], vec![1.0 / 255.0; d]),
            _ if x.nrows() == 0 => (vec![0.0; d], vec![1.0; d]),
            Scaling::Standard => x
                .axis_iter(Axis(1))
                .map(|col| {
                    let n = col.len() as f64;
                    let mean = col.sum() / n;
                    let var = col.iter().map(|&v| (v - mean).powi(2)).sum::<f64>() / n;
                    (mean, inverse(var.sqrt()))
                })
                .unzip(),
            Scaling::MinMax => x
                .axis_iter(Axis(1))
                .map(|col| {
                    let (lo, hi) =
                        col.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                    (lo, inverse(hi - lo))
                })
                .unzip(),
        };
        Scaler { kind, offset, scale }
    }

    /// Scales `x` in place: `x' = (x − offset) · scale` per column. An error when `x` does not
    /// have the column count the scaler was fitted on.
    pub fn transform(&self, x: &mut Array2<f64>) -> Result<()> {
        if x.ncols() != self.offset.len() || x.ncols() != self.scale.len() {
            return Err(DataError::invalid(
                "scaling",
                format!(
                    "the {} scaler was fitted on {} feature column(s) but the data has {}; fit it on data of the same \
                     shape",
                    self.kind,
                    self.offset.len(),
                    x.ncols()
                ),
            ));
        }
        for mut row in x.rows_mut() {
            for ((v, &o), &s) in row.iter_mut().zip(&self.offset).zip(&self.scale) {
                *v = (*v - o) * s;
            }
        }
        Ok(())
    }

    /// Scales `data`'s features in place (see [`Scaler::transform`]).
    pub fn apply(&self, data: &mut Dataset) -> Result<()> {
        self.transform(&mut data.features)
    }
}

/// `1 / spread`, or 1 when the spread is zero or not finite.
fn inverse(spread: f64) -> f64 {
    let s = 1.0 / spread;
    if spread > 0.0 && s.is_finite() && s > 0.0 { s } else { 1.0 }
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn standard_gives_zero_mean_unit_std() {
        let x = array![[1.0f64, 5.0, 7.0], [3.0, 5.0, 9.0], [5.0, 5.0, 11.0]];
        let s = Scaler::fit(Scaling::Standard, x.view());
        assert_eq!(s.offset, [3.0, 5.0, 9.0]);
        assert_eq!(s.scale[1], 1.0, "a constant column is only shifted");
        let mut y = x.clone();
        s.transform(&mut y).unwrap();
        for col in [0, 2] {
            let c = y.column(col);
            let mean = c.sum() / 3.0;
            let var = c.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 3.0;
            assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5, "{col}: {mean} {var}");
        }
        assert_eq!(y.column(1).to_vec(), [0.0, 0.0, 0.0]);
    }

    #[test]
    fn minmax_div255_none() {
        let x = array![[0.0f64, 2.0], [10.0, 2.0], [5.0, 2.0]];
        let mut y = x.clone();
        Scaler::fit(Scaling::MinMax, x.view()).transform(&mut y).unwrap();
        assert_eq!(y, array![[0.0f64, 0.0], [1.0, 0.0], [0.5, 0.0]]);
        let mut p = array![[0.0f64, 255.0]];
        Scaler::fit(Scaling::Div255, p.view()).transform(&mut p).unwrap();
        assert_eq!(p, array![[0.0f64, 1.0]]);
        let mut same = x.clone();
        Scaler::fit(Scaling::None, x.view()).transform(&mut same).unwrap();
        assert_eq!(same, x);
        let empty = Array2::<f64>::zeros((0, 2));
        assert_eq!(Scaler::fit(Scaling::Standard, empty.view()).scale, [1.0, 1.0]);
    }

    #[test]
    fn column_count_mismatch_is_an_error() {
        let s = Scaler::fit(Scaling::Standard, array![[1.0f64, 2.0]].view());
        let err = s.transform(&mut Array2::zeros((1, 3))).unwrap_err();
        assert!(matches!(err, DataError::Invalid { .. }));
        let msg = err.to_string();
        assert!(msg.contains("2 feature column(s)") && msg.contains("has 3"), "{msg}");
    }

    #[test]
    fn names_and_serde() {
        for k in [Scaling::None, Scaling::Standard, Scaling::MinMax, Scaling::Div255] {
            assert_eq!(k.to_string().parse::<Scaling>().unwrap(), k);
        }
        assert_eq!("min-max".parse::<Scaling>().unwrap(), Scaling::MinMax);
        let e = "zscore".parse::<Scaling>().unwrap_err().to_string();
        assert!(e.contains("zscore") && e.contains(NAMES), "{e}");
        assert_eq!(serde_json::to_string(&Scaling::MinMax).unwrap(), "\"minmax\"");
        assert_eq!(serde_json::from_str::<Scaling>("\"min-max\"").unwrap(), Scaling::MinMax);
        let s = Scaler::fit(Scaling::Standard, array![[1.0f64], [3.0]].view());
        let back: Scaler = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn apply_scales_a_dataset() {
        let mut d = crate::synthetic::generate("moons", crate::synthetic::Spec::default(), 1).unwrap();
        let s = Scaler::fit(Scaling::MinMax, d.x());
        s.apply(&mut d).unwrap();
        assert!(d.features.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}
