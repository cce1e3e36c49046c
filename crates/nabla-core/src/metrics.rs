//! Evaluation metrics computed on the host from predictions: accuracy, macro precision, recall
//! and F1, the confusion matrix (classification); MAE, RMSE and R² (regression).

use serde::Serialize;

use crate::element::Element;

/// Classification metrics over `n` samples of `classes` classes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Classification {
    /// Correct predictions / samples.
    pub accuracy: f64,
    /// Mean over classes of `TP / (TP + FP)` (a class never predicted counts 0).
    pub macro_precision: f64,
    /// Mean over classes of `TP / (TP + FN)`.
    pub macro_recall: f64,
    /// Mean over classes of `2PR / (P + R)`.
    pub macro_f1: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

/// Regression metrics.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Regression {
    /// Mean absolute error.
    pub mae: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Coefficient of determination `1 − SS_res / SS_tot` (over all outputs).
    pub r2: f64,
}

/// The predicted class of each row of `outputs` (`k` values per row): the argmax, or
/// `output > 0.5` for a single output.
pub fn predicted_classes<E: Element>(outputs: &[E], k: usize) -> Vec<usize> {
    outputs
        .chunks_exact(k.max(1))
        .map(|row| {
            if row.len() == 1 {
                usize::from(row[0].f64() > 0.5)
            } else {
                row.iter().enumerate().fold(0, |best, (j, v)| if *v > row[best] { j } else { best })
            }
        })
        .collect()
}

/// Classification metrics of predicted against true labels.
pub fn classification(predicted: &[usize], truth: &[usize], classes: usize) -> Classification {
    let mut confusion = vec![vec![0usize; classes]; classes];
    for (&p, &t) in predicted.iter().zip(truth) {
        if p < classes && t < classes {
            confusion[t][p] += 1;
        }
    }
    let n = truth.len().max(1) as f64;
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (mut p_sum, mut r_sum, mut f_sum) = (0.0, 0.0, 0.0);
    for (c, row) in confusion.iter().enumerate() {
        let tp = row[c];
        let predicted_c: usize = confusion.iter().map(|r| r[c]).sum();
        let actual_c: usize = row.iter().sum();
        let (p, r) = (ratio(tp, predicted_c), ratio(tp, actual_c));
        p_sum += p;
        r_sum += r;
        f_sum += if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 };
    }
    let k = classes.max(1) as f64;
    Classification {
        accuracy: correct as f64 / n,
        macro_precision: p_sum / k,
        macro_recall: r_sum / k,
        macro_f1: f_sum / k,
        confusion,
    }
}

/// Regression metrics of predictions against targets (same length, any number of outputs).
pub fn regression<E: Element>(predicted: &[E], target: &[E]) -> Regression {
    let n = target.len().max(1) as f64;
    let mean = target.iter().map(|t| t.f64()).sum::<f64>() / n;
    let (mut abs, mut sq, mut tot) = (0.0, 0.0, 0.0);
    for (p, t) in predicted.iter().zip(target) {
        let r = p.f64() - t.f64();
        abs += r.abs();
        sq += r * r;
        tot += (t.f64() - mean).powi(2);
    }
    Regression { mae: abs / n, rmse: (sq / n).sqrt(), r2: if tot > 0.0 { 1.0 - sq / tot } else { 0.0 } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_classification() {
        // truth:     0 0 1 1 2 2
        // predicted: 0 1 1 1 2 0
        let m = classification(&[0, 1, 1, 1, 2, 0], &[0, 0, 1, 1, 2, 2], 3);
        assert_eq!(m.confusion, vec![vec![1, 1, 0], vec![0, 2, 0], vec![1, 0, 1]]);
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-15);
        // precision: 1/2, 2/3, 1; recall: 1/2, 1, 1/2.
        assert!((m.macro_precision - (0.5 + 2.0 / 3.0 + 1.0) / 3.0).abs() < 1e-15);
        assert!((m.macro_recall - (0.5 + 1.0 + 0.5) / 3.0).abs() < 1e-15);
        let f1 = (0.5 + 0.8 + 2.0 / 3.0) / 3.0;
        assert!((m.macro_f1 - f1).abs() < 1e-12, "{}", m.macro_f1);
    }

    #[test]
    fn argmax_and_threshold() {
        assert_eq!(predicted_classes(&[0.1_f32, 0.7, 0.2, 0.5, 0.2, 0.3], 3), [1, 0]);
        assert_eq!(predicted_classes(&[0.2_f64, 0.9], 1), [0, 1]);
    }

    #[test]
    fn hand_computed_regression() {
        let m = regression(&[1.0_f64, 2.0, 4.0], &[1.0, 3.0, 2.0]);
        assert!((m.mae - 1.0).abs() < 1e-15);
        assert!((m.rmse - (5.0_f64 / 3.0).sqrt()).abs() < 1e-15);
        assert!((m.r2 - (1.0 - 5.0 / 2.0)).abs() < 1e-15);
    }
}
