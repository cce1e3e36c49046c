//! `nabla backends`: what is compiled in and whether it works here.

use std::process::ExitCode;

use nabla::{AnyBackend, BackendOptions, Result};
use serde_json::json;

use crate::args::BackendsArgs;

/// Each backend compiled in, probed by opening it; or one plugin's capabilities.
pub fn run(args: &BackendsArgs) -> Result<ExitCode> {
    if let Some(path) = &args.plugin {
        return plugin(path, args.json);
    }
    let statuses = AnyBackend::statuses(&BackendOptions::default());
    if args.json {
        let rows: Vec<_> = statuses
            .iter()
            .map(|s| json!({ "backend": s.name, "compiled": s.compiled, "usable": s.usable, "detail": s.detail }))
            .collect();
        let mpi = json!({ "compiled": cfg!(feature = "mpi"), "detail": crate::job::describe() });
        println!("{}", json!({ "backends": rows, "mpi": mpi, "cpu": crate::cpu::report() }));
    } else {
        println!("{:<14} {:<9} {:<7} detail", "backend", "compiled", "usable");
        let yes = |b: bool| if b { "yes" } else { "no" };
        for s in &statuses {
            println!("{:<14} {:<9} {:<7} {}", s.name, yes(s.compiled), yes(s.usable), s.detail);
        }
        println!("data parallelism: {}", crate::job::describe());
        if let Some(cpu) = crate::cpu::report() {
            println!("{}", cpu.lines());
            if let Some(w) = &cpu.warning {
                eprintln!("warning: {w}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `nabla backends --plugin PATH`: what the plugin supports, op by op.
#[cfg(feature = "plugins")]
fn plugin(path: &std::path::Path, as_json: bool) -> Result<ExitCode> {
    let p = nabla::plugin::PluginBackend::load(path)?;
    let caps = nabla::plugin::capabilities(&p);
    if as_json {
        let ops: serde_json::Map<String, serde_json::Value> = caps.into_iter().map(|(op, v)| (op, json!(v))).collect();
        println!("{}", json!({ "plugin": p.plugin_name(), "path": path.display().to_string(), "ops": ops }));
    } else {
        println!("plugin `{}` ({})", p.plugin_name(), path.display());
        for (op, support) in caps {
            println!("  {op:<14} {support}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Without plugin support compiled in, `--plugin` is an error that says how to get it.
#[cfg(not(feature = "plugins"))]
fn plugin(_: &std::path::Path, _: bool) -> Result<ExitCode> {
    Err(nabla::Error::Unavailable {
        backend: "plugin".into(),
        reason: "this build of nabla was compiled without plugin support; rebuild with `--features plugins`".into(),
    })
}
