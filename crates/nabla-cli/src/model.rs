//! From a resolved configuration to data, an architecture and a backend.

use nabla::data::synthetic::{self, Spec};
use nabla::data::{DataError, Dataset, Task};
use nabla::{AnyBackend, Architecture, BackendOptions, Element, Error, Loss, Result};

use crate::config::Resolved;

/// What a run works on.
pub struct Prepared {
    pub train: Dataset,
    pub val: Option<Dataset>,
    pub arch: Architecture,
    pub backend: AnyBackend,
}

/// A data error as the core's error (both are "invalid setting" errors with the same shape).
pub fn data_error(e: DataError) -> Error {
    match e {
        DataError::Invalid { what, detail } => Error::Invalid { what, detail },
    }
}

/// The data set the configuration names.
pub fn dataset(r: &Resolved) -> Result<Dataset> {
    let spec = Spec { samples: r.samples, classes: r.classes, noise: r.noise };
    synthetic::generate(&r.source, spec, r.train.seed).map_err(|e| match data_error(e) {
        Error::Invalid { what, detail } if what == "dataset" => Error::invalid("--dataset (data.source)", detail),
        other => other,
    })
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
    AnyBackend::from_name(&r.backend, &BackendOptions { threads: r.threads, tf32: r.tf32 }).map_err(|e| match e {
        Error::Invalid { what, detail } if what == "backend" => Error::invalid("--backend (training.backend)", detail),
        other => other,
    })
}

/// Data (split for validation if asked), architecture and backend.
pub fn prepare(r: &Resolved) -> Result<Prepared> {
    let data = dataset(r)?;
    let arch = architecture(r, &data)?;
    let (train, val) = match r.val_split {
        Some(f) => {
            let (t, v) = nabla::data::split(&data, f, r.train.seed ^ 0x5EED).map_err(data_error)?;
            (t, Some(v))
        }
        None => (data, None),
    };
    Ok(Prepared { train, val, arch, backend: backend(r)? })
}

/// The data set as row-major host matrices `(x, y)` in `E`, `y` with `outputs` columns.
pub fn matrices<E: Element>(dataset: &Dataset, outputs: usize) -> Result<(Vec<E>, Vec<E>)> {
    let x = dataset.features.iter().map(|&v| E::of(f64::from(v))).collect();
    let y = dataset.target_matrix(outputs).map_err(data_error)?.iter().map(|&v| E::of(f64::from(v))).collect();
    Ok((x, y))
}
