//! The run configuration: what a TOML file (`--config`) describes and what the flags override.
//! Every field is optional here; [`Config::resolve`] applies the defaults and checks each value,
//! naming the flag (and the file key) of a bad one.

use nabla::{
    Activation, Architecture, EarlyStopping, Error, Init, Loss, Monitor, OptimizerConfig, Result, Rule, Schedule,
    TrainConfig,
};
use std::path::PathBuf;

use nabla::data::csv::TargetKind;
use nabla::data::scale::Scaling;
use serde::{Deserialize, Serialize};

/// The whole configuration, in the sections of a config file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub optimizer: OptimizerSection,
    #[serde(default)]
    pub training: TrainingConfig,
}

/// `[data]`: where the samples come from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// A built-in set (`spirals`, …) or a file source (`csv:PATH`, `idx:DIR`, `npy:X.npy,Y.npy`).
    pub source: Option<String>,
    /// The CSV target column, by name or 0-based index.
    pub target: Option<String>,
    /// How to read targets: `classes`, `values` or `auto`.
    pub task: Option<String>,
    /// A separate test set (a source like `source`).
    pub test: Option<String>,
    /// Fraction of the data held out as the test set (stratified, seeded).
    pub test_split: Option<f64>,
    /// Feature scaling: `standard`, `minmax`, `div255` or `none`, fitted on the training part.
    pub scale: Option<String>,
    /// The folder relative data paths are resolved against.
    pub dir: Option<String>,
    /// Samples to generate (built-in sets).
    pub samples: Option<usize>,
    /// Classes of the spirals.
    pub classes: Option<usize>,
    /// Noise of a built-in set.
    pub noise: Option<f64>,
    /// Fraction of the training data held out for validation.
    pub val_split: Option<f64>,
}

/// `[model]`: the network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub layers: Option<Vec<usize>>,
    pub activation: Option<String>,
    pub output_activation: Option<String>,
    pub loss: Option<String>,
    pub init: Option<String>,
    pub dropout: Option<f64>,
}

/// `[optimizer]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSection {
    pub name: Option<String>,
    pub lr: Option<f64>,
    pub momentum: Option<f64>,
    pub beta1: Option<f64>,
    pub beta2: Option<f64>,
    pub eps: Option<f64>,
    pub rho: Option<f64>,
    pub l2: Option<f64>,
    pub weight_decay: Option<f64>,
}

/// `[training]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    pub epochs: Option<usize>,
    /// A number, or `"full"`.
    pub batch_size: Option<BatchSize>,
    pub seed: Option<u64>,
    pub shuffle: Option<bool>,
    pub drop_last: Option<bool>,
    pub schedule: Option<String>,
    pub backend: Option<String>,
    pub threads: Option<usize>,
    pub dtype: Option<String>,
    pub device: Option<usize>,
    pub tf32: Option<bool>,
    pub gemm: Option<String>,
    pub early_stopping: Option<EarlyStoppingConfig>,
}

/// `[training.early_stopping]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStoppingConfig {
    pub patience: Option<usize>,
    pub min_delta: Option<f64>,
    pub monitor: Option<String>,
    pub restore_best: Option<bool>,
}

/// A batch size: a count or the whole data set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BatchSize {
    Count(usize),
    Word(String),
}

/// The configuration with every default applied and every value checked.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub source: String,
    pub target: Option<String>,
    pub task: Option<TargetKind>,
    pub test_source: Option<String>,
    pub test_split: Option<f64>,
    pub scale: Option<Scaling>,
    pub data_dir: Option<PathBuf>,
    pub samples: Option<usize>,
    pub classes: Option<usize>,
    pub noise: Option<f64>,
    pub val_split: Option<f64>,
    pub layers: Option<Vec<usize>>,
    pub hidden: Activation,
    pub output: Option<Activation>,
    pub loss: Option<Loss>,
    pub init: Init,
    pub dropout: f64,
    pub optimizer: OptimizerConfig,
    pub train: TrainConfig,
    pub backend: String,
    pub threads: Option<usize>,
    pub tf32: bool,
    pub gemm: nabla::GemmProvider,
    pub f64: bool,
}

/// Parses `value` of the setting that flag `flag` (file key `key`) sets.
fn parse<T: std::str::FromStr<Err = Error>>(flag: &str, key: &str, value: &str) -> Result<T> {
    as_flag(value.parse(), &format!("{flag} ({key})"))
}

/// `result` with an [`Error::Invalid`] renamed to `flag`: for calls whose every invalid value is
/// the one that flag sets.
pub fn as_flag<T>(result: Result<T>, flag: &str) -> Result<T> {
    result.map_err(|e| match e {
        Error::Invalid { detail, .. } => Error::invalid(flag, detail),
        other => other,
    })
}

fn in_unit(flag: &str, v: f64) -> Result<f64> {
    if (0.0..1.0).contains(&v) { Ok(v) } else { Err(Error::invalid(flag, format!("{v}; it must be in [0, 1)"))) }
}

impl Config {
    /// `self` with every field that `over` sets replaced by `over`'s value (a deep merge, done
    /// on TOML values: unset fields are absent there, and NaN survives, so it is still refused).
    pub fn overlay(&self, over: &Config) -> Result<Config> {
        fn merge(base: &mut toml::Value, over: toml::Value) {
            match (base, over) {
                (toml::Value::Table(b), toml::Value::Table(o)) => {
                    for (k, v) in o {
                        match b.get_mut(&k) {
                            Some(slot) => merge(slot, v),
                            None => {
                                b.insert(k, v);
                            }
                        }
                    }
                }
                (b, o) => *b = o,
            }
        }
        let bad = |e: String| Error::invalid("configuration", e);
        let to_toml = |c: &Config| toml::Value::try_from(c).map_err(|e| bad(e.to_string()));
        let mut base = to_toml(self)?;
        merge(&mut base, to_toml(over)?);
        base.try_into().map_err(|e: toml::de::Error| bad(e.to_string()))
    }

    /// Applies the defaults and checks every value.
    pub fn resolve(&self) -> Result<Resolved> {
        let (d, m, t) = (&self.data, &self.model, &self.training);
        let hidden = parse("--activation", "model.activation", m.activation.as_deref().unwrap_or("relu"))?;
        let output = m
            .output_activation
            .as_deref()
            .map(|s| parse("--output-activation", "model.output_activation", s))
            .transpose()?;
        let loss = m.loss.as_deref().map(|s| parse("--loss", "model.loss", s)).transpose()?;
        let init = parse("--init", "model.init", m.init.as_deref().unwrap_or("auto"))?;
        let dropout = in_unit("--dropout (model.dropout)", m.dropout.unwrap_or(0.0))?;
        if let Some(layers) = &m.layers
            && (layers.len() < 2 || layers.contains(&0))
        {
            return Err(Error::invalid("--layers (model.layers)", format!("{layers:?}; give ≥ 2 sizes, each ≥ 1")));
        }
        let optimizer = self.optimizer_config()?;
        let batch_size = match &t.batch_size {
            None => nabla::BatchSize::Rows(32),
            Some(BatchSize::Count(0)) => {
                return Err(Error::invalid("--batch-size (training.batch_size)", "0; give a batch size ≥ 1 or `full`"));
            }
            Some(BatchSize::Count(n)) => nabla::BatchSize::Rows(*n),
            Some(BatchSize::Word(w)) if w == "full" => nabla::BatchSize::Full,
            Some(BatchSize::Word(w)) => {
                return Err(Error::invalid(
                    "--batch-size (training.batch_size)",
                    format!("`{w}`; give a batch size ≥ 1 or `full`"),
                ));
            }
        };
        let schedule: Schedule = parse("--schedule", "training.schedule", t.schedule.as_deref().unwrap_or("constant"))?;
        let early_stopping = t
            .early_stopping
            .as_ref()
            .map(|es| -> Result<EarlyStopping> {
                let patience = es.patience.unwrap_or(10);
                if patience == 0 {
                    return Err(Error::invalid(
                        "--patience (training.early_stopping.patience)",
                        "0; give at least 1 epoch",
                    ));
                }
                let min_delta = es.min_delta.unwrap_or(0.0);
                if !(min_delta >= 0.0 && min_delta.is_finite()) {
                    return Err(Error::invalid("--min-delta", format!("{min_delta}; it must be a finite number ≥ 0")));
                }
                let monitor: Monitor =
                    parse("--monitor", "training.early_stopping.monitor", es.monitor.as_deref().unwrap_or("val-loss"))?;
                Ok(EarlyStopping { monitor, patience, min_delta, restore_best: es.restore_best.unwrap_or(true) })
            })
            .transpose()?;
        let seed = t.seed.unwrap_or(7);
        let train = TrainConfig {
            epochs: t.epochs.unwrap_or(200),
            batch_size,
            shuffle: t.shuffle.unwrap_or(true),
            drop_last: t.drop_last.unwrap_or(false),
            seed,
            schedule,
            early_stopping,
            accuracy: true,
        };
        train.validate(&optimizer)?;
        for (flag, v) in
            [("--val-split (data.val_split)", d.val_split), ("--test-split (data.test_split)", d.test_split)]
        {
            if let Some(v) = v
                && !(v > 0.0 && v < 1.0)
            {
                return Err(Error::invalid(flag, format!("{v}; it must be between 0 and 1")));
            }
        }
        let data_error = |flag: &str, e: nabla::data::DataError| Error::invalid(flag, e.to_string());
        let task = d
            .task
            .as_deref()
            .map(|s| s.parse::<TargetKind>().map_err(|e| data_error("--task (data.task)", e)))
            .transpose()?;
        let scale = d
            .scale
            .as_deref()
            .map(|s| s.parse::<Scaling>().map_err(|e| data_error("--scale (data.scale)", e)))
            .transpose()?;
        let data_dir =
            d.dir.clone().or_else(|| std::env::var("NABLA_DATA").ok()).filter(|s| !s.is_empty()).map(PathBuf::from);
        if t.threads == Some(0) {
            return Err(Error::invalid("--threads (training.threads)", "0; give at least 1"));
        }
        let f64 = match t.dtype.as_deref().unwrap_or("f32") {
            "f32" => false,
            "f64" => true,
            other => return Err(Error::invalid("--dtype (training.dtype)", format!("`{other}`; accepted: f32, f64"))),
        };
        Ok(Resolved {
            source: d.source.clone().unwrap_or_else(|| "spirals".into()),
            target: d.target.clone(),
            task,
            test_source: d.test.clone(),
            test_split: d.test_split,
            scale,
            data_dir,
            samples: d.samples,
            classes: d.classes,
            noise: d.noise,
            val_split: d.val_split,
            layers: m.layers.clone(),
            hidden,
            output,
            loss,
            init,
            dropout,
            optimizer,
            train,
            backend: match (t.backend.as_deref().unwrap_or("openblas"), t.device) {
                ("cuda", Some(d)) => format!("cuda:{d}"),
                (b, _) => b.to_string(),
            },
            threads: t.threads,
            tf32: t.tf32.unwrap_or(false),
            gemm: t.gemm.as_deref().map(|g| parse("--gemm", "training.gemm", g)).transpose()?.unwrap_or_default(),
            f64,
        })
    }

    /// The optimizer: its name's defaults, then any hyper-parameter given.
    fn optimizer_config(&self) -> Result<OptimizerConfig> {
        let o = &self.optimizer;
        let name = o.name.as_deref().unwrap_or("sgd");
        let lr = o.lr.unwrap_or(0.1);
        // A learning rate of 1 is valid for every name: an error here is about the name.
        let named = as_flag(OptimizerConfig::named(name, 1.0), "--optimizer (optimizer.name)")?;
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::invalid(
                "--lr (optimizer.lr) learning rate",
                format!("{lr}; it must be a finite number > 0"),
            ));
        }
        let mut c = OptimizerConfig { lr, ..named };
        c.rule = match c.rule {
            Rule::Momentum { mu, nesterov } => Rule::Momentum { mu: o.momentum.unwrap_or(mu), nesterov },
            Rule::Adagrad { eps } => Rule::Adagrad { eps: o.eps.unwrap_or(eps) },
            Rule::RmsProp { rho, eps } => Rule::RmsProp { rho: o.rho.unwrap_or(rho), eps: o.eps.unwrap_or(eps) },
            Rule::Adam { beta1, beta2, eps } => Rule::Adam {
                beta1: o.beta1.unwrap_or(beta1),
                beta2: o.beta2.unwrap_or(beta2),
                eps: o.eps.unwrap_or(eps),
            },
            other => other,
        };
        c.l2 = o.l2.unwrap_or(c.l2);
        c.decay = o.weight_decay.unwrap_or(c.decay);
        c.validate()?;
        Ok(c)
    }
}

impl Resolved {
    /// The architecture for `inputs` features and `outputs` outputs with these model settings.
    pub fn architecture(&self, sizes: &[usize]) -> Result<Architecture> {
        let loss = self.loss.unwrap_or(Loss::SoftmaxCe);
        let mut arch = Architecture::new(sizes, self.hidden, loss)?;
        if let Some(out) = self.output {
            arch = arch.with_output(out)?;
        }
        arch.with_dropout(self.dropout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_field_by_field() {
        let file = Config {
            optimizer: OptimizerSection { name: Some("adam".into()), lr: Some(0.001), ..Default::default() },
            training: TrainingConfig { epochs: Some(20), ..Default::default() },
            ..Default::default()
        };
        let flags =
            Config { optimizer: OptimizerSection { lr: Some(0.01), ..Default::default() }, ..Default::default() };
        let merged = file.overlay(&flags).unwrap();
        assert_eq!(merged.optimizer.name.as_deref(), Some("adam"));
        assert_eq!(merged.optimizer.lr, Some(0.01));
        assert_eq!(merged.training.epochs, Some(20));
        let r = merged.resolve().unwrap();
        assert_eq!((r.optimizer.name(), r.optimizer.lr, r.train.epochs), ("adam", 0.01, 20));
    }

    #[test]
    fn bad_values_name_their_flag() {
        let bad = |c: Config| c.resolve().unwrap_err().to_string();
        let e = bad(Config { model: ModelConfig { dropout: Some(1.0), ..Default::default() }, ..Default::default() });
        assert!(e.contains("--dropout"), "{e}");
        let e = bad(Config {
            optimizer: OptimizerSection { lr: Some(f64::NAN), ..Default::default() },
            ..Default::default()
        });
        assert!(e.contains("--lr"), "{e}");
        let e = bad(Config {
            optimizer: OptimizerSection { name: Some("lion".into()), ..Default::default() },
            ..Default::default()
        });
        assert!(e.contains("--optimizer") && e.contains("adamw"), "{e}");
        let es = EarlyStoppingConfig { patience: Some(0), ..Default::default() };
        let e = bad(Config {
            training: TrainingConfig { early_stopping: Some(es), ..Default::default() },
            ..Default::default()
        });
        assert!(e.contains("--patience"), "{e}");
        let e = bad(Config {
            training: TrainingConfig { schedule: Some("warp".into()), ..Default::default() },
            ..Default::default()
        });
        assert!(e.contains("--schedule"), "{e}");
    }
}
