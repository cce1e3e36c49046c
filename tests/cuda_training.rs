//! Training on CUDA follows the reference backend's loss curve for the same seed.
//! Skipped, with the reason printed, when no CUDA device is present.

#![cfg(feature = "cuda")]

/// Prints why the test was skipped, past the harness's output capture.
fn skip(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
}

use nabla::backend::Backend;
use nabla::data::synthetic::{Spec, generate};
use nabla::{
    Activation, Architecture, Element, HostData, Init, Loss, Network, OptimizerConfig, Silent, TrainConfig, Trainer,
};

fn curve<E: Element, B: Backend<E>>(backend: B, opt: &str, lr: f64) -> Vec<f64> {
    let data = generate("spirals", Spec::default(), 7).unwrap();
    let arch =
        Architecture::new(&[2, 64, 64, 3], Activation::Relu, Loss::SoftmaxCe).unwrap().with_dropout(0.1).unwrap();
    let x: Vec<E> = data.features.iter().map(|&v| E::of(v)).collect();
    let y: Vec<E> = data.target_matrix(3).unwrap().iter().map(|&v| E::of(v)).collect();
    let net = Network::new(backend, arch, Init::Auto, 7).unwrap();
    let config = TrainConfig { epochs: 30, seed: 7, ..TrainConfig::default() };
    let mut t = Trainer::new(net, OptimizerConfig::named(opt, lr).unwrap(), config).unwrap();
    t.fit(HostData { x: &x, y: &y, rows: data.len() }, None, &mut Silent).unwrap();
    t.history.iter().map(|r| r.train_loss).collect()
}

/// The CUDA backend on device 0; `None` (skipped) only when there is no driver or no device —
/// any other failure to open it, where a device is, fails the test.
fn cuda() -> Option<nabla::cuda::Cuda> {
    if !nabla::cuda::device_present() {
        skip("no CUDA driver or device");
        return None;
    }
    Some(nabla::cuda::Cuda::new(Default::default()).unwrap_or_else(|e| panic!("a CUDA device is present: {e}")))
}

#[test]
fn cuda_matches_the_reference_loss_curve() {
    let Some(cuda) = cuda() else { return };
    for (opt, lr) in [("sgd", 0.1), ("adam", 0.003)] {
        let (want, got) = (curve::<f64, _>(nabla::Reference, opt, lr), curve::<f64, _>(cuda.clone(), opt, lr));
        for (e, (w, g)) in want.iter().zip(&got).enumerate() {
            assert!((w - g).abs() <= 1e-9 * w.abs().max(1.0), "f64 {opt} epoch {}: reference {w} vs cuda {g}", e + 1);
        }
        let (want, got) = (curve::<f32, _>(nabla::Reference, opt, lr), curve::<f32, _>(cuda.clone(), opt, lr));
        for (e, (w, g)) in want.iter().zip(&got).enumerate() {
            assert!((w - g).abs() <= 2e-3 * w.abs().max(1.0), "f32 {opt} epoch {}: reference {w} vs cuda {g}", e + 1);
        }
        eprintln!("{opt}: final loss reference {:.6} cuda {:.6}", want[want.len() - 1], got[got.len() - 1]);
    }
}

#[test]
fn cuda_errors_are_typed_not_panics() {
    let Some(cuda) = cuda() else { return };
    let short: <nabla::cuda::Cuda as Backend<f32>>::Buf = cuda.alloc(3).unwrap();
    let mut out: <nabla::cuda::Cuda as Backend<f32>>::Buf = cuda.alloc(3).unwrap();
    let e = cuda.hadamard(5, &short, &mut out).unwrap_err().to_string();
    assert!(e.contains("hadamard"), "{e}");
    let huge = Backend::<f32>::alloc(&cuda, 1usize << 50);
    assert!(huge.is_err(), "allocating 4 PiB must fail as an error");
    eprintln!("out of memory: {}", huge.err().map(|e| e.to_string()).unwrap_or_default());
}
