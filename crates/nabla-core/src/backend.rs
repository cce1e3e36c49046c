//! The [`Backend`] trait: the dense operations backpropagation is made of.
//!
//! Layout: matrices are row-major with **one row per sample**. A layer's weights `W` have shape
//! `(out, in)` (PyTorch's `nn.Linear` layout) and its bias `b` has `out` entries, so a batch of
//! `n` inputs `A` (`n × in`) gives `Z = A Wᵀ ⊕ b` (`n × out`).
//!
//! Buffers are owned by the caller and may be longer than an operation needs: every operation
//! reads and writes the *first* `rows·cols` (or `len`) elements. A network sizes its workspace
//! for its largest batch and runs smaller batches in the same buffers.

use std::fmt;

use crate::activation::Activation;
use crate::distributed::Collective;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::loss::Loss;
use crate::update::Update;

/// Whether a GEMM operand is used as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trans {
    /// Use the operand as stored.
    No,
    /// Use the operand's transpose (no copy is made).
    Yes,
}

/// Which implementation a CPU backend uses for the GEMMs too large for its small-product kernel
/// (`--gemm` on the command line).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GemmProvider {
    /// Time both on the first product of each shape (transposes, sizes, whether β = 0, element
    /// type) and keep the faster for that shape (nabla's only when at least 5% faster).
    #[default]
    Auto,
    /// OpenBLAS's `cblas_?gemm`.
    OpenBlas,
    /// nabla's packed kernels (independent of OpenBLAS's kernel choice).
    Native,
}

impl GemmProvider {
    /// The names `--gemm` accepts, in the order of the variants.
    pub const NAMES: [&'static str; 3] = ["auto", "openblas", "native"];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            GemmProvider::Auto => Self::NAMES[0],
            GemmProvider::OpenBlas => Self::NAMES[1],
            GemmProvider::Native => Self::NAMES[2],
        }
    }
}

impl std::str::FromStr for GemmProvider {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<GemmProvider> {
        [GemmProvider::Auto, GemmProvider::OpenBlas, GemmProvider::Native]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| crate::Error::invalid("gemm", format!("`{s}`; accepted: {}", Self::NAMES.join(", "))))
    }
}

impl std::fmt::Display for GemmProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The shape of `C ← α·op(A)·op(B) + β·C`: `op(A)` is `m × k`, `op(B)` is `k × n`, `C` is `m × n`.
/// `A` is stored `m × k` (or `k × m` when transposed), `B` `k × n` (or `n × k`), all row-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Gemm {
    /// Whether `A` is transposed.
    pub ta: Trans,
    /// Whether `B` is transposed.
    pub tb: Trans,
    /// Rows of `op(A)` and `C`.
    pub m: usize,
    /// Columns of `op(B)` and `C`.
    pub n: usize,
    /// Columns of `op(A)`, rows of `op(B)`.
    pub k: usize,
}

impl Gemm {
    /// The stored shape `(rows, cols)` of `A`.
    pub fn a_dims(&self) -> Dims {
        match self.ta {
            Trans::No => Dims::new(self.m, self.k),
            Trans::Yes => Dims::new(self.k, self.m),
        }
    }

    /// The stored shape `(rows, cols)` of `B`.
    pub fn b_dims(&self) -> Dims {
        match self.tb {
            Trans::No => Dims::new(self.k, self.n),
            Trans::Yes => Dims::new(self.n, self.k),
        }
    }

    /// The shape of `C`.
    pub fn c_dims(&self) -> Dims {
        Dims::new(self.m, self.n)
    }

    /// Floating-point operations of one product: `2mnk`.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }
}

/// The shape of a row-major matrix: `rows` samples of `cols` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dims {
    /// Rows (samples).
    pub rows: usize,
    /// Columns (values per sample).
    pub cols: usize,
}

impl Dims {
    /// `rows × cols`.
    pub const fn new(rows: usize, cols: usize) -> Dims {
        Dims { rows, cols }
    }

    /// The number of elements, `rows · cols`.
    pub const fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// Whether the matrix has no elements.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for Dims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}×{}", self.rows, self.cols)
    }
}

/// The dense operations of backpropagation, on buffers that live where the backend computes.
///
/// The driver ([`crate::Network`]) is written once against this trait. A backend implements it
/// for `f32` and `f64`. Operations write into caller-owned buffers and validate their sizes,
/// returning [`crate::Error::Shape`] rather than panicking.
pub trait Backend<E: Element>: Send + Sync {
    /// A buffer of `E` resident on the backend's device.
    type Buf: Send + Sync;

    /// A short name, e.g. `openblas` or `cuda:0`.
    fn name(&self) -> String;

    /// A zero-filled buffer of `len` elements.
    fn alloc(&self, len: usize) -> Result<Self::Buf>;

    /// The number of elements `buf` holds.
    fn len(&self, buf: &Self::Buf) -> usize;

    /// Copies host data into the first `host.len()` elements of `buf`.
    fn write(&self, host: &[E], buf: &mut Self::Buf) -> Result<()>;

    /// Copies the first `host.len()` elements of `buf` to the host.
    fn download(&self, buf: &Self::Buf, host: &mut [E]) -> Result<()>;

    /// A new buffer holding a copy of `host`.
    fn upload(&self, host: &[E]) -> Result<Self::Buf> {
        let mut buf = self.alloc(host.len())?;
        self.write(host, &mut buf)?;
        Ok(buf)
    }

    /// The buffer's memory as a host slice, for backends whose buffers are host memory (the CPU
    /// backends); `None` (the default) for device memory. Lets host-side passes over a buffer,
    /// such as a data-parallel gradient reduction, read it in place instead of copying it out.
    fn host_view<'a>(&self, _buf: &'a Self::Buf) -> Option<&'a [E]> {
        None
    }

    /// [`Backend::host_view`], writable.
    fn host_view_mut<'a>(&self, _buf: &'a mut Self::Buf) -> Option<&'a mut [E]> {
        None
    }

    /// Data-parallel runs: sets up this backend's own communicator over the ranks of `comm`'s
    /// job (NCCL on CUDA, its unique id broadcast through `comm`) and returns whether it has one
    /// — then [`Backend::sum_over_ranks`] sums gradients on the device. The default has none
    /// (`false`): the gradients are summed through the host.
    fn join_ranks(&self, _comm: &dyn Collective) -> Result<bool> {
        Ok(false)
    }

    /// Starts `bufs[i] ← Σ_ranks bufs[i]`, in place on the device, every buffer in one group
    /// call, over the communicator [`Backend::join_ranks`] set up. The sums may run beside the
    /// backend's later work (CUDA: NCCL on a stream of its own, after the work queued so far), so
    /// that work must leave `bufs` alone until [`Backend::wait_for_sums`].
    fn sum_over_ranks(&self, _bufs: &mut [&mut Self::Buf]) -> Result<()> {
        Err(Error::Unsupported { backend: self.name(), op: "sum_over_ranks (no communicator of its own)".into() })
    }

    /// Makes the backend's work queued from now on wait for every sum [`Backend::sum_over_ranks`]
    /// started (without blocking the host where the device can wait by itself). The default has
    /// nothing to wait for.
    fn wait_for_sums(&self) -> Result<()> {
        Ok(())
    }

    /// Waits until all queued work is done (a no-op on synchronous backends).
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    /// `C ← α·op(A)·op(B) + β·C` (row-major; transposes are never copied).
    fn gemm(&self, s: Gemm, alpha: E, a: &Self::Buf, b: &Self::Buf, beta: E, c: &mut Self::Buf) -> Result<()>;

    /// Copy: `dst ← src` over `len` elements.
    fn copy(&self, len: usize, src: &Self::Buf, dst: &mut Self::Buf) -> Result<()> {
        self.activate(Activation::Identity, Dims::new(1, len), src, dst)
    }

    /// Hadamard product in place: `y ← x ⊙ y` over `len` elements.
    fn hadamard(&self, len: usize, x: &Self::Buf, y: &mut Self::Buf) -> Result<()>;

    /// Bias broadcast: `z[r, c] ← z[r, c] + b[c]` for every row `r`.
    fn bias_add(&self, d: Dims, bias: &Self::Buf, z: &mut Self::Buf) -> Result<()>;

    /// Activation: `a ← σ(z)` (softmax row by row).
    fn activate(&self, f: Activation, d: Dims, z: &Self::Buf, a: &mut Self::Buf) -> Result<()>;

    /// Forward step of a layer after its GEMM: `z ← z ⊕ b`, then `a ← σ(z)`.
    /// Backends override this to do both in one pass.
    fn bias_add_activate(
        &self,
        f: Activation,
        d: Dims,
        bias: &Self::Buf,
        z: &mut Self::Buf,
        a: &mut Self::Buf,
    ) -> Result<()> {
        self.bias_add(d, bias, z)?;
        self.activate(f, d, z, a)
    }

    /// Activation derivative fused with the Hadamard product, in place:
    /// `δ ← δ ⊙ σ'(z)` (for softmax, the row-wise Jacobian product `δ ← a ⊙ (δ − δ·a)`).
    /// Both `z` and `a = σ(z)` are given, so no derivative is guessed from the output alone.
    fn activate_grad(&self, f: Activation, d: Dims, z: &Self::Buf, a: &Self::Buf, delta: &mut Self::Buf) -> Result<()>;

    /// Column sums: `out[c] ← α Σ_r x[r, c] + β out[c]`. With `α = 1, β = 0` the bias gradient
    /// `∂C/∂b = Σ_samples δ`; with `α = −η, β = 1` the SGD bias update. With `β = 0` the old
    /// contents of `out` are ignored.
    fn sum_rows(&self, d: Dims, alpha: E, x: &Self::Buf, beta: E, out: &mut Self::Buf) -> Result<()>;

    /// Loss and output error of a batch. `out` holds the logits `zᴸ` for the fused losses
    /// (`bce`, `softmax-ce`) and the activations `aᴸ` otherwise; `grad` receives `δᴸ` for the
    /// fused losses and `∇ₐC` otherwise (see [`crate::loss`]). `stats[0]` receives the batch's
    /// mean loss and `stats[1]` the number of correct predictions (argmax for several outputs,
    /// threshold for one, per element for `bce`). Only these two scalars ever need to leave
    /// the device during training.
    fn loss(
        &self,
        l: Loss,
        d: Dims,
        out: &Self::Buf,
        target: &Self::Buf,
        grad: &mut Self::Buf,
        stats: &mut Self::Buf,
    ) -> Result<()>;

    /// One optimizer step on one parameter tensor of `len` elements: `w ← rule(w, g, state)`.
    /// `state` holds [`crate::Rule::state_count`] buffers of `len` elements.
    fn update(
        &self,
        u: &Update,
        len: usize,
        w: &mut Self::Buf,
        g: &Self::Buf,
        state: &mut [&mut Self::Buf],
    ) -> Result<()>;

    /// Inverted-dropout mask: `mask[i] ← 0` with probability `rate`, else `1/(1 − rate)`,
    /// drawn from [`crate::dropout::keep`]`(seed, first + i)` so every backend draws the same
    /// mask. `first` is the position of the buffer's first element in the stream: 0 for a whole
    /// batch, the shard's first element when data-parallel ranks each hold part of a batch (so
    /// that they draw exactly the mask one process would).
    fn dropout_mask(&self, len: usize, rate: f64, seed: u64, first: u64, mask: &mut Self::Buf) -> Result<()>;
}

/// Lends the (at most two) buffers of `state` to `f` as a slice of references, the form
/// [`Backend::update`] takes, without allocating.
pub fn with_state_refs<Buf, T>(state: &mut [Buf], f: impl FnOnce(&mut [&mut Buf]) -> Result<T>) -> Result<T> {
    match state {
        [] => f(&mut []),
        [a] => f(&mut [a]),
        [a, b] => f(&mut [a, b]),
        _ => Err(crate::Error::shape("update", format!("{} state buffers given; rules keep at most 2", state.len()))),
    }
}

/// The identity of one backend instance, carried by every buffer it allocates, so that an
/// operation can refuse a buffer made by another instance (another plugin, another device,
/// another stream) with [`crate::Error::ForeignBuffer`] instead of reading a handle it does not
/// own. Two instances never share an identity; clones of one instance (which share its device
/// state) do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Owner(u64);

impl Owner {
    /// A fresh identity, different from every other one made in this process.
    pub fn new() -> Owner {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Owner(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }

    /// Checks that every operand of `op` was made by this owner; `backend` gives the backend's
    /// name for the error (called only on failure, so a passing check allocates nothing).
    pub fn check(self, backend: impl FnOnce() -> String, op: &'static str, operands: &[(&str, Owner)]) -> Result<()> {
        match operands.iter().find(|(_, o)| *o != self) {
            None => Ok(()),
            Some((name, _)) => {
                Err(crate::Error::ForeignBuffer { backend: backend(), op, operand: (*name).to_string() })
            }
        }
    }
}

impl Default for Owner {
    fn default() -> Self {
        Owner::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_unique_and_a_foreign_operand_is_named() {
        let (mine, other) = (Owner::new(), Owner::new());
        assert_ne!(mine, other);
        assert!(mine.check(|| "x".into(), "gemm", &[("A", mine), ("B", mine)]).is_ok());
        let e = mine.check(|| "cuda:0".into(), "gemm", &[("A", mine), ("B", other), ("C", mine)]).unwrap_err();
        assert!(matches!(&e, crate::Error::ForeignBuffer { op: "gemm", operand, .. } if operand == "B"), "{e}");
        assert!(e.to_string().contains("cuda:0"), "{e}");
    }
}
