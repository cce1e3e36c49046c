//! Every backend compiled in, against the reference backend (see `common/mod.rs`).

mod common;

conformance_suite!(reference, Some(nabla::Reference));

#[cfg(feature = "openblas")]
conformance_suite!(openblas, Some(nabla::OpenBlas::new(Some(2)).unwrap()));

conformance_suite!(any_backend, Some(nabla::AnyBackend::from_name("openblas", &Default::default()).unwrap()));

/// The CUDA backend on device 0, or `None` (with the reason printed) when there is none.
#[cfg(feature = "cuda")]
fn cuda_device() -> Option<nabla::cuda::Cuda> {
    match nabla::cuda::Cuda::new(Default::default()) {
        Ok(c) => Some(c),
        Err(e) => {
            common::skip(&format!("no CUDA device ({e})"));
            None
        }
    }
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
