//! The library API for programs: build a network with [`Model::builder`], then `fit`,
//! `predict` and `evaluate` on ndarray views — features as `ArrayView2<E>` (one row per
//! sample, `E` = `f32` or `f64`), labels as `ArrayView1<usize>` or targets as `ArrayView1<E>` /
//! `ArrayView2<E>`; `save` and `load` a model file.
//!
//! ```
//! use ndarray::array;
//! use nabla::{Activation, Loss, Model, OptimizerConfig};
//!
//! let x = array![[0.0_f32, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
//! let y = array![0_usize, 1, 1, 0];
//! let mut model = Model::builder()
//!     .layers(&[2, 8, 2])
//!     .activation(Activation::Tanh)
//!     .loss(Loss::SoftmaxCe)
//!     .optimizer(OptimizerConfig::adam(0.05))
//!     .epochs(300)
//!     .batch_size(4)
//!     .seed(3)
//!     .build()?;
//! model.fit(x.view(), y.view())?;
//! assert_eq!(model.predict_classes(x.view())?, y);
//! # Ok::<(), nabla::Error>(())
//! ```

use std::cell::{RefCell, RefMut};
use std::path::Path;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use nabla_core::metrics::{self, Classification, Regression};
use nabla_core::{
    Activation, Architecture, BatchSize, EarlyStopping, EpochReport, Error, HostData, Init, Loss, Network, Observer,
    OptimizerConfig, Result, Schedule, Silent, TrainConfig, Trainer, load_model, save_model,
};

use crate::any::{AnyBackend, AnyElement, BackendOptions};

/// What a network learns to predict: class labels or real values in `E`.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Targets<'a, E = f32> {
    /// Class labels `0..outputs` (one-hot encoded for training; a 0/1 column for one output).
    Classes(ArrayView1<'a, usize>),
    /// One real target per sample.
    Values(ArrayView1<'a, E>),
    /// Several real targets per sample.
    Matrix(ArrayView2<'a, E>),
}

impl<'a, E> From<ArrayView1<'a, usize>> for Targets<'a, E> {
    fn from(v: ArrayView1<'a, usize>) -> Self {
        Targets::Classes(v)
    }
}

/// `ArrayView1<E>` and `ArrayView2<E>` as real targets, for `f32` and `f64`.
macro_rules! real_targets {
    ($($e:ty),*) => {$(
        impl<'a> From<ArrayView1<'a, $e>> for Targets<'a, $e> {
            fn from(v: ArrayView1<'a, $e>) -> Self {
                Targets::Values(v)
            }
        }

        impl<'a> From<ArrayView2<'a, $e>> for Targets<'a, $e> {
            fn from(v: ArrayView2<'a, $e>) -> Self {
                Targets::Matrix(v)
            }
        }
    )*};
}
real_targets!(f32, f64);

impl<E: AnyElement> Targets<'_, E> {
    fn rows(&self) -> usize {
        match self {
            Targets::Classes(v) => v.len(),
            Targets::Values(v) => v.len(),
            Targets::Matrix(m) => m.nrows(),
        }
    }

    /// Row-major `rows × outputs` training targets.
    fn matrix(&self, outputs: usize) -> Result<Vec<E>> {
        match self {
            Targets::Classes(labels) => {
                if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l >= outputs.max(2)) {
                    return Err(Error::invalid(
                        "labels",
                        format!("sample {i} has label {l}; the network has {outputs} outputs"),
                    ));
                }
                if outputs == 1 {
                    return Ok(labels.iter().map(|&l| E::of(l as f64)).collect());
                }
                let mut y = vec![E::zero(); labels.len() * outputs];
                labels.iter().enumerate().for_each(|(i, &l)| y[i * outputs + l] = E::one());
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
fn features<E: AnyElement>(x: ArrayView2<'_, E>, inputs: usize) -> Result<Vec<E>> {
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
    optimizer: OptimizerConfig,
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
            optimizer: OptimizerConfig::adam(0.001),
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

    /// The optimizer: its rule, learning rate and regularisation, e.g.
    /// `OptimizerConfig::adam(0.001)` or `OptimizerConfig::sgd(0.1).with_l2(1e-4)`
    /// (default Adam at 0.001; checked by [`ModelBuilder::build`]).
    pub fn optimizer(mut self, optimizer: OptimizerConfig) -> Self {
        self.optimizer = optimizer;
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

    /// Samples per step: a number of rows (default 32) or [`BatchSize::Full`].
    pub fn batch_size(mut self, batch: impl Into<BatchSize>) -> Self {
        self.train.batch_size = batch.into();
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

    /// Checks every setting and builds the model, computing in `E` (`f32` or `f64`; inferred
    /// from the data it is given, or `Model::<f64>`).
    pub fn build<E: AnyElement>(self) -> Result<Model<E>> {
        let mut arch = Architecture::new(&self.layers, self.activation, self.loss)?;
        if let Some(out) = self.output {
            arch = arch.with_output(out)?;
        }
        arch = arch.with_dropout(self.dropout)?;
        let backend = self.backend.map_or_else(default_backend, Ok)?;
        let net = Network::new(backend, arch, self.init, self.seed)?;
        let train = TrainConfig { schedule: self.schedule, accuracy: self.loss.is_classification(), ..self.train };
        Ok(Model { trainer: RefCell::new(Trainer::new(net, self.optimizer, train)?) })
    }
}

/// OpenBLAS when compiled in, else the reference backend.
fn default_backend() -> Result<AnyBackend> {
    let name = if cfg!(feature = "openblas") { "openblas" } else { "reference" };
    AnyBackend::from_name(name, &BackendOptions::default())
}

/// A network with its optimizer and training settings, computing in `E` (see the module
/// docs). `predict` and `evaluate_*` take `&self` (they run in the network's own workspace,
/// borrowed for the call), `fit` takes `&mut self`. A model stays on the thread that made it:
/// its trainer may hold an MPI communicator, which is not `Send`.
pub struct Model<E: AnyElement = f32> {
    trainer: RefCell<Trainer<E, AnyBackend>>,
}

impl<E: AnyElement> std::fmt::Debug for Model<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.lock();
        f.debug_struct("Model")
            .field("dtype", &E::DTYPE)
            .field("architecture", t.net.architecture())
            .field("optimizer", t.opt.config())
            .field("epochs_trained", &t.epoch)
            .finish()
    }
}

impl Model {
    /// A builder with the defaults.
    pub fn builder() -> ModelBuilder {
        ModelBuilder::default()
    }
}

impl<E: AnyElement> Model<E> {
    /// The trainer, borrowed for one call. Every borrow ends before the call returns and no
    /// call borrows twice (`evaluate_classes` lets go before it predicts), so this never panics.
    fn lock(&self) -> RefMut<'_, Trainer<E, AnyBackend>> {
        self.trainer.borrow_mut()
    }

    /// The trainer underneath (network, optimizer, history) for everything else.
    pub fn trainer(&mut self) -> &mut Trainer<E, AnyBackend> {
        self.trainer.get_mut()
    }

    /// Writes the network as a model file (safetensors: PyTorch's `nn.Linear` names and layout,
    /// the architecture in the metadata; what `nabla train --save` writes and `nabla eval`
    /// reads), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_model(&self.lock().net, path, &[])
    }

    /// A model from a model file (written by [`Model::save`] or `nabla train --save`), on the
    /// default backend, with Adam at 0.001 and the default settings for further training.
    pub fn load(path: &Path) -> Result<Model<E>> {
        Model::load_on(default_backend()?, path)
    }

    /// [`Model::load`] on the given backend.
    pub fn load_on(backend: AnyBackend, path: &Path) -> Result<Model<E>> {
        let (net, _) = load_model::<E, _>(backend, path)?;
        let accuracy = net.architecture().loss.is_classification();
        let train = TrainConfig { accuracy, ..TrainConfig::default() };
        Ok(Model { trainer: RefCell::new(Trainer::new(net, OptimizerConfig::adam(0.001), train)?) })
    }

    /// Trains on `x` (one row per sample) and `y` until the configured epochs are done.
    pub fn fit<'a>(&mut self, x: ArrayView2<'_, E>, y: impl Into<Targets<'a, E>>) -> Result<Vec<EpochReport>> {
        self.fit_with(x, y, None, &mut Silent)
    }

    /// [`Model::fit`] with a validation set and an [`Observer`] called at every step and epoch.
    pub fn fit_with<'a>(
        &mut self,
        x: ArrayView2<'_, E>,
        y: impl Into<Targets<'a, E>>,
        validation: Option<(ArrayView2<'_, E>, Targets<'_, E>)>,
        observer: &mut dyn Observer<E, AnyBackend>,
    ) -> Result<Vec<EpochReport>> {
        let trainer = self.trainer();
        let arch = trainer.net.architecture().clone();
        let y = y.into();
        if y.rows() != x.nrows() {
            return Err(Error::shape("fit", format!("{} samples but {} targets", x.nrows(), y.rows())));
        }
        let (xs, ys) = (features(x, arch.inputs())?, y.matrix(arch.outputs())?);
        let val = validation
            .map(|(vx, vy)| -> Result<(Vec<E>, Vec<E>, usize)> {
                Ok((features(vx, arch.inputs())?, vy.matrix(arch.outputs())?, vx.nrows()))
            })
            .transpose()?;
        let data = HostData { x: &xs, y: &ys, rows: x.nrows() };
        let val = val.as_ref().map(|(vx, vy, n)| HostData { x: vx, y: vy, rows: *n });
        Ok(trainer.fit(data, val, observer)?.to_vec())
    }

    /// The network's outputs `Aᴸ` (probabilities for softmax/sigmoid outputs).
    pub fn predict(&self, x: ArrayView2<'_, E>) -> Result<Array2<E>> {
        let mut t = self.lock();
        let outputs = t.net.architecture().outputs();
        let xs = features(x, t.net.architecture().inputs())?;
        let p = t.net.predict(&xs)?;
        Array2::from_shape_vec((x.nrows(), outputs), p).map_err(|e| Error::shape("predict", e.to_string()))
    }

    /// The predicted class of each sample (argmax, or `p > 0.5` for one output).
    pub fn predict_classes(&self, x: ArrayView2<'_, E>) -> Result<Array1<usize>> {
        let p = self.predict(x)?;
        let values: Vec<E> = p.iter().copied().collect();
        Ok(Array1::from(metrics::predicted_classes(&values, p.ncols())))
    }

    /// Loss and classification metrics on labelled data.
    pub fn evaluate_classes(
        &self,
        x: ArrayView2<'_, E>,
        labels: ArrayView1<'_, usize>,
    ) -> Result<(f64, Classification)> {
        let (loss, outputs) = {
            let mut t = self.lock();
            let outputs = t.net.architecture().outputs();
            let ys = Targets::<E>::Classes(labels).matrix(outputs)?;
            let xs = features(x, t.net.architecture().inputs())?;
            (t.net.evaluate(&xs, &ys)?.loss, outputs)
        };
        let predicted = self.predict_classes(x)?.to_vec();
        Ok((loss, metrics::classification(&predicted, &labels.to_vec(), outputs.max(2))))
    }

    /// Loss and regression metrics on data with real targets.
    pub fn evaluate_values<'a>(&self, x: ArrayView2<'_, E>, y: impl Into<Targets<'a, E>>) -> Result<(f64, Regression)> {
        let mut t = self.lock();
        let outputs = t.net.architecture().outputs();
        let ys = y.into().matrix(outputs)?;
        let xs = features(x, t.net.architecture().inputs())?;
        let loss = t.net.evaluate(&xs, &ys)?.loss;
        let p = t.net.predict(&xs)?;
        Ok((loss, metrics::regression(&p, &ys)))
    }
}
