//! `nabla train`: one line per epoch, or one JSON object with `--json`.

use std::process::ExitCode;
use std::time::Instant;

use nabla::{
    AnyBackend, Backend, Control, Element, EpochReport, HostData, Network, Observer, OptimizerConfig, Result, Schedule,
    TrainConfig, Trainer,
};
use serde_json::json;

use crate::args::{DType, TrainArgs};
use crate::model::{matrices, prepare};

/// Prints one line per epoch (nothing in JSON mode).
struct EpochLines {
    quiet: bool,
    epochs: usize,
}

impl<E: Element> Observer<E, AnyBackend> for EpochLines
where
    AnyBackend: Backend<E>,
{
    fn on_epoch(&mut self, r: &EpochReport, _: &Trainer<E, AnyBackend>) -> Result<Control> {
        if !self.quiet {
            let acc = r.train_accuracy.map(|a| format!("  acc {a:.4}")).unwrap_or_default();
            println!(
                "epoch {:>w$}/{}  loss {:.6}{acc}  lr {:.4}  {:.0} samples/s",
                r.epoch,
                self.epochs,
                r.train_loss,
                r.lr,
                r.samples_per_sec,
                w = self.epochs.to_string().len()
            );
        }
        Ok(Control::Continue)
    }
}

/// Trains in the element type the flags ask for.
pub fn run(args: &TrainArgs) -> Result<ExitCode> {
    match args.dtype {
        DType::F32 => train::<f32>(args),
        DType::F64 => train::<f64>(args),
    }
}

fn train<E: Element>(args: &TrainArgs) -> Result<ExitCode>
where
    AnyBackend: Backend<E>,
{
    let p = prepare(&args.model)?;
    let optimizer = OptimizerConfig::named(&args.optimizer, args.lr)?;
    let classification = matches!(p.dataset.task(), nabla::data::Task::Classification { .. });
    let config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        seed: args.model.seed,
        schedule: Schedule::Constant,
        accuracy: classification,
        ..TrainConfig::default()
    };
    let (x, y) = matrices::<E>(&p.dataset, p.arch.outputs())?;
    let net = Network::new(p.backend, p.arch.clone(), args.model.init, args.model.seed)?;
    let backend_name = net.backend().name();
    let mut trainer = Trainer::new(net, optimizer, config)?;
    let data = HostData { x: &x, y: &y, rows: p.dataset.len() };
    if !args.json {
        println!(
            "training {:?} ({} → {}, {}) on {} ({} samples) with {} on {backend_name}",
            p.arch.sizes,
            args.model.activation,
            p.arch.output_activation(),
            p.arch.loss,
            p.dataset.name,
            p.dataset.len(),
            optimizer
        );
    }
    let started = Instant::now();
    let mut observer = EpochLines { quiet: args.json, epochs: args.epochs };
    trainer.fit(data, None, &mut observer)?;
    let seconds = started.elapsed().as_secs_f64();
    let trained: usize = trainer.history.iter().map(|r| r.steps).sum::<usize>();
    let train_seconds: f64 = trainer.history.iter().map(|r| r.seconds).sum();
    let samples = trainer.history.len() * p.dataset.len();
    let score = trainer.net.evaluate(&x, &y)?;
    let accuracy = classification.then(|| score.accuracy());
    let samples_per_sec = samples as f64 / train_seconds.max(1e-12);
    if args.json {
        let mut j = json!({
            "backend": backend_name,
            "dataset": p.dataset.name,
            "layers": p.arch.sizes,
            "activation": args.model.activation.to_string(),
            "loss": p.arch.loss.to_string(),
            "optimizer": optimizer.name(),
            "lr": args.lr,
            "dtype": E::DTYPE.name(),
            "epochs": trainer.epoch,
            "steps": trained,
            "final_loss": score.loss,
            "train_accuracy": accuracy,
            "seconds": seconds,
            "samples_per_sec": samples_per_sec,
        });
        if accuracy.is_none() {
            j.as_object_mut().map(|o| o.remove("train_accuracy"));
        }
        println!("{j}");
    } else {
        let acc = accuracy.map(|a| format!(", accuracy {a:.4}")).unwrap_or_default();
        println!(
            "done: {} epochs in {seconds:.2} s ({samples_per_sec:.0} samples/s); final loss {:.6}{acc}",
            trainer.epoch, score.loss
        );
    }
    Ok(ExitCode::SUCCESS)
}
