#![warn(missing_docs)]
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

// Each item of `abi` mirrors a declaration of include/nabla_plugin.h, whose comments document it.
#[allow(missing_docs)]
pub mod abi;
pub mod export;
pub mod host;

pub use host::{PluginBackend, PluginBuf, PluginFloat, capabilities};

/// The C header, for tools that want to ship or check it.
pub const HEADER: &str = include_str!("../include/nabla_plugin.h");
