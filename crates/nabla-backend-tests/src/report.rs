//! What a conformance run found: one [`Row`] per op × dtype × variant, the worst case of each.

use std::fmt;

use nabla_core::{DType, Element, Error, Result};

/// How an op × dtype × variant fared over all its cases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Every case within the tolerance.
    Pass,
    /// A case beyond the tolerance, a wrong result, or an error other than "unsupported".
    Fail,
    /// The backend answered [`Error::Unsupported`] (and nothing failed).
    Unsupported,
}

impl Outcome {
    /// `pass`, `fail` or `unsupported`.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One line of the report: an op in one dtype and one variant (an activation, a loss, a rule,
/// a pair of transposes), over all the shapes it was run on.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The operation (`gemm`, `activate_grad`, `loss`, …, `training_step`).
    pub op: String,
    /// The element type.
    pub dtype: DType,
    /// The variant (`NT`, `sigmoid`, `adam`, …; `-` when the op has one).
    pub variant: String,
    /// How many cases were run.
    pub cases: usize,
    /// The largest error over the cases, [`rel_error`]'s: 0 when equal, ∞ when the lengths differ
    /// or a NaN or an infinity appears in one result only.
    pub max_error: f64,
    /// The error allowed (0: must be exact).
    pub tolerance: f64,
    /// Pass, fail or unsupported.
    pub outcome: Outcome,
    /// The first failing (or unsupported) case and what went wrong; empty when all passed.
    pub detail: String,
}

/// The rows of a run, in the order the ops were first checked.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// One per op × dtype × variant.
    pub rows: Vec<Row>,
}

impl Report {
    /// Whether no row failed (unsupported ops are not failures: the driver reports them when a
    /// network needs them; see [`Report::complete`]).
    pub fn passed(&self) -> bool {
        self.rows.iter().all(|r| r.outcome != Outcome::Fail)
    }

    /// Whether the backend supports every row (no [`Outcome::Unsupported`]).
    pub fn complete(&self) -> bool {
        self.rows.iter().all(|r| r.outcome != Outcome::Unsupported)
    }

    /// The failed rows.
    pub fn failures(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.outcome == Outcome::Fail)
    }

    /// Appends another report's rows.
    pub fn extend(&mut self, other: Report) {
        self.rows.extend(other.rows);
    }

    /// The rows as an aligned text table (op, dtype, variant, cases, max error, tolerance,
    /// result, and the failing case).
    pub fn table(&self) -> String {
        let head = ["op", "dtype", "variant", "cases", "max error", "tolerance", "result"];
        let cells: Vec<[String; 7]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.op.clone(),
                    r.dtype.name().to_string(),
                    r.variant.clone(),
                    r.cases.to_string(),
                    format!("{:.2e}", r.max_error),
                    if r.tolerance == 0.0 { "exact".into() } else { format!("{:.0e}", r.tolerance) },
                    r.outcome.to_string(),
                ]
            })
            .collect();
        let mut width = head.map(str::len);
        for row in &cells {
            for (w, c) in width.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let parts: Vec<String> = cells.iter().zip(width).map(|(c, w)| format!("{c:<w$}")).collect();
            parts.join("  ").trim_end().to_string()
        };
        let mut out = line(&head.map(String::from));
        for (row, r) in cells.iter().zip(&self.rows) {
            out.push('\n');
            out.push_str(&line(row));
            if !r.detail.is_empty() {
                out.push_str("  ");
                out.push_str(&r.detail);
            }
        }
        out
    }
}

/// `max |got − want| / max(max |want|, ε)` in f64, over the finite pairs, with `ε` the machine
/// epsilon of `E` (so that values near zero compare absolutely at ε, not relatively to 1e-300):
/// 0 when every pair is equal (NaN with NaN, ∞ with the same ∞ count as equal), ∞ when the
/// lengths differ or a pair is unequal with a NaN or an infinity in it.
pub fn rel_error<E: Element>(got: &[E], want: &[E]) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    let mut diff = 0.0_f64;
    for (g, w) in got.iter().zip(want) {
        let (g, w) = (g.f64(), w.f64());
        if g == w || g.is_nan() && w.is_nan() {
            continue;
        }
        if !(g.is_finite() && w.is_finite()) {
            return f64::INFINITY;
        }
        diff = diff.max((g - w).abs());
    }
    if diff == 0.0 {
        return 0.0;
    }
    let scale = want.iter().map(|w| w.f64().abs()).filter(|w| w.is_finite()).fold(E::epsilon().f64(), f64::max);
    diff / scale
}

/// Collects cases into the rows of one dtype.
pub(crate) struct Sink {
    pub(crate) report: Report,
    dtype: DType,
}

impl Sink {
    pub(crate) fn new<E: Element>() -> Sink {
        Sink { report: Report::default(), dtype: E::DTYPE }
    }

    /// Records one case of `op`/`variant`: `got` (the backend's result) against `want` (the
    /// reference's) within `tol`.
    pub(crate) fn close<E: Element>(
        &mut self,
        op: &str,
        variant: &str,
        case: &str,
        got: Result<Vec<E>>,
        want: Result<Vec<E>>,
        tol: f64,
    ) {
        let (error, detail) = match (got, want) {
            (_, Err(e)) => (f64::INFINITY, Some(format!("the reference failed: {e}"))),
            (Err(e), _) => return self.error(op, variant, case, tol, &e),
            (Ok(got), Ok(want)) => {
                let err = rel_error(&got, &want);
                (err, (err > tol).then(|| format!("error {err:.2e}")))
            }
        };
        self.add(op, variant, tol, error, detail.map(|d| (Outcome::Fail, format!("{case}: {d}"))));
    }

    /// Records one case of `op`/`variant` that must hold exactly (`what` says what was expected).
    pub(crate) fn holds(&mut self, op: &str, variant: &str, case: &str, ok: Result<bool>, what: &str) {
        match ok {
            Ok(true) => self.add(op, variant, 0.0, 0.0, None),
            Ok(false) => self.add(op, variant, 0.0, f64::INFINITY, Some((Outcome::Fail, format!("{case}: {what}")))),
            Err(e) => self.error(op, variant, case, 0.0, &e),
        }
    }

    /// Records that the checks of `group` stopped on a panic in the backend, with its message.
    pub(crate) fn panicked(&mut self, group: &str, message: &str) {
        self.add("panic", group, 0.0, f64::INFINITY, Some((Outcome::Fail, format!("the backend panicked: {message}"))));
    }

    /// Records a backend error: unsupported, or a failure.
    fn error(&mut self, op: &str, variant: &str, case: &str, tol: f64, e: &Error) {
        let outcome = if matches!(e, Error::Unsupported { .. }) { Outcome::Unsupported } else { Outcome::Fail };
        let error = if outcome == Outcome::Fail { f64::INFINITY } else { 0.0 };
        self.add(op, variant, tol, error, Some((outcome, format!("{case}: {e}"))));
    }

    fn add(&mut self, op: &str, variant: &str, tol: f64, error: f64, problem: Option<(Outcome, String)>) {
        let dtype = self.dtype;
        let rows = &mut self.report.rows;
        let i = match rows.iter().position(|r| r.op == op && r.variant == variant) {
            Some(i) => i,
            None => {
                let (op, variant) = (op.to_string(), variant.to_string());
                let detail = String::new();
                rows.push(Row {
                    op,
                    dtype,
                    variant,
                    cases: 0,
                    max_error: 0.0,
                    tolerance: tol,
                    outcome: Outcome::Pass,
                    detail,
                });
                rows.len() - 1
            }
        };
        let row = &mut rows[i];
        row.cases += 1;
        row.max_error = row.max_error.max(error);
        row.tolerance = row.tolerance.max(tol);
        if let Some((outcome, detail)) = problem {
            // A failure outranks "unsupported", which outranks a pass; the first such case is kept.
            let rank = |o: Outcome| [Outcome::Pass, Outcome::Unsupported, Outcome::Fail].iter().position(|&x| x == o);
            if rank(outcome) > rank(row.outcome) {
                row.outcome = outcome;
                row.detail = detail;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rel_error_sees_a_nan_on_one_side_and_a_length_mismatch() {
        assert_eq!(rel_error(&[1.0_f64, 2.0], &[1.0, 2.0]), 0.0);
        assert_eq!(rel_error(&[f64::NAN, 2.0], &[f64::NAN, 2.0]), 0.0);
        // A NaN the reference does not have is a failure, not an ignored element.
        assert_eq!(rel_error(&[f64::NAN, 2.0], &[1.0, 2.0]), f64::INFINITY);
        assert_eq!(rel_error(&[1.0, 2.0], &[1.0, f64::NAN]), f64::INFINITY);
        assert_eq!(rel_error(&[1.0_f32], &[1.0, 2.0]), f64::INFINITY);
        assert!((rel_error(&[1.0_f64, 4.1], &[1.0, 4.0]) - 0.1 / 4.0).abs() < 1e-12);
        // Infinities: equal ones agree, any other pair with one is a failure, and an infinite
        // reference value does not scale the others' differences away.
        assert_eq!(rel_error(&[f64::INFINITY, 1.0], &[f64::INFINITY, 1.0]), 0.0);
        assert_eq!(rel_error(&[f64::INFINITY, 5.0], &[f64::INFINITY, 1.0]), 4.0);
        assert_eq!(rel_error(&[f64::NEG_INFINITY], &[f64::INFINITY]), f64::INFINITY);
        assert_eq!(rel_error(&[3.0], &[f64::INFINITY]), f64::INFINITY);
        // Near zero the comparison is absolute at the dtype's epsilon.
        assert_eq!(rel_error(&[1e-30_f32], &[0.0]), f64::from(1e-30_f32) / f64::from(f32::EPSILON));
    }

    #[test]
    fn rows_keep_the_worst_case_and_the_first_failure() {
        let mut s = Sink::new::<f32>();
        s.close::<f32>("gemm", "NT", "3×4×5", Ok(vec![1.0]), Ok(vec![1.0]), 1e-4);
        s.close::<f32>("gemm", "NT", "1×1×1", Ok(vec![2.0]), Ok(vec![1.0]), 1e-4);
        s.close::<f32>("gemm", "NT", "7×7×7", Ok(vec![3.0]), Ok(vec![1.0]), 1e-4);
        let unsupported = Error::Unsupported { backend: "x".into(), op: "loss bce f32".into() };
        s.close::<f32>("loss", "bce", "2×2", Err(unsupported), Ok(vec![1.0]), 1e-4);
        s.holds("copy", "-", "5", Ok(true), "exact");
        let r = s.report;
        assert_eq!(r.rows.len(), 3);
        let gemm = &r.rows[0];
        assert_eq!((gemm.cases, gemm.max_error, gemm.outcome), (3, 2.0, Outcome::Fail));
        assert_eq!(gemm.detail, "1×1×1: error 1.00e0");
        assert_eq!(r.rows[1].outcome, Outcome::Unsupported);
        assert!(!r.passed());
        assert_eq!(r.failures().count(), 1);
        let table = r.table();
        assert!(table.lines().nth(1).unwrap().starts_with("gemm  f32    NT"), "{table}");
        assert!(table.contains("unsupported"), "{table}");
    }
}
