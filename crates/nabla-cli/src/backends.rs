//! `nabla backends`: what is compiled in and whether it works here.

use std::process::ExitCode;

use nabla::{AnyBackend, BackendOptions, Result};
use serde_json::json;

use crate::args::BackendsArgs;

/// Each backend compiled in, probed by opening it.
pub fn run(args: &BackendsArgs) -> Result<ExitCode> {
    let statuses = AnyBackend::statuses(&BackendOptions::default());
    if args.json {
        let rows: Vec<_> = statuses
            .iter()
            .map(|s| json!({ "backend": s.name, "compiled": s.compiled, "usable": s.usable, "detail": s.detail }))
            .collect();
        println!("{}", json!({ "backends": rows }));
    } else {
        println!("{:<14} {:<9} {:<7} detail", "backend", "compiled", "usable");
        let yes = |b: bool| if b { "yes" } else { "no" };
        for s in &statuses {
            println!("{:<14} {:<9} {:<7} {}", s.name, yes(s.compiled), yes(s.usable), s.detail);
        }
    }
    Ok(ExitCode::SUCCESS)
}
