//! The library API for programs: build a network with [`Model::builder`], then `fit`,
//! `predict` and `evaluate` on ndarray views — features as `ArrayView2<f32>` (one row per
//! sample), labels as `ArrayView1<usize>` or targets as `ArrayView1<f32>` / `ArrayView2<f32>`.
//!
//! ```
//! use ndarray::array;
//! use nabla::{Activation, Loss, Model};
//!
//! let x = array![[0.0_f32, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
//! let y = array![0_usize, 1, 1, 0];
//! let mut model = Model::builder()
//!     .layers(&[2, 8, 2])
//!     .activation(Activation::Tanh)
//!     .loss(Loss::SoftmaxCe)
//!     .optimizer("adam", 0.05)
//!     .epochs(300)
//!     .batch_size(4)
//!     .seed(3)
//!     .build()?;
//! model.fit(x.view(), y.view())?;
//! assert_eq!(model.predict_classes(x.view())?, y);
//! # Ok::<(), nabla::Error>(())
//! ```

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use nabla_core::metrics::{self, Classification, Regression};
use nabla_core::{
    Activation, Architecture, EarlyStopping, EpochReport, Error, HostData, Init, Loss, Network, Observer,
    OptimizerConfig, Result, Schedule, Silent, TrainConfig, Trainer,
};

use crate::any::{AnyBackend, BackendOptions};

/// What a network learns to predict: class labels or real values.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// Class labels `0..outputs` (one-hot encoded for training; a 0/1 column for one output).
    Classes(ArrayView1<'a, usize>),
    /// One real target per sample.
    Values(ArrayView1<'a, f32>),
    /// Several real targets per sample.
    Matrix(ArrayView2<'a, f32>),
}

impl<'a> From<ArrayView1<'a, usize>> for Targets<'a> {
    fn from(v: ArrayView1<'a, usize>) -> Self {
        Targets::Classes(v)
    }
}

impl<'a> From<ArrayView1<'a, f32>> for Targets<'a> {
    fn from(v: ArrayView1<'a, f32>) -> Self {
        Targets::Values(v)
    }
}

impl<'a> From<ArrayView2<'a, f32>> for Targets<'a> {
    fn from(v: ArrayView2<'a, f32>) -> Self {
        Targets::Matrix(v)
    }
}

impl Targets<'_> {
    fn rows(&self) -> usize {
        match self {
            Targets::Classes(v) => v.len(),
            Targets::Values(v) => v.len(),
            Targets::Matrix(m) => m.nrows(),
        }
    }

    /// Row-major `rows × outputs` training targets.
    fn matrix(&self, outputs: usize) -> Result<Vec<f32>> {
        match self {
            Targets::Classes(labels) => {
                if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l >= outputs.max(2)) {
                    return Err(Error::invalid(
                        "labels",
                        format!("sample {i} has label {l}; the network has {outputs} outputs"),
                    ));
                }
                if outputs == 1 {
                    return Ok(labels.iter().map(|&l| l as f32).collect());
                }
                let mut y = vec![0.0; labels.len() * outputs];
                labels.iter().enumerate().for_each(|(i, &l)| y[i * outputs + l] = 1.0);
                Ok(y)
            }
            Targets::Values(v) if outputs == 1 => Ok(v.iter().copied().collect()),
            Targets::Values(_) => {
                Err(Error::invalid("targets", format!("one value per sample given; the network has {outputs} outputs")))
            }
            Targets::Matrix(m) if m.ncols() == outputs => Ok(m.iter().copied().collect()),
            Targets::Matrix(m) => Err(Error::invalid(
                "targets",
                format!("{} values per sample given; the network has {outputs} outputs", m.ncols()),
            )),
        }
    }
}

/// Row-major features, checked against the network's input size and for NaN/inf.
fn features(x: ArrayView2<'_, f32>, inputs: usize) -> Result<Vec<f32>> {
    if x.ncols() != inputs {
        return Err(Error::shape(
            "features",
            format!("{} features per sample given; the network has {inputs} inputs", x.ncols()),
        ));
    }
    if x.nrows() == 0 {
        return Err(Error::shape("features", "no samples"));
    }
    if let Some(((r, c), _)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::invalid("features", format!("row {r}, column {c} is not finite")));
    }
    Ok(x.iter().copied().collect())
}

/// Builds a [`Model`]. Every setting has a default: `layers` must be given.
#[derive(Clone, Debug)]
pub struct ModelBuilder {
    layers: Vec<usize>,
    activation: Activation,
    output: Option<Activation>,
    loss: Loss,
    init: Init,
    dropout: f64,
    optimizer: (String, f64),
    schedule: Schedule,
    train: TrainConfig,
    backend: Option<AnyBackend>,
    seed: u64,
}

impl Default for ModelBuilder {
    fn default() -> Self {
        ModelBuilder {
            layers: Vec::new(),
            activation: Activation::Relu,
            output: None,
            loss: Loss::SoftmaxCe,
            init: Init::Auto,
            dropout: 0.0,
            optimizer: ("adam".into(), 0.001),
            schedule: Schedule::Constant,
            train: TrainConfig::default(),
            backend: None,
            seed: 0,
        }
    }
}

impl ModelBuilder {
    /// Layer sizes from input to output, e.g. `&[784, 512, 256, 10]`.
    pub fn layers(mut self, sizes: &[usize]) -> Self {
        self.layers = sizes.to_vec();
        self
    }

    /// The hidden activation (default ReLU).
    pub fn activation(mut self, f: Activation) -> Self {
        self.activation = f;
        self
    }

    /// The output activation (default: the loss's).
    pub fn output_activation(mut self, f: Activation) -> Self {
        self.output = Some(f);
        self
    }

    /// The loss (default softmax + cross-entropy).
    pub fn loss(mut self, l: Loss) -> Self {
        self.loss = l;
        self
    }

    /// The weight initialiser (default: He for ReLU-like, Xavier otherwise).
    pub fn init(mut self, i: Init) -> Self {
        self.init = i;
        self
    }

    /// Dropout after every hidden layer.
    pub fn dropout(mut self, rate: f64) -> Self {
        self.dropout = rate;
        self
    }

    /// The optimizer by name (`sgd`, `momentum`, `nesterov`, `adagrad`, `rmsprop`, `adam`,
    /// `adamw`, `rprop`) and learning rate (default Adam, 0.001).
    pub fn optimizer(mut self, name: &str, lr: f64) -> Self {
        self.optimizer = (name.to_string(), lr);
        self
    }

    /// The learning-rate schedule.
    pub fn schedule(mut self, s: Schedule) -> Self {
        self.schedule = s;
        self
    }

    /// Epochs (default 10).
    pub fn epochs(mut self, n: usize) -> Self {
        self.train.epochs = n;
        self
    }

    /// Samples per step (default 32; `usize::MAX` for full batch).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.train.batch_size = n;
        self
    }

    /// Early stopping on the validation loss with this patience, restoring the best weights.
    pub fn early_stopping(mut self, patience: usize) -> Self {
        self.train.early_stopping =
            Some(EarlyStopping { monitor: nabla_core::Monitor::ValLoss, patience, min_delta: 0.0, restore_best: true });
        self
    }

    /// The seed of the weights, the shuffles and the dropout masks.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self.train.seed = seed;
        self
    }

    /// The backend (default OpenBLAS when compiled in, else the reference).
    pub fn backend(mut self, b: AnyBackend) -> Self {
        self.backend = Some(b);
        self
    }

    /// Checks every setting and builds the model.
    pub fn build(self) -> Result<Model> {
        let mut arch = Architecture::new(&self.layers, self.activation, self.loss)?;
        if let Some(out) = self.output {
            arch = arch.with_output(out)?;
        }
        arch = arch.with_dropout(self.dropout)?;
        let backend = match self.backend {
            Some(b) => b,
            None => AnyBackend::from_name(
                if cfg!(feature = "openblas") { "openblas" } else { "reference" },
                &BackendOptions::default(),
            )?,
        };
        let net = Network::new(backend, arch, self.init, self.seed)?;
        let optimizer = OptimizerConfig::named(&self.optimizer.0, self.optimizer.1)?;
        let train = TrainConfig { schedule: self.schedule, accuracy: self.loss.is_classification(), ..self.train };
        Ok(Model { trainer: Trainer::new(net, optimizer, train)? })
    }
}

/// A network with its optimizer and training settings (see the module docs).
pub struct Model {
    trainer: Trainer<f32, AnyBackend>,
}

impl Model {
    /// A builder with the defaults.
    pub fn builder() -> ModelBuilder {
        ModelBuilder::default()
    }

    /// The trainer underneath (network, optimizer, history) for everything else.
    pub fn trainer(&mut self) -> &mut Trainer<f32, AnyBackend> {
        &mut self.trainer
    }

    /// Trains on `x` (one row per sample) and `y` until the configured epochs are done.
    pub fn fit<'a>(&mut self, x: ArrayView2<'_, f32>, y: impl Into<Targets<'a>>) -> Result<Vec<EpochReport>> {
        self.fit_with(x, y, None, &mut Silent)
    }

    /// [`Model::fit`] with a validation set and an [`Observer`] called at every step and epoch.
    pub fn fit_with<'a>(
        &mut self,
        x: ArrayView2<'_, f32>,
        y: impl Into<Targets<'a>>,
        validation: Option<(ArrayView2<'_, f32>, Targets<'_>)>,
        observer: &mut dyn Observer<f32, AnyBackend>,
    ) -> Result<Vec<EpochReport>> {
        let arch = self.trainer.net.architecture().clone();
        let y = y.into();
        if y.rows() != x.nrows() {
            return Err(Error::shape("fit", format!("{} samples but {} targets", x.nrows(), y.rows())));
        }
        let (xs, ys) = (features(x, arch.inputs())?, y.matrix(arch.outputs())?);
        let val = validation
            .map(|(vx, vy)| -> Result<(Vec<f32>, Vec<f32>, usize)> {
                Ok((features(vx, arch.inputs())?, vy.matrix(arch.outputs())?, vx.nrows()))
            })
            .transpose()?;
        let data = HostData { x: &xs, y: &ys, rows: x.nrows() };
        let val = val.as_ref().map(|(vx, vy, n)| HostData { x: vx, y: vy, rows: *n });
        Ok(self.trainer.fit(data, val, observer)?.to_vec())
    }

    /// The network's outputs `Aᴸ` (probabilities for softmax/sigmoid outputs).
    pub fn predict(&mut self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let outputs = self.trainer.net.architecture().outputs();
        let xs = features(x, self.trainer.net.architecture().inputs())?;
        let p = self.trainer.net.predict(&xs)?;
        Array2::from_shape_vec((x.nrows(), outputs), p).map_err(|e| Error::shape("predict", e.to_string()))
    }

    /// The predicted class of each sample (argmax, or `p > 0.5` for one output).
    pub fn predict_classes(&mut self, x: ArrayView2<'_, f32>) -> Result<Array1<usize>> {
        let p = self.predict(x)?;
        let values: Vec<f32> = p.iter().copied().collect();
        Ok(Array1::from(metrics::predicted_classes(&values, p.ncols())))
    }

    /// Loss and classification metrics on labelled data.
    pub fn evaluate_classes(
        &mut self,
        x: ArrayView2<'_, f32>,
        labels: ArrayView1<'_, usize>,
    ) -> Result<(f64, Classification)> {
        let outputs = self.trainer.net.architecture().outputs();
        let ys = Targets::Classes(labels).matrix(outputs)?;
        let xs = features(x, self.trainer.net.architecture().inputs())?;
        let loss = self.trainer.net.evaluate(&xs, &ys)?.loss;
        let predicted = self.predict_classes(x)?.to_vec();
        Ok((loss, metrics::classification(&predicted, &labels.to_vec(), outputs.max(2))))
    }

    /// Loss and regression metrics on data with real targets.
    pub fn evaluate_values<'a>(
        &mut self,
        x: ArrayView2<'_, f32>,
        y: impl Into<Targets<'a>>,
    ) -> Result<(f64, Regression)> {
        let outputs = self.trainer.net.architecture().outputs();
        let ys = y.into().matrix(outputs)?;
        let xs = features(x, self.trainer.net.architecture().inputs())?;
        let loss = self.trainer.net.evaluate(&xs, &ys)?.loss;
        let p = self.trainer.net.predict(&xs)?;
        Ok((loss, metrics::regression(&p, &ys)))
    }
}
