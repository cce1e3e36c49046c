//! Every backend compiled in, against the reference backend (see `common/mod.rs`).

mod common;

conformance_suite!(reference, Some(nabla::Reference));

#[cfg(feature = "openblas")]
conformance_suite!(openblas, Some(nabla::OpenBlas::new(Some(2)).unwrap()));

// Each GEMM provider forced (`auto` above may take either per shape).
#[cfg(feature = "openblas")]
conformance_suite!(
    openblas_gemm_native,
    Some(nabla::OpenBlas::with_gemm(Some(2), nabla::GemmProvider::Native).unwrap())
);
#[cfg(feature = "openblas")]
conformance_suite!(
    openblas_gemm_openblas,
    Some(nabla::OpenBlas::with_gemm(Some(2), nabla::GemmProvider::OpenBlas).unwrap())
);

conformance_suite!(any_backend, Some(nabla::AnyBackend::from_name("openblas", &Default::default()).unwrap()));

/// The CUDA backend on device 0, or `None` (with the reason printed) only when there is no
/// driver or no device: where a device is, a backend that does not open fails the test.
#[cfg(feature = "cuda")]
fn cuda_device() -> Option<nabla::cuda::Cuda> {
    if !nabla::cuda::device_present() {
        common::skip("no CUDA driver or device");
        return None;
    }
    Some(nabla::cuda::Cuda::new(Default::default()).unwrap_or_else(|e| panic!("a CUDA device is present: {e}")))
}

#[cfg(feature = "cuda")]
conformance_suite!(cuda, super::cuda_device());

/// Two instances (two contexts and streams, even on one device) refuse each other's buffers:
/// event tracking is off, so a buffer of another stream would race.
#[cfg(feature = "cuda")]
#[test]
fn two_cuda_backends_refuse_each_others_buffers() {
    let (Some(a), Some(b)) = (cuda_device(), cuda_device()) else { return };
    common::foreign_buffers_are_refused::<f32, _>(&a, &b);
    common::foreign_buffers_are_refused::<f64, _>(&b, &a);
}
