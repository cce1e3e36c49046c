//! `nabla check-backend BACKEND`: the conformance kit (`nabla-backend-tests`) on any backend
//! nabla can open, plugins included, as a table; exit status 1 when a row fails (or, with
//! `--strict`, when one is unsupported).

use std::process::ExitCode;

use nabla::{AnyBackend, BackendOptions, DType, Result};
use nabla_backend_tests::{Outcome, Report, Row};
use serde_json::json;

use crate::args::CheckBackendArgs;

/// Runs every check group in each dtype asked for and prints the report.
pub fn run(args: &CheckBackendArgs) -> Result<ExitCode> {
    let backend = AnyBackend::from_name(&args.backend, &BackendOptions::default())?;
    let mut report = Report::default();
    for dtype in &args.dtype {
        report.extend(match dtype {
            DType::F32 => nabla_backend_tests::run::<f32, _>(&backend),
            DType::F64 => nabla_backend_tests::run::<f64, _>(&backend),
            other => return Err(nabla::Error::invalid("--dtype", format!("{other}: the kit checks f32 and f64"))),
        });
    }
    println!("{}", report.table());
    let count = |o: Outcome| report.rows.iter().filter(|r| r.outcome == o).count();
    let (pass, fail, unsupported) = (count(Outcome::Pass), count(Outcome::Fail), count(Outcome::Unsupported));
    let verdict = match (report.passed(), report.complete()) {
        (false, _) => "does NOT conform".to_string(),
        (true, true) => "conforms".to_string(),
        (true, false) => format!("conforms on what it supports ({unsupported} rows unsupported)"),
    };
    println!(
        "{}: {} rows, {pass} pass, {fail} fail, {unsupported} unsupported: the backend {verdict}",
        args.backend,
        report.rows.len()
    );
    if args.json {
        let rows: Vec<_> = report.rows.iter().map(row_json).collect();
        let (passed, complete) = (report.passed(), report.complete());
        println!("{}", json!({ "backend": args.backend, "passed": passed, "complete": complete, "rows": rows }));
    }
    let ok = report.passed() && (report.complete() || !args.strict);
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// A row as JSON; a non-finite error (a NaN where the reference has none, a wrong length, an
/// error) is `null`.
fn row_json(r: &Row) -> serde_json::Value {
    json!({
        "op": r.op,
        "dtype": r.dtype.name(),
        "variant": r.variant,
        "cases": r.cases,
        "max_error": r.max_error.is_finite().then_some(r.max_error),
        "tolerance": r.tolerance,
        "result": r.outcome.name(),
        "detail": r.detail,
    })
}
