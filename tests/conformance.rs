//! Every backend compiled in, against the reference backend (see `common/mod.rs`).

mod common;

conformance_suite!(reference, Some(nabla::Reference));

#[cfg(feature = "openblas")]
conformance_suite!(openblas, Some(nabla::OpenBlas::new(Some(2)).unwrap()));

conformance_suite!(any_backend, Some(nabla::AnyBackend::from_name("openblas", &Default::default()).unwrap()));
