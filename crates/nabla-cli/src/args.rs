//! The command line, as clap types. Flags are optional; they override a `--config` file, and
//! [`crate::config::Config::resolve`] applies the defaults and checks the values, so that a bad
//! value gets one line naming its flag and the accepted values, and exit code 2.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{
    BatchSize, Config, DataConfig, EarlyStoppingConfig, ModelConfig, OptimizerSection, TrainingConfig,
};

/// Neural networks trained by backpropagation, on any backend.
#[derive(Parser, Debug)]
#[command(name = "nabla", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a network on a data set (the default command).
    Train(Box<TrainArgs>),
    /// Compare backprop's gradients with finite differences, layer by layer (f64).
    Gradcheck(Box<GradcheckArgs>),
    /// List the backends compiled in and whether each works on this machine.
    Backends(BackendsArgs),
    /// Time the peers' workloads (W1 mnist-mlp, W2 tiny, W3 wide) and GEMMs on each backend.
    Bench(BenchArgs),
    /// Evaluate a saved model on data: loss, metrics, confusion matrix.
    Eval(EvalArgs),
    /// Write a saved model's predictions for the rows of a CSV file.
    Predict(PredictArgs),
    /// Describe a saved model: layers, shapes, parameter counts, scaling.
    Inspect(InspectArgs),
    /// Run the conformance kit on a backend: every op × dtype × variant against the reference.
    CheckBackend(CheckBackendArgs),
    /// Write the C headers a plugin compiles against (nabla_plugin.h, nabla_plugin_codes.h).
    PluginHeader(PluginHeaderArgs),
    /// Train the same seeded network on several backends and report how far each is from the first.
    Compare(Box<CompareArgs>),
}

/// `nabla compare`: every flag of `nabla train` for the data, model and optimizer; `--plot`
/// overlays the backends' loss curves; `--json` prints one object.
#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The backends, comma-separated; the first is the baseline (e.g. reference,openblas,plugin:./libmine.so).
    #[arg(long, value_delimiter = ',', required = true)]
    pub backends: Vec<String>,
    /// Print the report as Markdown tables.
    #[arg(long)]
    pub markdown: bool,
    #[command(flatten)]
    pub train: TrainArgs,
}

/// `nabla plugin-header`.
#[derive(Args, Debug)]
pub struct PluginHeaderArgs {
    /// The folder to write them into (created if missing).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

/// `nabla check-backend`.
#[derive(Args, Debug)]
pub struct CheckBackendArgs {
    /// The backend: reference, openblas, cuda[:N], plugin:PATH.
    pub backend: String,
    /// Element types, comma-separated [default: f32,f64].
    #[arg(long, value_delimiter = ',', default_values_t = [nabla::DType::F32, nabla::DType::F64])]
    pub dtype: Vec<nabla::DType>,
    /// Print the table, then the rows and `passed`/`complete` flags as one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when an op is unsupported too (not only when one disagrees with the reference).
    #[arg(long)]
    pub strict: bool,
}

/// `nabla eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The model file (written by `nabla train --save`).
    #[arg(long)]
    pub model: PathBuf,
    /// The data: a built-in set or csv:PATH, idx:DIR (its test files), npy:FEATURES.npy,LABELS.npy.
    #[arg(long, alias = "dataset")]
    pub data: String,
    /// The CSV target column, by name or 0-based index.
    #[arg(long)]
    pub target: Option<String>,
    /// Folder that relative data paths are resolved against [env: NABLA_DATA].
    #[arg(long)]
    pub data_dir: Option<String>,
    /// Backend [default: openblas].
    #[arg(long, default_value = "openblas")]
    pub backend: String,
    /// Print only one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `nabla predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    /// A CSV file with a header line and one row of features per sample.
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the predictions (CSV).
    #[arg(long)]
    pub output: PathBuf,
    /// Backend [default: openblas].
    #[arg(long, default_value = "openblas")]
    pub backend: String,
}

/// `nabla inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The model or checkpoint file.
    #[arg(long)]
    pub model: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Where the data comes from.
#[derive(Args, Debug, Clone, Default)]
pub struct DataFlags {
    /// Data: a built-in set (xor, spirals, moons, circles, sine) or csv:PATH, idx:DIR, npy:FEATURES.npy,LABELS.npy [default: spirals].
    #[arg(long, alias = "data")]
    pub dataset: Option<String>,
    /// The CSV target column, by name or 0-based index [default: label, target, else the last].
    #[arg(long)]
    pub target: Option<String>,
    /// How to read targets: classes, values or auto [default: from the loss, else auto].
    #[arg(long)]
    pub task: Option<String>,
    /// A separate test set (a source like --data).
    #[arg(long)]
    pub test_data: Option<String>,
    /// Fraction held out as the test set (stratified, seeded).
    #[arg(long)]
    pub test_split: Option<f64>,
    /// Feature scaling fitted on the training part: standard, minmax, div255, none [default: div255 for idx, standard for csv/npy, none for built-in sets].
    #[arg(long)]
    pub scale: Option<String>,
    /// Folder that relative data paths (of flags and config files) are resolved against [env: NABLA_DATA].
    #[arg(long)]
    pub data_dir: Option<String>,
    /// Samples to generate (per class for spirals).
    #[arg(long)]
    pub samples: Option<usize>,
    /// Classes of the spirals set.
    #[arg(long)]
    pub classes: Option<usize>,
    /// Noise of the generated set.
    #[arg(long)]
    pub noise: Option<f64>,
    /// Fraction of the training samples held out for validation (stratified, seeded).
    #[arg(long)]
    pub val_split: Option<f64>,
}

/// What the network looks like.
#[derive(Args, Debug, Clone, Default)]
pub struct ModelFlags {
    /// Layer sizes from input to output, e.g. 2,64,64,3 [default: inputs,64,64,outputs].
    #[arg(long, value_parser = parse_layers)]
    pub layers: Option<Layers>,
    /// Hidden activation [default: relu].
    #[arg(long, help = format!("Hidden activation: {} [default: relu]", nabla::activation::ACTIVATION_NAMES))]
    pub activation: Option<String>,
    /// Output activation [default: softmax for softmax-ce, sigmoid for bce, identity otherwise].
    #[arg(long)]
    pub output_activation: Option<String>,
    /// Loss: mse, mae, huber[:DELTA], bce, softmax-ce [default: softmax-ce for classes, mse for regression].
    #[arg(long)]
    pub loss: Option<String>,
    /// Weight initialiser: auto, zeros, uniform[:A], normal[:STD], xavier-uniform, xavier-normal, he-normal, he-uniform, lecun, orthogonal[:GAIN].
    #[arg(long)]
    pub init: Option<String>,
    /// Inverted-dropout rate after every hidden layer, in [0, 1).
    #[arg(long)]
    pub dropout: Option<f64>,
}

/// Where and how it runs.
#[derive(Args, Debug, Clone, Default)]
pub struct RunFlags {
    /// Seed of the data, the weights, the shuffles and the dropout masks [default: 7].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Backend: reference, openblas [default: openblas].
    #[arg(long)]
    pub backend: Option<String>,
    /// CPU threads for the backend [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Element type: f32 or f64 [default: f32].
    #[arg(long)]
    pub dtype: Option<String>,
    /// GPU ordinal for --backend cuda [default: 0].
    #[arg(long)]
    pub device: Option<usize>,
    /// TF32 tensor-core math for f32 GEMMs on CUDA (faster, ~1e-3 relative products).
    #[arg(long)]
    pub tf32: bool,
    /// GEMM for large products on OpenBLAS: auto (the faster per shape, timed at the first
    /// step), openblas, native [default: auto].
    #[arg(long)]
    pub gemm: Option<String>,
}

/// `nabla train`.
#[derive(Args, Debug, Default)]
pub struct TrainArgs {
    /// A TOML file with [data], [model], [optimizer] and [training] sections; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataFlags,
    #[command(flatten)]
    pub model: ModelFlags,
    #[command(flatten)]
    pub run: RunFlags,
    /// Optimizer: sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw, rprop [default: sgd].
    #[arg(long)]
    pub optimizer: Option<String>,
    /// Learning rate (the initial step Δ₀ for rprop) [default: 0.1].
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Momentum μ (momentum, nesterov) [default: 0.9].
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Adam's β₁ [default: 0.9].
    #[arg(long)]
    pub beta1: Option<f64>,
    /// Adam's β₂ [default: 0.999].
    #[arg(long)]
    pub beta2: Option<f64>,
    /// ε of Adagrad, RMSprop and Adam.
    #[arg(long)]
    pub eps: Option<f64>,
    /// RMSprop's decay ρ [default: 0.99].
    #[arg(long)]
    pub rho: Option<f64>,
    /// L2 penalty λ₂ on weights (added to the gradient).
    #[arg(long)]
    pub l2: Option<f64>,
    /// Decoupled weight decay λ on weights (AdamW's; 0.01 by default for adamw).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule: constant, step:EVERY:GAMMA, exponential:GAMMA, cosine[:WARMUP[:MIN]], plateau[:FACTOR[:PATIENCE]].
    #[arg(long)]
    pub schedule: Option<String>,
    /// Epochs (in total, when resuming) [default: 200].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Samples per step, or `full` for full-batch training [default: 32].
    #[arg(long)]
    pub batch_size: Option<String>,
    /// Keep the samples in order instead of reshuffling every epoch.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Drop the last, smaller batch of each epoch.
    #[arg(long)]
    pub drop_last: bool,
    /// Stop when the monitored metric has not improved for --patience epochs.
    #[arg(long)]
    pub early_stopping: bool,
    /// Early stopping's patience in epochs [default: 10].
    #[arg(long)]
    pub patience: Option<usize>,
    /// Early stopping's least improvement [default: 0].
    #[arg(long)]
    pub min_delta: Option<f64>,
    /// Early stopping's metric: val-loss, val-accuracy, loss, accuracy [default: val-loss].
    #[arg(long)]
    pub monitor: Option<String>,
    /// Keep the last weights instead of restoring the best epoch's when stopping early.
    #[arg(long)]
    pub no_restore_best: bool,
    /// Write the trained model (safetensors) at the end.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Write the full training state (safetensors) at the end, and every --checkpoint-every epochs.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Epochs between checkpoints.
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Continue the run stored in a checkpoint until --epochs epochs in total.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Draw the train/validation loss and accuracy per epoch (.png or .svg).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Draw the decision regions with the samples, for 2-D data (.png or .svg).
    #[arg(long)]
    pub plot_boundary: Option<PathBuf>,
    /// Every N epochs, show each layer's ‖δ‖, ‖∂W‖, ‖∂b‖, ‖W‖, update/weight ratio and unit statistics.
    #[arg(long)]
    pub inspect_every: Option<usize>,
    /// Under mpirun: compare a hash of every rank's weights after every step, failing at the
    /// first difference (a check of the data-parallel run's consistency; slower).
    #[arg(long)]
    pub check_consistency: bool,
    /// Print only one JSON object (on the last stdout line).
    #[arg(long)]
    pub json: bool,
}

/// `nabla gradcheck`.
#[derive(Args, Debug)]
pub struct GradcheckArgs {
    #[command(flatten)]
    pub data: DataFlags,
    #[command(flatten)]
    pub model: ModelFlags,
    #[command(flatten)]
    pub run: RunFlags,
    /// Samples in the checked batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Finite-difference step ε.
    #[arg(long, default_value_t = 1e-5)]
    pub epsilon: f64,
    /// Largest relative error accepted (exit code 1 above it).
    #[arg(long, default_value_t = 1e-6)]
    pub tolerance: f64,
    /// Print only one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `nabla backends`.
#[derive(Args, Debug)]
pub struct BackendsArgs {
    /// Load this plugin and list what it supports.
    #[arg(long)]
    pub plugin: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `nabla bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Backends, comma-separated: reference, openblas, cuda[:N].
    #[arg(long, default_value = "openblas")]
    pub backends: String,
    /// Workloads, comma-separated: mnist-mlp (W1), tiny (W2), wide (W3).
    #[arg(long, default_value = "mnist-mlp,tiny,wide")]
    pub workloads: String,
    /// CPU thread counts, comma-separated (OpenBLAS).
    #[arg(long, default_value = "1,2")]
    pub threads: String,
    /// Timed repetitions; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Multiplies each workload's step count (the peers': W1 300, W2 20000, W3 20).
    #[arg(long, default_value_t = 1.0)]
    pub steps_scale: f64,
    /// Seconds one repetition may take at most (fewer steps for slow backends).
    #[arg(long, default_value_t = 10.0)]
    pub max_seconds: f64,
    /// Also report the GEMM sweep (squares 64…2048 and each workload's shapes).
    #[arg(long)]
    pub gemm_sweep: bool,
    /// Time only the training steps: skip the GEMM bound and peak (for memory measurements).
    #[arg(long)]
    pub only_steps: bool,
    /// Data-parallel (under mpirun): all-reduce the gradients after backward instead of each
    /// layer's as soon as backward has produced it (to measure what the overlap hides).
    #[arg(long)]
    pub no_overlap: bool,
    /// Run the reference backend on W3 too (very slow).
    #[arg(long)]
    pub reference_wide: bool,
    /// Instead of the workloads: how step time grows with width (1024-W-W-10, W = 256…4096,
    /// batch 128) and with batch (1024-1024-1024-10, batch 1…1024).
    #[arg(long)]
    pub scaling: bool,
    /// TF32 tensor-core math for f32 GEMMs on CUDA.
    #[arg(long)]
    pub tf32: bool,
    /// GEMM for large products on OpenBLAS: auto (the faster per shape), openblas, native.
    #[arg(long, default_value = "auto")]
    pub gemm: nabla::GemmProvider,
    /// Print a markdown table.
    #[arg(long)]
    pub markdown: bool,
    /// Draw throughput per backend, one chart per workload (FILE-<workload>.png or .svg).
    #[arg(long)]
    pub plot: Option<std::path::PathBuf>,
    /// Print only `{"results": [...]}` (on the last stdout line).
    #[arg(long)]
    pub json: bool,
}

/// Layer sizes from input to output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layers(pub Vec<usize>);

/// `2,64,64,3` → `[2, 64, 64, 3]`; every size ≥ 1, at least two.
fn parse_layers(s: &str) -> Result<Layers, String> {
    let sizes: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>().map_err(|_| format!("`{p}` is not a layer size; give sizes like 2,64,64,3")))
        .collect::<Result<_, _>>()?;
    if sizes.len() < 2 {
        return Err("give at least an input and an output size, e.g. 2,16,1".into());
    }
    if sizes.contains(&0) {
        return Err("layer sizes must be ≥ 1".into());
    }
    Ok(Layers(sizes))
}

impl DataFlags {
    fn config(&self) -> DataConfig {
        DataConfig {
            source: self.dataset.clone(),
            target: self.target.clone(),
            task: self.task.clone(),
            test: self.test_data.clone(),
            test_split: self.test_split,
            scale: self.scale.clone(),
            dir: self.data_dir.clone(),
            samples: self.samples,
            classes: self.classes,
            noise: self.noise,
            val_split: self.val_split,
        }
    }
}

impl ModelFlags {
    fn config(&self) -> ModelConfig {
        ModelConfig {
            layers: self.layers.clone().map(|l| l.0),
            activation: self.activation.clone(),
            output_activation: self.output_activation.clone(),
            loss: self.loss.clone(),
            init: self.init.clone(),
            dropout: self.dropout,
        }
    }
}

impl RunFlags {
    fn config(&self) -> TrainingConfig {
        TrainingConfig {
            seed: self.seed,
            backend: self.backend.clone(),
            threads: self.threads,
            dtype: self.dtype.clone(),
            device: self.device,
            tf32: self.tf32.then_some(true),
            gemm: self.gemm.clone(),
            ..TrainingConfig::default()
        }
    }
}

/// A batch size flag: a count or `full`.
fn batch_size(s: &str) -> BatchSize {
    s.parse().map(BatchSize::Count).unwrap_or_else(|_| BatchSize::Word(s.to_string()))
}

impl TrainArgs {
    /// The configuration the flags describe (unset flags stay `None`).
    pub fn config(&self) -> Config {
        let early_stopping =
            (self.early_stopping || self.patience.is_some() || self.monitor.is_some()).then(|| EarlyStoppingConfig {
                patience: self.patience,
                min_delta: self.min_delta,
                monitor: self.monitor.clone(),
                restore_best: self.no_restore_best.then_some(false),
            });
        Config {
            data: self.data.config(),
            model: self.model.config(),
            optimizer: OptimizerSection {
                name: self.optimizer.clone(),
                lr: self.lr,
                momentum: self.momentum,
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                rho: self.rho,
                l2: self.l2,
                weight_decay: self.weight_decay,
            },
            training: TrainingConfig {
                epochs: self.epochs,
                batch_size: self.batch_size.as_deref().map(batch_size),
                shuffle: self.no_shuffle.then_some(false),
                drop_last: self.drop_last.then_some(true),
                schedule: self.schedule.clone(),
                early_stopping,
                ..self.run.config()
            },
        }
    }
}

impl GradcheckArgs {
    /// The configuration of the model checked.
    pub fn config(&self) -> Config {
        Config {
            data: self.data.config(),
            model: self.model.config(),
            training: self.run.config(),
            ..Config::default()
        }
    }
}
