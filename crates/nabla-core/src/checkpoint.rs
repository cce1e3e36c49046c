//! Model and checkpoint files: one `safetensors` file each.
//!
//! Weights use PyTorch `nn.Linear`'s layout and names — `layers.{i}.weight` of shape
//! `(out, in)` and `layers.{i}.bias` of shape `(out)` — so other tools read them directly. The
//! architecture and everything else that is not a tensor travel as JSON strings in the header's
//! metadata. A **model** file holds the weights; a **checkpoint** also holds the optimizer state
//! (`optimizer.layers.{i}.weight.{k}`, …), early stopping's best weights (`best.layers.…`) and the
//! run's position (epoch, step count, schedule, early-stopping and dropout-stream state), so that
//! a resumed run continues bit for bit.
//!
//! Writes are atomic: the file is written beside its destination, synced, then renamed over it,
//! so an interrupted save leaves the previous file intact. Reads check every tensor's presence,
//! dtype and shape before anything is changed, and name the tensor that does not fit.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::element::{DType, Element};
use crate::error::{Error, Result};
use crate::network::{Architecture, Network};
use crate::optim::OptimizerConfig;
use crate::schedule::ScheduleState;
use crate::train::{EpochReport, StopState, TrainConfig, Trainer};

/// The `format` metadata value of a model file.
pub const MODEL_FORMAT: &str = "nabla-model-1";
/// The `format` metadata value of a checkpoint file.
pub const CHECKPOINT_FORMAT: &str = "nabla-checkpoint-1";

/// The position of a run, stored as JSON in a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Epochs completed (the next epoch starts at its first batch).
    pub epoch: usize,
    /// Optimizer steps taken.
    pub optimizer_steps: u64,
    /// Reduce-on-plateau's state.
    pub schedule: ScheduleState,
    /// Early stopping's state.
    pub early_stopping: StopState,
    /// The dropout stream's seed.
    pub dropout_seed: u64,
    /// Training forward passes so far (the dropout stream's position).
    pub dropout_passes: u64,
    /// Whether the run had stopped early.
    pub stopped: bool,
    /// The reports of the epochs run so far.
    pub history: Vec<EpochReport>,
}

/// The largest step, pass or epoch count a checkpoint may hold: 2⁵³, below which every count is
/// exact in f64 (Adam's bias corrections compute βᵗ) and a counter cannot wrap.
pub const MAX_COUNT: u64 = 1 << 53;

impl RunState {
    /// Checks the counts against their bounds and against each other, so that a crafted file
    /// cannot wrap a counter or point past the run.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, detail: String| Err(Error::invalid(format!("checkpoint {what}"), detail));
        for (what, v) in [
            ("optimizer_steps", self.optimizer_steps),
            ("dropout_passes", self.dropout_passes),
            ("epoch", self.epoch as u64),
        ] {
            if v > MAX_COUNT {
                return bad(what, format!("{v} is beyond {MAX_COUNT}"));
            }
        }
        if self.history.len() > self.epoch {
            return bad("history", format!("{} epochs reported for {} run", self.history.len(), self.epoch));
        }
        let es = &self.early_stopping;
        if es.best_epoch > self.epoch || es.bad_epochs > self.epoch || self.schedule.bad_epochs > self.epoch {
            return bad("early stopping", format!("its epochs point past the {} run", self.epoch));
        }
        if es.best.is_some_and(|b| !b.is_finite()) {
            return bad("early stopping", "its best value is not finite".into());
        }
        let f = self.schedule.factor;
        if !(f.is_finite() && f > 0.0 && f <= 1.0) || self.schedule.best.is_nan() {
            return bad("schedule", format!("factor {f} is not in (0, 1]"));
        }
        Ok(())
    }
}

/// A model or checkpoint file read into memory, checked for its format.
pub struct StoredFile {
    bytes: Vec<u8>,
    path: String,
}

impl std::fmt::Debug for StoredFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredFile").field("path", &self.path).field("bytes", &self.bytes.len()).finish()
    }
}

/// The tensor names of layer `l` (0-based): `[weight, bias]` under `prefix`.
pub fn tensor_names(prefix: &str, l: usize) -> [String; 2] {
    [format!("{prefix}layers.{l}.weight"), format!("{prefix}layers.{l}.bias")]
}

/// `(name, shape)` of every parameter tensor of `arch`, in `W¹, b¹, W², b², …` order.
fn parameter_shapes(arch: &Architecture, prefix: &str) -> Vec<(String, Vec<usize>)> {
    (0..arch.layers())
        .flat_map(|l| {
            let d = arch.weight_dims(l);
            let [w, b] = tensor_names(prefix, l);
            [(w, vec![d.rows, d.cols]), (b, vec![d.rows])]
        })
        .collect()
}

fn to_bytes<E: Element>(values: &[E]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * if E::DTYPE == DType::F32 { 4 } else { 8 });
    for &v in values {
        match E::DTYPE {
            DType::F32 => out.extend((v.f64() as f32).to_le_bytes()),
            DType::F64 => out.extend(v.f64().to_le_bytes()),
        }
    }
    out
}

fn dtype_of<E: Element>() -> Dtype {
    match E::DTYPE {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
    }
}

/// Collects named host tensors and metadata, then writes them atomically to `path`.
struct Writer {
    tensors: Vec<(String, Vec<usize>, Dtype, Vec<u8>)>,
    metadata: HashMap<String, String>,
}

impl Writer {
    fn new(format: &str, arch: &Architecture, dtype: DType) -> Result<Writer> {
        let mut metadata = HashMap::new();
        metadata.insert("format".to_string(), format.to_string());
        metadata.insert("architecture".to_string(), json(arch)?);
        metadata.insert("dtype".to_string(), dtype.name().to_string());
        Ok(Writer { tensors: Vec::new(), metadata })
    }

    fn tensor<E: Element>(&mut self, name: String, shape: Vec<usize>, values: &[E]) {
        self.tensors.push((name, shape, dtype_of::<E>(), to_bytes(values)));
    }

    fn parameters<E: Element>(&mut self, arch: &Architecture, prefix: &str, values: &[Vec<E>]) {
        for ((name, shape), v) in parameter_shapes(arch, prefix).into_iter().zip(values) {
            self.tensor(name, shape, v);
        }
    }

    fn write(self, path: &Path) -> Result<()> {
        let views = self
            .tensors
            .iter()
            .map(|(name, shape, dtype, bytes)| {
                TensorView::new(*dtype, shape.clone(), bytes)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| Error::Format { path: path.display().to_string(), detail: e.to_string() })
            })
            .collect::<Result<Vec<_>>>()?;
        let bytes = safetensors::serialize(views, Some(self.metadata))
            .map_err(|e| Error::Format { path: path.display().to_string(), detail: e.to_string() })?;
        crate::atomic::write(path, &bytes)
    }
}

fn json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::invalid("file metadata", e.to_string()))
}

impl StoredFile {
    /// Reads `path` and checks that it is a safetensors file of format `format`.
    pub fn open(path: &Path, format: &str) -> Result<StoredFile> {
        let bytes = fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        StoredFile::from_bytes(bytes, &path.display().to_string(), format)
    }

    /// A file's bytes, checked to be a safetensors file of format `format`; `name` is used in
    /// messages. (Everything in it is treated as untrusted input.)
    pub fn from_bytes(bytes: Vec<u8>, name: &str, format: &str) -> Result<StoredFile> {
        let file = StoredFile { bytes, path: name.to_string() };
        let found = file.metadata("format")?;
        if found != format {
            let what = if found == CHECKPOINT_FORMAT { "a checkpoint" } else { "a model file" };
            return Err(file.error(format!("this is {what} (`{found}`), expected `{format}`")));
        }
        Ok(file)
    }

    fn error(&self, detail: impl Into<String>) -> Error {
        Error::Format { path: self.path.clone(), detail: detail.into() }
    }

    fn tensors(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes)
            .map_err(|e| self.error(format!("not a readable safetensors file (truncated or corrupt?): {e}")))
    }

    /// The metadata entry `key`.
    pub fn metadata(&self, key: &str) -> Result<String> {
        let (_, meta) = SafeTensors::read_metadata(&self.bytes)
            .map_err(|e| self.error(format!("not a readable safetensors file (truncated or corrupt?): {e}")))?;
        meta.metadata()
            .as_ref()
            .and_then(|m| m.get(key).cloned())
            .ok_or_else(|| self.error(format!("no `{key}` in the file's metadata; not written by nabla?")))
    }

    /// The metadata entry `key`, parsed from JSON.
    pub fn metadata_json<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<T> {
        serde_json::from_str(&self.metadata(key)?).map_err(|e| self.error(format!("metadata `{key}`: {e}")))
    }

    /// The architecture stored in the file.
    pub fn architecture(&self) -> Result<Architecture> {
        let arch: Architecture = self.metadata_json("architecture")?;
        arch.validate().map_err(|e| self.error(format!("stored architecture: {e}")))?;
        Ok(arch)
    }

    /// Tensor `name` as `E`, checked to have `shape`.
    fn tensor<E: Element>(&self, st: &SafeTensors<'_>, name: &str, shape: &[usize]) -> Result<Vec<E>> {
        let t = st.tensor(name).map_err(|_| self.error(format!("tensor `{name}` is missing")))?;
        if t.shape() != shape {
            return Err(
                self.error(format!("tensor `{name}` has shape {:?} but the network needs {shape:?}", t.shape()))
            );
        }
        let data = t.data();
        let values: Vec<E> = match t.dtype() {
            Dtype::F32 => {
                data.chunks_exact(4).map(|b| E::of(f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))).collect()
            }
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|b| E::of(f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])))
                .collect(),
            other => return Err(self.error(format!("tensor `{name}` has dtype {other:?}; nabla reads F32 and F64"))),
        };
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(self.error(format!("tensor `{name}` holds a non-finite value at index {i}")));
        }
        Ok(values)
    }

    /// The parameter tensors of `arch` under `prefix`, checked.
    fn parameters<E: Element>(&self, st: &SafeTensors<'_>, arch: &Architecture, prefix: &str) -> Result<Vec<Vec<E>>> {
        parameter_shapes(arch, prefix).iter().map(|(name, shape)| self.tensor(st, name, shape)).collect()
    }
}

/// Writes `net`'s architecture and weights to `path` (atomically), with extra metadata entries.
pub fn save_model<E: Element, B: Backend<E>>(net: &Network<E, B>, path: &Path, extra: &[(&str, String)]) -> Result<()> {
    let mut w = Writer::new(MODEL_FORMAT, net.architecture(), E::DTYPE)?;
    w.parameters(net.architecture(), "", &net.parameters_to_host()?);
    for (k, v) in extra {
        w.metadata.insert((*k).to_string(), v.clone());
    }
    w.write(path)
}

/// Reads a model file into a network on `backend`. Returns the network and the file (for its
/// other metadata entries).
pub fn load_model<E: Element, B: Backend<E>>(backend: B, path: &Path) -> Result<(Network<E, B>, StoredFile)> {
    network_from(backend, StoredFile::open(path, MODEL_FORMAT)?)
}

/// The network of a model file already read (see [`StoredFile::from_bytes`]).
pub fn network_from<E: Element, B: Backend<E>>(backend: B, file: StoredFile) -> Result<(Network<E, B>, StoredFile)> {
    let arch = file.architecture()?;
    let st = file.tensors()?;
    let params = file.parameters::<E>(&st, &arch, "")?;
    let net = Network::from_parameters(backend, arch, &params)?;
    Ok((net, file))
}

impl<E: Element, B: Backend<E>> Network<E, B> {
    /// Overwrites this network's weights with those of a model or checkpoint file. The file must
    /// describe the same architecture, and every tensor is checked before any is written.
    pub fn load_weights(&mut self, path: &Path) -> Result<()> {
        let file = StoredFile::open(path, MODEL_FORMAT).or_else(|_| StoredFile::open(path, CHECKPOINT_FORMAT))?;
        let arch = file.architecture()?;
        if arch.sizes != self.architecture().sizes || arch.activations != self.architecture().activations {
            return Err(file.error(format!(
                "the file holds a {:?} network ({}), this one is {:?} ({})",
                arch.sizes,
                describe(&arch),
                self.architecture().sizes,
                describe(self.architecture())
            )));
        }
        let st = file.tensors()?;
        let params = file.parameters::<E>(&st, &arch, "")?;
        for (i, p) in params.iter().enumerate() {
            self.set_parameter(i, p)?;
        }
        Ok(())
    }
}

fn describe(arch: &Architecture) -> String {
    let acts: Vec<String> = arch.activations.iter().map(ToString::to_string).collect();
    format!("{}; loss {}", acts.join(", "), arch.loss)
}

impl<E: Element, B: Backend<E>> Trainer<E, B> {
    /// Writes the whole state of the run to `path` (atomically): weights, optimizer state,
    /// schedule, early stopping, dropout stream and position, plus extra metadata entries.
    pub fn save_checkpoint(&self, path: &Path, extra: &[(&str, String)]) -> Result<()> {
        let arch = self.net.architecture();
        let mut w = Writer::new(CHECKPOINT_FORMAT, arch, E::DTYPE)?;
        // The live weights, not the best ones early stopping may have put into the network.
        w.parameters(arch, "", &self.live_parameters()?);
        for (t, (name, shape)) in parameter_shapes(arch, "optimizer.").into_iter().enumerate() {
            for (k, buf) in self.opt.state()[t].iter().enumerate() {
                let mut host = crate::memory::filled(self.net.backend().len(buf), E::zero(), "optimizer state")?;
                self.net.backend().download(buf, &mut host)?;
                w.tensor(format!("{name}.{k}"), shape.clone(), &host);
            }
        }
        if let Some(best) = &self.best_parameters {
            w.parameters(arch, "best.", best);
        }
        let (dropout_seed, dropout_passes) = self.net.dropout_state();
        let state = RunState {
            epoch: self.epoch,
            optimizer_steps: self.opt.steps(),
            schedule: self.schedule_state,
            early_stopping: self.stop_state.clone(),
            dropout_seed,
            dropout_passes,
            stopped: self.stopped,
            history: self.history.clone(),
        };
        w.metadata.insert("optimizer".into(), json(self.opt.config())?);
        w.metadata.insert("train".into(), json(&self.config)?);
        w.metadata.insert("state".into(), json(&state)?);
        for (k, v) in extra {
            w.metadata.insert((*k).to_string(), v.clone());
        }
        w.write(path)
    }

    /// Rebuilds a run from a checkpoint on `backend`, to continue exactly where it stopped.
    /// Every tensor is checked before the trainer is built. Returns the trainer and the file.
    pub fn resume(backend: B, path: &Path) -> Result<(Trainer<E, B>, StoredFile)> {
        Trainer::resume_from(backend, StoredFile::open(path, CHECKPOINT_FORMAT)?)
    }

    /// [`Trainer::resume`] from a checkpoint already read (see [`StoredFile::from_bytes`]).
    pub fn resume_from(backend: B, file: StoredFile) -> Result<(Trainer<E, B>, StoredFile)> {
        let arch = file.architecture()?;
        let optimizer: OptimizerConfig = file.metadata_json("optimizer")?;
        let config: TrainConfig = file.metadata_json("train")?;
        let state: RunState = file.metadata_json("state")?;
        state.validate().map_err(|e| file.error(e.to_string()))?;
        let st = file.tensors()?;
        let params = file.parameters::<E>(&st, &arch, "")?;
        let mut opt_state = Vec::new();
        for (name, shape) in parameter_shapes(&arch, "optimizer.") {
            let tensors = (0..optimizer.rule.state_count())
                .map(|k| file.tensor::<E>(&st, &format!("{name}.{k}"), &shape))
                .collect::<Result<Vec<_>>>()?;
            opt_state.push(tensors);
        }
        let has_best = st.names().iter().any(|n| n.starts_with("best."));
        let best = if has_best { Some(file.parameters::<E>(&st, &arch, "best.")?) } else { None };

        let mut net = Network::from_parameters(backend, arch, &params)?;
        net.set_dropout_state(state.dropout_seed, state.dropout_passes);
        let mut trainer = Trainer::new(net, optimizer, config)?;
        for (bufs, host) in trainer.opt.state_mut().iter_mut().zip(&opt_state) {
            for (buf, values) in bufs.iter_mut().zip(host) {
                trainer.net.backend().write(values, buf)?;
            }
        }
        trainer.opt.set_steps(state.optimizer_steps);
        trainer.epoch = state.epoch;
        trainer.schedule_state = state.schedule;
        trainer.stop_state = state.early_stopping;
        trainer.best_parameters = best;
        trainer.stopped = state.stopped;
        trainer.history = state.history;
        Ok((trainer, file))
    }
}
