//! Turning a column of numbers read from a file into [`Targets`]: class ids or values.

use std::fmt;
use std::str::FromStr;

use ndarray::Array2;

use crate::dataset::Targets;
use crate::error::{DataError, Result};

/// The most distinct values [`TargetKind::Auto`] still reads as classes.
pub const AUTO_MAX_CLASSES: usize = 50;

/// The largest class id a file may hold (so that a stray huge id cannot ask for a one-hot
/// matrix with billions of columns).
pub const MAX_CLASS_ID: usize = 65_535;

/// How to read the target column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// Class ids: integers `0..k`; the class count is the largest id plus one.
    Classes,
    /// Real values (regression).
    Values,
    /// Classes if every target is an integer ≥ 0 and there are at most 50 distinct values,
    /// else values.
    #[default]
    Auto,
}

impl FromStr for TargetKind {
    type Err = DataError;

    /// `classes`, `values` or `auto`.
    fn from_str(s: &str) -> Result<TargetKind> {
        match s.to_ascii_lowercase().as_str() {
            "classes" => Ok(TargetKind::Classes),
            "values" => Ok(TargetKind::Values),
            "auto" => Ok(TargetKind::Auto),
            _ => Err(DataError::invalid("target kind", format!("`{s}`; use one of classes, values, auto"))),
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetKind::Classes => "classes",
            TargetKind::Values => "values",
            TargetKind::Auto => "auto",
        })
    }
}

/// Why `v` is not a class id, or `None` when it is one.
pub(crate) fn class_id_problem(v: f64) -> Option<String> {
    if !v.is_finite() {
        Some("is not a finite number".into())
    } else if v < 0.0 {
        Some("is negative; class ids are integers 0, 1, 2, … (read the target as values for regression)".into())
    } else if v.fract() != 0.0 {
        Some("is not an integer; class ids are integers 0, 1, 2, … (read the target as values for regression)".into())
    } else if v > MAX_CLASS_ID as f64 {
        Some(format!("is too large for a class id (at most {MAX_CLASS_ID}); number the classes 0, 1, 2, …"))
    } else {
        None
    }
}

/// Whether [`TargetKind::Auto`] reads `values` as class ids.
fn looks_like_classes(values: &[f64]) -> bool {
    if values.iter().any(|&v| class_id_problem(v).is_some()) {
        return false;
    }
    let mut ids: Vec<usize> = values.iter().map(|&v| v as usize).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len() <= AUTO_MAX_CLASSES
}

/// One target per sample (`values`, in sample order) as class ids or as an `n × 1` matrix of
/// values. A value that is not a class id when classes are asked for is reported by
/// `bad(sample index, value, why)`.
pub(crate) fn build(
    values: &[f64],
    kind: TargetKind,
    bad: impl Fn(usize, f64, String) -> DataError,
) -> Result<Targets> {
    let classes = match kind {
        TargetKind::Classes => true,
        TargetKind::Values => false,
        TargetKind::Auto => looks_like_classes(values),
    };
    if !classes {
        return Ok(Targets::Values(Array2::from_shape_fn((values.len(), 1), |(i, _)| values[i])));
    }
    let mut labels = Vec::with_capacity(values.len());
    for (i, &v) in values.iter().enumerate() {
        if let Some(why) = class_id_problem(v) {
            return Err(bad(i, v, why));
        }
        labels.push(v as usize);
    }
    let classes = labels.iter().max().map_or(0, |&m| m + 1);
    Ok(Targets::Classes { labels, classes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(i: usize, v: f64, why: String) -> DataError {
        DataError::invalid("test", format!("{i} {v} {why}"))
    }

    #[test]
    fn auto_picks_classes_or_values() {
        assert_eq!(
            build(&[0.0, 2.0, 1.0], TargetKind::Auto, never).unwrap(),
            Targets::Classes { labels: vec![0, 2, 1], classes: 3 }
        );
        let many: Vec<f64> = (0..51).map(f64::from).collect();
        assert!(matches!(build(&many, TargetKind::Auto, never).unwrap(), Targets::Values(_)));
        assert!(matches!(build(&many[..50], TargetKind::Auto, never).unwrap(), Targets::Classes { classes: 50, .. }));
        assert!(matches!(build(&[0.5, 1.0], TargetKind::Auto, never).unwrap(), Targets::Values(_)));
        assert!(matches!(build(&[-1.0, 1.0], TargetKind::Auto, never).unwrap(), Targets::Values(_)));
        assert!(matches!(build(&[1e9], TargetKind::Auto, never).unwrap(), Targets::Values(_)));
        assert!(matches!(build(&[0.0, 1.0], TargetKind::Values, never).unwrap(), Targets::Values(_)));
    }

    #[test]
    fn classes_reject_bad_ids() {
        for v in [-1.0, 0.5, 1e9, f64::NAN] {
            let e = build(&[0.0, v], TargetKind::Classes, never).unwrap_err().to_string();
            assert!(e.contains("1 "), "{e}");
        }
    }

    #[test]
    fn kind_names() {
        for k in [TargetKind::Classes, TargetKind::Values, TargetKind::Auto] {
            assert_eq!(k.to_string().parse::<TargetKind>().unwrap(), k);
        }
        assert!("class".parse::<TargetKind>().unwrap_err().to_string().contains("classes, values, auto"));
    }
}
