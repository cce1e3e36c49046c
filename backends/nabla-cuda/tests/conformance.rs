//! The CUDA backend against the reference (the conformance kit), on device 0.

use nabla_cuda::Cuda;

/// The backend on device 0, or `None` (with the reason printed) only when there is no driver or
/// no device: where a device is, a backend that does not open fails the test.
fn device() -> Option<Cuda> {
    if !nabla_cuda::device_present() {
        nabla_backend_tests::skip("no CUDA driver or device");
        return None;
    }
    Some(Cuda::new(Default::default()).unwrap_or_else(|e| panic!("a CUDA device is present: {e}")))
}

nabla_backend_tests::conformance_tests!(cuda, super::device());
