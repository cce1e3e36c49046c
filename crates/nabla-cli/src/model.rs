//! From a resolved configuration to data (loaded, split, scaled), an architecture and a backend.

use std::path::{Path, PathBuf};

use nabla::data::csv::{Column, TargetKind};
use nabla::data::scale::{Scaler, Scaling};
use nabla::data::synthetic::{self, Spec};
use nabla::data::{DataError, Dataset, Task};
use nabla::{AnyBackend, Architecture, BackendName, BackendOptions, Element, Error, Loss, Result};

use crate::config::Resolved;

/// What a run works on.
pub struct Prepared {
    pub train: Dataset,
    pub val: Option<Dataset>,
    pub test: Option<Dataset>,
    pub scaler: Scaler,
    pub arch: Architecture,
    pub backend: AnyBackend,
}

/// A data error as the core's error.
pub fn data_error(e: DataError) -> Error {
    match e {
        DataError::Invalid { what, detail } => Error::Invalid { what, detail },
        DataError::Io { path, source } => Error::Io { path, source },
        DataError::Format { path, detail } => Error::Format { path, detail },
        DataError::Parse { path, line, column, detail } => {
            Error::Format { path, detail: format!("line {line}, column {column}: {detail}") }
        }
        other => Error::invalid("data", other.to_string()),
    }
}

/// Where samples come from: a built-in set or a file source.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Builtin(String),
    /// `csv:PATH`.
    Csv(PathBuf),
    /// `idx:DIR`: the four standard MNIST files.
    Idx(PathBuf),
    /// `npy:FEATURES.npy,LABELS.npy`.
    Npy(PathBuf, PathBuf),
}

/// The accepted data sources, for messages.
pub const SOURCES: &str = "xor, spirals, moons, circles, sine, csv:PATH, idx:DIR, npy:FEATURES.npy,LABELS.npy";

impl Source {
    /// Parses `spec`, resolving relative paths against `dir` (`--data-dir` / `NABLA_DATA`).
    pub fn parse(spec: &str, dir: Option<&Path>) -> Result<Source> {
        let path = |p: &str| -> PathBuf {
            let p = PathBuf::from(p);
            match dir {
                Some(d) if p.is_relative() => d.join(p),
                _ => p,
            }
        };
        let bad = |why: &str| Error::invalid("--data (data.source)", format!("`{spec}`: {why}; accepted: {SOURCES}"));
        Ok(match spec.split_once(':') {
            Some(("csv", p)) if !p.is_empty() => Source::Csv(path(p)),
            Some(("idx", p)) if !p.is_empty() => Source::Idx(path(p)),
            Some(("npy", p)) => match p.split_once(',') {
                Some((x, y)) if !x.is_empty() && !y.is_empty() => Source::Npy(path(x), path(y)),
                _ => return Err(bad("npy needs two files, features and labels, separated by a comma")),
            },
            Some(_) => return Err(bad("unknown source")),
            None => Source::Builtin(spec.to_string()),
        })
    }

    /// The files this source reads (for an IDX folder, the files in it).
    pub fn files(&self) -> Vec<PathBuf> {
        match self {
            Source::Builtin(_) => Vec::new(),
            Source::Csv(p) => vec![p.clone()],
            Source::Npy(x, y) => vec![x.clone(), y.clone()],
            Source::Idx(dir) => std::fs::read_dir(dir)
                .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default(),
        }
    }

    /// The scaling used when none is configured: pixels /255 for IDX, standardisation for
    /// other files, none for the generated sets.
    fn default_scaling(&self) -> Scaling {
        match self {
            Source::Builtin(_) => Scaling::None,
            Source::Idx(_) => Scaling::Div255,
            Source::Csv(_) | Source::Npy(..) => Scaling::Standard,
        }
    }
}

/// How to read targets: classes for a classification loss, values for a regression loss, else
/// what the data says.
fn target_kind(r: &Resolved) -> TargetKind {
    match (r.task, r.loss) {
        (Some(k), _) => k,
        (None, Some(l)) if l.is_classification() => TargetKind::Classes,
        (None, Some(_)) => TargetKind::Values,
        (None, None) => TargetKind::Auto,
    }
}

/// Loads `source`: the training data and, for IDX, its standard test set.
fn load(source: &Source, r: &Resolved) -> Result<(Dataset, Option<Dataset>)> {
    let kind = target_kind(r);
    let target = || -> Result<Column> {
        r.target
            .as_deref()
            .map(|t| t.parse().map_err(|e: DataError| Error::invalid("--target (data.target)", e.to_string())))
            .unwrap_or(Ok(Column::Name("label".into())))
    };
    match source {
        Source::Builtin(name) => {
            let spec = Spec { samples: r.samples, classes: r.classes, noise: r.noise };
            let data = synthetic::generate(name, spec, r.train.seed).map_err(|e| match e {
                DataError::UnknownSet { name } => {
                    Error::invalid("--dataset (data.source)", format!("`{name}`; built-in sets: {}", synthetic::NAMES))
                }
                other => data_error(other),
            })?;
            Ok((data, None))
        }
        Source::Csv(path) => {
            let column = match &r.target {
                Some(_) => target()?,
                // Without --target: a column called `label` or `target`, else the last one.
                None => csv_default_target(path)?,
            };
            Ok((nabla::data::csv::read(path, &column, kind).map_err(data_error)?, None))
        }
        Source::Idx(dir) => {
            let (train, test) = nabla::data::idx::load_mnist(dir).map_err(data_error)?;
            Ok((train, Some(test)))
        }
        Source::Npy(x, y) => Ok((nabla::data::npy::load(x, y, kind).map_err(data_error)?, None)),
    }
}

/// `label` or `target` when the CSV header has one, else the last column.
fn csv_default_target(path: &Path) -> Result<Column> {
    let text =
        std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    let header: Vec<&str> = text.lines().next().unwrap_or_default().split(',').map(str::trim).collect();
    Ok(header
        .iter()
        .find(|h| matches!(**h, "label" | "target" | "class" | "y"))
        .map(|h| Column::Name((*h).to_string()))
        .unwrap_or(Column::Index(header.len().saturating_sub(1))))
}

/// The data set the configuration names (built-in ones only need no files).
pub fn dataset(r: &Resolved) -> Result<Dataset> {
    let source = Source::parse(&r.source, r.data_dir.as_deref())?;
    Ok(load(&source, r)?.0)
}

/// The data a saved model is evaluated on: the whole source, or the test files of `idx:DIR`.
pub fn evaluation_data(r: &Resolved) -> Result<Dataset> {
    let source = Source::parse(&r.source, r.data_dir.as_deref())?;
    let (data, test) = load(&source, r)?;
    Ok(test.unwrap_or(data))
}

/// The layer sizes: the configured ones (checked against the data) or `inputs,64,64,outputs`.
fn sizes(r: &Resolved, data: &Dataset) -> Result<Vec<usize>> {
    let (features, task) = (data.features_per_sample(), data.task());
    let Some(sizes) = r.layers.clone() else {
        return Ok(vec![features, 64, 64, data.outputs()]);
    };
    if sizes[0] != features {
        return Err(Error::invalid(
            "--layers (model.layers)",
            format!("the first size is {} but `{}` has {features} features per sample", sizes[0], data.name),
        ));
    }
    let outputs = sizes[sizes.len() - 1];
    let binary_column = matches!(task, Task::Classification { classes: 2 }) && outputs == 1;
    if outputs != data.outputs() && !binary_column {
        return Err(Error::invalid(
            "--layers (model.layers)",
            format!("the last size is {outputs} but `{}` needs {} outputs", data.name, data.outputs()),
        ));
    }
    Ok(sizes)
}

/// The architecture for `data`: default loss by task (softmax-ce for classes, bce for one
/// output of two classes, mse for regression).
pub fn architecture(r: &Resolved, data: &Dataset) -> Result<Architecture> {
    let sizes = sizes(r, data)?;
    let outputs = sizes[sizes.len() - 1];
    let loss = r.loss.unwrap_or(match data.task() {
        Task::Classification { .. } if outputs == 1 => Loss::Bce,
        Task::Classification { .. } => Loss::SoftmaxCe,
        Task::Regression { .. } => Loss::Mse,
    });
    let resolved = Resolved { loss: Some(loss), ..r.clone() };
    resolved.architecture(&sizes)
}

/// Opens the configured backend.
pub fn backend(r: &Resolved) -> Result<AnyBackend> {
    crate::cpu::warn_once_if_narrow(&r.backend);
    let name = crate::config::as_flag(r.backend.parse::<BackendName>(), "--backend (training.backend)")?;
    AnyBackend::open(&name, &BackendOptions { threads: r.threads, tf32: r.tf32, gemm: r.gemm })
}

/// Loads, splits (test, then validation, each stratified and seeded) and scales the data —
/// the scaler fitted on the training part only — and opens the backend.
pub fn prepare(r: &Resolved) -> Result<Prepared> {
    let source = Source::parse(&r.source, r.data_dir.as_deref())?;
    let (mut train, mut test) = load(&source, r)?;
    if let Some(spec) = &r.test_source {
        let test_source = Source::parse(spec, r.data_dir.as_deref())?;
        test = Some(load(&test_source, r)?.0);
    }
    if let Some(f) = r.test_split {
        let (rest, held) = nabla::data::split(&train, f, r.train.seed ^ 0x7E57).map_err(data_error)?;
        (train, test) = (rest, Some(held));
    }
    let mut val = None;
    if let Some(f) = r.val_split {
        let (rest, held) = nabla::data::split(&train, f, r.train.seed ^ 0x5EED).map_err(data_error)?;
        (train, val) = (rest, Some(held));
    }
    let scaling = r.scale.unwrap_or_else(|| source.default_scaling());
    let scaler = Scaler::fit(scaling, train.features.view());
    for d in std::iter::once(&mut train).chain(val.as_mut()).chain(test.as_mut()) {
        scaler.apply(d).map_err(data_error)?;
    }
    let arch = architecture(r, &train)?;
    for d in val.iter().chain(test.iter()) {
        check_fits(&arch, d)?;
    }
    Ok(Prepared { train, val, test, scaler, arch, backend: backend(r)? })
}

/// Checks that `data` has the network's input size and fits its outputs.
pub fn check_fits(arch: &Architecture, data: &Dataset) -> Result<()> {
    if data.features_per_sample() != arch.inputs() {
        return Err(Error::invalid(
            "data",
            format!(
                "`{}` has {} features per sample but the network takes {}",
                data.name,
                data.features_per_sample(),
                arch.inputs()
            ),
        ));
    }
    data.target_matrix(arch.outputs()).map(|_| ()).map_err(data_error)
}

/// The data set as row-major host matrices `(x, y)` in `E`, `y` with `outputs` columns: the
/// data (held in f64) rounded once to the training dtype; a value too large for it is an error.
pub fn matrices<E: Element>(dataset: &Dataset, outputs: usize) -> Result<(Vec<E>, Vec<E>)> {
    let x = in_dtype::<E>(dataset.features.iter().copied(), &dataset.name, "feature")?;
    let targets = dataset.target_matrix(outputs).map_err(data_error)?;
    let y = in_dtype::<E>(targets.iter().copied(), &dataset.name, "target")?;
    Ok((x, y))
}

/// `values` in `E`, or an error naming the first that does not fit (is not finite in `E`).
pub fn in_dtype<E: Element>(values: impl Iterator<Item = f64>, name: &str, what: &str) -> Result<Vec<E>> {
    values
        .enumerate()
        .map(|(i, v)| {
            let e = E::of(v);
            if e.is_finite() {
                Ok(e)
            } else {
                Err(Error::invalid(
                    "--dtype",
                    format!(
                        "`{name}`: {what} value {i} ({v}) does not fit in {}; train with --dtype f64",
                        E::DTYPE.name()
                    ),
                ))
            }
        })
        .collect()
}
