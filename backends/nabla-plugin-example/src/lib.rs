//! An example nabla plugin written in Rust: the reference backend's plain CPU code exported
//! through the C ABI. Build it with `cargo build -p nabla-plugin-example` and load
//! `target/<profile>/libnabla_plugin_example.so` with `--backend plugin:PATH`.
//!
//! The plugin in `c/example_plugin.c` is the same backend written in C.

nabla_plugin::export_plugin!("example-rust", Ok::<_, nabla_core::Error>(nabla_core::Reference));
