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
use crate::network::{Mode, Network, Score, Tensors};
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
    /// `recv ← Σ_ranks send` for each of `count` [`Piece`]s, piece `i` as `next(i)` hands it
    /// over (in order, after computing what it holds). An implementation over a launcher starts
    /// each piece's sum as soon as it has the piece, so that communication overlaps the
    /// computing of the next ones; all are complete when it returns. The default sums each piece
    /// as it comes ([`sum_each`]).
    fn sum_pieces_f32<'a>(&self, count: usize, next: NextPiece<'_, 'a, f32>) -> Result<()> {
        sum_each(count, next, |s, r| self.sum_f32(s, r))
    }
    /// [`Collective::sum_pieces_f32`] in f64.
    fn sum_pieces_f64<'a>(&self, count: usize, next: NextPiece<'_, 'a, f64>) -> Result<()> {
        sum_each(count, next, |s, r| self.sum_f64(s, r))
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
    fn sum_pieces_f32<'a>(&self, count: usize, next: NextPiece<'_, 'a, f32>) -> Result<()> {
        (**self).sum_pieces_f32(count, next)
    }
    fn sum_pieces_f64<'a>(&self, count: usize, next: NextPiece<'_, 'a, f64>) -> Result<()> {
        (**self).sum_pieces_f64(count, next)
    }
    fn broadcast_f32(&self, buf: &mut [f32]) -> Result<()> {
        (**self).broadcast_f32(buf)
    }
    fn broadcast_f64(&self, buf: &mut [f64]) -> Result<()> {
        (**self).broadcast_f64(buf)
    }
}

/// One all-reduce of a step: `recv ← Σ_ranks send`, element-wise, over buffers of one length.
#[derive(Debug)]
pub struct Piece<'a, T> {
    /// This rank's values.
    pub send: &'a [T],
    /// Where the sum goes.
    pub recv: &'a mut [T],
}

/// What a pieced sum calls for piece `i` ([`Collective::sum_pieces_f32`]): it computes what the
/// piece holds and hands its buffers over.
pub type NextPiece<'n, 'a, T> = &'n mut dyn FnMut(usize) -> Result<Piece<'a, T>>;

/// Sums each of `count` pieces with `sum` as `next` hands it over: a pieced sum without overlap.
pub fn sum_each<'a, T>(
    count: usize,
    next: NextPiece<'_, 'a, T>,
    mut sum: impl FnMut(&[T], &mut [T]) -> Result<()>,
) -> Result<()> {
    for i in 0..count {
        let piece = next(i)?;
        sum(piece.send, piece.recv)?;
    }
    Ok(())
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

/// Sums one step's gradients over the ranks as backward produces them (the shard's loss sum and
/// correct count, then layer `L`'s gradients, …, layer 1's), in [`Piece`]s (DDP's buckets in
/// reverse order): each piece's all-reduce starts as soon as backward has written it, while
/// backward goes on with the layers below. A weight gradient of at least [`MIN_PIECE_BYTES`] in
/// host memory is a piece of its own and is summed where backward wrote it; the rest (the
/// scores, biases, small layers, and everything of a backend without host memory) is copied
/// through a preallocated host bucket, cut into pieces of whole layers of at least
/// [`MIN_PIECE_BYTES`] or where a weight of its own follows. No allocation and no copy of the
/// large gradients per step.
pub struct GradientReducer<E: Element, B: Backend<E>> {
    comm: Box<dyn Collective>,
    send: Vec<E>,
    recv: Vec<E>,
    /// The layer sizes of the network the plan was made for.
    sizes: Vec<usize>,
    /// The step's all-reduces, in backward's order.
    plan: Vec<Planned>,
    /// Where each layer's gradients lie in the bucket.
    slots: Vec<Slots>,
    /// For each weight summed where it is, in the plan's order (from the top layer down).
    spares: Vec<Spare<B::Buf>>,
    /// Whether each piece's all-reduce starts during backward (else after it, one by one).
    overlap: bool,
    /// Whether the backend sums the gradients on its device with a communicator of its own
    /// ([`Backend::join_ranks`]; NCCL on CUDA): then the host bucket holds the scores only.
    on_device: bool,
    /// All-reduces done and the seconds spent in them outside backward's computation.
    reductions: (u64, f64),
}

impl<E: Element, B: Backend<E>> std::fmt::Debug for GradientReducer<E, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GradientReducer")
            .field("rank", &self.comm.rank())
            .field("size", &self.comm.size())
            .field("bucket", &self.send.len())
            .field("plan", &self.plan)
            .field("overlap", &self.overlap)
            .field("reductions", &self.reductions)
            .finish()
    }
}

/// Values in front of the first piece's gradients: the shard's loss sum and correct count.
const STATS: usize = 2;

/// The smallest weight gradient summed as a piece of its own, and the size at which the bucket is
/// cut into a piece: below it, the per-call latency costs more than starting early hides
/// (PyTorch DDP's first bucket is 1 MB too).
pub const MIN_PIECE_BYTES: usize = 1 << 20;

/// What one all-reduce of a step sums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// Values `start..end` of the host bucket.
    Bucket { start: usize, end: usize },
    /// Layer `l`'s weight gradient, where backward wrote it.
    Weight(usize),
}

/// One all-reduce of the plan: what it sums, and the lowest layer backward must have done first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Planned {
    part: Part,
    lowest: usize,
}

/// The buffers of a weight gradient summed where backward wrote it. The gradient is sent from
/// its own buffer and the sum arrives in `summed`, which then takes its place in the network;
/// the sent buffer becomes the next step's `summed`. One buffer of the gradient's size beside
/// the network's: the network holds an empty stand-in while its gradient is being sent.
#[derive(Debug)]
struct Spare<Buf> {
    /// Empty between steps; during one, the sent gradient (the network holding this empty
    /// buffer meanwhile, which the layers below never read).
    sent: Buf,
    /// A buffer of the gradient's size that the sum arrives in.
    summed: Buf,
}

/// Where a layer's gradients lie in the bucket (the weight's `None` when it is a piece of its own).
#[derive(Clone, Copy, Debug, Default)]
struct Slots {
    weight: Option<usize>,
    bias: usize,
}

impl<E: Element, B: Backend<E>> GradientReducer<E, B> {
    /// A reducer for the gradients of `net` over `comm`, overlapping communication with
    /// backward; on the device when the backend has a communicator of its own
    /// ([`Backend::join_ranks`], which this sets up on every rank).
    pub fn new(comm: Box<dyn Collective>, net: &Network<E, B>) -> Result<Self> {
        let on_device = net.backend().join_ranks(comm.as_ref())?;
        let (arch, backend) = (net.architecture(), net.backend());
        // Host gradients are summed where they are; a plugin's or a device's are copied.
        let in_place = !on_device && net.gradients().first().is_some_and(|g| backend.host_view(&g.weight).is_some());
        let min_piece = MIN_PIECE_BYTES / std::mem::size_of::<E>();
        let (mut plan, mut slots, mut spares) = (Vec::new(), vec![Slots::default(); arch.layers()], Vec::new());
        let (mut start, mut end) = (0, STATS);
        for l in (0..arch.layers()).rev() {
            let (weights, biases) = (arch.weight_dims(l).len(), arch.weight_dims(l).rows);
            slots[l].bias = end;
            end += biases;
            if in_place && weights >= min_piece {
                // The bucket so far (this layer's bias included) goes first, then the weight.
                plan.push(Planned { part: Part::Bucket { start, end }, lowest: l });
                plan.push(Planned { part: Part::Weight(l), lowest: l });
                spares.push(Spare { sent: backend.alloc(0)?, summed: backend.alloc(weights)? });
                start = end;
            } else {
                slots[l].weight = Some(end);
                end += weights;
                if end - start >= min_piece || l == 0 {
                    plan.push(Planned { part: Part::Bucket { start, end }, lowest: l });
                    start = end;
                }
            }
        }
        let total = if on_device { STATS } else { end };
        Ok(GradientReducer {
            comm,
            send: memory::filled(total, E::zero(), "the gradient bucket")?,
            recv: memory::filled(total, E::zero(), "the gradient bucket")?,
            sizes: arch.sizes.clone(),
            plan,
            slots,
            spares,
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

    /// Whether each piece's all-reduce starts as soon as backward has produced its gradients
    /// (the default) or all of them after backward (to measure what the overlap hides). Through
    /// the host the result is the same either way, bit for bit (the same all-reduces); on a
    /// device (NCCL) one group call may sum in another order than a call per layer, except
    /// with two ranks.
    pub fn set_overlap(&mut self, on: bool) {
        self.overlap = on;
    }

    /// Equations 3 and 4 on this rank's shard, with the gradients summed over the ranks as they
    /// come: the gradients of `net` become the global batch's, `g = Σ_r (n_r/N) g_r` with
    /// `N = global_rows` (each layer's gradient computed already scaled by this rank's share),
    /// for this rank's shard of `local_rows` rows of `x` whose forward pass and output error
    /// just ran and scored `local` (`None` for an empty shard: with 0 rows every gradient is
    /// zero). Returns the global batch's mean loss and correct count, the same on every rank.
    pub fn backward_and_reduce(
        &mut self,
        net: &mut Network<E, B>,
        x: &B::Buf,
        local: Option<Score>,
        local_rows: usize,
        global_rows: usize,
    ) -> Result<Score> {
        if net.architecture().sizes != self.sizes {
            return Err(Error::shape(
                "all_reduce",
                format!(
                    "the gradient reducer was made for layers {:?}, not {:?}",
                    self.sizes,
                    net.architecture().sizes
                ),
            ));
        }
        let share = E::of(local_rows as f64) / E::of(global_rows as f64);
        let stats = local.map_or([E::zero(); STATS], |s| [E::of(s.loss * local_rows as f64), E::of(s.correct as f64)]);
        net.reserve(local_rows.max(1))?;
        if self.on_device {
            return self.backward_and_reduce_on_device(net, x, stats, local_rows, share, global_rows);
        }
        let started = std::time::Instant::now();
        self.send[..STATS].copy_from_slice(&stats);
        let layers = net.architecture().layers();
        let mut step = Step {
            x,
            rows: local_rows,
            share,
            next_layer: layers,
            slots: &self.slots,
            send: &mut self.send[..],
            recv: &mut self.recv[..],
            handed: 0,
            spares: self.spares.iter_mut(),
            computing: 0.0,
        };
        if !self.overlap {
            step.backward_down_to(net, 0)?;
        }
        let plan = &self.plan;
        let summed = E::sum_pieces_over(self.comm.as_ref(), plan.len(), &mut |i| {
            step.hand_over(net, *plan.get(i).ok_or_else(|| misplaced(i))?)
        });
        let (computing, unsent) = (step.computing, step.spares.len());
        let sent = self.spares.len() - unsent;
        let (backend, grads) = net.gradients_mut();
        let own = own_pieces(grads, &self.slots, &mut self.spares).take(sent);
        if let Err(e) = summed {
            // The gradients being sent go back into the network, unsummed.
            own.for_each(|(g, spare)| std::mem::swap(g, &mut spare.sent));
            return Err(e);
        }
        // The large weights' sums go into the network (in place of the empty stand-ins), and
        // each sent gradient becomes the next step's buffer for the sum; nothing here can fail.
        for (g, spare) in own {
            std::mem::swap(g, &mut spare.summed);
            std::mem::swap(&mut spare.summed, &mut spare.sent);
        }
        let waited = started.elapsed().as_secs_f64() - computing;
        self.reductions = (self.reductions.0 + 1, self.reductions.1 + waited.max(0.0));
        // The bucket's sums copied into the network.
        for (g, slots) in grads.iter_mut().zip(&self.slots) {
            for (at, t) in [(slots.weight, &mut g.weight), (Some(slots.bias), &mut g.bias)] {
                let Some(at) = at else { continue };
                let src = self.recv.get(at..at + backend.len(t)).ok_or_else(|| misplaced(at))?;
                match backend.host_view_mut(t) {
                    Some(host) => copy(host, src)?,
                    None => backend.write(src, t)?,
                }
            }
        }
        Ok(self.global_score(global_rows))
    }

    /// [`GradientReducer::backward_and_reduce`] on a backend that sums on its device: the
    /// device's all-reduce of every gradient (in place, no host copy) gives `Σ_r (n_r/N) g_r = g`;
    /// an empty shard contributes zeros. With overlap each layer's sum starts as soon as backward
    /// has produced its gradients and runs on the device beside the layers below (CUDA: NCCL on
    /// a stream of its own); without, one group call after backward. Either way the backend's
    /// later work (the update) waits for all of them. The scores go through the host.
    fn backward_and_reduce_on_device(
        &mut self,
        net: &mut Network<E, B>,
        x: &B::Buf,
        stats: [E; STATS],
        local_rows: usize,
        share: E,
        global_rows: usize,
    ) -> Result<Score> {
        let layers = net.architecture().layers();
        let queued = if self.overlap {
            (0..layers).rev().try_for_each(|l| {
                backward_layer(net, x, local_rows, l, share)?;
                start_device_sums(net, l..l + 1)
            })
        } else {
            (0..layers)
                .rev()
                .try_for_each(|l| backward_layer(net, x, local_rows, l, share))
                .and_then(|()| start_device_sums(net, 0..layers))
        };
        let waiting = std::time::Instant::now();
        // Also after an error: no later work may touch a buffer still being summed.
        let waited = net.backend().wait_for_sums();
        queued.and(waited)?;
        self.send.copy_from_slice(&stats);
        E::sum_over(self.comm.as_ref(), &self.send, &mut self.recv)?;
        self.reductions = (self.reductions.0 + 1, self.reductions.1 + waiting.elapsed().as_secs_f64());
        Ok(self.global_score(global_rows))
    }

    /// The global batch's mean loss and correct count, from the summed scores in front of the
    /// bucket.
    fn global_score(&self, global_rows: usize) -> Score {
        let loss = (self.recv[0] / E::of(global_rows as f64)).f64();
        Score { loss, correct: self.recv[1].f64().round() as usize, predictions: 0 }
    }

    /// The gradient all-reduces done so far and the seconds spent in them that backward's
    /// computation did not hide (with overlap off: the whole all-reduce). On a device that sums
    /// by itself, the host's time in the calls only (the device's work runs asynchronously).
    pub fn reductions(&self) -> (u64, f64) {
        self.reductions
    }

    /// Puts rank 0's parameters into every rank's network.
    pub fn broadcast_parameters(&mut self, net: &mut Network<E, B>) -> Result<()> {
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

/// Equations 3 and 4 for layer `l` on `rows` rows of `x`: its error `δˡ` from layer `l + 1`'s
/// (the top layer's is the output error), then `∂Wˡ, ∂bˡ` scaled by `share` (zeros for 0 rows).
fn backward_layer<E: Element, B: Backend<E>>(
    net: &mut Network<E, B>,
    x: &B::Buf,
    rows: usize,
    l: usize,
    share: E,
) -> Result<()> {
    if l + 1 < net.architecture().layers() && rows > 0 {
        net.propagate_error(rows, l + 1)?;
    }
    net.layer_gradient(x, rows, l, share, false)
}

/// Starts the device's sum over the ranks of the gradients of `layers`, in one group call
/// ([`Backend::sum_over_ranks`]); one layer's (each step's calls with overlap) allocates nothing.
fn start_device_sums<E: Element, B: Backend<E>>(net: &mut Network<E, B>, layers: Range<usize>) -> Result<()> {
    let (backend, grads) = net.gradients_mut();
    match grads.get_mut(layers.clone()) {
        Some([g]) => backend.sum_over_ranks(&mut [&mut g.weight, &mut g.bias]),
        Some(tensors) => {
            let mut bufs: Vec<&mut B::Buf> = tensors.iter_mut().flat_map(|t| [&mut t.weight, &mut t.bias]).collect();
            backend.sum_over_ranks(&mut bufs)
        }
        None => Err(Error::shape("all_reduce", format!("the network has no layers {layers:?}"))),
    }
}

/// The weight gradients summed where backward wrote them, each with its spare, from the top
/// layer down (the order the spares were made and are handed over in).
fn own_pieces<'a, Buf>(
    grads: &'a mut [Tensors<Buf>],
    slots: &'a [Slots],
    spares: &'a mut [Spare<Buf>],
) -> impl Iterator<Item = (&'a mut Buf, &'a mut Spare<Buf>)> {
    grads.iter_mut().zip(slots).rev().filter(|(_, s)| s.weight.is_none()).map(|(g, _)| &mut g.weight).zip(spares)
}

/// `dst ← src`, an error if a backend's host view has another length than its buffer.
fn copy<E: Copy>(dst: &mut [E], src: &[E]) -> Result<()> {
    if dst.len() != src.len() {
        return Err(Error::shape(
            "all_reduce",
            format!("a host view of {} values for {} gradients", src.len(), dst.len()),
        ));
    }
    dst.copy_from_slice(src);
    Ok(())
}

/// An offset of the bucket outside the part the plan gives it (a bug of the plan, not of the
/// user's input).
fn misplaced(at: usize) -> Error {
    Error::shape("all_reduce", format!("bucket offset {at} lies outside the plan's free part"))
}

/// One step of a [`GradientReducer`] under way: how far backward has gone, and the buffers not
/// yet handed over to the all-reduce (the bucket from `handed` on, the spares left).
struct Step<'a, E: Element, B: Backend<E>> {
    x: &'a B::Buf,
    rows: usize,
    share: E,
    /// Layers from this one up are done.
    next_layer: usize,
    slots: &'a [Slots],
    send: &'a mut [E],
    recv: &'a mut [E],
    /// Bucket values before `send` and `recv`, already handed over.
    handed: usize,
    spares: std::slice::IterMut<'a, Spare<B::Buf>>,
    /// Seconds spent in backward's computation.
    computing: f64,
}

impl<'a, E: Element, B: Backend<E>> Step<'a, E, B> {
    /// Backward down to layer `lowest`, each layer's small gradients copied into the bucket.
    fn backward_down_to(&mut self, net: &mut Network<E, B>, lowest: usize) -> Result<()> {
        let started = std::time::Instant::now();
        while self.next_layer > lowest {
            let l = self.next_layer - 1;
            backward_layer(net, self.x, self.rows, l, self.share)?;
            let (backend, g, slots) = (net.backend(), &net.gradients()[l], self.slots[l]);
            for (at, t) in [(slots.weight, &g.weight), (Some(slots.bias), &g.bias)] {
                let Some(at) = at else { continue };
                let len = backend.len(t);
                let dst = at.checked_sub(self.handed).and_then(|i| self.send.get_mut(i..i + len));
                let dst = dst.ok_or_else(|| misplaced(at))?;
                match backend.host_view(t) {
                    Some(host) => copy(dst, host)?,
                    None => backend.download(t, dst)?,
                }
            }
            self.next_layer = l;
        }
        self.computing += started.elapsed().as_secs_f64();
        Ok(())
    }

    /// Piece `planned` of the plan, after the backward it needs.
    fn hand_over(&mut self, net: &mut Network<E, B>, planned: Planned) -> Result<Piece<'a, E>> {
        self.backward_down_to(net, planned.lowest)?;
        match planned.part {
            Part::Bucket { start, end } => {
                let len = end.checked_sub(start).filter(|_| start == self.handed).ok_or_else(|| misplaced(start))?;
                let (send, rest) =
                    std::mem::take(&mut self.send).split_at_mut_checked(len).ok_or_else(|| misplaced(end))?;
                self.send = rest;
                let (recv, rest) =
                    std::mem::take(&mut self.recv).split_at_mut_checked(len).ok_or_else(|| misplaced(end))?;
                self.recv = rest;
                self.handed = end;
                Ok(Piece { send, recv })
            }
            Part::Weight(l) => {
                let Spare { sent, summed } = self.spares.next().ok_or_else(|| misplaced(l))?;
                let (backend, grads) = net.gradients_mut();
                // The gradient backward wrote goes to the all-reduce; the network keeps the empty
                // stand-in (replaced by the sum afterwards), which the layers below never read.
                std::mem::swap(&mut grads[l].weight, sent);
                let sent: &'a B::Buf = sent;
                let no_host = || Error::invalid("all_reduce", "the backend's gradient buffers are not in host memory");
                let send = backend.host_view(sent).ok_or_else(no_host)?;
                let recv = backend.host_view_mut(summed).ok_or_else(no_host)?;
                Ok(Piece { send, recv })
            }
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
    reducer: &mut GradientReducer<E, B>,
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
    use std::sync::atomic::Ordering;

    /// A network of `sizes` and a batch of 4 rows.
    fn problem(sizes: &[usize]) -> (Architecture, Vec<f64>, Vec<f64>) {
        let arch = Architecture::new(sizes, Activation::Tanh, Loss::SoftmaxCe).unwrap();
        let x: Vec<f64> = (0..4 * sizes[0]).map(|i| (i as f64 * 0.37).sin()).collect();
        let y: Vec<f64> = (0..4).flat_map(|r| if r % 2 == 0 { [1.0, 0.0] } else { [0.0, 1.0] }).collect();
        (arch, x, y)
    }

    /// `ranks` ranks that hold the same shard: every sum is `ranks` times this rank's values.
    /// Records the length of each piece, in the order they come; the piece numbered `fail_at`
    /// (from 0, counted over the steps) fails.
    #[derive(Default)]
    struct Copies {
        ranks: usize,
        pieces: std::cell::RefCell<Vec<usize>>,
        fail_at: std::cell::Cell<Option<usize>>,
    }

    /// Two such ranks.
    fn twin() -> Copies {
        Copies { ranks: 2, ..Default::default() }
    }

    impl Collective for Copies {
        fn rank(&self) -> usize {
            0
        }
        fn size(&self) -> usize {
            self.ranks
        }
        fn sum_f32(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
            recv.iter_mut().zip(send).for_each(|(r, &s)| *r = self.ranks as f32 * s);
            Ok(())
        }
        fn sum_f64(&self, send: &[f64], recv: &mut [f64]) -> Result<()> {
            recv.iter_mut().zip(send).for_each(|(r, &s)| *r = self.ranks as f64 * s);
            Ok(())
        }
        fn sum_pieces_f64<'a>(&self, count: usize, next: NextPiece<'_, 'a, f64>) -> Result<()> {
            sum_each(count, next, |s, r| {
                if self.fail_at.get() == Some(self.pieces.borrow().len()) {
                    return Err(Error::backend("copies", "the all-reduce failed"));
                }
                self.pieces.borrow_mut().push(s.len());
                self.sum_f64(s, r)
            })
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
        // 3-5-4-2: one piece (the scores and 10 + 24 + 20 gradients). 3-600-500-2 in f64: the
        // scores, ∂b³, ∂W³ and ∂b² (1,504 values), then ∂W² (300,000 values, ≥ 1 MiB) where
        // backward wrote it, then layer 1's 2,400 values through the bucket.
        for (sizes, pieces) in
            [(&[3, 5, 4, 2][..], vec![2 + 10 + 24 + 20]), (&[3, 600, 500, 2], vec![1_504, 300_000, 2_400])]
        {
            let (arch, x, y) = problem(sizes);
            let rows = 4;
            let mut alone = Network::new(Reference, arch.clone(), Init::Auto, 5).unwrap();
            let score = alone.compute_gradients(&x, &y).unwrap();
            let expected = alone.gradients_to_host().unwrap();
            let mut net = Network::new(Reference, arch.clone(), Init::Auto, 5).unwrap();
            let twin = std::rc::Rc::new(twin());
            let mut reducer = GradientReducer::new(Box::new(twin.clone()), &net).unwrap();
            let (xb, yb) = (net.backend().upload(&x).unwrap(), net.backend().upload(&y).unwrap());
            // Three steps each way: the swapped buffers rotate.
            for (i, overlap) in [true, false, true, false, true, false].into_iter().enumerate() {
                reducer.set_overlap(overlap);
                net.forward(&xb, rows, Mode::Eval).unwrap();
                net.output_error(&yb, rows).unwrap();
                let local = net.score().unwrap();
                // Twice this shard's rows summed = the global batch of 2 × rows.
                let global = reducer.backward_and_reduce(&mut net, &xb, Some(local), rows, 2 * rows).unwrap();
                // Each rank's share is exactly ½: (½ g) · 2 = g, bit for bit.
                assert_eq!(net.gradients_to_host().unwrap(), expected, "{sizes:?} step {i}, overlap {overlap}");
                assert!((global.loss - score.loss).abs() <= 1e-15 * score.loss, "{} vs {}", global.loss, score.loss);
                assert_eq!(global.correct, 2 * score.correct);
                assert_eq!(
                    std::mem::take(&mut *twin.pieces.borrow_mut()),
                    pieces,
                    "{sizes:?}: pieces from the top layer down"
                );
                assert_eq!(reducer.reductions().0, i as u64 + 1);
            }
            // One buffer of ∂W²'s size beside the network's for the sum (the sent one's stand-in
            // is empty).
            let spare: usize = reducer.spares.iter().map(|s| s.sent.len() + s.summed.len()).sum();
            assert_eq!(spare, if pieces.len() == 3 { 300_000 } else { 0 }, "{sizes:?}");
            // An empty shard contributes zeros, through the bucket and in place alike.
            reducer.backward_and_reduce(&mut net, &xb, None, 0, 2 * rows).unwrap();
            assert!(net.gradients_to_host().unwrap().iter().flatten().all(|&g| g == 0.0), "{sizes:?}");
            // A reducer made for another network is an error, not a panic or a wrong sum.
            let other = Architecture::new(&[3, 7, 2], Activation::Tanh, Loss::SoftmaxCe).unwrap();
            let mut other = Network::new(Reference, other, Init::Auto, 5).unwrap();
            let err = reducer.backward_and_reduce(&mut other, &xb, None, 0, 2 * rows).unwrap_err();
            assert!(err.to_string().contains("made for layers"), "{err}");
        }
    }

    #[test]
    fn a_failed_all_reduce_leaves_every_gradient_in_the_network() {
        // 3-600-500-2: ∂W² (tensor 2) is sent from its own buffer as the second of three
        // pieces. Whether its own sum fails (piece 1) or the next one does (piece 2), with or
        // without overlap, the network gets its unsummed ∂W² back, not the empty stand-in.
        let (arch, x, y) = problem(&[3, 600, 500, 2]);
        let rows = 4;
        let mut alone = Network::new(Reference, arch.clone(), Init::Auto, 5).unwrap();
        alone.compute_gradients(&x, &y).unwrap();
        let expected = alone.gradients_to_host().unwrap();
        for (fail_at, overlap) in [(1, true), (1, false), (2, true), (2, false)] {
            let mut net = Network::new(Reference, arch.clone(), Init::Auto, 5).unwrap();
            let twin = std::rc::Rc::new(twin());
            twin.fail_at.set(Some(fail_at));
            let mut reducer = GradientReducer::new(Box::new(twin.clone()), &net).unwrap();
            reducer.set_overlap(overlap);
            let (xb, yb) = (net.backend().upload(&x).unwrap(), net.backend().upload(&y).unwrap());
            let mut step = |net: &mut Network<f64, Reference>| {
                net.forward(&xb, rows, Mode::Eval).unwrap();
                net.output_error(&yb, rows).unwrap();
                let local = net.score().unwrap();
                reducer.backward_and_reduce(net, &xb, Some(local), rows, 2 * rows)
            };
            let err = step(&mut net).unwrap_err();
            assert!(err.to_string().contains("the all-reduce failed"), "{err}");
            // This rank's share: exactly ½ of the global gradient.
            let half: Vec<f64> = expected[2].iter().map(|g| g / 2.0).collect();
            assert_eq!(net.gradients_to_host().unwrap()[2], half, "piece {fail_at} failed, overlap {overlap}");
            // The next step sums as if nothing had happened (after a failure at piece 1, no sum
            // of ∂W² had arrived yet: a step that skipped it would leave zeros).
            twin.fail_at.set(None);
            step(&mut net).unwrap();
            assert_eq!(net.gradients_to_host().unwrap(), expected, "piece {fail_at} failed, overlap {overlap}");
        }
    }

    /// The reference backend with a communicator of its own, of two ranks holding the same
    /// shard: `sum_over_ranks` doubles every buffer (the sum logged as number `fail_at` fails).
    /// Logs its GEMMs, sums (the buffers' lengths) and waits, in order.
    #[derive(Default)]
    struct OnDevice {
        log: std::sync::Mutex<Vec<String>>,
        fail_at: std::sync::atomic::AtomicUsize,
    }

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
            self.log.lock().unwrap().push("gemm".into());
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
            let mut log = self.log.lock().unwrap();
            log.push(format!("sum {:?}", bufs.iter().map(|b| b.len()).collect::<Vec<_>>()));
            if log.iter().filter(|c| c.starts_with("sum")).count() == self.fail_at.load(Ordering::Relaxed) {
                return Err(Error::backend("on-device", "the device's sum failed"));
            }
            bufs.iter_mut().for_each(|b| b.iter_mut().for_each(|v| *v *= 2.0));
            Ok(())
        }
        fn wait_for_sums(&self) -> Result<()> {
            self.log.lock().unwrap().push("wait".into());
            Ok(())
        }
    }

    #[test]
    fn a_backend_with_its_own_communicator_sums_on_its_device() {
        let (arch, x, y) = problem(&[3, 5, 4, 2]);
        let rows = 4;
        let mut alone = Network::new(Reference, arch.clone(), Init::Auto, 5).unwrap();
        let score = alone.compute_gradients(&x, &y).unwrap();
        let mut net = Network::new(OnDevice::default(), arch.clone(), Init::Auto, 5).unwrap();
        let mut reducer = GradientReducer::new(Box::new(twin()), &net).unwrap();
        assert_eq!(reducer.send.len(), STATS, "no host bucket for the gradients");
        let (xb, yb) = (net.backend().upload(&x).unwrap(), net.backend().upload(&y).unwrap());
        // With overlap each layer's sum starts right after its gradient GEMM, before the GEMMs
        // of the layers below (δˡ⁻¹, then ∂Wˡ⁻¹); without, one group call after backward. The
        // wait comes last either way.
        let overlapped = ["gemm", "sum [8, 2]", "gemm", "gemm", "sum [20, 4]", "gemm", "gemm", "sum [15, 5]", "wait"];
        let after = ["gemm", "gemm", "gemm", "gemm", "gemm", "sum [15, 5, 20, 4, 8, 2]", "wait"];
        for (overlap, calls) in [(true, &overlapped[..]), (false, &after[..])] {
            reducer.set_overlap(overlap);
            net.forward(&xb, rows, Mode::Eval).unwrap();
            net.output_error(&yb, rows).unwrap();
            let local = net.score().unwrap();
            net.backend().log.lock().unwrap().clear();
            let global = reducer.backward_and_reduce(&mut net, &xb, Some(local), rows, 2 * rows).unwrap();
            assert_eq!(*net.backend().log.lock().unwrap(), calls, "overlap {overlap}");
            // Each rank's (n_r/N) g_r = g/2, doubled by the device sum: exactly g.
            assert_eq!(net.gradients_to_host().unwrap(), alone.gradients_to_host().unwrap(), "overlap {overlap}");
            assert!((global.loss - score.loss).abs() <= 1e-15 * score.loss);
            assert_eq!(global.correct, 2 * score.correct);
        }
        // An empty shard contributes zeros (0 rows: every gradient is zero).
        reducer.backward_and_reduce(&mut net, &xb, None, 0, 2 * rows).unwrap();
        assert!(net.gradients_to_host().unwrap().iter().flatten().all(|&g| g == 0.0));
        // A sum that fails stops backward, and the sums already started are still waited for.
        reducer.set_overlap(true);
        net.backend().fail_at.store(2, Ordering::Relaxed);
        net.backend().log.lock().unwrap().clear();
        let err = reducer.backward_and_reduce(&mut net, &xb, None, 0, 2 * rows).unwrap_err();
        assert!(err.to_string().contains("the device's sum failed"), "{err}");
        assert_eq!(*net.backend().log.lock().unwrap(), ["gemm", "sum [8, 2]", "gemm", "sum [20, 4]", "wait"]);
    }

    #[test]
    fn gradients_outside_host_memory_go_through_the_bucket() {
        // `OnDevice` joins only worlds of two and has no host view: among three ranks its
        // gradients are downloaded into the bucket and written back, in buckets of whole layers
        // (the scores and layers 3 and 2, then layer 1).
        let (arch, x, y) = problem(&[3, 600, 500, 2]);
        let rows = 4;
        let mut alone = Network::new(Reference, arch.clone(), Init::Auto, 5).unwrap();
        let score = alone.compute_gradients(&x, &y).unwrap();
        let mut net = Network::new(OnDevice::default(), arch, Init::Auto, 5).unwrap();
        let copies = std::rc::Rc::new(Copies { ranks: 3, ..Default::default() });
        let mut reducer = GradientReducer::new(Box::new(copies.clone()), &net).unwrap();
        let (xb, yb) = (net.backend().upload(&x).unwrap(), net.backend().upload(&y).unwrap());
        net.forward(&xb, rows, Mode::Eval).unwrap();
        net.output_error(&yb, rows).unwrap();
        let local = net.score().unwrap();
        let global = reducer.backward_and_reduce(&mut net, &xb, Some(local), rows, 3 * rows).unwrap();
        // Three shares of ⅓ g: g to rounding.
        for (got, want) in
            net.gradients_to_host().unwrap().iter().flatten().zip(alone.gradients_to_host().unwrap().iter().flatten())
        {
            assert!((got - want).abs() <= 1e-15 * want.abs().max(1e-3), "{got} vs {want}");
        }
        assert_eq!(*copies.pieces.borrow(), [2 + 2 + 1_000 + 500 + 300_000, 600 + 1_800]);
        assert_eq!(global.correct, 3 * score.correct);
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
