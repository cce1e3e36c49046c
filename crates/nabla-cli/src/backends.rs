//! `nabla backends`: what is compiled in and whether it works here.

use std::process::ExitCode;

use nabla::{AnyBackend, BackendOptions, Result};
use serde_json::json;

use crate::args::BackendsArgs;

/// Each backend compiled in, probed by opening it.
pub fn run(args: &BackendsArgs) -> Result<ExitCode> {
    let mut rows = Vec::new();
    for name in ["reference", "openblas"] {
        let probe = AnyBackend::from_name(name, &BackendOptions::default());
        let (usable, detail) = match &probe {
            Ok(AnyBackend::Reference(_)) => (true, "plain Rust loops (the test oracle)".to_string()),
            #[cfg(feature = "openblas")]
            Ok(AnyBackend::OpenBlas(o)) => (true, format!("OpenBLAS, {} threads", o.threads())),
            Err(e) => (false, e.to_string()),
        };
        rows.push(json!({ "backend": name, "compiled": true, "usable": usable, "detail": detail }));
    }
    for (name, feature) in [("cuda", "cuda"), ("plugin:PATH", "plugins")] {
        rows.push(json!({ "backend": name, "compiled": false, "usable": false,
            "detail": format!("not compiled in; rebuild with --features {feature}") }));
    }
    if args.json {
        println!("{}", json!({ "backends": rows }));
    } else {
        println!("{:<14} {:<9} {:<7} detail", "backend", "compiled", "usable");
        for r in &rows {
            let yes = |k: &str| {
                if r[k].as_bool() == Some(true) { "yes" } else { "no" }
            };
            println!(
                "{:<14} {:<9} {:<7} {}",
                r["backend"].as_str().unwrap_or(""),
                yes("compiled"),
                yes("usable"),
                r["detail"].as_str().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
