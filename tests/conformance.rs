//! The reference and the facade's `AnyBackend` against the reference (the conformance kit,
//! `crates/nabla-backend-tests`; each backend crate runs it on itself from its own tests), and
//! the boundary between two CUDA instances.

#[cfg(feature = "cuda")]
mod common;

nabla_backend_tests::conformance_tests!(reference, Some(nabla::Reference));

nabla_backend_tests::conformance_tests!(
    any_backend,
    Some(nabla::AnyBackend::from_name("openblas", &Default::default()).unwrap())
);

/// Two instances (two contexts and streams, even on one device) refuse each other's buffers:
/// event tracking is off, so a buffer of another stream would race.
#[cfg(feature = "cuda")]
#[test]
fn two_cuda_backends_refuse_each_others_buffers() {
    let device = || {
        if !nabla::cuda::device_present() {
            nabla_backend_tests::skip("no CUDA driver or device");
            return None;
        }
        Some(nabla::cuda::Cuda::new(Default::default()).unwrap_or_else(|e| panic!("a CUDA device is present: {e}")))
    };
    let (Some(a), Some(b)) = (device(), device()) else { return };
    common::foreign_buffers_are_refused::<f32, _>(&a, &b);
    common::foreign_buffers_are_refused::<f64, _>(&b, &a);
}
