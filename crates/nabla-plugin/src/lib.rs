#![deny(missing_docs)]
//! # nabla-plugin
//!
//! Backends loaded at run time from shared libraries, through a versioned C ABI:
//!
//! - [`abi`]: the `#[repr(C)]` definitions matching `include/nabla_plugin.h`;
//! - [`host`]: [`PluginBackend`], which loads a plugin from an explicit path and implements
//!   `Backend` by calling through its table;
//! - [`export`]: [`export_plugin!`], which exports any Rust `Backend<f32> + Backend<f64>` as a
//!   plugin.
//!
//! `docs/plugins.md` explains how to write a plugin in Rust or C, the ownership and threading
//! rules and the versioning policy.

pub mod abi;
pub mod export;
pub mod host;

pub use host::{PluginBackend, PluginBuf, PluginFloat, capabilities};

use std::path::{Path, PathBuf};

/// The C header `nabla_plugin.h` (the ABI's table and types); it includes [`CODES_HEADER`].
pub const HEADER: &str = include_str!("../include/nabla_plugin.h");

/// The file name of the generated header of op codes that `nabla_plugin.h` includes.
pub const CODES_HEADER: &str = "nabla_plugin_codes.h";

/// `nabla_plugin_codes.h`: every activation, loss and update-rule code as a `NABLA_*` define,
/// generated from nabla_core's enums ([`nabla_core::codes::c_defines`]), so that no code is kept
/// by hand in C.
pub fn codes_header() -> String {
    let version = env!("CARGO_PKG_VERSION");
    let defines = nabla_core::codes::c_defines("NABLA_");
    format!(
        "/* {CODES_HEADER}: the op codes of nabla {version}, generated from nabla_core's Activation,\n \
         * Loss and Rule by `nabla plugin-header`. Do not edit; regenerate. */\n\
         #ifndef NABLA_PLUGIN_CODES_H\n#define NABLA_PLUGIN_CODES_H\n\n{defines}#endif /* NABLA_PLUGIN_CODES_H */\n"
    )
}

/// Writes `nabla_plugin.h` and `nabla_plugin_codes.h` into the folder `dir` (each atomically),
/// returning their paths: what a C plugin compiles against (`-I dir`).
pub fn write_headers(dir: &Path) -> nabla_core::Result<[PathBuf; 2]> {
    let (header, codes) = (dir.join("nabla_plugin.h"), dir.join(CODES_HEADER));
    nabla_core::atomic::write(&header, HEADER.as_bytes())?;
    nabla_core::atomic::write(&codes, codes_header().as_bytes())?;
    Ok([header, codes])
}
