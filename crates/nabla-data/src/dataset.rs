//! The in-memory data set.

use ndarray::{Array2, ArrayView2};

use crate::error::{DataError, Result};

/// What the targets are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Class labels `0..classes`.
    Classification {
        /// The class count.
        classes: usize,
    },
    /// Real values, `outputs` per sample.
    Regression {
        /// Values per sample.
        outputs: usize,
    },
}

/// The targets of a data set.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// One class label per sample, each `< classes`.
    Classes {
        /// The label of each sample.
        labels: Vec<usize>,
        /// The class count.
        classes: usize,
    },
    /// `n × outputs` real values.
    Values(Array2<f64>),
}

/// Features and targets, one row per sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// A short name for reports.
    pub name: String,
    /// `n × d` features.
    pub features: Array2<f64>,
    /// The targets of the `n` samples.
    pub targets: Targets,
}

impl Dataset {
    /// A data set, checked: as many targets as samples, labels in range, every value finite.
    pub fn new(name: impl Into<String>, features: Array2<f64>, targets: Targets) -> Result<Dataset> {
        let name = name.into();
        let n = features.nrows();
        let count = match &targets {
            Targets::Classes { labels, classes } => {
                if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l >= *classes) {
                    return Err(DataError::invalid(
                        "labels",
                        format!("{name}: sample {i} has label {l}, but there are {classes} classes (0..{classes})"),
                    ));
                }
                labels.len()
            }
            Targets::Values(v) => v.nrows(),
        };
        if count != n {
            return Err(DataError::invalid("targets", format!("{name}: {n} samples but {count} targets")));
        }
        if let Some(((r, c), _)) = features.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(DataError::invalid("features", format!("{name}: row {r}, column {c} is not finite")));
        }
        if let Targets::Values(v) = &targets
            && let Some(((r, c), _)) = v.indexed_iter().find(|(_, v)| !v.is_finite())
        {
            return Err(DataError::invalid("targets", format!("{name}: row {r}, column {c} is not finite")));
        }
        Ok(Dataset { name, features, targets })
    }

    /// The number of samples `n`.
    pub fn len(&self) -> usize {
        self.features.nrows()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of features `d`.
    pub fn features_per_sample(&self) -> usize {
        self.features.ncols()
    }

    /// Classification or regression, with the class or output count.
    pub fn task(&self) -> Task {
        match &self.targets {
            Targets::Classes { classes, .. } => Task::Classification { classes: *classes },
            Targets::Values(v) => Task::Regression { outputs: v.ncols() },
        }
    }

    /// The natural output size: the class count (1 for two classes is also accepted by
    /// [`Dataset::target_matrix`]), or the number of regression outputs.
    pub fn outputs(&self) -> usize {
        match self.task() {
            Task::Classification { classes } => classes,
            Task::Regression { outputs } => outputs,
        }
    }

    /// Targets as an `n × outputs` matrix: one-hot rows for classes (or a 0/1 column when
    /// `outputs == 1` and there are two classes), the values for regression.
    pub fn target_matrix(&self, outputs: usize) -> Result<Array2<f64>> {
        match &self.targets {
            Targets::Classes { labels, classes } => {
                if outputs == 1 && *classes == 2 {
                    return Ok(Array2::from_shape_fn((labels.len(), 1), |(i, _)| labels[i] as f64));
                }
                if outputs != *classes {
                    return Err(DataError::invalid(
                        "outputs",
                        format!("{}: the network has {outputs} outputs but the data has {classes} classes", self.name),
                    ));
                }
                Ok(Array2::from_shape_fn((labels.len(), outputs), |(i, j)| f64::from(u8::from(labels[i] == j))))
            }
            Targets::Values(v) => {
                if v.ncols() != outputs {
                    return Err(DataError::invalid(
                        "outputs",
                        format!(
                            "{}: the network has {outputs} outputs but the data has {} targets",
                            self.name,
                            v.ncols()
                        ),
                    ));
                }
                Ok(v.clone())
            }
        }
    }

    /// The features as a view.
    pub fn x(&self) -> ArrayView2<'_, f64> {
        self.features.view()
    }

    /// The samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let features = self.features.select(ndarray::Axis(0), indices);
        let targets = match &self.targets {
            Targets::Classes { labels, classes } => {
                Targets::Classes { labels: indices.iter().map(|&i| labels[i]).collect(), classes: *classes }
            }
            Targets::Values(v) => Targets::Values(v.select(ndarray::Axis(0), indices)),
        };
        Dataset { name: self.name.clone(), features, targets }
    }
}
