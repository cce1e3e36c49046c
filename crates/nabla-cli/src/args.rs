//! The command line, as clap types. Every value is parsed by the library's own `FromStr`, so a
//! bad value gets one line naming the flag and the accepted values, and exit code 2.

use clap::{Args, Parser, Subcommand, ValueEnum};
use nabla::{Activation, Init, Loss};

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
    Train(TrainArgs),
    /// Compare backprop's gradients with finite differences, layer by layer (f64).
    Gradcheck(GradcheckArgs),
    /// List the backends compiled in and whether each works on this machine.
    Backends(BackendsArgs),
}

/// Element type of the computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DType {
    F32,
    F64,
}

/// Where the data comes from and what the network looks like.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Built-in data set: xor, spirals, moons, circles, sine.
    #[arg(long, default_value = "spirals")]
    pub dataset: String,
    /// Samples to generate (per class for spirals).
    #[arg(long)]
    pub samples: Option<usize>,
    /// Classes of the spirals set.
    #[arg(long)]
    pub classes: Option<usize>,
    /// Noise of the generated set.
    #[arg(long)]
    pub noise: Option<f64>,
    /// Layer sizes from input to output, e.g. 2,64,64,3 (default: inputs,64,64,outputs).
    #[arg(long, value_parser = parse_layers)]
    pub layers: Option<Layers>,
    /// Hidden activation: sigmoid, tanh, relu, leaky-relu[:ALPHA], identity, elu[:ALPHA], gelu, softplus, softsign.
    #[arg(long, default_value = "relu")]
    pub activation: Activation,
    /// Output activation (default: softmax for softmax-ce, sigmoid for bce, identity otherwise).
    #[arg(long)]
    pub output_activation: Option<Activation>,
    /// Loss: mse, mae, huber[:DELTA], bce, softmax-ce (default: softmax-ce for classes, mse for regression).
    #[arg(long)]
    pub loss: Option<Loss>,
    /// Weight initialiser (auto: He for the ReLU family, Xavier otherwise).
    #[arg(long, default_value = "auto")]
    pub init: Init,
    /// Seed of the data, the weights and the shuffles.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Backend: reference, openblas.
    #[arg(long, default_value = "openblas")]
    pub backend: String,
    /// CPU threads for the backend (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: Option<u64>,
}

/// `nabla train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Optimizer: sgd (more come with the training toolkit).
    #[arg(long, default_value = "sgd")]
    pub optimizer: String,
    /// Learning rate.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub lr: f64,
    /// Epochs.
    #[arg(long, default_value_t = 200)]
    pub epochs: usize,
    /// Samples per step, or `full` for full-batch training.
    #[arg(long, default_value = "32", value_parser = parse_batch)]
    pub batch_size: usize,
    /// Element type.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DType,
    /// Print only one JSON object (on the last stdout line).
    #[arg(long)]
    pub json: bool,
}

/// `nabla gradcheck`.
#[derive(Args, Debug)]
pub struct GradcheckArgs {
    #[command(flatten)]
    pub model: ModelArgs,
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
    /// Print one JSON object.
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

/// A positive batch size or `full` (every sample in one step).
fn parse_batch(s: &str) -> Result<usize, String> {
    if s == "full" {
        return Ok(usize::MAX);
    }
    match s.parse::<usize>() {
        Ok(0) | Err(_) => Err(format!("`{s}`; give a batch size ≥ 1 or `full`")),
        Ok(n) => Ok(n),
    }
}
