//! Saved models at work: `nabla eval`, `nabla predict`, `nabla inspect`, and the evaluations
//! and decision regions `nabla train` reports.

use std::path::Path;
use std::process::ExitCode;

use nabla::checkpoint::network_from;
use nabla::checkpoint::{MODEL_FORMAT, StoredFile};
use nabla::data::scale::Scaler;
use nabla::data::{Dataset, Targets};
use nabla::{AnyBackend, AnyElement, Backend, BackendOptions, Element, Error, Network, Result, metrics};
use serde_json::{Value, json};

use crate::args::{EvalArgs, InspectArgs, PredictArgs};
use crate::config::{Config, DataConfig, ModelConfig};
use crate::model::{check_fits, data_error, evaluation_data, matrices};
use crate::plot::Regions;

/// Loss and metrics of `net` on a data set, as JSON: accuracy, macro precision/recall/F1 and
/// the confusion matrix for classes; MAE, RMSE and R² for values.
pub fn evaluation<E: Element>(net: &mut Network<E, AnyBackend>, data: &Dataset) -> Result<Value>
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

/// The decision regions of `net` over the range of a 2-D data set (a 200 × 200 grid).
pub fn regions<E: Element>(net: &mut Network<E, AnyBackend>, data: &Dataset) -> Result<RegionsData>
where
    AnyBackend: Backend<E>,
{
    if data.features_per_sample() != 2 {
        return Err(Error::invalid(
            "--plot-boundary",
            format!("`{}` has {} features; decision regions need 2", data.name, data.features_per_sample()),
        ));
    }
    let Targets::Classes { labels, .. } = &data.targets else {
        return Err(Error::invalid("--plot-boundary", "decision regions need class labels"));
    };
    let points: Vec<(f32, f32, usize)> =
        data.features.rows().into_iter().zip(labels).map(|(r, &l)| (r[0] as f32, r[1] as f32, l)).collect();
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for &(x, y, _) in &points {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    let (mx, my) = (0.1 * (x1 - x0).max(1e-3), 0.1 * (y1 - y0).max(1e-3));
    let bounds = (x0 - mx, x1 + mx, y0 - my, y1 + my);
    let grid = 200;
    let (dx, dy) = ((bounds.1 - bounds.0) / grid as f32, (bounds.3 - bounds.2) / grid as f32);
    let mut inputs = Vec::with_capacity(grid * grid * 2);
    for row in 0..grid {
        for col in 0..grid {
            inputs.push(E::of(f64::from(bounds.0 + (col as f32 + 0.5) * dx)));
            inputs.push(E::of(f64::from(bounds.3 - (row as f32 + 0.5) * dy)));
        }
    }
    let p = net.predict(&inputs)?;
    let cells = metrics::predicted_classes(&p, net.architecture().outputs());
    Ok(RegionsData { points, cells, grid, bounds })
}

/// Owned data behind a [`Regions`] plot.
pub struct RegionsData {
    pub points: Vec<(f32, f32, usize)>,
    pub cells: Vec<usize>,
    pub grid: usize,
    pub bounds: (f32, f32, f32, f32),
}

impl<'a> From<&'a RegionsData> for Regions<'a> {
    fn from(r: &'a RegionsData) -> Self {
        Regions { points: &r.points, cells: &r.cells, grid: r.grid, bounds: r.bounds }
    }
}

/// A saved model, its scaler and the configuration it was trained with.
struct Saved<E: AnyElement> {
    net: Network<E, AnyBackend>,
    scaler: Option<Scaler>,
    config: Config,
}

/// Opens a model file, which is untrusted input: the architecture is validated and checked
/// against the tensors (by `load_model`), a stored scaler must fit the input width and be
/// finite, and of the stored configuration only the target column and the task are kept.
fn open<E: AnyElement>(file: StoredFile, path: &Path, backend: &str) -> Result<Saved<E>> {
    crate::cpu::warn_once_if_narrow(backend);
    let backend = AnyBackend::from_name(backend, &BackendOptions::default())?;
    let (net, file) = network_from::<E, _>(backend, file)?;
    let bad = |detail: String| Error::Format { path: path.display().to_string(), detail };
    let scaler = match file.metadata("scaler") {
        Err(_) => None,
        Ok(_) => {
            let s: Scaler = file.metadata_json("scaler")?;
            let inputs = net.architecture().inputs();
            if s.offset.len() != inputs || s.scale.len() != inputs {
                return Err(bad(format!(
                    "the stored scaler has {} offsets and {} scales for a model of {inputs} inputs",
                    s.offset.len(),
                    s.scale.len()
                )));
            }
            if s.offset.iter().chain(&s.scale).any(|v| !v.is_finite()) {
                return Err(bad("the stored scaler holds a non-finite value".into()));
            }
            Some(s)
        }
    };
    // Only the target and task are read from it; a configuration this version cannot parse
    // (an older file's) is no reason to refuse the model.
    let stored = file.metadata_json::<Config>("config").unwrap_or_default();
    let config = Config {
        data: DataConfig { target: stored.data.target, task: stored.data.task, ..DataConfig::default() },
        ..Config::default()
    };
    Ok(Saved { net, scaler, config })
}

/// Runs `$body` with `$E` the element type the model file `$file` was saved in.
macro_rules! in_model_dtype {
    ($file:expr, $E:ident => $body:expr) => {
        if $file.metadata("dtype").is_ok_and(|d| d == "f64") {
            type $E = f64;
            $body
        } else {
            type $E = f32;
            $body
        }
    };
}

/// `nabla eval`: loss, metrics and confusion matrix of a saved model on data (for `idx:DIR`,
/// the test files), computed in the dtype the model was trained in.
pub fn eval(args: &EvalArgs) -> Result<ExitCode> {
    let file = StoredFile::open(&args.model, MODEL_FORMAT)?;
    in_model_dtype!(file, E => eval_in::<E>(args, open(file, &args.model, &args.backend)?))
}

fn eval_in<E: AnyElement>(args: &EvalArgs, mut saved: Saved<E>) -> Result<ExitCode> {
    let arch = saved.net.architecture();
    // The data named on the command line, read as the model needs it: its target column and
    // task (kept from the file), its loss, and for the spirals as many arms as it has outputs.
    // Nothing else of the stored configuration (sizes, paths, seeds) is used.
    let classes = (args.data == "spirals" && arch.outputs() >= 2).then_some(arch.outputs());
    let flags = Config {
        data: DataConfig {
            source: Some(args.data.clone()),
            target: args.target.clone().or(saved.config.data.target.clone()),
            task: saved.config.data.task.clone(),
            dir: args.data_dir.clone(),
            classes,
            ..DataConfig::default()
        },
        model: ModelConfig { loss: Some(arch.loss.to_string()), ..ModelConfig::default() },
        ..Config::default()
    };
    let r = flags.resolve()?;
    let mut data = evaluation_data(&r)?;
    check_fits(saved.net.architecture(), &data)?;
    if let Some(scaler) = &saved.scaler {
        scaler.apply(&mut data).map_err(data_error)?;
    }
    let e = evaluation(&mut saved.net, &data)?;
    if args.json {
        let mut j = json!({ "model": args.model.display().to_string(), "dataset": data.name, "samples": data.len(),
                            "backend": Backend::<E>::name(saved.net.backend()), "dtype": E::DTYPE.name(), "final_loss": e["loss"], "metrics": e });
        if let Some(o) = j.as_object_mut() {
            if let Some(a) = e.get("accuracy") {
                o.insert("test_accuracy".into(), a.clone());
            }
            if let Some(r2) = e.get("r2") {
                o.insert("r2".into(), r2.clone());
            }
        }
        println!("{j}");
    } else {
        println!(
            "{} on {} ({} samples): loss {:.6}",
            args.model.display(),
            data.name,
            data.len(),
            e["loss"].as_f64().unwrap_or(f64::NAN)
        );
        for key in ["accuracy", "macro_precision", "macro_recall", "macro_f1", "mae", "rmse", "r2"] {
            if let Some(v) = e.get(key).and_then(Value::as_f64) {
                println!("  {key:<16} {v:.4}");
            }
        }
        if let Some(m) = e.get("confusion").and_then(Value::as_array) {
            println!("  confusion matrix (rows: true class, columns: predicted):");
            for (i, row) in m.iter().enumerate() {
                let cells: Vec<String> = row.as_array().into_iter().flatten().map(|c| format!("{:>6}", c)).collect();
                println!("  {i:>4} {}", cells.join(""));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `nabla predict`: one output row per input row; for classification also the predicted class.
pub fn predict(args: &PredictArgs) -> Result<ExitCode> {
    let files =
        [("--input", args.input.as_path()), ("--model", args.model.as_path()), ("--output", args.output.as_path())];
    nabla::atomic::refuse_overwriting(&files, &["--output"])?;
    let file = StoredFile::open(&args.model, MODEL_FORMAT)?;
    in_model_dtype!(file, E => predict_in::<E>(args, open(file, &args.model, &args.backend)?))
}

fn predict_in<E: AnyElement>(args: &PredictArgs, mut saved: Saved<E>) -> Result<ExitCode> {
    let (_, mut x) = nabla::data::csv::read_features(&args.input).map_err(data_error)?;
    let inputs = saved.net.architecture().inputs();
    if x.ncols() != inputs {
        return Err(Error::invalid(
            "--input",
            format!("{}: {} columns per row but the model takes {inputs} features", args.input.display(), x.ncols()),
        ));
    }
    if let Some(scaler) = &saved.scaler {
        scaler.transform(&mut x).map_err(data_error)?;
    }
    let values: Vec<E> = crate::model::in_dtype(x.iter().copied(), &args.input.display().to_string(), "input")?;
    let p = saved.net.predict(&values)?;
    let outputs = saved.net.architecture().outputs();
    let classification = saved.net.architecture().loss.is_classification();
    let mut out = String::new();
    let names: Vec<String> =
        (0..outputs).map(|j| if classification { format!("p{j}") } else { format!("y{j}") }).collect();
    out.push_str(&names.join(","));
    out.push_str(if classification { ",class\n" } else { "\n" });
    let classes = metrics::predicted_classes(&p, outputs);
    for (row, class) in p.chunks(outputs).zip(&classes) {
        let cells: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
        out.push_str(&cells.join(","));
        if classification {
            out.push_str(&format!(",{class}"));
        }
        out.push('\n');
    }
    nabla::atomic::write(&args.output, out.as_bytes())?;
    eprintln!("wrote {} predictions to {}", classes.len(), args.output.display());
    Ok(ExitCode::SUCCESS)
}

/// `nabla inspect`: layers, shapes, parameter counts.
pub fn inspect(args: &InspectArgs) -> Result<ExitCode> {
    let file = StoredFile::open(&args.model, MODEL_FORMAT)
        .or_else(|_| StoredFile::open(&args.model, nabla::checkpoint::CHECKPOINT_FORMAT))?;
    let arch = file.architecture()?;
    let dtype = file.metadata("dtype").unwrap_or_else(|_| "f32".into());
    let scaler = file.metadata_json::<Scaler>("scaler").ok();
    let task = file.metadata("task").ok();
    let layers: Vec<Value> = (0..arch.layers())
        .map(|l| {
            let d = arch.weight_dims(l);
            json!({ "layer": l + 1, "weight": format!("layers.{l}.weight"), "shape": [d.rows, d.cols],
                    "bias_shape": [d.rows], "parameters": d.len() + d.rows, "activation": arch.activations[l].to_string() })
        })
        .collect();
    if args.json {
        println!(
            "{}",
            json!({ "model": args.model.display().to_string(), "format": file.metadata("format").unwrap_or_default(),
                    "dtype": dtype, "sizes": arch.sizes, "loss": arch.loss.to_string(), "dropout": arch.dropout,
                    "parameters": arch.parameter_count(), "layers": layers,
                    "scaling": scaler.as_ref().map(|s| s.kind.to_string()), "task": task })
        );
    } else {
        println!("{} ({}, {dtype})", args.model.display(), file.metadata("format").unwrap_or_default());
        println!("{:>5}  {:<18} {:>12} {:>8} {:>12}  activation", "layer", "tensor", "shape", "bias", "parameters");
        for l in &layers {
            println!(
                "{:>5}  {:<18} {:>12} {:>8} {:>12}  {}",
                l["layer"],
                l["weight"].as_str().unwrap_or(""),
                format!("{}×{}", l["shape"][0], l["shape"][1]),
                l["bias_shape"][0],
                l["parameters"],
                l["activation"].as_str().unwrap_or("")
            );
        }
        println!("total parameters: {}; loss {}; dropout {}", arch.parameter_count(), arch.loss, arch.dropout);
        if let Some(s) = scaler {
            println!("input scaling: {} ({} features)", s.kind, s.offset.len());
        }
        if let Some(t) = task {
            println!("task: {t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
