//! Synchronous data parallelism, the scheme of PyTorch DDP and Horovod: every process (rank)
//! holds the same weights, computes the gradient of its shard of each global batch, the
//! gradients are summed across the ranks, and every rank applies the same update.
//!
//! The communication is an existing engine's (MPI through the `nabla` facade's `mpi` feature),
//! seen here through the [`Collective`] trait; the driver's only addition is the
//! [`GradientReducer`], which [`crate::Trainer`] calls between backward and update.
//!
//! The math: a global batch of `N` rows is cut into contiguous shards of `n_r` rows
//! ([`shard`], sizes differing by at most one). Each rank's backward gives the mean-loss
//! gradient of its shard, `g_r = (1/n_r) Σ_{i∈r} ∇C_i`; the reducer sums `n_r g_r` over the ranks
//! and scales once by `1/N`:
//!
//! `g = (1/N) Σ_r n_r g_r = (1/N) Σ_i ∇C_i`,
//!
//! the single-process mean-loss gradient of the global batch (to rounding). The batch's loss
//! and correct count travel in the same all-reduce, so every rank sees the global numbers and
//! takes every decision (non-finite loss, early stopping, schedules) identically.

use std::ops::Range;

use crate::backend::Backend;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::memory;
use crate::network::{Mode, Network, Score};
use crate::optim::Optimizer;

/// The collective operations data parallelism needs, over all ranks of one job. Implemented
/// over MPI by the `nabla` facade (feature `mpi`); a single process needs none.
pub trait Collective {
    /// This process's rank, `0..size`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// `recv ← Σ_ranks send`, element-wise; every rank receives the same values.
    fn sum_f32(&self, send: &[f32], recv: &mut [f32]) -> Result<()>;
    /// `recv ← Σ_ranks send` in f64.
    fn sum_f64(&self, send: &[f64], recv: &mut [f64]) -> Result<()>;
    /// `recv ← Σ_ranks send` over a bucket written in segments, each segment's sum started as
    /// soon as `fill(i, segment)` has written segment `i` (`ends[i-1]..ends[i]`, in order), so
    /// that communication overlaps the filling of the next segments. The default fills every
    /// segment, then sums the bucket at once ([`fill_then_sum`]).
    fn sum_segments_f32(&self, send: &mut [f32], recv: &mut [f32], ends: &[usize], fill: Fill<'_, f32>) -> Result<()> {
        fill_then_sum(send, recv, ends, fill, |s, r| self.sum_f32(s, r))
    }
    /// [`Collective::sum_segments_f32`] in f64.
    fn sum_segments_f64(&self, send: &mut [f64], recv: &mut [f64], ends: &[usize], fill: Fill<'_, f64>) -> Result<()> {
        fill_then_sum(send, recv, ends, fill, |s, r| self.sum_f64(s, r))
    }
    /// `buf ← rank 0's buf`.
    fn broadcast_f32(&self, buf: &mut [f32]) -> Result<()>;
    /// `buf ← rank 0's buf` in f64.
    fn broadcast_f64(&self, buf: &mut [f64]) -> Result<()>;
}

/// A shared communicator is one too (the program keeps a handle to abort the job on an error).
impl<C: Collective + ?Sized> Collective for std::rc::Rc<C> {
    fn rank(&self) -> usize {
        (**self).rank()
    }
    fn size(&self) -> usize {
        (**self).size()
    }
    fn sum_f32(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        (**self).sum_f32(send, recv)
    }
    fn sum_f64(&self, send: &[f64], recv: &mut [f64]) -> Result<()> {
        (**self).sum_f64(send, recv)
    }
    fn sum_segments_f32(&self, send: &mut [f32], recv: &mut [f32], ends: &[usize], fill: Fill<'_, f32>) -> Result<()> {
        (**self).sum_segments_f32(send, recv, ends, fill)
    }
    fn sum_segments_f64(&self, send: &mut [f64], recv: &mut [f64], ends: &[usize], fill: Fill<'_, f64>) -> Result<()> {
        (**self).sum_segments_f64(send, recv, ends, fill)
    }
    fn broadcast_f32(&self, buf: &mut [f32]) -> Result<()> {
        (**self).broadcast_f32(buf)
    }
    fn broadcast_f64(&self, buf: &mut [f64]) -> Result<()> {
        (**self).broadcast_f64(buf)
    }
}

/// What a segmented sum calls to write segment `i` of the bucket ([`Collective::sum_segments_f32`]).
pub type Fill<'a, T> = &'a mut dyn FnMut(usize, &mut [T]) -> Result<()>;

/// The segments `ends[i-1]..ends[i]` of a bucket of `len` values, checked to be in order and to
/// cover it.
pub fn segments(ends: &[usize], len: usize) -> Result<impl Iterator<Item = Range<usize>> + '_> {
    let ordered = ends.windows(2).all(|w| w[0] <= w[1]);
    if !ordered || ends.last().copied().unwrap_or(0) != len {
        return Err(Error::shape("all_reduce", format!("segment ends {ends:?} do not cover a bucket of {len} values")));
    }
    Ok(ends.iter().scan(0, |start, &end| Some(std::mem::replace(start, end)..end)))
}

/// Writes every segment of `send` with `fill`, then sums the bucket at once with `sum`: a
/// segmented sum without overlap.
pub fn fill_then_sum<T>(
    send: &mut [T],
    recv: &mut [T],
    ends: &[usize],
    fill: Fill<'_, T>,
    sum: impl FnOnce(&[T], &mut [T]) -> Result<()>,
) -> Result<()> {
    for (i, seg) in segments(ends, send.len())?.enumerate() {
        fill(i, &mut send[seg])?;
    }
    sum(send, recv)
}

/// Whether an MPI launcher (OpenMPI's `mpirun`, a PMI/PMIx one such as MPICH's or Slurm's
/// `srun`) started this process, and as one of how many ranks when it says (`Some(None)`: started
/// by a launcher that does not announce the size in the environment).
pub fn launcher() -> Option<Option<usize>> {
    launcher_in(|name| std::env::var(name).ok())
}

/// [`launcher`] read from the environment `var`. Slurm's PMIx plugin sets `PMIX_RANK` but no size
/// variable: the step's task count (`SLURM_STEP_NUM_TASKS`) is the size then, and only then (a
/// process started inside an allocation without `srun --mpi=…` is not one of its ranks).
fn launcher_in(var: impl Fn(&str) -> Option<String>) -> Option<Option<usize>> {
    let rank = ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"].into_iter().any(|v| var(v).is_some());
    let size = first_number(&var, &["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"])
        .or_else(|| if rank { first_number(&var, &["SLURM_STEP_NUM_TASKS"]) } else { None });
    (size.is_some() || rank).then_some(size)
}

/// The value of the first of the variables `names` that `var` holds as a number.
fn first_number(var: impl Fn(&str) -> Option<String>, names: &[&str]) -> Option<usize> {
    names.iter().find_map(|v| var(v)?.parse().ok())
}

/// This process's rank among the ranks of its node, as the launcher says (OpenMPI's
/// `OMPI_COMM_WORLD_LOCAL_RANK`, Slurm's `SLURM_LOCALID`, MPICH's `MPI_LOCALRANKID`); 0 without
/// one. Data-parallel CUDA runs take the GPU of this number.
pub fn local_rank() -> usize {
    first_number(|v| std::env::var(v).ok(), &["OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"])
        .unwrap_or(0)
}

/// Rows `[lo, hi)` of a global batch of `rows` rows that `rank` of `size` takes: contiguous
/// shards in rank order, the first `rows mod size` one row longer.
pub fn shard(rows: usize, rank: usize, size: usize) -> Range<usize> {
    let (base, extra) = (rows / size, rows % size);
    let lo = rank * base + rank.min(extra);
    lo..lo + base + usize::from(rank < extra)
}

/// A 64-bit FNV-1a hash of texts and element values, to check that every rank holds the same
/// configuration, data or weights ([`GradientReducer::agree`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }
}

impl Fingerprint {
    fn word(self, w: u64) -> Fingerprint {
        Fingerprint((self.0 ^ w).wrapping_mul(0x0100_0000_01b3))
    }

    /// Adds a text (and a separator, so that `"ab", ""` and `"a", "b"` differ).
    pub fn text(self, s: &str) -> Fingerprint {
        s.bytes().chain([0xff]).fold(self, |h, b| h.word(u64::from(b)))
    }

    /// Adds a tensor's length and the bits of its values.
    pub fn values<E: Element>(self, values: &[E]) -> Fingerprint {
        values.iter().fold(self.word(values.len() as u64), |h, v| h.word(v.f64().to_bits()))
    }

    /// The hash.
    pub fn finish(self) -> u64 {
        self.0
    }
}

/// Sums one step's gradients over the ranks through a preallocated host bucket laid out in the
/// order backward produces them (the shard's loss sum and correct count, then `∂Wᴸ, ∂bᴸ`, …,
/// `∂W¹, ∂b¹`), cut into segments of whole layers of at least [`MIN_SEGMENT_BYTES`] (DDP's
/// buckets in reverse order); each segment's all-reduce starts as soon as backward has written
/// it, while backward goes on with the layers below. No allocation per step.
pub struct GradientReducer<E: Element> {
    comm: Box<dyn Collective>,
    send: Vec<E>,
    recv: Vec<E>,
    /// The end of each segment in the bucket.
    ends: Vec<usize>,
    /// The lowest layer each segment holds (segment `i` holds the layers from segment `i − 1`'s
    /// lowest, exclusive, down to this one).
    lowest: Vec<usize>,
    /// Whether each segment's all-reduce starts during backward (else after it, all at once).
    overlap: bool,
    /// Whether the backend sums the gradients on its device with a communicator of its own
    /// ([`Backend::join_ranks`]; NCCL on CUDA): then the host bucket holds the scores only.
    on_device: bool,
    /// All-reduces done and the seconds spent in them outside backward's computation.
    reductions: (u64, f64),
}

impl<E: Element> std::fmt::Debug for GradientReducer<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GradientReducer")
            .field("rank", &self.comm.rank())
            .field("size", &self.comm.size())
            .field("bucket", &self.send.len())
            .field("segments", &self.ends)
            .field("overlap", &self.overlap)
            .field("reductions", &self.reductions)
            .finish()
    }
}

/// Values in front of the first segment's gradients: the shard's loss sum and correct count.
const STATS: usize = 2;

/// The smallest segment worth an all-reduce of its own: below it, the per-call latency costs more
/// than starting early hides (PyTorch DDP's first bucket is 1 MB too).
pub const MIN_SEGMENT_BYTES: usize = 1 << 20;

impl<E: Element> GradientReducer<E> {
    /// A reducer for the gradients of `net` over `comm`, overlapping communication with
    /// backward; on the device when the backend has a communicator of its own
    /// ([`Backend::join_ranks`], which this sets up on every rank).
    pub fn new<B: Backend<E>>(comm: Box<dyn Collective>, net: &Network<E, B>) -> Result<Self> {
        let on_device = net.backend().join_ranks(comm.as_ref())?;
        let arch = net.architecture();
        let min_segment = MIN_SEGMENT_BYTES / std::mem::size_of::<E>();
        let (mut ends, mut lowest, mut end) = (Vec::new(), Vec::new(), STATS);
        for l in (0..arch.layers()).rev() {
            end += arch.weight_dims(l).len() + arch.weight_dims(l).rows;
            let start = ends.last().copied().unwrap_or(0);
            if end - start >= min_segment || l == 0 {
                ends.push(end);
                lowest.push(l);
            }
        }
        let total = if on_device { STATS } else { ends.last().copied().unwrap_or(STATS) };
        Ok(GradientReducer {
            comm,
            send: memory::filled(total, E::zero(), "the gradient bucket")?,
            recv: memory::filled(total, E::zero(), "the gradient bucket")?,
            ends,
            lowest,
            overlap: true,
            on_device,
            reductions: (0, 0.0),
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        self.comm.size()
    }

    /// Whether each layer's all-reduce starts as soon as backward has produced its gradient (the
    /// default) or all of them after backward (to measure what the overlap hides). The result
    /// is the same either way, bit for bit.
    pub fn set_overlap(&mut self, on: bool) {
        self.overlap = on;
    }

    /// Equations 3 and 4 on this rank's shard, with the gradients summed over the ranks as they
    /// come: the gradients of `net` become the global batch's, `g ← (1/N) Σ_r n_r g_r` with
    /// `N = global_rows`, for this rank's shard of `local_rows` rows of `x` whose forward pass
    /// and output error just ran and scored `local` (`None` for an empty shard, which
    /// contributes nothing and runs no backward). Returns the global batch's mean loss and
    /// correct count, the same on every rank.
    pub fn backward_and_reduce<B: Backend<E>>(
        &mut self,
        net: &mut Network<E, B>,
        x: &B::Buf,
        local: Option<Score>,
        local_rows: usize,
        global_rows: usize,
    ) -> Result<Score> {
        let (n, layers) = (E::of(local_rows as f64), net.architecture().layers());
        let stats = local.map_or([E::zero(); STATS], |s| [E::of(s.loss * local_rows as f64), E::of(s.correct as f64)]);
        if self.on_device {
            return self.backward_and_reduce_on_device(net, x, stats, local_rows, global_rows);
        }
        let mut computing = 0.0;
        let lowest = &self.lowest;
        // Segment i: its layers from the top down, each δˡ from layer l + 1 first (equation 3),
        // then ∂Wˡ, ∂bˡ (equation 4), packed and multiplied by the shard's row count in one pass.
        let mut fill = |i: usize, seg: &mut [E]| -> Result<()> {
            let started = std::time::Instant::now();
            let top = if i == 0 { layers - 1 } else { lowest[i - 1] - 1 };
            let mut part = seg;
            if i == 0 {
                let (head, rest) = part.split_at_mut(STATS);
                head.copy_from_slice(&stats);
                part = rest;
            }
            for l in (lowest[i]..=top).rev() {
                if local.is_some() {
                    if l + 1 < layers {
                        net.propagate_error(local_rows, l + 1)?;
                    }
                    net.layer_gradient(x, local_rows, l, E::one(), false)?;
                }
                let g = &net.gradients()[l];
                for t in [&g.weight, &g.bias] {
                    let (dst, rest) = std::mem::take(&mut part).split_at_mut(net.backend().len(t));
                    part = rest;
                    match (local, net.backend().host_view(t)) {
                        (None, _) => dst.fill(E::zero()),
                        // Host memory: packed and scaled in one pass.
                        (Some(_), Some(host)) => dst.iter_mut().zip(host).for_each(|(s, &v)| *s = v * n),
                        (Some(_), None) => {
                            net.backend().download(t, dst)?;
                            dst.iter_mut().for_each(|v| *v = *v * n);
                        }
                    }
                }
            }
            computing += started.elapsed().as_secs_f64();
            Ok(())
        };
        let started = std::time::Instant::now();
        let (comm, send, recv) = (self.comm.as_ref(), &mut self.send[..], &mut self.recv[..]);
        match self.overlap {
            true => E::sum_segments_over(comm, send, recv, &self.ends, &mut fill)?,
            false => fill_then_sum(send, recv, &self.ends, &mut fill, |s, r| E::sum_over(comm, s, r))?,
        }
        let waited = started.elapsed().as_secs_f64() - computing;
        self.reductions = (self.reductions.0 + 1, self.reductions.1 + waited.max(0.0));
        let scale = E::one() / E::of(global_rows as f64);
        let (backend, grads) = net.gradients_mut();
        let mut part = &mut self.recv[STATS..];
        for g in grads.iter_mut().rev() {
            for t in [&mut g.weight, &mut g.bias] {
                let (src, rest) = std::mem::take(&mut part).split_at_mut(backend.len(t));
                part = rest;
                match backend.host_view_mut(t) {
                    // Host memory: scaled and unpacked in one pass.
                    Some(host) => host.iter_mut().zip(src.iter()).for_each(|(h, &v)| *h = v * scale),
                    None => {
                        src.iter_mut().for_each(|v| *v = *v * scale);
                        backend.write(src, t)?;
                    }
                }
            }
        }
        Ok(self.global_score(global_rows))
    }

    /// [`GradientReducer::backward_and_reduce`] on a backend that sums on its device: each
    /// layer's gradient is computed already scaled by this rank's share, `(n_r/N) g_r`, so that
    /// the device's all-reduce of every gradient (one group call, in place, no host copy) gives
    /// `Σ_r (n_r/N) g_r = g`; an empty shard contributes zeros. The scores go through the host.
    fn backward_and_reduce_on_device<B: Backend<E>>(
        &mut self,
        net: &mut Network<E, B>,
        x: &B::Buf,
        stats: [E; STATS],
        local_rows: usize,
        global_rows: usize,
    ) -> Result<Score> {
        let share = E::of(local_rows as f64) / E::of(global_rows as f64);
        let layers = net.architecture().layers();
        net.reserve(local_rows.max(1))?;
        for l in (0..layers).rev() {
            if l + 1 < layers && local_rows > 0 {
                net.propagate_error(local_rows, l + 1)?;
            }
            net.layer_gradient(x, local_rows, l, share, false)?;
        }
        let started = std::time::Instant::now();
        let (backend, grads) = net.gradients_mut();
        let mut bufs: Vec<&mut B::Buf> = grads.iter_mut().flat_map(|t| [&mut t.weight, &mut t.bias]).collect();
        backend.sum_over_ranks(&mut bufs)?;
        self.send.copy_from_slice(&stats);
        E::sum_over(self.comm.as_ref(), &self.send, &mut self.recv)?;
        self.reductions = (self.reductions.0 + 1, self.reductions.1 + started.elapsed().as_secs_f64());
        Ok(self.global_score(global_rows))
    }

    /// The global batch's mean loss and correct count, from the summed scores in front of the
    /// bucket.
    fn global_score(&self, global_rows: usize) -> Score {
        let loss = (self.recv[0] / E::of(global_rows as f64)).f64();
        Score { loss, correct: self.recv[1].f64().round() as usize, predictions: 0 }
    }

    /// The gradient all-reduces done so far and the seconds spent in them that backward's
    /// computation did not hide (with overlap off: the whole all-reduce).
    pub fn reductions(&self) -> (u64, f64) {
        self.reductions
    }

    /// Puts rank 0's parameters into every rank's network.
    pub fn broadcast_parameters<B: Backend<E>>(&mut self, net: &mut Network<E, B>) -> Result<()> {
        for (i, mut tensor) in net.parameters_to_host()?.into_iter().enumerate() {
            E::broadcast_over(self.comm.as_ref(), &mut tensor)?;
            net.set_parameter(i, &tensor)?;
        }
        Ok(())
    }

    /// Rank 0's values of `values` on every rank (metrics computed on each rank, made identical).
    pub fn broadcast(&self, values: &mut [f64]) -> Result<()> {
        self.comm.broadcast_f64(values)
    }

    /// Whether any rank says `flag` (a stop asked by one rank's observer stops every rank).
    pub fn any(&self, flag: bool) -> Result<bool> {
        let mut out = [0.0];
        self.comm.sum_f64(&[f64::from(u8::from(flag))], &mut out)?;
        Ok(out[0] > 0.0)
    }

    /// Checks that every rank has the same `hash` of `what` (its configuration, its position in
    /// the run); every rank fails together, naming the first rank that differs.
    pub fn agree(&self, what: &str, hash: u64) -> Result<()> {
        let (rank, size) = (self.rank(), self.size());
        let mut seen = vec![0.0; 2 * size];
        // The hash as two exact 32-bit halves, one slot pair per rank, summed: every rank sees
        // every rank's hash.
        seen[2 * rank] = (hash >> 32) as f64;
        seen[2 * rank + 1] = (hash & 0xffff_ffff) as f64;
        let mut all = vec![0.0; 2 * size];
        self.comm.sum_f64(&seen, &mut all)?;
        let of = |r: usize| ((all[2 * r] as u64) << 32) | all[2 * r + 1] as u64;
        match (1..size).find(|&r| of(r) != of(0)) {
            None => Ok(()),
            Some(r) => Err(Error::invalid(
                "data-parallel run",
                format!(
                    "rank {r} has another {what} than rank 0 ({:016x} vs {:016x}); start every rank with the same \
                     command, flags and files",
                    of(r),
                    of(0)
                ),
            )),
        }
    }
}

/// A batch as one rank holds it: its shard's rows on the backend, and where the shard lies in
/// the global batch.
#[derive(Debug)]
pub struct Shard<'a, Buf> {
    /// The shard's features (`rows × inputs`).
    pub x: &'a Buf,
    /// The shard's targets (`rows × outputs`).
    pub y: &'a Buf,
    /// Rows of the shard (0 when the global batch has fewer rows than there are ranks).
    pub rows: usize,
    /// Rows of the global batch.
    pub global_rows: usize,
    /// The shard's first row within the global batch.
    pub offset: usize,
}

/// One data-parallel training step: forward and output error on this rank's shard (equations
/// 1–2), backward (3–4) with the reducer's all-reduce of each layer's gradient as it comes,
/// then the update (equation 5) with the global batch's gradient. Returns the global batch's score.
pub fn train_step<E: Element, B: Backend<E>>(
    net: &mut Network<E, B>,
    opt: &mut Optimizer<B::Buf>,
    reducer: &mut GradientReducer<E>,
    shard: Shard<'_, B::Buf>,
) -> Result<Score> {
    net.set_row_offset(shard.offset);
    let local = if shard.rows > 0 {
        net.forward(shard.x, shard.rows, Mode::Train)?;
        net.output_error(shard.y, shard.rows)?;
        Some(net.score()?)
    } else {
        net.skip_training_pass();
        None
    };
    let score = reducer.backward_and_reduce(net, shard.x, local, shard.rows, shard.global_rows)?;
    net.update(opt)?;
    Ok(score)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_contiguous_and_cover_the_batch() {
        for rows in [1, 2, 7, 32, 33, 101] {
            for size in 1..=5 {
                let parts: Vec<Range<usize>> = (0..size).map(|r| shard(rows, r, size)).collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts[size - 1].end, rows);
                for w in parts.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
                let (lo, hi) = (parts.iter().map(|p| p.len()).min(), parts.iter().map(|p| p.len()).max());
                assert!(hi.unwrap() - lo.unwrap() <= 1, "{rows} rows on {size} ranks: {parts:?}");
            }
        }
        assert_eq!(shard(10, 0, 3), 0..4);
        assert_eq!(shard(10, 2, 3), 7..10);
    }

    #[test]
    fn launchers_are_recognised_with_their_size() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert_eq!(launcher_in(env(&[])), None);
        assert_eq!(launcher_in(env(&[("OMPI_COMM_WORLD_RANK", "1"), ("OMPI_COMM_WORLD_SIZE", "4")])), Some(Some(4)));
        assert_eq!(launcher_in(env(&[("PMI_RANK", "0"), ("PMI_SIZE", "3")])), Some(Some(3)));
        // `srun --mpi=pmix`: a PMIx rank, the size from Slurm's step.
        assert_eq!(launcher_in(env(&[("PMIX_RANK", "2"), ("SLURM_STEP_NUM_TASKS", "3")])), Some(Some(3)));
        assert_eq!(launcher_in(env(&[("PMIX_RANK", "0")])), Some(None));
        // Inside a Slurm allocation but not started as an MPI rank: one process.
        assert_eq!(launcher_in(env(&[("SLURM_STEP_NUM_TASKS", "3")])), None);
    }

    use crate::backend::{Dims, Gemm};
    use crate::{Activation, Architecture, Init, Loss, Update, reference::Reference};

    /// A network of `sizes` and a batch of 4 rows.
    fn problem(sizes: &[usize]) -> (Architecture, Vec<f64>, Vec<f64>) {
        let arch = Architecture::new(sizes, Activation::Tanh, Loss::SoftmaxCe).unwrap();
        let x: Vec<f64> = (0..4 * sizes[0]).map(|i| (i as f64 * 0.37).sin()).collect();
        let y: Vec<f64> = (0..4).flat_map(|r| if r % 2 == 0 { [1.0, 0.0] } else { [0.0, 1.0] }).collect();
        (arch, x, y)
    }

    /// Two ranks that hold the same shard: every sum is twice this rank's values. Records the
    /// order in which segments are filled.
    struct Twin(std::cell::RefCell<Vec<usize>>);

    impl Collective for Twin {
        fn rank(&self) -> usize {
            0
        }
        fn size(&self) -> usize {
            2
        }
        fn sum_f32(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
            recv.iter_mut().zip(send).for_each(|(r, &s)| *r = 2.0 * s);
            Ok(())
        }
        fn sum_f64(&self, send: &[f64], recv: &mut [f64]) -> Result<()> {
            recv.iter_mut().zip(send).for_each(|(r, &s)| *r = 2.0 * s);
            Ok(())
        }
        fn sum_segments_f64(
            &self,
            send: &mut [f64],
            recv: &mut [f64],
            ends: &[usize],
            fill: Fill<'_, f64>,
        ) -> Result<()> {
            let mut order = |i: usize, seg: &mut [f64]| {
                self.0.borrow_mut().push(i);
                fill(i, seg)
            };
            fill_then_sum(send, recv, ends, &mut order, |s, r| self.sum_f64(s, r))
        }
        fn broadcast_f32(&self, _: &mut [f32]) -> Result<()> {
            Ok(())
        }
        fn broadcast_f64(&self, _: &mut [f64]) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_reducer_gives_backwards_gradient_of_the_global_batch_with_and_without_overlap() {
        // 3-5-4-2: one segment. 3-600-500-2 in f64: layers 3 and 2 (301,502 values with the
        // scores, ≥ 1 MiB) in the first segment, layer 1 (2,400) in the second.
        for (sizes, ends) in [(&[3, 5, 4, 2][..], vec![2 + 10 + 24 + 20]), (&[3, 600, 500, 2], vec![301_504, 303_904])]
        {
            let (arch, x, y) = problem(sizes);
            let rows = 4;
            let mut alone = Network::new(Reference, arch.clone(), Init::Auto, 5).unwrap();
            let score = alone.compute_gradients(&x, &y).unwrap();
            let expected = alone.gradients_to_host().unwrap();
            for overlap in [true, false] {
                let mut net = Network::new(Reference, arch.clone(), Init::Auto, 5).unwrap();
                let twin = std::rc::Rc::new(Twin(Default::default()));
                let mut reducer = GradientReducer::new(Box::new(twin.clone()), &net).unwrap();
                assert_eq!(reducer.ends, ends, "{sizes:?}");
                reducer.set_overlap(overlap);
                let (xb, yb) = (net.backend().upload(&x).unwrap(), net.backend().upload(&y).unwrap());
                net.forward(&xb, rows, Mode::Eval).unwrap();
                net.output_error(&yb, rows).unwrap();
                let local = net.score().unwrap();
                // Twice this shard's rows summed = the global batch of 2 × rows.
                let global = reducer.backward_and_reduce(&mut net, &xb, Some(local), rows, 2 * rows).unwrap();
                assert_eq!(net.gradients_to_host().unwrap(), expected, "{sizes:?}, overlap {overlap}");
                assert!((global.loss - score.loss).abs() <= 1e-15 * score.loss, "{} vs {}", global.loss, score.loss);
                assert_eq!(global.correct, 2 * score.correct);
                let filled = twin.0.borrow().clone();
                let order: Vec<usize> = if overlap { (0..ends.len()).collect() } else { vec![] };
                assert_eq!(filled, order, "segments from the top layer down");
                assert_eq!(reducer.reductions().0, 1);
            }
        }
    }

    /// The reference backend with a communicator of its own, of two ranks holding the same
    /// shard: `sum_over_ranks` doubles every buffer.
    struct OnDevice;

    impl Backend<f64> for OnDevice {
        type Buf = Vec<f64>;
        fn name(&self) -> String {
            "on-device".into()
        }
        fn alloc(&self, len: usize) -> Result<Vec<f64>> {
            Reference.alloc(len)
        }
        fn len(&self, buf: &Vec<f64>) -> usize {
            buf.len()
        }
        fn write(&self, host: &[f64], buf: &mut Vec<f64>) -> Result<()> {
            Backend::<f64>::write(&Reference, host, buf)
        }
        fn download(&self, buf: &Vec<f64>, host: &mut [f64]) -> Result<()> {
            Reference.download(buf, host)
        }
        fn gemm(&self, s: Gemm, al: f64, a: &Vec<f64>, b: &Vec<f64>, be: f64, c: &mut Vec<f64>) -> Result<()> {
            Reference.gemm(s, al, a, b, be, c)
        }
        fn hadamard(&self, len: usize, x: &Vec<f64>, y: &mut Vec<f64>) -> Result<()> {
            Reference.hadamard(len, x, y)
        }
        fn bias_add(&self, d: Dims, bias: &Vec<f64>, z: &mut Vec<f64>) -> Result<()> {
            Reference.bias_add(d, bias, z)
        }
        fn activate(&self, f: Activation, d: Dims, z: &Vec<f64>, a: &mut Vec<f64>) -> Result<()> {
            Reference.activate(f, d, z, a)
        }
        fn activate_grad(&self, f: Activation, d: Dims, z: &Vec<f64>, a: &Vec<f64>, g: &mut Vec<f64>) -> Result<()> {
            Reference.activate_grad(f, d, z, a, g)
        }
        fn sum_rows(&self, d: Dims, al: f64, x: &Vec<f64>, be: f64, out: &mut Vec<f64>) -> Result<()> {
            Reference.sum_rows(d, al, x, be, out)
        }
        fn loss(&self, l: Loss, d: Dims, o: &Vec<f64>, t: &Vec<f64>, g: &mut Vec<f64>, s: &mut Vec<f64>) -> Result<()> {
            Reference.loss(l, d, o, t, g, s)
        }
        fn update(&self, u: &Update, n: usize, w: &mut Vec<f64>, g: &Vec<f64>, s: &mut [&mut Vec<f64>]) -> Result<()> {
            Reference.update(u, n, w, g, s)
        }
        fn dropout_mask(&self, len: usize, rate: f64, seed: u64, first: u64, mask: &mut Vec<f64>) -> Result<()> {
            Reference.dropout_mask(len, rate, seed, first, mask)
        }
        fn join_ranks(&self, comm: &dyn Collective) -> Result<bool> {
            Ok(comm.size() == 2)
        }
        fn sum_over_ranks(&self, bufs: &mut [&mut Vec<f64>]) -> Result<()> {
            bufs.iter_mut().for_each(|b| b.iter_mut().for_each(|v| *v *= 2.0));
            Ok(())
        }
    }

    #[test]
    fn a_backend_with_its_own_communicator_sums_on_its_device() {
        let (arch, x, y) = problem(&[3, 5, 4, 2]);
        let rows = 4;
        let mut alone = Network::new(Reference, arch.clone(), Init::Auto, 5).unwrap();
        let score = alone.compute_gradients(&x, &y).unwrap();
        let mut net = Network::new(OnDevice, arch.clone(), Init::Auto, 5).unwrap();
        let mut reducer = GradientReducer::new(Box::new(Twin(Default::default())), &net).unwrap();
        assert_eq!(reducer.send.len(), STATS, "no host bucket for the gradients");
        let (xb, yb) = (net.backend().upload(&x).unwrap(), net.backend().upload(&y).unwrap());
        net.forward(&xb, rows, Mode::Eval).unwrap();
        net.output_error(&yb, rows).unwrap();
        let local = net.score().unwrap();
        let global = reducer.backward_and_reduce(&mut net, &xb, Some(local), rows, 2 * rows).unwrap();
        // Each rank's (n_r/N) g_r = g/2, doubled by the device sum: exactly g.
        assert_eq!(net.gradients_to_host().unwrap(), alone.gradients_to_host().unwrap());
        assert!((global.loss - score.loss).abs() <= 1e-15 * score.loss);
        assert_eq!(global.correct, 2 * score.correct);
        // An empty shard contributes zeros (and runs no backward).
        reducer.backward_and_reduce(&mut net, &xb, None, 0, 2 * rows).unwrap();
        assert!(net.gradients_to_host().unwrap().iter().flatten().all(|&g| g == 0.0));
    }

    #[test]
    fn segments_must_cover_the_bucket_in_order() {
        let parts: Vec<_> = segments(&[2, 5, 5, 9], 9).unwrap().collect();
        assert_eq!(parts, [0..2, 2..5, 5..5, 5..9]);
        assert!(segments(&[2, 5], 9).is_err(), "short");
        assert!(segments(&[5, 2, 9], 9).is_err(), "out of order");
        let (mut send, mut recv) = ([0.0; 4], [0.0; 4]);
        let mut fill = |i: usize, seg: &mut [f64]| {
            seg.fill(i as f64 + 1.0);
            Ok(())
        };
        let copy = |s: &[f64], r: &mut [f64]| {
            r.copy_from_slice(s);
            Ok(())
        };
        fill_then_sum(&mut send, &mut recv, &[1, 4], &mut fill, copy).unwrap();
        assert_eq!(recv, [1.0, 2.0, 2.0, 2.0]);
    }

    #[test]
    fn fingerprints_tell_configurations_apart() {
        let f = |a: &str, b: &str| Fingerprint::default().text(a).text(b).finish();
        assert_eq!(f("a", "b"), f("a", "b"));
        assert_ne!(f("ab", ""), f("a", "b"));
        let v = |x: &[f64]| Fingerprint::default().values(x).finish();
        assert_ne!(v(&[0.0]), v(&[-0.0]), "bits, not values");
        assert_ne!(v(&[1.0, 2.0]), Fingerprint::default().values(&[1.0]).values(&[2.0]).finish());
    }
}
