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
        check(b, &mut sink);
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

/// Runs `group` on `b` in dtype `E` and panics with the failed rows, if any (what each test of
/// [`conformance_tests!`] does).
pub fn assert_group<E: Element, B: Backend<E> + Clone>(b: &B, group: Group) {
    let report = group.run::<E, B>(b);
    if !report.passed() {
        let failed = Report { rows: report.failures().cloned().collect() };
        panic!("{group:?} in {}: the backend disagrees with the reference\n{}", E::DTYPE.name(), failed.table());
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
/// [f32])` for the listed element types only (both by default). The expression gives `None`
/// (after printing why, e.g. with [`skip`]) when the backend is not present on this machine.
#[macro_export]
macro_rules! conformance_tests {
    ($name:ident, $make:expr) => {
        $crate::conformance_tests!($name, $make, [f32, f64]);
    };
    ($name:ident, $make:expr, [$($t:ty),+]) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            macro_rules! group_test {
                ($test:ident, $group:ident) => {
                    #[test]
                    fn $test() {
                        match $make {
                            Some(b) => { $($crate::assert_group::<$t, _>(&b, $crate::Group::$group);)+ }
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
    use nabla_core::Reference;

    #[test]
    fn the_reference_conforms_to_itself_on_every_row() {
        let report = run::<f64, _>(&Reference);
        assert!(report.passed(), "{}", report.table());
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
}
