//! `nabla train`: a progress bar on a terminal, one line per epoch otherwise, one JSON object
//! with `--json`; per-layer inspection, plots, checkpoints, resume, model files.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use nabla::checkpoint::{CHECKPOINT_FORMAT, StoredFile};
use nabla::data::Dataset;
use nabla::data::scale::Scaler;
use nabla::inspect::LayerStats;
use nabla::{
    AnyBackend, Backend, Control, Element, EpochReport, Error, HostData, Network, Observer, Result, StepReport,
    Trainer, save_model,
};
use serde_json::{Value, json};

use crate::args::TrainArgs;
use crate::config::{Config, Resolved};
use crate::evaluate::{evaluation, regions};
use crate::job::Job;
use crate::model::{Prepared, Source, matrices, prepare};
use crate::plot;

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
pub fn run(args: &TrainArgs, job: &Job) -> Result<ExitCode> {
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
    refuse_overwriting_inputs(args, &resolved)?;
    if resolved.f64 { train::<f64>(args, &config, &resolved, job) } else { train::<f32>(args, &config, &resolved, job) }
}

/// Refuses, before training, an output file (`--save`, `--checkpoint`, `--plot`,
/// `--plot-boundary`) that names an input (the configuration, the data, the checkpoint resumed
/// from) or another output. `--checkpoint` may name the `--resume` file: the run goes on in it.
fn refuse_overwriting_inputs(args: &TrainArgs, r: &Resolved) -> Result<()> {
    let mut data = Source::parse(&r.source, r.data_dir.as_deref())?.files();
    if let Some(test) = &r.test_source {
        data.extend(Source::parse(test, r.data_dir.as_deref())?.files());
    }
    let resume_continues =
        matches!((&args.checkpoint, &args.resume), (Some(c), Some(r)) if nabla::atomic::same_file(c, r));
    let named = [
        ("--config", &args.config),
        ("--resume", if resume_continues { &None } else { &args.resume }),
        ("--save", &args.save),
        ("--checkpoint", &args.checkpoint),
        ("--plot", &args.plot),
        ("--plot-boundary", &args.plot_boundary),
    ];
    let mut files: Vec<(&str, &Path)> = named.iter().filter_map(|(flag, p)| p.as_deref().map(|p| (*flag, p))).collect();
    files.extend(data.iter().map(|p| ("--data", p.as_path())));
    nabla::atomic::refuse_overwriting(&files, &["--save", "--checkpoint", "--plot", "--plot-boundary"])
}

/// How progress is shown.
enum Display {
    /// `--json`: nothing until the final object.
    Quiet,
    /// Not a terminal: one line per epoch.
    Lines,
    /// A terminal: a progress bar per epoch.
    Bar(ProgressBar),
}

/// The CLI's observer: progress, periodic checkpoints, per-layer inspection.
struct Progress<'a, E> {
    display: Display,
    epochs: usize,
    checkpoint: Option<(PathBuf, usize)>,
    metadata: Vec<(&'static str, String)>,
    inspect: Option<(usize, &'a [E], &'a [E])>,
    inspections: Vec<Value>,
    loss_sum: f64,
    seen: usize,
}

impl<E: Element> Progress<'_, E> {
    fn line(r: &EpochReport, epochs: usize) -> String {
        let acc = r.train_accuracy.map(|a| format!("  acc {a:.4}")).unwrap_or_default();
        let val = r.val_loss.map(|v| format!("  val_loss {v:.6}")).unwrap_or_default();
        let val_acc = r.val_accuracy.map(|a| format!("  val_acc {a:.4}")).unwrap_or_default();
        format!(
            "epoch {:>w$}/{epochs}  loss {:.6}{acc}{val}{val_acc}  lr {:.4}  {:.0} samples/s",
            r.epoch,
            r.train_loss,
            r.lr,
            r.samples_per_sec,
            w = epochs.to_string().len()
        )
    }
}

/// The per-layer table of an inspection.
fn inspection_table(epoch: usize, stats: &[LayerStats]) -> String {
    let mut s = format!(
        "  inspection after epoch {epoch}:\n  {:>5} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>7} {:>7}\n",
        "layer", "‖δ‖", "‖∂W‖", "‖∂b‖", "‖W‖", "η‖∂W‖/‖W‖", "mean a", "std a", "dead", "flat"
    );
    for l in stats {
        s.push_str(&format!(
            "  {:>5} {:>10.3e} {:>10.3e} {:>10.3e} {:>10.3e} {:>10.3e} {:>9.4} {:>9.4} {:>6.1}% {:>6.1}%\n",
            l.layer,
            l.delta_norm,
            l.weight_grad_norm,
            l.bias_grad_norm,
            l.weight_norm,
            l.update_ratio,
            l.activation_mean,
            l.activation_std,
            100.0 * l.dead_fraction,
            100.0 * l.saturated_fraction
        ));
    }
    s
}

impl<E: Element> Observer<E, AnyBackend> for Progress<'_, E>
where
    AnyBackend: Backend<E>,
{
    fn on_step(&mut self, s: &StepReport) -> Control {
        if let Display::Bar(bar) = &self.display {
            if s.step == 1 {
                bar.reset();
                bar.set_length(s.steps as u64);
                bar.set_prefix(format!("epoch {}/{}", s.epoch, self.epochs));
                self.loss_sum = 0.0;
                self.seen = 0;
            }
            self.loss_sum += s.loss * s.rows as f64;
            self.seen += s.rows;
            bar.set_message(format!("loss {:.5}", self.loss_sum / self.seen.max(1) as f64));
            bar.inc(1);
        }
        Control::Continue
    }

    fn on_epoch(&mut self, r: &EpochReport, trainer: &mut Trainer<E, AnyBackend>) -> Result<Control> {
        match &self.display {
            Display::Quiet => {}
            Display::Lines => println!("{}", Self::line(r, self.epochs)),
            Display::Bar(bar) => bar.println(Self::line(r, self.epochs)),
        }
        if let Some((every, x, y)) = self.inspect
            && every > 0
            && r.epoch.is_multiple_of(every)
        {
            let stats = trainer.net.inspect(x, y, r.lr)?;
            match &self.display {
                Display::Quiet => {}
                Display::Lines => print!("{}", inspection_table(r.epoch, &stats)),
                Display::Bar(bar) => bar.println(inspection_table(r.epoch, &stats).trim_end()),
            }
            self.inspections.push(json!({ "epoch": r.epoch, "layers": stats }));
        }
        if let Some((path, every)) = &self.checkpoint
            && *every > 0
            && r.epoch.is_multiple_of(*every)
        {
            trainer.save_checkpoint(path, &self.metadata)?;
        }
        Ok(Control::Continue)
    }
}

/// The model file's metadata: the configuration, the scaler fitted on the training data, and
/// the task (so that `nabla eval` and `nabla predict` prepare inputs the same way).
fn metadata(config: &Config, scaler: &Scaler, train: &Dataset) -> Result<Vec<(&'static str, String)>> {
    let bad = |e: serde_json::Error| Error::invalid("model metadata", e.to_string());
    Ok(vec![
        ("config", serde_json::to_string(config).map_err(bad)?),
        ("scaler", serde_json::to_string(scaler).map_err(bad)?),
        ("task", format!("{:?}", train.task())),
    ])
}

fn train<E: Element>(args: &TrainArgs, config: &Config, r: &Resolved, job: &Job) -> Result<ExitCode>
where
    AnyBackend: Backend<E>,
{
    let Prepared { train, val, test, scaler, arch, backend } = prepare(r)?;
    let classification = matches!(train.task(), nabla::data::Task::Classification { .. });
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
    if let Some(comm) = job.collective() {
        trainer.distribute(comm)?;
        trainer.check_consistency(args.check_consistency);
    }
    let backend_name = trainer.net.backend().name();
    let (x, y) = matrices::<E>(&train, outputs)?;
    let val_matrices = val.as_ref().map(|v| matrices::<E>(v, outputs)).transpose()?;
    let meta = metadata(config, &scaler, &train)?;
    let display = if args.json || !job.primary() {
        Display::Quiet
    } else if std::io::stdout().is_terminal() {
        let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} {per_sec} ETA {eta}")
            .map_err(|e| Error::invalid("progress bar", e.to_string()))?
            .progress_chars("=> ");
        Display::Bar(ProgressBar::new(0).with_style(style))
    } else {
        Display::Lines
    };
    if !args.json && job.primary() {
        let from = args
            .resume
            .as_ref()
            .map(|p| format!(", resumed from {} at epoch {}", p.display(), trainer.epoch))
            .unwrap_or_default();
        let held = [
            val.as_ref().map(|v| format!("{} validation", v.len())),
            test.as_ref().map(|t| format!("{} test", t.len())),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
        println!(
            "training {:?} ({} → {}, {}) on {} ({} samples{}) with {} on {backend_name}{from}",
            arch.sizes,
            r.hidden,
            arch.output_activation(),
            arch.loss,
            train.name,
            train.len(),
            if held.is_empty() { String::new() } else { format!("; {}", held.join(", ")) },
            trainer.opt.config(),
        );
    }
    // Inspection looks at the first (up to 256) training samples.
    let inspect_rows = train.len().min(256);
    let mut progress = Progress {
        display,
        epochs: trainer.config.epochs,
        checkpoint: args.checkpoint.clone().filter(|_| job.primary()).map(|p| (p, args.checkpoint_every.unwrap_or(0))),
        metadata: meta.clone(),
        inspect: args.inspect_every.map(|n| (n, &x[..inspect_rows * arch.inputs()], &y[..inspect_rows * outputs])),
        inspections: Vec::new(),
        loss_sum: 0.0,
        seen: 0,
    };
    let started = Instant::now();
    let first_epoch = trainer.epoch;
    let data = HostData { x: &x, y: &y, rows: train.len() };
    let val_data = val_matrices.as_ref().map(|(vx, vy)| HostData { x: vx, y: vy, rows: vx.len() / arch.inputs() });
    trainer.fit(data, val_data, &mut progress)?;
    if let Display::Bar(bar) = &progress.display {
        bar.finish_and_clear();
    }
    let seconds = started.elapsed().as_secs_f64();
    let run = &trainer.history[first_epoch.min(trainer.history.len())..];
    let train_seconds: f64 = run.iter().map(|e| e.seconds).sum();
    let samples_per_sec = (run.len() * train.len()) as f64 / train_seconds.max(1e-12);
    if !job.primary() {
        // Every rank holds the same weights; rank 0 writes and reports.
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(path) = &args.checkpoint {
        trainer.save_checkpoint(path, &meta)?;
    }
    if let Some(path) = &args.save {
        save_model(&trainer.net, path, &meta)?;
    }
    if let Some(path) = &args.plot {
        plot::curves(path, &trainer.history)?;
    }
    if let Some(path) = &args.plot_boundary {
        let data = regions(&mut trainer.net, &train)?;
        plot::regions(path, &(&data).into())?;
    }
    let train_eval = evaluation(&mut trainer.net, &train)?;
    let val_eval = val.as_ref().map(|v| evaluation(&mut trainer.net, v)).transpose()?;
    let test_eval = test.as_ref().map(|t| evaluation(&mut trainer.net, t)).transpose()?;
    let summary = Summary {
        seconds,
        samples_per_sec,
        backend: &backend_name,
        inspections: &progress.inspections,
        world_size: job.size(),
    };
    report(args, &trainer, &train, r, [Some(&train_eval), val_eval.as_ref(), test_eval.as_ref()], &summary);
    Ok(ExitCode::SUCCESS)
}

/// Timings and extras of the run for the closing report.
struct Summary<'a> {
    seconds: f64,
    samples_per_sec: f64,
    backend: &'a str,
    inspections: &'a [Value],
    /// Data-parallel ranks (1 alone).
    world_size: usize,
}

/// The closing line or JSON object; `evals` are the train, validation and test evaluations.
fn report<E: Element>(
    args: &TrainArgs,
    trainer: &Trainer<E, AnyBackend>,
    train: &Dataset,
    r: &Resolved,
    evals: [Option<&Value>; 3],
    s: &Summary<'_>,
) where
    AnyBackend: Backend<E>,
{
    let arch = trainer.net.architecture();
    let [train_eval, val_eval, test_eval] = evals;
    let train_eval = train_eval.cloned().unwrap_or(Value::Null);
    if args.json {
        let mut j = json!({
            "backend": s.backend,
            "world_size": s.world_size,
            "dataset": train.name,
            "layers": arch.sizes,
            "activation": r.hidden.to_string(),
            "loss": arch.loss.to_string(),
            "optimizer": trainer.opt.config().name(),
            "lr": trainer.opt.config().lr,
            "dtype": E::DTYPE.name(),
            "epochs": trainer.epoch,
            "final_loss": train_eval["loss"],
            "seconds": s.seconds,
            "samples_per_sec": s.samples_per_sec,
            "stopped_early": trainer.stopped,
            "train_metrics": train_eval,
            "history": trainer.history.iter().map(|h| json!({
                "epoch": h.epoch, "loss": h.train_loss, "accuracy": h.train_accuracy,
                "val_loss": h.val_loss, "val_accuracy": h.val_accuracy, "lr": h.lr
            })).collect::<Vec<_>>(),
        });
        if let Some(o) = j.as_object_mut() {
            for (prefix, eval) in [("train", Some(&train_eval)), ("val", val_eval), ("test", test_eval)] {
                let Some(e) = eval else { continue };
                if prefix != "train" {
                    o.insert(format!("{prefix}_loss"), e["loss"].clone());
                    o.insert(format!("{prefix}_metrics"), e.clone());
                }
                if let Some(a) = e.get("accuracy") {
                    o.insert(format!("{prefix}_accuracy"), a.clone());
                }
            }
            if let Some(r2) = test_eval.or(val_eval).unwrap_or(&train_eval).get("r2") {
                o.insert("r2".into(), r2.clone());
            }
            if trainer.config.early_stopping.is_some() {
                o.insert("best_epoch".into(), json!(trainer.stop_state.best_epoch));
            }
            if !s.inspections.is_empty() {
                o.insert("inspection".into(), json!(s.inspections));
            }
        }
        println!("{j}");
    } else {
        let describe = |e: &Value| -> String {
            let acc =
                e.get("accuracy").and_then(Value::as_f64).map(|a| format!(", accuracy {a:.4}")).unwrap_or_default();
            let r2 = e.get("r2").and_then(Value::as_f64).map(|v| format!(", R² {v:.4}")).unwrap_or_default();
            format!("loss {:.6}{acc}{r2}", e["loss"].as_f64().unwrap_or(f64::NAN))
        };
        let stopped = if trainer.stopped {
            format!(" (stopped early; best epoch {})", trainer.stop_state.best_epoch)
        } else {
            String::new()
        };
        println!("done: {} epochs in {:.2} s ({:.0} samples/s){stopped}", trainer.epoch, s.seconds, s.samples_per_sec);
        println!("  train:      {}", describe(&train_eval));
        if let Some(v) = val_eval {
            println!("  validation: {}", describe(v));
        }
        if let Some(t) = test_eval {
            println!("  test:       {}", describe(t));
        }
    }
}
