//! From the model flags to a data set, an architecture and a backend.

use nabla::data::synthetic::{self, Spec};
use nabla::data::{DataError, Dataset, Task};
use nabla::{AnyBackend, Architecture, BackendOptions, Element, Error, Loss, Result};

use crate::args::ModelArgs;

/// What the model flags describe.
pub struct Prepared {
    pub dataset: Dataset,
    pub arch: Architecture,
    pub backend: AnyBackend,
}

/// A data error as the core's error (both are "invalid setting" errors with the same shape).
pub fn data_error(e: DataError) -> Error {
    match e {
        DataError::Invalid { what, detail } => Error::Invalid { what, detail },
    }
}

/// Generates the data set, checks the layer sizes against it, and opens the backend.
pub fn prepare(m: &ModelArgs) -> Result<Prepared> {
    let spec = Spec { samples: m.samples, classes: m.classes, noise: m.noise };
    let dataset = synthetic::generate(&m.dataset, spec, m.seed).map_err(data_error)?;
    let (features, task) = (dataset.features_per_sample(), dataset.task());
    let outputs = m.layers.as_ref().and_then(|l| l.0.last().copied()).unwrap_or(dataset.outputs());
    let loss = m.loss.unwrap_or(match task {
        Task::Classification { .. } if outputs == 1 => Loss::Bce,
        Task::Classification { .. } => Loss::SoftmaxCe,
        Task::Regression { .. } => Loss::Mse,
    });
    let sizes = m.layers.clone().map(|l| l.0).unwrap_or_else(|| vec![features, 64, 64, outputs]);
    if sizes[0] != features {
        return Err(Error::invalid(
            "--layers",
            format!("the first size is {} but `{}` has {features} features per sample", sizes[0], dataset.name),
        ));
    }
    let binary_column = matches!(task, Task::Classification { classes: 2 }) && outputs == 1;
    if outputs != dataset.outputs() && !binary_column {
        return Err(Error::invalid(
            "--layers",
            format!("the last size is {outputs} but `{}` needs {} outputs", dataset.name, dataset.outputs()),
        ));
    }
    let mut arch = Architecture::new(&sizes, m.activation, loss)?;
    if let Some(out) = m.output_activation {
        arch = arch.with_output(out)?;
    }
    let options = BackendOptions { threads: m.threads.map(|t| t as usize) };
    let backend = AnyBackend::from_name(&m.backend, &options)?;
    Ok(Prepared { dataset, arch, backend })
}

/// The data set as row-major host matrices `(x, y)` in `E`, `y` with `outputs` columns.
pub fn matrices<E: Element>(dataset: &Dataset, outputs: usize) -> Result<(Vec<E>, Vec<E>)> {
    let x = dataset.features.iter().map(|&v| E::of(f64::from(v))).collect();
    let y = dataset.target_matrix(outputs).map_err(data_error)?.iter().map(|&v| E::of(f64::from(v))).collect();
    Ok((x, y))
}
