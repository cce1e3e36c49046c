//! The conformance kit for nabla backends: every operation of the [`Backend`] trait, in each
//! dtype and variant, against the reference backend on seeded shapes (sizes 1, odd and large),
//! and whole training steps through the driver.
//!
//! Use it from a backend crate's tests with one line (one test per [`Group`]):
//!
//! ```
//! # use nabla_core::Reference as MyBackend;
//! nabla_backend_tests::conformance_tests!(my_backend, Some(MyBackend));
//! // or, for a backend of one element type only:
//! nabla_backend_tests::conformance_tests!(my_backend_f32, Some(MyBackend), [f32]);
//! # fn main() {}
//! ```
//!
//! or as a report ([`run`]), which is what `nabla check-backend` prints: one [`Row`] per
//! op × dtype × variant with its largest error, its tolerance and pass / fail / unsupported.
//! Errors are relative, `max |got − want| / max |want|`; the tolerance is 1e-4 in f32 and 1e-10 in
//! f64, 0 (exact) for copies, transfers, dropout masks, correct counts and empty shapes.

#![deny(missing_docs)]

mod cases;
mod ops;
mod report;
mod step;

use nabla_core::Element;
use nabla_core::backend::Backend;

pub use cases::{SIZES, random, tol as tolerance};
pub use report::{Outcome, Report, Row, rel_error};

/// A group of checks: what one test of [`conformance_tests!`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Group {
    /// Upload, download, partial writes, zeroed allocation, host views.
    Transfers,
    /// GEMM on every transpose pair and (α, β), β = 0 over NaN.
    Gemm,
    /// Hadamard product and copy.
    Elementwise,
    /// Bias add and column sums.
    BiasAndSums,
    /// Every activation: forward, fused with the bias, derivative.
    Activations,
    /// Every loss: output error, value, correct count.
    Losses,
    /// NaN stays NaN through activations and losses.
    NanPropagates,
    /// Every update rule, three steps.
    Updates,
    /// Element-wise passes large enough to be split across threads.
    LargeElementwise,
    /// Dropout masks, from the start and from offsets.
    Dropout,
    /// Short buffers and overflowing sizes are typed errors.
    ShapeErrors,
    /// Empty shapes on every op.
    EmptyShapes,
    /// Whole training steps through the driver.
    TrainingStep,
}

impl Group {
    /// Every group, in the order [`run`] checks them.
    pub const ALL: [Group; 13] = [
        Group::Transfers,
        Group::Gemm,
        Group::Elementwise,
        Group::BiasAndSums,
        Group::Activations,
        Group::Losses,
        Group::NanPropagates,
        Group::Updates,
        Group::LargeElementwise,
        Group::Dropout,
        Group::ShapeErrors,
        Group::EmptyShapes,
        Group::TrainingStep,
    ];

    /// Runs this group's checks on `b` in dtype `E`.
    pub fn run<E: Element, B: Backend<E> + Clone>(self, b: &B) -> Report {
        let mut sink = report::Sink::new::<E>();
        let check: fn(&B, &mut report::Sink) = match self {
            Group::Transfers => ops::transfers::<E, B>,
            Group::Gemm => ops::gemm::<E, B>,
            Group::Elementwise => ops::elementwise::<E, B>,
            Group::BiasAndSums => ops::bias_and_sums::<E, B>,
            Group::Activations => ops::activations::<E, B>,
            Group::Losses => ops::losses::<E, B>,
            Group::NanPropagates => ops::nan_propagates::<E, B>,
            Group::Updates => ops::optimizer_updates::<E, B>,
            Group::LargeElementwise => ops::large_elementwise::<E, B>,
            Group::Dropout => ops::dropout::<E, B>,
            Group::ShapeErrors => ops::shape_errors::<E, B>,
            Group::EmptyShapes => ops::empty_shapes::<E, B>,
            Group::TrainingStep => step::training_step::<E, B>,
        };
        // A backend that panics (an index out of range in its kernel, say) fails this group with
        // the panic's message instead of ending the whole run.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(b, &mut sink)));
        if let Err(payload) = run {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            sink.panicked(&format!("{self:?}"), &message);
        }
        sink.report
    }
}

/// Every group on `b` in dtype `E`: the report `nabla check-backend` prints.
pub fn run<E: Element, B: Backend<E> + Clone>(b: &B) -> Report {
    let mut all = Report::default();
    for g in Group::ALL {
        all.extend(g.run::<E, B>(b));
    }
    all
}

/// Runs `group` on `b` in dtype `E` and panics with the rows that failed — and, unless
/// `allow_unsupported`, those the backend does not support — if any (what each test of
/// [`conformance_tests!`] does).
///
/// # Panics
///
/// That is its purpose: it is a test assertion, for `#[test]` functions only (use
/// [`Group::run`] or [`run`] for a report that never panics).
pub fn assert_group<E: Element, B: Backend<E> + Clone>(b: &B, group: Group, allow_unsupported: bool) {
    let report = group.run::<E, B>(b);
    let bad = |r: &&Row| r.outcome == Outcome::Fail || (!allow_unsupported && r.outcome == Outcome::Unsupported);
    let rows: Vec<Row> = report.rows.iter().filter(bad).cloned().collect();
    if !rows.is_empty() {
        let what = if allow_unsupported { "disagrees with" } else { "disagrees with or does not support" };
        panic!("{group:?} in {}: the backend {what} the reference\n{}", E::DTYPE.name(), Report { rows }.table());
    }
}

/// Prints why a test was skipped, past the test harness's output capture (so that a run without
/// the device shows it without `--nocapture`).
pub fn skip(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
}

/// Instantiates the conformance suite for a backend as a module of tests, one per [`Group`]:
/// `conformance_tests!(module, Some(backend))`, or `conformance_tests!(module, Some(backend),
/// [f32])` for the listed element types only (both by default). Every op must be supported;
/// a backend that leaves some out on purpose adds `allow_unsupported`:
/// `conformance_tests!(module, Some(backend), [f32], allow_unsupported)`. The expression gives
/// `None` (after printing why, e.g. with [`skip`]) when the backend is not present here.
#[macro_export]
macro_rules! conformance_tests {
    ($name:ident, $make:expr) => {
        $crate::conformance_tests!($name, $make, [f32, f64]);
    };
    ($name:ident, $make:expr, [$($t:ty),+]) => {
        $crate::conformance_tests!(@tests $name, $make, [$($t),+], false);
    };
    ($name:ident, $make:expr, [$($t:ty),+], allow_unsupported) => {
        $crate::conformance_tests!(@tests $name, $make, [$($t),+], true);
    };
    (@tests $name:ident, $make:expr, [$($t:ty),+], $allow:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            macro_rules! group_test {
                ($test:ident, $group:ident) => {
                    #[test]
                    fn $test() {
                        match $make {
                            Some(b) => { $($crate::assert_group::<$t, _>(&b, $crate::Group::$group, $allow);)+ }
                            None => $crate::skip(concat!(stringify!($name), " backend not present")),
                        }
                    }
                };
            }

            group_test!(transfers, Transfers);
            group_test!(gemm, Gemm);
            group_test!(elementwise, Elementwise);
            group_test!(bias_and_sums, BiasAndSums);
            group_test!(activations, Activations);
            group_test!(losses, Losses);
            group_test!(nan_propagates, NanPropagates);
            group_test!(updates, Updates);
            group_test!(large_elementwise, LargeElementwise);
            group_test!(dropout, Dropout);
            group_test!(shape_errors, ShapeErrors);
            group_test!(empty_shapes, EmptyShapes);
            group_test!(training_step, TrainingStep);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use nabla_core::backend::{Dims, Gemm};
    use nabla_core::{Activation, Error, Loss, Reference, Result, Update};

    #[test]
    fn the_reference_conforms_to_itself_on_every_row() {
        let report = run::<f64, _>(&Reference);
        assert!(report.passed() && report.complete(), "{}", report.table());
        assert!(report.rows.iter().all(|r| r.max_error == 0.0 && r.cases > 0), "{}", report.table());
        // Every activation, loss and rule has its rows.
        for op in ["activate", "activate_grad", "bias_add_activate a"] {
            let n = report.rows.iter().filter(|r| r.op == op && !r.variant.ends_with("(large)")).count();
            assert_eq!(n, nabla_core::Activation::ALL.len(), "{op}");
        }
        assert_eq!(report.rows.iter().filter(|r| r.op == "loss grad").count(), nabla_core::Loss::ALL.len());
        let rules: Vec<_> = report.rows.iter().filter(|r| r.op == "update w").map(|r| r.variant.as_str()).collect();
        assert_eq!(rules.len(), 2 * (nabla_core::Rule::ALL.len() + 2), "{rules:?}");
        assert!(rules.contains(&"adam+decay") && rules.contains(&"sgd+l2 (large)"), "{rules:?}");
    }

    /// The reference with one fault: Mish unsupported, or a panic in `hadamard`.
    #[derive(Clone, Copy)]
    enum Faulty {
        NoMish,
        PanickingHadamard,
    }

    impl Backend<f64> for Faulty {
        type Buf = Vec<f64>;
        fn name(&self) -> String {
            "faulty".into()
        }
        fn alloc(&self, len: usize) -> Result<Vec<f64>> {
            Reference.alloc(len)
        }
        fn len(&self, buf: &Vec<f64>) -> usize {
            buf.len()
        }
        fn write(&self, host: &[f64], buf: &mut Vec<f64>) -> Result<()> {
            Backend::<f64>::write(&Reference, host, buf)
        }
        fn download(&self, buf: &Vec<f64>, host: &mut [f64]) -> Result<()> {
            Reference.download(buf, host)
        }
        fn gemm(&self, s: Gemm, al: f64, a: &Vec<f64>, b: &Vec<f64>, be: f64, c: &mut Vec<f64>) -> Result<()> {
            Reference.gemm(s, al, a, b, be, c)
        }
        fn hadamard(&self, len: usize, x: &Vec<f64>, y: &mut Vec<f64>) -> Result<()> {
            if let Faulty::PanickingHadamard = self {
                panic!("index out of range in the faulty kernel");
            }
            Reference.hadamard(len, x, y)
        }
        fn bias_add(&self, d: Dims, bias: &Vec<f64>, z: &mut Vec<f64>) -> Result<()> {
            Reference.bias_add(d, bias, z)
        }
        fn activate(&self, f: Activation, d: Dims, z: &Vec<f64>, a: &mut Vec<f64>) -> Result<()> {
            match (self, f) {
                (Faulty::NoMish, Activation::Mish) => {
                    Err(Error::Unsupported { backend: self.name(), op: "mish".into() })
                }
                _ => Reference.activate(f, d, z, a),
            }
        }
        fn activate_grad(&self, f: Activation, d: Dims, z: &Vec<f64>, a: &Vec<f64>, g: &mut Vec<f64>) -> Result<()> {
            Reference.activate_grad(f, d, z, a, g)
        }
        fn sum_rows(&self, d: Dims, al: f64, x: &Vec<f64>, be: f64, out: &mut Vec<f64>) -> Result<()> {
            Reference.sum_rows(d, al, x, be, out)
        }
        fn loss(&self, l: Loss, d: Dims, o: &Vec<f64>, t: &Vec<f64>, g: &mut Vec<f64>, s: &mut Vec<f64>) -> Result<()> {
            Reference.loss(l, d, o, t, g, s)
        }
        fn update(&self, u: &Update, n: usize, w: &mut Vec<f64>, g: &Vec<f64>, s: &mut [&mut Vec<f64>]) -> Result<()> {
            Reference.update(u, n, w, g, s)
        }
        fn dropout_mask(&self, len: usize, rate: f64, seed: u64, first: u64, mask: &mut Vec<f64>) -> Result<()> {
            Reference.dropout_mask(len, rate, seed, first, mask)
        }
    }

    /// An unsupported op is a row of its own: it passes `check-backend`'s verdict but not the
    /// strict tests, and passes the tests that allow it.
    #[test]
    fn unsupported_ops_fail_the_strict_tests_only() {
        let report = Group::Activations.run::<f64, _>(&Faulty::NoMish);
        assert!(report.passed() && !report.complete());
        let row = report.rows.iter().find(|r| r.op == "activate" && r.variant == "mish").unwrap();
        assert_eq!(row.outcome, Outcome::Unsupported);
        let strict = std::panic::catch_unwind(|| assert_group::<f64, _>(&Faulty::NoMish, Group::Activations, false));
        assert!(strict.is_err(), "an unsupported op fails the strict tests");
        assert_group::<f64, _>(&Faulty::NoMish, Group::Activations, true);
    }

    /// A panicking backend fails its group with the panic's message; the other groups still run.
    #[test]
    fn a_panic_in_the_backend_is_a_failing_row() {
        let report = Group::Elementwise.run::<f64, _>(&Faulty::PanickingHadamard);
        let row = report.failures().find(|r| r.op == "panic").unwrap();
        assert!(row.detail.contains("index out of range in the faulty kernel"), "{row:?}");
        assert!(Group::Gemm.run::<f64, _>(&Faulty::PanickingHadamard).passed());
    }
}
