//! The data-parallel reducer through NCCL on device 0, as a world of one rank: NCCL's second
//! stream, its events and the per-layer group calls run for real, and the summed gradients
//! (one rank's share is 1) must equal the gradients one process computes on the same device,
//! bit for bit, with the overlap and without. With one rank NCCL leaves the values as they are,
//! so this checks the calls (a stream or event the driver refuses fails it), not a race between
//! the streams; several ranks need `mpirun` and a GPU each. Skipped without a device, or without
//! NCCL (an optional library), saying so.
#![cfg(feature = "nccl")]

use nabla_core::backend::Backend;
use nabla_core::distributed::{Collective, GradientReducer};
use nabla_core::{Activation, Architecture, Init, Loss, Mode, Network, Result};
use nabla_cuda::Cuda;

/// A job of one rank: every sum and broadcast leaves the values as they are.
struct Alone;

impl Collective for Alone {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum_f32(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        recv.copy_from_slice(send);
        Ok(())
    }
    fn sum_f64(&self, send: &[f64], recv: &mut [f64]) -> Result<()> {
        recv.copy_from_slice(send);
        Ok(())
    }
    fn broadcast_f32(&self, _: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn broadcast_f64(&self, _: &mut [f64]) -> Result<()> {
        Ok(())
    }
}

#[test]
fn one_rank_through_nccl_gets_the_gradients_of_one_process() {
    if !nabla_cuda::device_present() {
        nabla_backend_tests::skip("no CUDA driver or device");
        return;
    }
    if let Err(e) = nabla_cuda::nccl::check_library() {
        nabla_backend_tests::skip(&format!("NCCL is optional and not installed here: {e}"));
        return;
    }
    let open = || Cuda::new(Default::default()).unwrap_or_else(|e| panic!("a CUDA device is present: {e}"));
    // 1 MiB and larger layers as well as small ones; 37 rows (odd).
    let arch = Architecture::new(&[33, 600, 500, 7], Activation::Relu, Loss::SoftmaxCe).unwrap();
    let rows = 37;
    let x: Vec<f64> = (0..rows * 33).map(|i| (i as f64 * 0.37).sin()).collect();
    let y: Vec<f64> = (0..rows * 7).map(|i| f64::from(u8::from(i % 7 == (i / 7) % 7))).collect();
    let mut alone = Network::new(open(), arch.clone(), Init::Auto, 5).unwrap();
    let score = alone.compute_gradients(&x, &y).unwrap();
    let expected = alone.gradients_to_host().unwrap();
    let mut net = Network::new(open(), arch, Init::Auto, 5).unwrap();
    let mut reducer = GradientReducer::new(Box::new(Alone), &net).unwrap();
    let (xb, yb) = (net.backend().upload(&x).unwrap(), net.backend().upload(&y).unwrap());
    for overlap in [true, false, true] {
        reducer.set_overlap(overlap);
        net.forward(&xb, rows, Mode::Eval).unwrap();
        net.output_error(&yb, rows).unwrap();
        let local = net.score().unwrap();
        let global = reducer.backward_and_reduce(&mut net, &xb, Some(local), rows, rows).unwrap();
        Backend::<f64>::synchronize(net.backend()).unwrap();
        assert_eq!(net.gradients_to_host().unwrap(), expected, "overlap {overlap}");
        assert!((global.loss - score.loss).abs() <= 1e-12 * score.loss, "{} vs {}", global.loss, score.loss);
    }
}
