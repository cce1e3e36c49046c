//! The training loop: epochs of shuffled mini-batches through [`Network::train_step`], with a
//! learning-rate schedule, validation, early stopping and an [`Observer`] hook.
//!
//! Each epoch's batches are gathered on the host and written to the backend once, before the
//! epoch's first step, so that a step itself copies nothing but the loss scalars back.

use std::fmt;
use std::time::Instant;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::distributed::{self, Collective, Fingerprint, GradientReducer, Shard};
use crate::dropout::mix64;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::memory;
use crate::network::{Network, Score};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::schedule::{Schedule, ScheduleState};
use crate::update::Rule;

/// What early stopping (and reduce-on-plateau) watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Monitor {
    /// Validation loss (training loss when there is no validation set).
    ValLoss,
    /// Validation accuracy (training accuracy when there is no validation set).
    ValAccuracy,
    /// Training loss.
    Loss,
    /// Training accuracy.
    Accuracy,
}

impl Monitor {
    /// Whether larger values are better.
    pub fn maximise(self) -> bool {
        matches!(self, Monitor::ValAccuracy | Monitor::Accuracy)
    }

    /// The monitored value in `report`, or `None` if the report lacks it.
    pub fn value(self, report: &EpochReport) -> Option<f64> {
        match self {
            Monitor::ValLoss => report.val_loss.or(Some(report.train_loss)),
            Monitor::ValAccuracy => report.val_accuracy.or(report.train_accuracy),
            Monitor::Loss => Some(report.train_loss),
            Monitor::Accuracy => report.train_accuracy,
        }
    }
}

impl std::str::FromStr for Monitor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "val-loss" | "val_loss" => Ok(Monitor::ValLoss),
            "val-accuracy" | "val_accuracy" => Ok(Monitor::ValAccuracy),
            "loss" | "train-loss" => Ok(Monitor::Loss),
            "accuracy" | "train-accuracy" => Ok(Monitor::Accuracy),
            _ => Err(Error::invalid("monitor", format!("`{s}`; accepted: val-loss, val-accuracy, loss, accuracy"))),
        }
    }
}

/// Early-stopping settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// The metric watched.
    pub monitor: Monitor,
    /// Epochs without improvement before stopping (≥ 1).
    pub patience: usize,
    /// The least change that counts as an improvement.
    pub min_delta: f64,
    /// Whether to put back the weights of the best epoch when stopping or finishing.
    pub restore_best: bool,
}

/// How many samples one training step takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchSize {
    /// Every sample: full-batch gradient descent, one step per epoch.
    Full,
    /// At most this many samples (the last batch of an epoch may be smaller); 1 is per-sample SGD.
    Rows(usize),
}

impl BatchSize {
    /// The rows of one batch of a data set of `n` samples.
    pub fn rows(self, n: usize) -> usize {
        match self {
            BatchSize::Full => n,
            BatchSize::Rows(b) => b.min(n),
        }
    }
}

impl From<usize> for BatchSize {
    fn from(rows: usize) -> Self {
        BatchSize::Rows(rows)
    }
}

impl fmt::Display for BatchSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchSize::Full => f.write_str("full"),
            BatchSize::Rows(b) => write!(f, "{b}"),
        }
    }
}

/// In files: a number of rows, or `"full"` (and, from checkpoints written before this type,
/// the number `usize::MAX` that stood for full batch).
impl Serialize for BatchSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            BatchSize::Full => s.serialize_str("full"),
            BatchSize::Rows(b) => s.serialize_u64(*b as u64),
        }
    }
}

impl<'de> Deserialize<'de> for BatchSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = BatchSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a batch size: a number of rows ≥ 1 or \"full\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<BatchSize, E> {
                match v {
                    u64::MAX => Ok(BatchSize::Full),
                    _ => usize::try_from(v)
                        .map(BatchSize::Rows)
                        .map_err(|_| E::custom(format!("batch size {v}: too large"))),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<BatchSize, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("batch size {v}: a number of rows ≥ 1 or \"full\"")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<BatchSize, E> {
                match v {
                    "full" => Ok(BatchSize::Full),
                    _ => Err(E::custom(format!("batch size `{v}`: a number of rows ≥ 1 or \"full\""))),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// How to train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Total epochs of the run.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: BatchSize,
    /// Reshuffle the samples every epoch (seeded by `seed` and the epoch number).
    pub shuffle: bool,
    /// Drop the last, smaller batch of an epoch instead of training on it.
    pub drop_last: bool,
    /// Seed of the shuffles.
    pub seed: u64,
    /// The learning-rate schedule.
    pub schedule: Schedule,
    /// Early stopping, if any.
    pub early_stopping: Option<EarlyStopping>,
    /// Whether accuracy is meaningful (classification).
    pub accuracy: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: BatchSize::Rows(32),
            shuffle: true,
            drop_last: false,
            seed: 0,
            schedule: Schedule::Constant,
            early_stopping: None,
            accuracy: true,
        }
    }
}

impl TrainConfig {
    /// Checks the settings against an optimizer.
    pub fn validate(&self, optimizer: &OptimizerConfig) -> Result<()> {
        if self.batch_size == BatchSize::Rows(0) {
            return Err(Error::invalid("batch size", "0; give at least 1 (or `full`)"));
        }
        self.schedule.validate()?;
        if let Some(es) = &self.early_stopping {
            if es.patience == 0 {
                return Err(Error::invalid("patience", "0; give at least 1 epoch"));
            }
            if !(es.min_delta >= 0.0 && es.min_delta.is_finite()) {
                return Err(Error::invalid("min delta", format!("{}; it must be a finite number ≥ 0", es.min_delta)));
            }
        }
        optimizer.validate()
    }

    /// Checks the settings that depend on the number of training samples `n`.
    pub fn validate_for(&self, optimizer: &OptimizerConfig, n: usize) -> Result<()> {
        if matches!(optimizer.rule, Rule::Rprop { .. }) && self.batch_size.rows(n) < n {
            // RPROP adapts to the sign of the full-batch gradient; mini-batch noise defeats it.
            return Err(Error::invalid(
                "optimizer",
                format!(
                    "rprop needs full-batch training, but the batch size is {} of {n} samples: use --batch-size full",
                    self.batch_size
                ),
            ));
        }
        Ok(())
    }
}

/// Host data: `rows` samples of features `x` and targets `y`, row-major.
#[derive(Clone, Copy, Debug)]
pub struct HostData<'a, E> {
    /// Features, `rows × inputs`.
    pub x: &'a [E],
    /// Targets, `rows × outputs`.
    pub y: &'a [E],
    /// Samples.
    pub rows: usize,
}

/// The metrics of one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// The learning rate used.
    pub lr: f64,
    /// Mean training loss over the epoch's steps (weights changing as it goes).
    pub train_loss: f64,
    /// Training accuracy over the epoch's steps.
    pub train_accuracy: Option<f64>,
    /// Validation loss after the epoch.
    pub val_loss: Option<f64>,
    /// Validation accuracy after the epoch.
    pub val_accuracy: Option<f64>,
    /// Seconds spent in training steps.
    pub seconds: f64,
    /// Training samples per second.
    pub samples_per_sec: f64,
    /// Steps taken.
    pub steps: usize,
}

/// One step's outcome, for [`Observer::on_step`].
#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based step within the epoch.
    pub step: usize,
    /// Steps in the epoch.
    pub steps: usize,
    /// The batch's mean loss.
    pub loss: f64,
    /// Samples in the batch.
    pub rows: usize,
}

/// Whether training goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop after this step or epoch (a later `fit` continues).
    Stop,
}

/// Called by the training loop at the end of every step and epoch: for logging, progress
/// bars, stopping early, or checkpointing (the trainer is passed in whole).
pub trait Observer<E: Element, B: Backend<E>> {
    /// After each step.
    fn on_step(&mut self, _step: &StepReport) -> Control {
        Control::Continue
    }

    /// After each epoch, with the whole training state (which it may inspect, checkpoint or
    /// adjust).
    fn on_epoch(&mut self, _report: &EpochReport, _trainer: &mut Trainer<E, B>) -> Result<Control> {
        Ok(Control::Continue)
    }
}

/// The observer that does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl<E: Element, B: Backend<E>> Observer<E, B> for Silent {}

/// Early stopping's memory, saved in checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StopState {
    /// The best monitored value so far.
    pub best: Option<f64>,
    /// The epoch (1-based) it was reached in.
    pub best_epoch: usize,
    /// Epochs since then.
    pub bad_epochs: usize,
}

/// A batch resident on the backend: this rank's shard of a global batch (all of it in one
/// process).
struct DeviceBatch<Buf> {
    x: Buf,
    y: Buf,
    /// Rows of the shard.
    rows: usize,
    /// Rows of the global batch.
    global_rows: usize,
    /// The shard's first row within the global batch.
    offset: usize,
}

/// A training run: the network, its optimizer, the settings and everything needed to continue
/// the run exactly where it stands (epoch, schedule and early-stopping state).
pub struct Trainer<E: Element, B: Backend<E>> {
    /// The network being trained.
    pub net: Network<E, B>,
    /// Its optimizer.
    pub opt: Optimizer<B::Buf>,
    /// The settings.
    pub config: TrainConfig,
    /// Epochs completed.
    pub epoch: usize,
    /// Reduce-on-plateau's state.
    pub schedule_state: ScheduleState,
    /// Early stopping's state.
    pub stop_state: StopState,
    /// The parameters of the best epoch, when early stopping restores them.
    pub best_parameters: Option<Vec<Vec<E>>>,
    /// Reports of the epochs run by this trainer.
    pub history: Vec<EpochReport>,
    /// Whether early stopping ended the run (a resumed run stays stopped).
    pub stopped: bool,
    /// Whether an observer asked to stop the current call of [`Trainer::fit`].
    interrupted: bool,
    /// The weights training had reached when [`Trainer::fit`] put the best ones into the
    /// network: the run's live state, which checkpoints store and a later `fit` continues from.
    live_parameters: Option<Vec<Vec<E>>>,
    /// `(samples, batch size, batches)` the device batches were made for.
    batch_layout: (usize, usize, usize),
    /// The data-parallel gradient reducer, when this process is one rank of several.
    reducer: Option<GradientReducer<E, B>>,
    /// Whether every rank compares a hash of its weights after every step.
    check_consistency: bool,
    batches: Vec<DeviceBatch<B::Buf>>,
    order: Vec<usize>,
    gather_x: Vec<E>,
    gather_y: Vec<E>,
}

impl<E: Element, B: Backend<E>> fmt::Debug for Trainer<E, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trainer")
            .field("net", &self.net)
            .field("opt", &self.opt)
            .field("config", &self.config)
            .field("epoch", &self.epoch)
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

impl<E: Element, B: Backend<E>> Trainer<E, B> {
    /// A run of `net` with a fresh optimizer.
    pub fn new(net: Network<E, B>, optimizer: OptimizerConfig, config: TrainConfig) -> Result<Self> {
        config.validate(&optimizer)?;
        let opt = net.optimizer(optimizer)?;
        Ok(Trainer {
            net,
            opt,
            config,
            epoch: 0,
            schedule_state: ScheduleState::default(),
            stop_state: StopState::default(),
            best_parameters: None,
            history: Vec::new(),
            stopped: false,
            interrupted: false,
            live_parameters: None,
            batch_layout: (0, 0, 0),
            reducer: None,
            check_consistency: false,
            batches: Vec::new(),
            order: Vec::new(),
            gather_x: Vec::new(),
            gather_y: Vec::new(),
        })
    }

    /// Makes this trainer one rank of a data-parallel run over `comm` (see
    /// [`crate::distributed`]): `config.batch_size` is the global batch, each rank trains on its
    /// shard, the gradients are all-reduced between backward and update, and every metric and
    /// decision is the same on every rank. Checks that every rank has the same architecture,
    /// settings and run position, then gives every rank rank 0's weights. A world of one
    /// changes nothing.
    pub fn distribute(&mut self, comm: Box<dyn Collective>) -> Result<()> {
        let size = comm.size();
        if size <= 1 {
            return Ok(());
        }
        if matches!(self.config.batch_size, BatchSize::Rows(b) if b < size) {
            return Err(Error::invalid(
                "batch size",
                format!(
                    "{} is smaller than the {size} ranks; the global batch needs at least one row per rank",
                    self.config.batch_size
                ),
            ));
        }
        let mut reducer = GradientReducer::new(comm, &self.net)?;
        let json = |r: serde_json::Result<String>| r.map_err(|e| Error::invalid("configuration", e.to_string()));
        let position = format!(
            "{} {} {:?} {:?} {:?} {}",
            self.epoch,
            self.opt.steps(),
            self.net.dropout_state(),
            self.stop_state,
            self.schedule_state,
            self.stopped
        );
        let mut hash = Fingerprint::default()
            .text(&json(serde_json::to_string(self.net.architecture()))?)
            .text(&json(serde_json::to_string(self.opt.config()))?)
            .text(&json(serde_json::to_string(&self.config))?)
            .text(&position);
        // Everything a resumed run continues from besides the weights (which rank 0 gives
        // everyone): the optimizer state and the best and live weights kept by early stopping.
        for buf in self.opt.state().iter().flatten() {
            let mut host = memory::filled(self.net.backend().len(buf), E::zero(), "optimizer state")?;
            self.net.backend().download(buf, &mut host)?;
            hash = hash.values(&host);
        }
        for kept in [&self.best_parameters, &self.live_parameters].into_iter().flatten() {
            hash = kept.iter().fold(hash, |h, t| h.values(t));
        }
        let what = "configuration (architecture, optimizer and its state, training settings, run position)";
        reducer.agree(what, hash.finish())?;
        reducer.broadcast_parameters(&mut self.net)?;
        self.reducer = Some(reducer);
        self.batch_layout = (0, 0, 0);
        Ok(())
    }

    /// Data-parallel runs only: after every step, every rank hashes its weights and the ranks
    /// compare the hashes, failing together at the first step where any rank differs (a test
    /// of the promise that every rank holds bit-identical weights; it costs a download per step).
    pub fn check_consistency(&mut self, on: bool) {
        self.check_consistency = on;
    }

    /// This process's rank and the number of ranks (`(0, 1)` in one process).
    pub fn world(&self) -> (usize, usize) {
        self.reducer.as_ref().map_or((0, 1), |r| (r.rank(), r.size()))
    }

    /// Trains until `config.epochs` epochs are complete, early stopping fires or the observer
    /// says stop (a later call continues from there). Returns the reports of the epochs run by
    /// this call.
    pub fn fit(
        &mut self,
        train: HostData<'_, E>,
        val: Option<HostData<'_, E>>,
        observer: &mut dyn Observer<E, B>,
    ) -> Result<&[EpochReport]> {
        let first = self.history.len();
        self.interrupted = false;
        if let Some(live) = self.live_parameters.take() {
            // The network holds the best epoch's weights from the last call: go on from where
            // training really was.
            for (i, tensor) in live.iter().enumerate() {
                self.net.set_parameter(i, tensor)?;
            }
        }
        while self.epoch < self.config.epochs && !self.stopped && !self.interrupted {
            let report = self.run_epoch(train, val, observer)?;
            if self.early_stop(&report)? {
                self.stopped = true;
            }
            let stop = observer.on_epoch(&report, self)? == Control::Stop;
            if self.collectively(stop)? {
                self.interrupted = true;
            }
        }
        if let (Some(best), Some(es)) = (self.best_parameters.as_ref(), self.config.early_stopping)
            && es.restore_best
        {
            self.live_parameters = Some(self.net.parameters_to_host()?);
            for (i, tensor) in best.iter().enumerate() {
                self.net.set_parameter(i, tensor)?;
            }
        }
        Ok(&self.history[first..])
    }

    /// The run's live parameters (`W¹, b¹, …`): where training stands, which after a
    /// [`Trainer::fit`] that restored the best epoch's weights differs from what the network
    /// holds. Checkpoints store these, so that a resumed run continues the same trajectory.
    pub fn live_parameters(&self) -> Result<Vec<Vec<E>>> {
        match &self.live_parameters {
            Some(live) => Ok(live.clone()),
            None => self.net.parameters_to_host(),
        }
    }

    /// Whether `flag` holds on any rank (on this one, in one process): an observer's stop on one
    /// rank stops them all.
    fn collectively(&self, flag: bool) -> Result<bool> {
        match &self.reducer {
            Some(r) => r.any(flag),
            None => Ok(flag),
        }
    }

    /// One training step on a device batch: forward, output error, backward, update, returning
    /// the batch's score. Data-parallel, this rank's shard goes forward and backward, the reducer
    /// sums the gradients (and the scores) of all shards between backward and update, and the
    /// score is the global batch's.
    fn step(&mut self, i: usize) -> Result<Score> {
        let batch = &self.batches[i];
        let Some(reducer) = self.reducer.as_mut() else {
            self.net.train_step(&batch.x, &batch.y, batch.rows, &mut self.opt)?;
            return self.net.score();
        };
        let shard =
            Shard { x: &batch.x, y: &batch.y, rows: batch.rows, global_rows: batch.global_rows, offset: batch.offset };
        let score = distributed::train_step(&mut self.net, &mut self.opt, reducer, shard)?;
        if self.check_consistency {
            let hash = self.net.parameters_to_host()?.iter().fold(Fingerprint::default(), |h, t| h.values(t));
            reducer.agree(&format!("weights after optimizer step {}", self.opt.steps()), hash.finish())?;
        }
        Ok(score)
    }

    /// One epoch: set the learning rate, shuffle, upload the batches, train on each, then
    /// validate. Fails with [`Error::NonFinite`] at the first step whose loss is not finite.
    pub fn run_epoch(
        &mut self,
        train: HostData<'_, E>,
        val: Option<HostData<'_, E>>,
        observer: &mut dyn Observer<E, B>,
    ) -> Result<EpochReport> {
        let lr =
            self.opt.config().lr * self.config.schedule.factor(self.epoch, self.config.epochs, &self.schedule_state);
        self.opt.set_lr(lr);
        self.upload_epoch(train)?;
        let epoch = self.epoch + 1;
        let started = Instant::now();
        let (mut loss_sum, mut correct, mut predictions, mut rows_done) = (0.0, 0, 0, 0);
        let steps = self.batches.len();
        for step in 0..steps {
            let score = self.step(step)?;
            let rows = self.batches[step].global_rows;
            if !score.loss.is_finite() {
                let origin = match &self.reducer {
                    // Every rank reports the same: the shard holding the cause is one rank's.
                    Some(r) => format!("the global batch's loss, summed over {} ranks", r.size()),
                    None => self.net.locate_non_finite(rows)?,
                };
                return Err(Error::NonFinite { value: score.loss, epoch, step: step + 1, origin });
            }
            loss_sum += score.loss * rows as f64;
            correct += score.correct;
            predictions += self.net.architecture().loss.predictions(rows, self.net.architecture().outputs());
            rows_done += rows;
            let report = StepReport { epoch, step: step + 1, steps, loss: score.loss, rows };
            let stop = observer.on_step(&report) == Control::Stop;
            if self.collectively(stop)? {
                self.interrupted = true;
                break;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let accuracy = |s: Score| self.config.accuracy.then(|| s.accuracy());
        let train_accuracy = accuracy(Score { loss: 0.0, correct, predictions });
        let (val_loss, val_accuracy) = match val {
            Some(v) => {
                let mut s = self.net.evaluate(v.x, v.y)?;
                if let Some(r) = &self.reducer {
                    // Every rank evaluated the same weights on the same data; rank 0's numbers
                    // are made everyone's, so that no rounding difference can split a decision.
                    let mut values = [s.loss, s.correct as f64];
                    r.broadcast(&mut values)?;
                    (s.loss, s.correct) = (values[0], values[1] as usize);
                }
                (Some(s.loss), accuracy(s))
            }
            None => (None, None),
        };
        let report = EpochReport {
            epoch,
            lr,
            train_loss: loss_sum / rows_done.max(1) as f64,
            train_accuracy,
            val_loss,
            val_accuracy,
            seconds,
            samples_per_sec: rows_done as f64 / seconds.max(1e-12),
            steps,
        };
        let monitored = report.val_loss.unwrap_or(report.train_loss);
        self.config.schedule.observe(monitored, &mut self.schedule_state);
        self.epoch = epoch;
        self.history.push(report.clone());
        Ok(report)
    }

    /// Early stopping's bookkeeping after an epoch; true when it is time to stop.
    fn early_stop(&mut self, report: &EpochReport) -> Result<bool> {
        let Some(es) = self.config.early_stopping else {
            return Ok(false);
        };
        let Some(value) = es.monitor.value(report) else {
            return Err(Error::invalid("monitor", format!("{:?} is not measured in this run", es.monitor)));
        };
        let improved = match self.stop_state.best {
            None => true,
            Some(best) if es.monitor.maximise() => value > best + es.min_delta,
            Some(best) => value < best - es.min_delta,
        };
        if improved {
            self.stop_state = StopState { best: Some(value), best_epoch: report.epoch, bad_epochs: 0 };
            if es.restore_best {
                self.best_parameters = Some(self.net.parameters_to_host()?);
            }
            return Ok(false);
        }
        self.stop_state.bad_epochs += 1;
        Ok(self.stop_state.bad_epochs >= es.patience)
    }

    /// Gathers this epoch's batches (shuffled by `seed` and epoch) and writes them to the backend.
    fn upload_epoch(&mut self, data: HostData<'_, E>) -> Result<()> {
        let arch = self.net.architecture();
        let (n_in, n_out, n) = (arch.inputs(), arch.outputs(), data.rows);
        let (want_x, want_y) = (n.checked_mul(n_in), n.checked_mul(n_out));
        if n == 0 || want_x != Some(data.x.len()) || want_y != Some(data.y.len()) {
            let show = |v: Option<usize>| v.map_or("more than memory holds".to_string(), |v| v.to_string());
            return Err(Error::shape(
                "fit",
                format!(
                    "{n} samples need {} feature values ({n_in} per sample) and {} target values ({n_out} per sample); got {} and {}",
                    show(want_x),
                    show(want_y),
                    data.x.len(),
                    data.y.len()
                ),
            ));
        }
        self.config.validate_for(self.opt.config(), n)?;
        let batch = self.config.batch_size.rows(n);
        let count = if self.config.drop_last && n > batch { n / batch } else { n.div_ceil(batch) };
        let (rank, size) = self.world();
        let largest_shard = distributed::shard(batch, rank, size).len();
        // The batches are remade whenever the layout changes (an observer may change
        // `config.batch_size` or `drop_last` between epochs).
        if self.batch_layout != (n, batch, count) {
            self.batches.clear();
            self.batch_layout = (0, 0, 0);
            for i in 0..count {
                let global_rows = batch.min(n - i * batch);
                let part = distributed::shard(global_rows, rank, size);
                let (rows, b) = (part.len(), self.net.backend());
                let (x, y) = (b.alloc(rows * n_in)?, b.alloc(rows * n_out)?);
                self.batches.push(DeviceBatch { x, y, rows, global_rows, offset: part.start });
            }
            self.gather_x = memory::filled(largest_shard * n_in, E::zero(), "a batch of features")?;
            self.gather_y = memory::filled(largest_shard * n_out, E::zero(), "a batch of targets")?;
            self.net.reserve(largest_shard.max(1))?;
            if let Some(r) = &self.reducer {
                // Every rank must hold the same data, or the ranks would run different step
                // counts (mismatched collectives) or silently train on different sets.
                let hash = Fingerprint::default().text(&format!("{n} {n_in} {n_out}")).values(data.x).values(data.y);
                r.agree("training data (sample count or values)", hash.finish())?;
            }
            self.batch_layout = (n, batch, count);
        }
        self.order.clear();
        self.order.extend(0..n);
        if self.config.shuffle {
            let mut rng = ChaCha8Rng::seed_from_u64(mix64(self.config.seed ^ mix64(self.epoch as u64)));
            self.order.shuffle(&mut rng);
        }
        for (i, dev) in self.batches.iter_mut().enumerate() {
            for (r, &s) in self.order[i * batch + dev.offset..][..dev.rows].iter().enumerate() {
                self.gather_x[r * n_in..][..n_in].copy_from_slice(&data.x[s * n_in..][..n_in]);
                self.gather_y[r * n_out..][..n_out].copy_from_slice(&data.y[s * n_out..][..n_out]);
            }
            let b = self.net.backend();
            b.write(&self.gather_x[..dev.rows * n_in], &mut dev.x)?;
            b.write(&self.gather_y[..dev.rows * n_out], &mut dev.y)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod batch_size_tests {
    use super::*;

    /// Rows or `"full"` in files; the `usize::MAX` older checkpoints stored for full batch reads
    /// as `Full`; anything else is an error, not a guess.
    #[test]
    fn batch_sizes_read_and_write_as_rows_or_full() {
        assert_eq!(serde_json::to_string(&BatchSize::Rows(32)).unwrap(), "32");
        assert_eq!(serde_json::to_string(&BatchSize::Full).unwrap(), "\"full\"");
        let read = |s: &str| serde_json::from_str::<BatchSize>(s);
        assert_eq!(read("32").unwrap(), BatchSize::Rows(32));
        assert_eq!(read("\"full\"").unwrap(), BatchSize::Full);
        assert_eq!(read("18446744073709551615").unwrap(), BatchSize::Full);
        for bad in ["\"half\"", "-1", "1.5"] {
            let e = read(bad).unwrap_err().to_string();
            assert!(e.contains("batch size"), "{bad}: {e}");
        }
        assert_eq!((BatchSize::Full.rows(7), BatchSize::Rows(32).rows(7), BatchSize::Rows(3).rows(7)), (7, 7, 3));
    }
}
