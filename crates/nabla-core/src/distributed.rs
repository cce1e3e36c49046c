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
    fn broadcast_f32(&self, buf: &mut [f32]) -> Result<()> {
        (**self).broadcast_f32(buf)
    }
    fn broadcast_f64(&self, buf: &mut [f64]) -> Result<()> {
        (**self).broadcast_f64(buf)
    }
}

/// Whether an MPI launcher (OpenMPI's `mpirun`, a PMI/PMIx one such as MPICH's or Slurm's
/// `srun`) started this process, and as one of how many ranks when it says (`Some(None)`: started
/// by a launcher that does not announce the size in the environment).
pub fn launcher() -> Option<Option<usize>> {
    let var = |name: &str| std::env::var(name).ok();
    let size = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"].into_iter().find_map(|v| var(v)?.parse().ok());
    let rank = ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"].into_iter().any(|v| var(v).is_some());
    (size.is_some() || rank).then_some(size)
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

/// Sums one step's gradients over the ranks through a preallocated host bucket: every
/// gradient tensor, then the shard's loss sum and correct count (one all-reduce per step, no
/// allocation).
pub struct GradientReducer<E: Element> {
    comm: Box<dyn Collective>,
    send: Vec<E>,
    recv: Vec<E>,
    /// The length of each gradient tensor (`∂W¹, ∂b¹, …`).
    lens: Vec<usize>,
    /// All-reduces done and the seconds spent in them.
    reductions: (u64, f64),
}

impl<E: Element> std::fmt::Debug for GradientReducer<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GradientReducer")
            .field("rank", &self.comm.rank())
            .field("size", &self.comm.size())
            .field("bucket", &self.send.len())
            .field("reductions", &self.reductions)
            .finish()
    }
}

impl<E: Element> GradientReducer<E> {
    /// A reducer for the gradients of `net` over `comm`.
    pub fn new<B: Backend<E>>(comm: Box<dyn Collective>, net: &Network<E, B>) -> Result<Self> {
        let arch = net.architecture();
        let lens: Vec<usize> =
            (0..arch.layers()).flat_map(|l| [arch.weight_dims(l).len(), arch.weight_dims(l).rows]).collect();
        let total = lens.iter().sum::<usize>() + 2;
        Ok(GradientReducer {
            comm,
            send: memory::filled(total, E::zero(), "the gradient bucket")?,
            recv: memory::filled(total, E::zero(), "the gradient bucket")?,
            lens,
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

    /// Replaces the gradients of `net` by the global batch's: `g ← (1/N) Σ_r n_r g_r` with
    /// `N = global_rows` and this rank's shard of `local_rows` rows, whose loss and correct count
    /// are `local` (`None` for an empty shard, which contributes nothing). Returns the global
    /// batch's mean loss and correct count, the same on every rank.
    pub fn reduce<B: Backend<E>>(
        &mut self,
        net: &mut Network<E, B>,
        local: Option<Score>,
        local_rows: usize,
        global_rows: usize,
    ) -> Result<Score> {
        let n = E::of(local_rows as f64);
        let mut at = 0;
        for (&len, g) in self.lens.iter().zip(net.gradients().iter().flat_map(|t| [&t.weight, &t.bias])) {
            let part = &mut self.send[at..at + len];
            match (local, net.backend().host_view(g)) {
                (None, _) => part.fill(E::zero()),
                // Host memory: packed and scaled in one pass.
                (Some(_), Some(host)) => part.iter_mut().zip(host).for_each(|(s, &v)| *s = v * n),
                (Some(_), None) => {
                    net.backend().download(g, part)?;
                    part.iter_mut().for_each(|v| *v = *v * n);
                }
            }
            at += len;
        }
        let score = local.unwrap_or_default();
        self.send[at] = E::of(score.loss * local_rows as f64);
        self.send[at + 1] = E::of(score.correct as f64);
        let started = std::time::Instant::now();
        E::sum_over(self.comm.as_ref(), &self.send, &mut self.recv)?;
        self.reductions = (self.reductions.0 + 1, self.reductions.1 + started.elapsed().as_secs_f64());
        let scale = E::one() / E::of(global_rows as f64);
        let (backend, grads) = net.gradients_mut();
        let mut at = 0;
        for (&len, g) in self.lens.iter().zip(grads.iter_mut().flat_map(|t| [&mut t.weight, &mut t.bias])) {
            let part = &mut self.recv[at..at + len];
            match backend.host_view_mut(g) {
                // Host memory: scaled and unpacked in one pass.
                Some(host) => host.iter_mut().zip(part.iter()).for_each(|(h, &v)| *h = v * scale),
                None => {
                    part.iter_mut().for_each(|v| *v = *v * scale);
                    backend.write(part, g)?;
                }
            }
            at += len;
        }
        Ok(Score {
            loss: (self.recv[at] * scale).f64(),
            correct: self.recv[at + 1].f64().round() as usize,
            predictions: 0,
        })
    }

    /// The gradient all-reduces done so far and the seconds spent waiting in them.
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

/// One data-parallel training step: forward, output error and backward on this rank's shard
/// (equations 1–4), the reducer's all-reduce of the shards' gradients, then the update
/// (equation 5) with the global batch's gradient. Returns the global batch's score.
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
        net.backward(shard.x, shard.rows)?;
        Some(net.score()?)
    } else {
        net.skip_training_pass();
        None
    };
    let score = reducer.reduce(net, local, shard.rows, shard.global_rows)?;
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
    fn fingerprints_tell_configurations_apart() {
        let f = |a: &str, b: &str| Fingerprint::default().text(a).text(b).finish();
        assert_eq!(f("a", "b"), f("a", "b"));
        assert_ne!(f("ab", ""), f("a", "b"));
        let v = |x: &[f64]| Fingerprint::default().values(x).finish();
        assert_ne!(v(&[0.0]), v(&[-0.0]), "bits, not values");
        assert_ne!(v(&[1.0, 2.0]), Fingerprint::default().values(&[1.0]).values(&[2.0]).finish());
    }
}
