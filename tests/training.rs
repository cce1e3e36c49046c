//! Whole training runs through the driver on the built-in data sets.

use nabla::backend::Backend;
use nabla::data::synthetic::{Spec, generate};
use nabla::data::{Dataset, Task};
use nabla::{
    Activation, Architecture, BatchSize, Element, Error, HostData, Init, Loss, Network, OptimizerConfig, Silent,
    TrainConfig, Trainer,
};

fn matrices<E: Element>(d: &Dataset, outputs: usize) -> (Vec<E>, Vec<E>) {
    let x = d.features.iter().map(|&v| E::of(v)).collect();
    let y = d.target_matrix(outputs).unwrap().iter().map(|&v| E::of(v)).collect();
    (x, y)
}

/// Trains `sizes` on `data` and returns (final loss, accuracy) from an evaluation pass.
fn train<E: Element, B: Backend<E>>(
    backend: B,
    data: &Dataset,
    arch: Architecture,
    opt: &str,
    lr: f64,
    epochs: usize,
    batch: usize,
) -> nabla::Result<(f64, f64, Trainer<E, B>)> {
    let (x, y) = matrices::<E>(data, arch.outputs());
    let net = Network::new(backend, arch, Init::Auto, 7)?;
    let config = TrainConfig {
        epochs,
        batch_size: BatchSize::Rows(batch),
        seed: 7,
        accuracy: matches!(data.task(), Task::Classification { .. }),
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(net, OptimizerConfig::named(opt, lr)?, config)?;
    trainer.fit(HostData { x: &x, y: &y, rows: data.len() }, None, &mut Silent)?;
    let s = trainer.net.evaluate(&x, &y)?;
    Ok((s.loss, s.accuracy(), trainer))
}

fn spirals() -> Dataset {
    generate("spirals", Spec::default(), 7).unwrap()
}

#[test]
fn spirals_learn_on_reference_and_openblas_alike() {
    let arch = Architecture::new(&[2, 64, 64, 3], Activation::Relu, Loss::SoftmaxCe).unwrap();
    let (loss_r, acc_r, tr) = train::<f32, _>(nabla::Reference, &spirals(), arch.clone(), "sgd", 0.1, 200, 32).unwrap();
    let (loss_o, acc_o, to) =
        train::<f32, _>(nabla::OpenBlas::new(Some(2)).unwrap(), &spirals(), arch, "sgd", 0.1, 200, 32).unwrap();
    assert!(acc_r >= 0.9 && acc_o >= 0.9, "accuracy reference {acc_r}, openblas {acc_o}");
    assert!((loss_r - loss_o).abs() < 1e-3 * loss_r.max(1e-2), "final loss reference {loss_r} vs openblas {loss_o}");
    // The loss curves agree epoch by epoch.
    for (a, b) in tr.history.iter().zip(&to.history) {
        assert!(
            (a.train_loss - b.train_loss).abs() < 1e-3 * a.train_loss.max(1e-2),
            "epoch {}: {} vs {}",
            a.epoch,
            a.train_loss,
            b.train_loss
        );
    }
}

#[test]
fn every_builtin_set_is_learnt() {
    /// Data set, layers, hidden activation, loss, learning rate, epochs, accuracy wanted.
    type Case = (&'static str, Vec<usize>, Activation, Loss, f64, usize, f64);
    let cases: [Case; 5] = [
        ("xor", vec![2, 8, 1], Activation::Tanh, Loss::Bce, 0.5, 500, 1.0),
        ("moons", vec![2, 32, 32, 2], Activation::Relu, Loss::SoftmaxCe, 0.1, 100, 0.97),
        ("circles", vec![2, 32, 32, 2], Activation::Relu, Loss::SoftmaxCe, 0.1, 100, 0.97),
        ("spirals", vec![2, 64, 64, 3], Activation::Tanh, Loss::SoftmaxCe, 0.1, 300, 0.9),
        ("sine", vec![1, 64, 64, 1], Activation::Tanh, Loss::Mse, 0.05, 400, 0.0),
    ];
    for (name, sizes, act, loss, lr, epochs, want) in cases {
        let data = generate(name, Spec::default(), 3).unwrap();
        let arch = Architecture::new(&sizes, act, loss).unwrap();
        let (final_loss, acc, _) =
            train::<f64, _>(nabla::OpenBlas::new(Some(1)).unwrap(), &data, arch, "sgd", lr, epochs, 16).unwrap();
        if name == "sine" {
            // Noise variance is 0.05² = 0.0025; a good fit gets close to it.
            assert!(final_loss < 0.01, "sine mse {final_loss}");
        } else {
            assert!(acc >= want, "{name}: accuracy {acc} < {want}");
        }
    }
}

#[test]
fn partial_last_batch_is_trained_not_dropped() {
    let data = generate("moons", Spec { samples: Some(70), ..Spec::default() }, 1).unwrap();
    let arch = Architecture::new(&[2, 8, 2], Activation::Tanh, Loss::SoftmaxCe).unwrap();
    let (_, _, t) = train::<f32, _>(nabla::Reference, &data, arch, "sgd", 0.1, 1, 32).unwrap();
    assert_eq!(t.history[0].steps, 3, "70 samples in batches of 32: 32 + 32 + 6");
    assert!((t.history[0].samples_per_sec * t.history[0].seconds - 70.0).abs() < 1e-6);
}

#[test]
fn a_diverging_run_stops_with_epoch_step_and_layer() {
    let data = generate("sine", Spec::default(), 1).unwrap();
    let arch = Architecture::new(&[1, 16, 1], Activation::Relu, Loss::Mse).unwrap();
    let err = train::<f32, _>(nabla::Reference, &data, arch, "sgd", 1e6, 50, 16).expect_err("diverges");
    let Error::NonFinite { epoch, step, ref origin, .. } = err else { panic!("wrong error: {err}") };
    assert!(epoch >= 1 && step >= 1, "{err}");
    assert!(origin.contains("layer") || origin.contains("loss"), "{origin}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("epoch {epoch}, step {step}")) && msg.contains("learning rate"), "{msg}");
}

#[test]
fn nan_in_the_data_is_located() {
    let arch = Architecture::new(&[2, 4, 2], Activation::Tanh, Loss::SoftmaxCe).unwrap();
    let mut net = Network::new(nabla::Reference, arch, Init::Auto, 1).unwrap();
    let mut opt = net.optimizer(OptimizerConfig::named("sgd", 0.1).unwrap()).unwrap();
    net.train_batch(&[0.1, f32::NAN, 0.3, 0.4], &[1.0, 0.0, 0.0, 1.0], &mut opt).unwrap();
    assert!(net.score().unwrap().loss.is_nan());
    assert_eq!(net.locate_non_finite(2).unwrap(), "layer 1 (pre-activations Z; non-finite values in its weights)");
}

#[test]
fn wrong_sizes_are_errors_not_panics() {
    let arch = Architecture::new(&[2, 4, 3], Activation::Tanh, Loss::SoftmaxCe).unwrap();
    let mut net = Network::new(nabla::Reference, arch, Init::Auto, 1).unwrap();
    let e = net.predict(&[1.0_f32, 2.0, 3.0]).unwrap_err().to_string();
    assert!(e.contains("3 values") && e.contains("2 inputs"), "{e}");
    let e = net.evaluate(&[1.0_f32, 2.0], &[1.0, 0.0]).unwrap_err().to_string();
    assert!(e.contains("targets needs 3 values but 2"), "{e}");
    let e = Architecture::new(&[2, 4, 1], Activation::Tanh, Loss::SoftmaxCe).unwrap_err().to_string();
    assert!(e.contains("softmax-ce needs at least 2 outputs"), "{e}");
    let e = Architecture::new(&[2, 4, 3], Activation::Tanh, Loss::SoftmaxCe)
        .unwrap()
        .with_output(Activation::Sigmoid)
        .unwrap_err()
        .to_string();
    assert!(e.contains("fused with a `softmax` output"), "{e}");
    assert!(Architecture::new(&[2], Activation::Tanh, Loss::Mse).is_err());
    assert!(Architecture::new(&[2, 0, 1], Activation::Tanh, Loss::Mse).is_err());
}

#[test]
fn predictions_are_probabilities() {
    let arch = Architecture::new(&[2, 5, 3], Activation::Relu, Loss::SoftmaxCe).unwrap();
    let mut net = Network::new(nabla::Reference, arch, Init::Auto, 2).unwrap();
    let p = net.predict(&[0.5_f64, -0.5, 1.0, 2.0]).unwrap();
    for row in p.chunks(3) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12 && row.iter().all(|&v| v > 0.0));
    }
}
