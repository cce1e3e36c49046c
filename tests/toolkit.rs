//! The training toolkit: optimizers against hand-computed steps, every optimizer on the spirals,
//! regularisation, batching, validation, early stopping, observers, determinism, checkpoints.

use std::path::Path;

use nabla::backend::Backend;
use nabla::data::Dataset;
use nabla::data::synthetic::{Spec, generate};
use nabla::{
    Activation, Architecture, BatchSize, Control, EarlyStopping, Element, EpochReport, HostData, Init, Loss, Monitor,
    Network, Observer, OptimizerConfig, Rule, Schedule, Silent, TrainConfig, Trainer, Update, with_state_refs,
};

fn matrices<E: Element>(d: &Dataset, outputs: usize) -> (Vec<E>, Vec<E>) {
    let x = d.features.iter().map(|&v| E::of(v)).collect();
    let y = d.target_matrix(outputs).unwrap().iter().map(|&v| E::of(v)).collect();
    (x, y)
}

/// Applies `u` with gradients `gs` (one per step) to the weights `w` on backend `b`; returns
/// the weights after each step.
fn steps<B: Backend<f64>>(b: &B, u: Update, w: &[f64], gs: &[&[f64]]) -> Vec<Vec<f64>> {
    let len = w.len();
    let mut wb = b.upload(w).unwrap();
    let mut state: Vec<B::Buf> =
        (0..u.rule.state_count()).map(|i| b.upload(&vec![u.rule.initial_state(i, u.lr); len]).unwrap()).collect();
    let mut out = Vec::new();
    for (t, g) in gs.iter().enumerate() {
        let u = Update { t: t as u64 + 1, ..u };
        let gb = b.upload(g).unwrap();
        with_state_refs(&mut state, |s| b.update(&u, len, &mut wb, &gb, s)).unwrap();
        let mut host = vec![0.0; len];
        b.download(&wb, &mut host).unwrap();
        out.push(host);
    }
    out
}

fn assert_near(got: &[f64], want: &[f64], tol: f64, what: &str) {
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol, "{what}: got {got:?}, want {want:?}");
    }
}

fn hand_computed_first_steps<B: Backend<f64>>(b: &B) {
    let w = [0.5, -0.25, 1.0];
    let (g1, g2): (&[f64], &[f64]) = (&[0.2, -0.4, 0.0], &[0.1, 0.3, -0.5]);
    let lr = 0.1;
    let u = |rule| Update { rule, lr, t: 1, l2: 0.0, decay: 0.0 };

    let s = steps(b, u(Rule::Sgd), &w, &[g1]);
    assert_near(&s[0], &[0.48, -0.21, 1.0], 1e-15, "sgd");

    let s = steps(b, Update { l2: 0.1, ..u(Rule::Sgd) }, &w, &[g1]);
    assert_near(&s[0], &[0.5 - 0.1 * (0.2 + 0.05), -0.25 - 0.1 * (-0.4 - 0.025), 1.0 - 0.1 * 0.1], 1e-15, "sgd + l2");

    let mu = 0.9;
    let s = steps(b, u(Rule::Momentum { mu, nesterov: false }), &w, &[g1, g2]);
    let want2: Vec<f64> = (0..3).map(|i| w[i] - lr * g1[i] - lr * (g2[i] + mu * g1[i])).collect();
    assert_near(&s[1], &want2, 1e-15, "momentum second step = lr·(g2 + μ·g1)");

    let s = steps(b, u(Rule::Momentum { mu, nesterov: true }), &w, &[g1, g2]);
    let w1: Vec<f64> = (0..3).map(|i| w[i] - lr * (g1[i] + mu * g1[i])).collect();
    let w2: Vec<f64> = (0..3).map(|i| w1[i] - lr * (g2[i] + mu * (mu * g1[i] + g2[i]))).collect();
    assert_near(&s[0], &w1, 1e-15, "nesterov step 1");
    assert_near(&s[1], &w2, 1e-15, "nesterov step 2");

    // Adagrad, RMSprop and Adam move by ≈ lr·sign(g) on their first step (ε aside).
    let sign_step = |scale: f64| -> Vec<f64> {
        (0..3).map(|i| w[i] - scale * lr * g1[i].signum() * f64::from(u8::from(g1[i] != 0.0))).collect()
    };
    let s = steps(b, u(Rule::Adagrad { eps: 1e-10 }), &w, &[g1]);
    assert_near(&s[0], &sign_step(1.0), 1e-9, "adagrad first step");
    let s = steps(b, u(Rule::RmsProp { rho: 0.99, eps: 1e-8 }), &w, &[g1]);
    assert_near(&s[0], &sign_step(10.0), 1e-6, "rmsprop first step = lr·sign(g)/√(1−ρ)");
    let adam = Rule::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    let s = steps(b, u(adam), &w, &[g1]);
    assert_near(&s[0], &sign_step(1.0), 1e-7, "adam first step = lr·sign(g)");
    let s = steps(b, Update { decay: 0.01, ..u(adam) }, &w, &[g1]);
    let want: Vec<f64> = sign_step(1.0).iter().zip(&w).map(|(s, w0)| s - lr * 0.01 * w0).collect();
    assert_near(&s[0], &want, 1e-7, "adamw first step adds −lr·λ·w");
    // Adam's second step from the hand-computed moments.
    let s = steps(b, u(adam), &w, &[g1, g2]);
    let want2: Vec<f64> = (0..3)
        .map(|i| {
            let m = 0.9 * 0.1 * g1[i] + 0.1 * g2[i];
            let v = 0.999 * 0.001 * g1[i] * g1[i] + 0.001 * g2[i] * g2[i];
            let (mh, vh) = (m / (1.0 - 0.81), v / (1.0 - 0.999 * 0.999));
            s[0][i] - lr * mh / (vh.sqrt() + 1e-8)
        })
        .collect();
    assert_near(&s[1], &want2, 1e-12, "adam second step");

    // iRPROP−: Δ starts at lr; same sign grows it by η⁺, a flip shrinks it and skips the step.
    let rprop = Rule::Rprop { eta_minus: 0.5, eta_plus: 1.2, step_min: 1e-6, step_max: 50.0 };
    let g3: &[f64] = &[-0.2, -0.1, 0.3];
    let s = steps(b, u(rprop), &w, &[g1, g1, g3]);
    assert_near(&s[0], &[0.4, -0.15, 1.0], 1e-15, "rprop step 1: −sign(g)·Δ₀");
    assert_near(&s[1], &[0.4 - 0.12, -0.15 + 0.12, 1.0], 1e-15, "rprop step 2: Δ = 1.2·Δ₀");
    assert_near(
        &s[2],
        &[0.28, -0.03 + 0.144, 1.0 - 0.1],
        1e-15,
        "rprop step 3: a flip skips; same sign grows Δ; a first gradient moves by Δ₀",
    );
}

#[test]
fn optimizers_match_hand_computed_steps() {
    hand_computed_first_steps(&nabla::Reference);
    hand_computed_first_steps(&nabla::OpenBlas::new(Some(1)).unwrap());
}

fn spirals_with(opt: &str, lr: f64) -> f64 {
    let data = generate("spirals", Spec::default(), 7).unwrap();
    let arch = Architecture::new(&[2, 64, 64, 3], Activation::Relu, Loss::SoftmaxCe).unwrap();
    let (x, y) = matrices::<f32>(&data, 3);
    let net = Network::new(nabla::OpenBlas::new(Some(1)).unwrap(), arch, Init::Auto, 7).unwrap();
    let config = TrainConfig { epochs: 200, batch_size: BatchSize::Rows(32), seed: 7, ..TrainConfig::default() };
    let mut t = Trainer::new(net, OptimizerConfig::named(opt, lr).unwrap(), config).unwrap();
    t.fit(HostData { x: &x, y: &y, rows: data.len() }, None, &mut Silent).unwrap();
    t.net.evaluate(&x, &y).unwrap().accuracy()
}

#[test]
fn every_optimizer_learns_the_spirals() {
    for (opt, lr) in [
        ("sgd", 0.1),
        ("momentum", 0.05),
        ("nesterov", 0.05),
        ("adagrad", 0.05),
        ("rmsprop", 0.003),
        ("adam", 0.003),
        ("adamw", 0.003),
    ] {
        let acc = spirals_with(opt, lr);
        assert!(acc >= 0.9, "{opt} at lr {lr}: training accuracy {acc}");
    }
}

fn run(
    data: &Dataset,
    arch: Architecture,
    opt: OptimizerConfig,
    config: TrainConfig,
    threads: usize,
) -> Trainer<f32, nabla::OpenBlas> {
    let (x, y) = matrices::<f32>(data, arch.outputs());
    let net = Network::new(nabla::OpenBlas::new(Some(threads)).unwrap(), arch, Init::Auto, 3).unwrap();
    let mut t = Trainer::new(net, opt, config).unwrap();
    t.fit(HostData { x: &x, y: &y, rows: data.len() }, None, &mut Silent).unwrap();
    t
}

#[test]
fn rprop_trains_full_batch_and_refuses_mini_batches() {
    let data = generate("moons", Spec::default(), 2).unwrap();
    let arch = Architecture::new(&[2, 16, 16, 2], Activation::Tanh, Loss::SoftmaxCe).unwrap();
    let opt = OptimizerConfig::named("rprop", 0.01).unwrap();
    let config = TrainConfig { epochs: 100, batch_size: BatchSize::Full, ..TrainConfig::default() };
    let mut t = run(&data, arch.clone(), opt, config, 1);
    let (x, y) = matrices::<f32>(&data, 2);
    assert!(t.net.evaluate(&x, &y).unwrap().accuracy() >= 0.97);
    let net = Network::new(nabla::Reference, arch, Init::Auto, 3).unwrap();
    let mut t =
        Trainer::new(net, opt, TrainConfig { batch_size: BatchSize::Rows(32), ..TrainConfig::default() }).unwrap();
    let err = t.fit(HostData { x: &x, y: &y, rows: data.len() }, None, &mut Silent).expect_err("refused").to_string();
    assert!(err.contains("full-batch"), "{err}");
}

#[test]
fn batching_modes_take_the_expected_steps() {
    let data = generate("moons", Spec { samples: Some(50), ..Spec::default() }, 2).unwrap();
    let arch = Architecture::new(&[2, 8, 2], Activation::Tanh, Loss::SoftmaxCe).unwrap();
    let sgd = OptimizerConfig::named("sgd", 0.1).unwrap();
    let cfg = |batch_size, drop_last| TrainConfig { epochs: 2, batch_size, drop_last, ..TrainConfig::default() };
    assert_eq!(run(&data, arch.clone(), sgd, cfg(BatchSize::Rows(1), false), 1).history[0].steps, 50, "per-sample SGD");
    assert_eq!(run(&data, arch.clone(), sgd, cfg(BatchSize::Full, false), 1).history[0].steps, 1, "full batch");
    assert_eq!(run(&data, arch.clone(), sgd, cfg(BatchSize::Rows(16), false), 1).history[0].steps, 4, "16+16+16+2");
    let dropped = run(&data, arch, sgd, cfg(BatchSize::Rows(16), true), 1);
    assert_eq!(dropped.history[0].steps, 3, "the partial batch dropped when asked");
    assert!((dropped.history[0].samples_per_sec * dropped.history[0].seconds - 48.0).abs() < 1e-6);
}

#[test]
fn dropout_is_seeded_and_off_at_prediction() {
    let data = generate("spirals", Spec::default(), 7).unwrap();
    let arch =
        Architecture::new(&[2, 64, 64, 3], Activation::Relu, Loss::SoftmaxCe).unwrap().with_dropout(0.2).unwrap();
    let adam = OptimizerConfig::named("adam", 0.003).unwrap();
    let config = TrainConfig { epochs: 150, seed: 7, ..TrainConfig::default() };
    let mut a = run(&data, arch.clone(), adam, config.clone(), 1);
    let b = run(&data, arch, adam, config, 1);
    assert_eq!(a.net.parameters_to_host().unwrap(), b.net.parameters_to_host().unwrap(), "same seed, same masks");
    let (x, y) = matrices::<f32>(&data, 3);
    let p1 = a.net.predict(&x).unwrap();
    assert_eq!(p1, a.net.predict(&x).unwrap(), "prediction is deterministic");
    assert!(a.net.evaluate(&x, &y).unwrap().accuracy() >= 0.85);
    assert!(Architecture::new(&[2, 3, 2], Activation::Relu, Loss::SoftmaxCe).unwrap().with_dropout(1.0).is_err());
    assert!(Architecture::new(&[2, 3, 2], Activation::Relu, Loss::SoftmaxCe).unwrap().with_dropout(-0.1).is_err());
}

#[test]
fn weight_decay_shrinks_weights() {
    let data = generate("moons", Spec::default(), 2).unwrap();
    let arch = Architecture::new(&[2, 32, 2], Activation::Relu, Loss::SoftmaxCe).unwrap();
    let norm = |t: &Trainer<f32, nabla::OpenBlas>| -> f64 {
        t.net.parameters_to_host().unwrap().iter().step_by(2).flatten().map(|w| f64::from(*w).powi(2)).sum()
    };
    let config = TrainConfig { epochs: 30, ..TrainConfig::default() };
    let plain = run(&data, arch.clone(), OptimizerConfig::named("sgd", 0.1).unwrap(), config.clone(), 1);
    let l2 = OptimizerConfig { l2: 0.05, ..OptimizerConfig::named("sgd", 0.1).unwrap() };
    let decayed = run(&data, arch, l2, config, 1);
    assert!(norm(&decayed) < 0.9 * norm(&plain), "{} vs {}", norm(&decayed), norm(&plain));
}

struct StopAfter(usize, usize);

impl<E: Element, B: Backend<E>> Observer<E, B> for StopAfter {
    fn on_step(&mut self, _: &nabla::train::StepReport) -> Control {
        self.1 += 1;
        Control::Continue
    }
    fn on_epoch(&mut self, r: &EpochReport, _: &mut Trainer<E, B>) -> nabla::Result<Control> {
        Ok(if r.epoch >= self.0 { Control::Stop } else { Control::Continue })
    }
}

#[test]
fn observer_sees_steps_and_can_stop() {
    let data = generate("moons", Spec { samples: Some(64), ..Spec::default() }, 2).unwrap();
    let arch = Architecture::new(&[2, 8, 2], Activation::Tanh, Loss::SoftmaxCe).unwrap();
    let (x, y) = matrices::<f32>(&data, 2);
    let net = Network::new(nabla::Reference, arch, Init::Auto, 3).unwrap();
    let mut t = Trainer::new(
        net,
        OptimizerConfig::named("sgd", 0.1).unwrap(),
        TrainConfig { epochs: 50, batch_size: BatchSize::Rows(16), ..TrainConfig::default() },
    )
    .unwrap();
    let mut obs = StopAfter(3, 0);
    t.fit(HostData { x: &x, y: &y, rows: 64 }, None, &mut obs).unwrap();
    assert_eq!((t.epoch, obs.1), (3, 12));
}

#[test]
fn validation_and_early_stopping_restore_the_best_weights() {
    let data = generate("moons", Spec { noise: Some(0.35), ..Spec::default() }, 2).unwrap();
    let shuffle: Vec<usize> = (0..400).map(|i| (i * 7919) % 400).collect();
    let data = data.select(&shuffle);
    let (train, val) = (data.select(&(0..300).collect::<Vec<_>>()), data.select(&(300..400).collect::<Vec<_>>()));
    let arch = Architecture::new(&[2, 128, 128, 2], Activation::Relu, Loss::SoftmaxCe).unwrap();
    let (x, y) = matrices::<f32>(&train, 2);
    let (vx, vy) = matrices::<f32>(&val, 2);
    let es = EarlyStopping { monitor: Monitor::ValLoss, patience: 5, min_delta: 0.0, restore_best: true };
    let config = TrainConfig {
        epochs: 400,
        batch_size: BatchSize::Rows(16),
        early_stopping: Some(es),
        ..TrainConfig::default()
    };
    let net = Network::new(nabla::OpenBlas::new(Some(1)).unwrap(), arch, Init::Auto, 3).unwrap();
    let mut t = Trainer::new(net, OptimizerConfig::named("adam", 0.01).unwrap(), config).unwrap();
    t.fit(HostData { x: &x, y: &y, rows: 300 }, Some(HostData { x: &vx, y: &vy, rows: 100 }), &mut Silent).unwrap();
    assert!(t.stopped && t.epoch < 400, "stopped at epoch {}", t.epoch);
    assert!(t.history.iter().all(|r| r.val_loss.is_some() && r.val_accuracy.is_some()));
    let best = t.stop_state.best_epoch;
    assert_eq!(t.epoch, best + 5, "patience 5 after the best epoch {best}");
    let best_loss = t.history[best - 1].val_loss.unwrap();
    assert!(t.history.iter().all(|r| r.val_loss.unwrap() >= best_loss));
    assert_eq!(&t.net.parameters_to_host().unwrap(), t.best_parameters.as_ref().unwrap());
    let restored = t.net.evaluate(&vx, &vy).unwrap().loss;
    assert!((restored - best_loss).abs() < 1e-6, "{restored} vs {best_loss}");
}

#[test]
fn same_seed_same_backend_same_threads_is_bit_identical() {
    let data = generate("spirals", Spec::default(), 7).unwrap();
    let arch =
        Architecture::new(&[2, 64, 64, 3], Activation::Relu, Loss::SoftmaxCe).unwrap().with_dropout(0.1).unwrap();
    let adam = OptimizerConfig::named("adam", 0.003).unwrap();
    let config = TrainConfig { epochs: 20, seed: 11, ..TrainConfig::default() };
    for threads in [1, 2] {
        let a = run(&data, arch.clone(), adam, config.clone(), threads).net.parameters_to_host().unwrap();
        let b = run(&data, arch.clone(), adam, config.clone(), threads).net.parameters_to_host().unwrap();
        assert_eq!(a, b, "{threads} threads");
    }
}

/// Saves a checkpoint after epoch `.0` and stops there.
struct CheckpointAt(usize, std::path::PathBuf);

impl<E: Element, B: Backend<E>> Observer<E, B> for CheckpointAt {
    fn on_epoch(&mut self, r: &EpochReport, t: &mut Trainer<E, B>) -> nabla::Result<Control> {
        if r.epoch == self.0 {
            t.save_checkpoint(&self.1, &[])?;
            return Ok(Control::Stop);
        }
        Ok(Control::Continue)
    }
}

fn checkpoint_run(dir: &Path, dropout: f64, opt: &str, schedule: Schedule) {
    let data = generate("spirals", Spec::default(), 7).unwrap();
    let arch =
        Architecture::new(&[2, 32, 32, 3], Activation::Relu, Loss::SoftmaxCe).unwrap().with_dropout(dropout).unwrap();
    let (x, y) = matrices::<f32>(&data, 3);
    let h = HostData { x: &x, y: &y, rows: data.len() };
    let opt = OptimizerConfig::named(opt, 0.01).unwrap();
    let config = TrainConfig { epochs: 6, seed: 5, schedule, ..TrainConfig::default() };
    let make = || Network::new(nabla::OpenBlas::new(Some(1)).unwrap(), arch.clone(), Init::Auto, 9).unwrap();

    let mut straight = Trainer::new(make(), opt, config.clone()).unwrap();
    straight.fit(h, None, &mut Silent).unwrap();

    // The same run, checkpointed after epoch 3 by an observer and interrupted there.
    let path = dir.join("run.ckpt.safetensors");
    let mut first = Trainer::new(make(), opt, config.clone()).unwrap();
    first.fit(h, None, &mut CheckpointAt(3, path.clone())).unwrap();
    assert_eq!(first.epoch, 3);
    drop(first);
    let (mut resumed, _) = Trainer::<f32, _>::resume(nabla::OpenBlas::new(Some(1)).unwrap(), &path).unwrap();
    resumed.fit(h, None, &mut Silent).unwrap();

    assert_eq!(resumed.epoch, 6);
    assert_eq!(straight.net.parameters_to_host().unwrap(), resumed.net.parameters_to_host().unwrap(), "{opt} weights");
    let losses = |t: &Trainer<f32, nabla::OpenBlas>| -> Vec<(f64, Option<f64>, f64)> {
        t.history.iter().map(|r| (r.train_loss, r.train_accuracy, r.lr)).collect()
    };
    assert_eq!(losses(&straight), losses(&resumed), "{opt}: epoch losses, accuracies and rates");
}

#[test]
fn resuming_a_checkpoint_continues_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    checkpoint_run(dir.path(), 0.0, "sgd", Schedule::Constant);
    checkpoint_run(dir.path(), 0.2, "adam", "cosine:1".parse().unwrap());
    checkpoint_run(dir.path(), 0.0, "momentum", "plateau:0.5:1".parse().unwrap());
}

#[test]
fn bad_checkpoints_are_rejected_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let arch = Architecture::new(&[2, 8, 3], Activation::Relu, Loss::SoftmaxCe).unwrap();
    let net = Network::<f32, _>::new(nabla::Reference, arch.clone(), Init::Auto, 1).unwrap();
    let model = dir.path().join("m.safetensors");
    nabla::save_model(&net, &model, &[]).unwrap();

    // Another architecture: the mismatch is named and the network is left alone.
    let other = Architecture::new(&[2, 9, 3], Activation::Relu, Loss::SoftmaxCe).unwrap();
    let mut net2 = Network::<f32, _>::new(nabla::Reference, other, Init::Auto, 2).unwrap();
    let before = net2.parameters_to_host().unwrap();
    let e = net2.load_weights(&model).unwrap_err().to_string();
    assert!(e.contains("[2, 8, 3]") && e.contains("[2, 9, 3]"), "{e}");
    assert_eq!(before, net2.parameters_to_host().unwrap());

    // Truncated.
    let bytes = std::fs::read(&model).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let e = nabla::load_model::<f32, _>(nabla::Reference, &cut).err().unwrap().to_string();
    assert!(e.contains("truncated"), "{e}");

    // A tensor of the wrong shape: named.
    let wrong = dir.path().join("wrong.safetensors");
    let w = vec![0u8; 4 * 7 * 2];
    let b = vec![0u8; 4 * 8];
    let w2 = vec![0u8; 4 * 3 * 8];
    let b2 = vec![0u8; 4 * 3];
    use safetensors::tensor::{Dtype, TensorView};
    let tensors = vec![
        ("layers.0.weight", TensorView::new(Dtype::F32, vec![7, 2], &w).unwrap()),
        ("layers.0.bias", TensorView::new(Dtype::F32, vec![8], &b).unwrap()),
        ("layers.1.weight", TensorView::new(Dtype::F32, vec![3, 8], &w2).unwrap()),
        ("layers.1.bias", TensorView::new(Dtype::F32, vec![3], &b2).unwrap()),
    ];
    let meta = std::collections::HashMap::from([
        ("format".to_string(), "nabla-model-1".to_string()),
        ("architecture".to_string(), serde_json::to_string(&arch).unwrap()),
    ]);
    std::fs::write(&wrong, safetensors::serialize(tensors, Some(meta)).unwrap()).unwrap();
    let e = nabla::load_model::<f32, _>(nabla::Reference, &wrong).err().unwrap().to_string();
    assert!(e.contains("layers.0.weight") && e.contains("[7, 2]") && e.contains("[8, 2]"), "{e}");

    // A model file is not a checkpoint.
    let e = Trainer::<f32, _>::resume(nabla::Reference, &model).err().unwrap().to_string();
    assert!(e.contains("model file"), "{e}");

    // A failed save leaves the previous file intact.
    let dir_as_file = dir.path().join("m.safetensors/inside.safetensors");
    assert!(nabla::save_model(&net, &dir_as_file, &[]).is_err());
    assert_eq!(std::fs::read(&model).unwrap(), bytes);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn model_files_use_pytorch_names_and_layout() {
    let dir = tempfile::tempdir().unwrap();
    let arch = Architecture::new(&[4, 5, 3], Activation::Relu, Loss::SoftmaxCe).unwrap();
    let net = Network::<f64, _>::new(nabla::Reference, arch, Init::Auto, 1).unwrap();
    let path = dir.path().join("m.safetensors");
    nabla::save_model(&net, &path, &[]).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("layers.0.weight").unwrap().shape(), &[5, 4]);
    assert_eq!(st.tensor("layers.0.bias").unwrap().shape(), &[5]);
    assert_eq!(st.tensor("layers.1.weight").unwrap().shape(), &[3, 5]);
    let (mut back, _) = nabla::load_model::<f64, _>(nabla::Reference, &path).unwrap();
    assert_eq!(back.parameters_to_host().unwrap(), net.parameters_to_host().unwrap());
    let x = [0.1, 0.2, 0.3, 0.4];
    let mut net = net;
    assert_eq!(back.predict(&x).unwrap(), net.predict(&x).unwrap());
}

/// A run of `total` epochs straight, and the same run as `first` epochs, checkpointed after its
/// `fit` returned (early stopping having put the best weights into the network), then resumed
/// to `total`: the two must agree bit for bit — final weights, live weights and every epoch.
fn resume_after_early_stopping(opt: &str, dropout: f64, schedule: Schedule, batch_size: usize) {
    let dir = tempfile::tempdir().unwrap();
    let data = generate("moons", Spec { samples: Some(160), noise: Some(0.3), ..Spec::default() }, 4).unwrap();
    let (train, val) = (data.select(&(0..120).collect::<Vec<_>>()), data.select(&(120..160).collect::<Vec<_>>()));
    let arch =
        Architecture::new(&[2, 16, 16, 2], Activation::Tanh, Loss::SoftmaxCe).unwrap().with_dropout(dropout).unwrap();
    let ((x, y), (vx, vy)) = (matrices::<f64>(&train, 2), matrices::<f64>(&val, 2));
    let (h, v) = (HostData { x: &x, y: &y, rows: 120 }, HostData { x: &vx, y: &vy, rows: 40 });
    let es = EarlyStopping { monitor: Monitor::ValLoss, patience: 100, min_delta: 0.0, restore_best: true };
    let opt = OptimizerConfig::named(opt, 0.1).unwrap();
    let config = |epochs| TrainConfig {
        epochs,
        batch_size: BatchSize::Rows(batch_size),
        seed: 3,
        schedule,
        early_stopping: Some(es),
        ..TrainConfig::default()
    };
    let make = || Network::new(nabla::Reference, arch.clone(), Init::Auto, 9).unwrap();

    let mut straight = Trainer::new(make(), opt, config(24)).unwrap();
    straight.fit(h, Some(v), &mut Silent).unwrap();

    let path = dir.path().join("run.ckpt.safetensors");
    let mut first = Trainer::new(make(), opt, config(12)).unwrap();
    first.fit(h, Some(v), &mut Silent).unwrap();
    let best_epoch = first.stop_state.best_epoch;
    first.save_checkpoint(&path, &[]).unwrap();
    let (mut resumed, _) = Trainer::<f64, _>::resume(nabla::Reference, &path).unwrap();
    resumed.config.epochs = 24;
    resumed.fit(h, Some(v), &mut Silent).unwrap();

    let case = format!("{opt:?} dropout {dropout} {schedule:?} (best of the first 12 epochs: {best_epoch})");
    let untimed = |t: &Trainer<f64, nabla::Reference>| -> Vec<EpochReport> {
        t.history.iter().map(|r| EpochReport { seconds: 0.0, samples_per_sec: 0.0, ..r.clone() }).collect()
    };
    assert_eq!(untimed(&straight), untimed(&resumed), "{case}: epochs");
    assert_eq!(straight.live_parameters().unwrap(), resumed.live_parameters().unwrap(), "{case}: live weights");
    assert_eq!(straight.net.parameters_to_host().unwrap(), resumed.net.parameters_to_host().unwrap(), "{case}: best");
    // And in one process: a second `fit` after a restoring one continues from the live weights.
    let mut again = Trainer::new(make(), opt, config(12)).unwrap();
    again.fit(h, Some(v), &mut Silent).unwrap();
    again.config.epochs = 24;
    again.fit(h, Some(v), &mut Silent).unwrap();
    assert_eq!(straight.live_parameters().unwrap(), again.live_parameters().unwrap(), "{case}: fit twice");
}

#[test]
fn resume_after_a_restoring_fit_continues_the_live_run() {
    for opt in ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"] {
        resume_after_early_stopping(opt, 0.0, Schedule::Constant, 16);
    }
    resume_after_early_stopping("adam", 0.2, "plateau:0.5:1".parse().unwrap(), 16);
    // (Not cosine: its rate depends on the total epoch count, which the first run sets to 12.)
    resume_after_early_stopping("momentum", 0.1, "step:3:0.5".parse().unwrap(), 32);
    resume_after_early_stopping("rprop", 0.0, Schedule::Constant, 120);
}

/// Changes the batch size (and `drop_last`) after each epoch, as an observer may.
struct Rebatch(Vec<(usize, bool)>, Vec<usize>);

impl<E: Element, B: Backend<E>> Observer<E, B> for Rebatch {
    fn on_step(&mut self, s: &nabla::train::StepReport) -> Control {
        self.1.push(s.rows);
        Control::Continue
    }
    fn on_epoch(&mut self, r: &EpochReport, t: &mut Trainer<E, B>) -> nabla::Result<Control> {
        if let Some(&(batch, drop_last)) = self.0.get(r.epoch - 1) {
            (t.config.batch_size, t.config.drop_last) = (BatchSize::Rows(batch), drop_last);
        }
        Ok(Control::Continue)
    }
}

#[test]
fn changing_the_batch_size_between_epochs_remakes_the_batches() {
    let data = generate("moons", Spec { samples: Some(100), ..Spec::default() }, 2).unwrap();
    let arch = Architecture::new(&[2, 8, 2], Activation::Tanh, Loss::SoftmaxCe).unwrap();
    let (x, y) = matrices::<f32>(&data, 2);
    let net = Network::new(nabla::Reference, arch, Init::Auto, 3).unwrap();
    let config = TrainConfig { epochs: 4, batch_size: BatchSize::Rows(50), ..TrainConfig::default() };
    let mut t = Trainer::new(net, OptimizerConfig::named("sgd", 0.1).unwrap(), config).unwrap();
    // 50 → 55 (same batch count, other rows: panicked before), 55 → 40 (3 batches) → 35 with
    // drop_last (2 batches, the rows of 40 trained twice and others skipped before).
    let mut obs = Rebatch(vec![(55, false), (40, false), (35, true)], Vec::new());
    t.fit(HostData { x: &x, y: &y, rows: 100 }, None, &mut obs).unwrap();
    assert_eq!(obs.1, [50, 50, 55, 45, 40, 40, 20, 35, 35]);
}

/// The ndarray API in f64: a typed optimizer and full-batch training; `save` then `load` gives
/// the same predictions (the CLI's model format, readable by `load_model`); `predict` and
/// `evaluate_classes` take `&self`.
#[test]
fn a_model_trains_in_f64_saves_loads_and_predicts() {
    use nabla::{Model, OptimizerConfig};
    let x = ndarray::array![[0.0_f64, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
    let y = ndarray::array![0_usize, 1, 1, 0];
    let mut model = Model::builder()
        .layers(&[2, 8, 2])
        .activation(Activation::Tanh)
        .optimizer(OptimizerConfig::adam(0.05))
        .epochs(300)
        .batch_size(BatchSize::Full)
        .seed(3)
        .backend(nabla::AnyBackend::Reference(nabla::Reference))
        .build()
        .unwrap();
    let history = model.fit(x.view(), y.view()).unwrap();
    assert!(history.iter().all(|e| e.steps == 1), "full batch: one step per epoch");
    assert_eq!(model.predict_classes(x.view()).unwrap(), y);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("xor.safetensors");
    model.save(&path).unwrap();
    let back = Model::<f64>::load_on(nabla::AnyBackend::Reference(nabla::Reference), &path).unwrap();
    let want = model.predict(x.view()).unwrap();
    assert_eq!(back.predict(x.view()).unwrap(), want, "bit for bit after a round trip");
    let (net, _) = nabla::load_model::<f64, _>(nabla::Reference, &path).unwrap();
    assert_eq!(net.architecture().sizes, [2, 8, 2]);
    let shared = &back;
    let (loss, metrics) = shared.evaluate_classes(x.view(), y.view()).unwrap();
    assert!(loss < 0.1 && metrics.accuracy == 1.0, "{loss} {metrics:?}");
    assert!(format!("{back:?}").contains("F64"), "{back:?}");
    let f32_model = Model::<f32>::load_on(nabla::AnyBackend::Reference(nabla::Reference), &path);
    assert!(f32_model.is_ok(), "an f64 file loads into an f32 model (rounded once)");
}
