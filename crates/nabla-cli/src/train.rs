//! `nabla train`: one line per epoch, or one JSON object with `--json`; checkpoints, resume,
//! model files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use nabla::checkpoint::{CHECKPOINT_FORMAT, StoredFile};
use nabla::data::{Dataset, Targets, Task};
use nabla::{
    AnyBackend, Backend, Control, Element, EpochReport, Error, HostData, Network, Observer, Result, Trainer, metrics,
    save_model,
};
use serde_json::{Value, json};

use crate::args::TrainArgs;
use crate::config::{Config, Resolved};
use crate::model::{Prepared, matrices, prepare};

/// Reads a TOML configuration file; unknown keys are errors that name the key.
pub fn read_config(path: &Path) -> Result<Config> {
    let text =
        std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    toml::from_str(&text).map_err(|e| Error::invalid(format!("--config {}", path.display()), e.message().to_string()))
}

/// The configuration stored in a checkpoint by the run that wrote it.
fn stored_config(path: &Path) -> Result<Config> {
    StoredFile::open(path, CHECKPOINT_FORMAT)?.metadata_json("config")
}

/// Trains in the element type the configuration asks for.
pub fn run(args: &TrainArgs) -> Result<ExitCode> {
    let file = match &args.config {
        Some(path) => read_config(path)?,
        None => Config::default(),
    };
    let base = match &args.resume {
        Some(path) => stored_config(path)?,
        None => file,
    };
    let config = base.overlay(&args.config())?;
    let resolved = config.resolve()?;
    if resolved.f64 { train::<f64>(args, &config, &resolved) } else { train::<f32>(args, &config, &resolved) }
}

/// Prints a line per epoch (nothing in JSON mode) and writes the periodic checkpoints.
struct Progress {
    quiet: bool,
    epochs: usize,
    checkpoint: Option<(PathBuf, usize)>,
    metadata: String,
}

impl<E: Element> Observer<E, AnyBackend> for Progress
where
    AnyBackend: Backend<E>,
{
    fn on_epoch(&mut self, r: &EpochReport, trainer: &Trainer<E, AnyBackend>) -> Result<Control> {
        if !self.quiet {
            let acc = r.train_accuracy.map(|a| format!("  acc {a:.4}")).unwrap_or_default();
            let val = r.val_loss.map(|v| format!("  val_loss {v:.6}")).unwrap_or_default();
            let val_acc = r.val_accuracy.map(|a| format!("  val_acc {a:.4}")).unwrap_or_default();
            println!(
                "epoch {:>w$}/{}  loss {:.6}{acc}{val}{val_acc}  lr {:.4}  {:.0} samples/s",
                r.epoch,
                self.epochs,
                r.train_loss,
                r.lr,
                r.samples_per_sec,
                w = self.epochs.to_string().len()
            );
        }
        if let Some((path, every)) = &self.checkpoint
            && *every > 0
            && r.epoch % every == 0
        {
            trainer.save_checkpoint(path, &[("config", self.metadata.clone())])?;
        }
        Ok(Control::Continue)
    }
}

/// Loss and metrics of `net` on a data set, as JSON.
fn evaluation<E: Element>(net: &mut Network<E, AnyBackend>, data: &Dataset) -> Result<Value>
where
    AnyBackend: Backend<E>,
{
    let outputs = net.architecture().outputs();
    let (x, y) = matrices::<E>(data, outputs)?;
    let score = net.evaluate(&x, &y)?;
    let predictions = net.predict(&x)?;
    Ok(match &data.targets {
        Targets::Classes { labels, classes } => {
            let m = metrics::classification(&metrics::predicted_classes(&predictions, outputs), labels, *classes);
            json!({ "loss": score.loss, "accuracy": m.accuracy, "macro_precision": m.macro_precision,
                    "macro_recall": m.macro_recall, "macro_f1": m.macro_f1, "confusion": m.confusion })
        }
        Targets::Values(_) => {
            let m = metrics::regression(&predictions, &y);
            json!({ "loss": score.loss, "mae": m.mae, "rmse": m.rmse, "r2": m.r2 })
        }
    })
}

fn train<E: Element>(args: &TrainArgs, config: &Config, r: &Resolved) -> Result<ExitCode>
where
    AnyBackend: Backend<E>,
{
    let Prepared { train, val, arch, backend } = prepare(r)?;
    let classification = matches!(train.task(), Task::Classification { .. });
    let outputs = arch.outputs();
    let mut trainer = match &args.resume {
        Some(path) => {
            let (mut t, _) = Trainer::<E, _>::resume(backend, path)?;
            if t.net.architecture().sizes != arch.sizes {
                return Err(Error::invalid(
                    "--resume",
                    format!(
                        "the checkpoint holds a {:?} network but the flags describe {:?}",
                        t.net.architecture().sizes,
                        arch.sizes
                    ),
                ));
            }
            t.config.epochs = r.train.epochs;
            t
        }
        None => {
            let net = Network::new(backend, arch.clone(), r.init, r.train.seed)?;
            let train_config = nabla::TrainConfig { accuracy: classification, ..r.train.clone() };
            Trainer::new(net, r.optimizer, train_config)?
        }
    };
    let backend_name = trainer.net.backend().name();
    let (x, y) = matrices::<E>(&train, outputs)?;
    let val_matrices = val.as_ref().map(|v| matrices::<E>(v, outputs)).transpose()?;
    let metadata = serde_json::to_string(config).map_err(|e| Error::invalid("configuration", e.to_string()))?;
    if !args.json {
        let from = args
            .resume
            .as_ref()
            .map(|p| format!(", resumed from {} at epoch {}", p.display(), trainer.epoch))
            .unwrap_or_default();
        println!(
            "training {:?} ({} → {}, {}) on {} ({} samples{}) with {} on {backend_name}{from}",
            arch.sizes,
            r.hidden,
            arch.output_activation(),
            arch.loss,
            train.name,
            train.len(),
            val.as_ref().map(|v| format!(", {} for validation", v.len())).unwrap_or_default(),
            trainer.opt.config(),
        );
    }
    let mut progress = Progress {
        quiet: args.json,
        epochs: trainer.config.epochs,
        checkpoint: args.checkpoint.clone().map(|p| (p, args.checkpoint_every.unwrap_or(0))),
        metadata: metadata.clone(),
    };
    let started = Instant::now();
    let first_epoch = trainer.epoch;
    let data = HostData { x: &x, y: &y, rows: train.len() };
    let val_data = val_matrices.as_ref().map(|(vx, vy)| HostData { x: vx, y: vy, rows: vx.len() / arch.inputs() });
    trainer.fit(data, val_data, &mut progress)?;
    let seconds = started.elapsed().as_secs_f64();
    let run = &trainer.history[first_epoch.min(trainer.history.len())..];
    let train_seconds: f64 = run.iter().map(|e| e.seconds).sum();
    let samples_per_sec = (run.len() * train.len()) as f64 / train_seconds.max(1e-12);
    if let Some(path) = &args.checkpoint {
        trainer.save_checkpoint(path, &[("config", metadata.clone())])?;
    }
    if let Some(path) = &args.save {
        save_model(&trainer.net, path, &[("config", metadata)])?;
    }
    let train_eval = evaluation(&mut trainer.net, &train)?;
    let val_eval = val.as_ref().map(|v| evaluation(&mut trainer.net, v)).transpose()?;
    report(args, &trainer, &train, r, &train_eval, val_eval.as_ref(), seconds, samples_per_sec, &backend_name);
    Ok(ExitCode::SUCCESS)
}

/// The closing line or JSON object.
#[allow(clippy::too_many_arguments)]
fn report<E: Element>(
    args: &TrainArgs,
    trainer: &Trainer<E, AnyBackend>,
    train: &Dataset,
    r: &Resolved,
    train_eval: &Value,
    val_eval: Option<&Value>,
    seconds: f64,
    samples_per_sec: f64,
    backend_name: &str,
) where
    AnyBackend: Backend<E>,
{
    let arch = trainer.net.architecture();
    if args.json {
        let mut j = json!({
            "backend": backend_name,
            "dataset": train.name,
            "layers": arch.sizes,
            "activation": r.hidden.to_string(),
            "loss": arch.loss.to_string(),
            "optimizer": trainer.opt.config().name(),
            "lr": trainer.opt.config().lr,
            "dtype": E::DTYPE.name(),
            "epochs": trainer.epoch,
            "final_loss": train_eval["loss"],
            "seconds": seconds,
            "samples_per_sec": samples_per_sec,
            "stopped_early": trainer.stopped,
            "train_metrics": train_eval,
        });
        let o = j.as_object_mut().expect("a JSON object literal");
        if let Some(a) = train_eval.get("accuracy") {
            o.insert("train_accuracy".into(), a.clone());
        }
        if let Some(r2) = train_eval.get("r2") {
            o.insert("r2".into(), r2.clone());
        }
        if let Some(v) = val_eval {
            o.insert("val_loss".into(), v["loss"].clone());
            if let Some(a) = v.get("accuracy") {
                o.insert("val_accuracy".into(), a.clone());
            }
            o.insert("val_metrics".into(), v.clone());
        }
        if let Some(best) = trainer.config.early_stopping.map(|_| trainer.stop_state.best_epoch) {
            o.insert("best_epoch".into(), json!(best));
        }
        println!("{j}");
    } else {
        let acc = train_eval
            .get("accuracy")
            .and_then(Value::as_f64)
            .map(|a| format!(", accuracy {a:.4}"))
            .unwrap_or_default();
        let r2 = train_eval.get("r2").and_then(Value::as_f64).map(|v| format!(", R² {v:.4}")).unwrap_or_default();
        let val = val_eval
            .map(|v| {
                let acc =
                    v.get("accuracy").and_then(Value::as_f64).map(|a| format!(", accuracy {a:.4}")).unwrap_or_default();
                format!("; validation loss {:.6}{acc}", v["loss"].as_f64().unwrap_or(f64::NAN))
            })
            .unwrap_or_default();
        let stopped = if trainer.stopped {
            format!(" (stopped early; best epoch {})", trainer.stop_state.best_epoch)
        } else {
            String::new()
        };
        println!(
            "done: {} epochs in {seconds:.2} s ({samples_per_sec:.0} samples/s){stopped}; final loss {:.6}{acc}{r2}{val}",
            trainer.epoch,
            train_eval["loss"].as_f64().unwrap_or(f64::NAN)
        );
    }
}
