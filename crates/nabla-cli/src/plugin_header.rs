//! `nabla plugin-header [DIR]`: the C headers of the plugin ABI, the op codes generated from
//! the Rust enums of this build.

use std::process::ExitCode;

use nabla::Result;

use crate::args::PluginHeaderArgs;

/// Writes `nabla_plugin.h` and `nabla_plugin_codes.h` into the folder and prints their paths.
#[cfg(feature = "plugins")]
pub fn run(args: &PluginHeaderArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .map_err(|source| nabla::Error::Io { path: args.dir.display().to_string(), source })?;
    for path in nabla::plugin::write_headers(&args.dir)? {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Without plugin support compiled in, an error that says how to get it.
#[cfg(not(feature = "plugins"))]
pub fn run(_: &PluginHeaderArgs) -> Result<ExitCode> {
    Err(nabla::Error::Unavailable {
        backend: "plugin".into(),
        reason: "this build of nabla was compiled without plugin support; rebuild with `--features plugins`".into(),
    })
}
