#![deny(missing_docs)]
//! The OpenBLAS backend: GEMM through ndarray's `blas` feature (which calls `cblas_?gemm` with
//! transpose flags, never copying a transposed operand) or through nabla's own packed kernels,
//! whichever is faster for each shape ([`choice`]); a register-friendly kernel for products too
//! small to be worth either; fused element-wise kernels. Buffers are host `Vec`s.

extern crate blas_src;
extern crate openblas_src;

pub mod choice;
mod kernels;
#[cfg(test)]
mod oracle;
mod packed;
pub mod report;
mod simd;
mod small;
mod team;

pub use choice::{GemmChoice, GemmKey};
pub use simd::{Level, level};

use choice::Chooser;
use nabla_core::backend::{Backend, Dims, Gemm, GemmProvider, Trans};
use nabla_core::{Activation, Element, Error, Loss, Result, Update, check, cpu};
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};
use std::sync::Arc;
use team::Team;

unsafe extern "C" {
    fn openblas_set_num_threads(n: std::ffi::c_int);
    fn openblas_get_num_threads() -> std::ffi::c_int;
}

/// The OpenBLAS CPU backend.
#[derive(Clone, Debug)]
pub struct OpenBlas {
    threads: usize,
    /// The threads of the element-wise kernels and of the native GEMM (as many as `threads`, the
    /// caller's included).
    team: Arc<Team>,
    /// The native GEMM's packing buffers, one per thread.
    spaces: Arc<packed::Workspaces>,
    /// The GEMM provider of each shape.
    chooser: Arc<Chooser>,
    /// The `--gemm` setting.
    gemm: GemmProvider,
    /// Whether OpenBLAS's products are cut over `team` (single-threaded calls) or run on
    /// OpenBLAS's own threads (see [`OpenBlas::with_gemm`]).
    blas_on_team: bool,
}

/// An element-wise pass is cut into one part per thread only when every part gets at least this
/// many elements. Waking a sleeping worker costs ~14 µs on the 2-vCPU development machine, so a
/// pass must take ~30 µs on one thread before a second can help: at 2¹⁸ elements two threads
/// take bias + ReLU from 41 to 34 µs and an Adam update from 158 to 119 µs, at 2²⁰ from 218 to
/// 108 µs and from 688 to 504 µs; at 2¹⁶ they lose (11 → 21 µs). `cargo bench --bench ops --
/// openblas-` measures it (see `docs/performance.md`).
const PARALLEL_MIN: usize = 1 << 17;

/// Parts start on multiples of this many elements (a cache line of f32, half one of f64's AVX-512
/// vectors), so no two threads write the same line.
const PARALLEL_ALIGN: usize = 16;

impl OpenBlas {
    /// A backend using `threads` BLAS threads (`None`: one per core) and the faster GEMM
    /// provider per shape. OpenBLAS's thread count is process-wide, so the last backend created
    /// decides it.
    pub fn new(threads: Option<usize>) -> Result<OpenBlas> {
        OpenBlas::with_gemm(threads, GemmProvider::Auto)
    }

    /// A backend using `threads` threads and `gemm` for the products too large for the small
    /// kernel.
    ///
    /// Threads: OpenBLAS's threads spin for a while after each parallel call, on the cores the
    /// next product needs, so the two providers cannot share a step on several threads (on the
    /// 2-core development machine a W1 step that mixed them ran 26% slower than either alone).
    /// Hence: `native`, and `auto` on one thread or where OpenBLAS's kernels are narrower than
    /// the CPU's registers, run every product on the backend's own threads (OpenBLAS's as one
    /// single-threaded call per block of C) and `auto` times the two per shape; `openblas`, and
    /// `auto` on several threads with OpenBLAS's kernels as wide as the CPU's, leave every
    /// product to OpenBLAS on its own threads, whose shared packing wins there (W1: 77k
    /// against 70k samples/s at 2 threads).
    pub fn with_gemm(threads: Option<usize>, gemm: GemmProvider) -> Result<OpenBlas> {
        let threads = match threads {
            Some(0) => return Err(Error::invalid("threads", "0; give at least 1")),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let blas_on_team = match gemm {
            GemmProvider::OpenBlas => false,
            GemmProvider::Auto => {
                threads == 1 || (!report::openblas_is_full_width() && report::openblas_takes_concurrent_calls())
            }
            _ => true,
        };
        // The provider every shape takes when there is nothing to choose.
        let effective = if gemm == GemmProvider::Auto && !blas_on_team { GemmProvider::OpenBlas } else { gemm };
        let blas_threads = if blas_on_team { 1 } else { threads };
        let n = std::ffi::c_int::try_from(blas_threads)
            .map_err(|_| Error::invalid("threads", format!("{threads} is too many")))?;
        // SAFETY: plain setter of OpenBLAS's global thread count; any positive value is valid.
        unsafe { openblas_set_num_threads(n) };
        let team = Team::new(threads)
            .map_err(|e| Error::backend("openblas", format!("cannot start {threads} element-wise threads: {e}")))?;
        let spaces = Arc::new(packed::Workspaces::new(threads));
        let chooser = Arc::new(Chooser::new(effective));
        Ok(OpenBlas { threads, team: Arc::new(team), spaces, chooser, gemm, blas_on_team })
    }

    /// The GEMM provider setting (`Auto`, or the one forced).
    pub fn gemm_provider(&self) -> GemmProvider {
        self.gemm
    }

    /// How the large GEMMs run, in words (for `nabla backends` and `nabla bench`).
    pub fn gemm_mode(&self) -> String {
        let threads = if self.blas_on_team { "on nabla's threads" } else { "on OpenBLAS's own threads" };
        match (self.gemm, self.chooser.setting()) {
            (GemmProvider::Auto, GemmProvider::Auto) => format!("GEMM auto: the faster per shape, {threads}"),
            (GemmProvider::Auto, _) => {
                format!(
                    "GEMM auto: OpenBLAS {threads} (its kernels are as wide as the CPU's; on several threads they win)"
                )
            }
            (forced, _) => format!("GEMM {forced}, {threads}"),
        }
    }

    /// The provider each GEMM shape has taken so far (products that took the small kernel are
    /// not listed), in the order first seen.
    pub fn gemm_choices(&self) -> Vec<GemmChoice> {
        self.chooser.choices()
    }

    /// `C ← α·op(A)·op(B) + β·C` on `provider` (`OpenBlas` or `Native`); sizes checked.
    #[allow(clippy::too_many_arguments)]
    fn large_gemm<E: Element>(
        &self,
        provider: GemmProvider,
        s: Gemm,
        alpha: E,
        a: &[E],
        b: &[E],
        beta: E,
        c: &mut [E],
    ) -> Result<()> {
        if provider == GemmProvider::Native {
            return packed::gemm(&self.team, &self.spaces, s, alpha, a, b, beta, c);
        }
        if self.blas_on_team && s.m > 0 && s.n > 0 && s.k > 0 {
            return packed::blas(&self.team, s, alpha, a, b, beta, c);
        }
        let a = view(a, s.a_dims(), s.ta)?;
        let b = view(b, s.b_dims(), s.tb)?;
        let d = s.c_dims();
        let mut c = ArrayViewMut2::from_shape((d.rows, d.cols), &mut c[..d.len()])
            .map_err(|e| Error::shape("gemm", e.to_string()))?;
        general_mat_mul(alpha, &a, &b, beta, &mut c);
        Ok(())
    }

    /// The number of threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The thread count OpenBLAS reports (to check that the setting took).
    pub fn blas_threads() -> usize {
        // SAFETY: plain getter.
        usize::try_from(unsafe { openblas_get_num_threads() }).unwrap_or(1)
    }
}

/// A row-major `rows × cols` view of the first elements of `buf`, transposed if `t` says so.
fn view<E>(buf: &[E], d: Dims, t: Trans) -> Result<ArrayView2<'_, E>> {
    let v =
        ArrayView2::from_shape((d.rows, d.cols), &buf[..d.len()]).map_err(|e| Error::shape("gemm", e.to_string()))?;
    Ok(if t == Trans::Yes { v.reversed_axes() } else { v })
}

impl<E: Element> Backend<E> for OpenBlas {
    type Buf = Vec<E>;

    fn name(&self) -> String {
        "openblas".into()
    }

    fn alloc(&self, len: usize) -> Result<Vec<E>> {
        nabla_core::memory::filled(len, E::zero(), "an OpenBLAS-backend buffer")
    }

    fn len(&self, buf: &Vec<E>) -> usize {
        buf.len()
    }

    fn host_view<'a>(&self, buf: &'a Vec<E>) -> Option<&'a [E]> {
        Some(buf)
    }

    fn host_view_mut<'a>(&self, buf: &'a mut Vec<E>) -> Option<&'a mut [E]> {
        Some(buf)
    }

    fn write(&self, host: &[E], buf: &mut Vec<E>) -> Result<()> {
        check::elementwise("write", host.len(), &[("buffer", buf.len())])?;
        buf[..host.len()].copy_from_slice(host);
        Ok(())
    }

    fn download(&self, buf: &Vec<E>, host: &mut [E]) -> Result<()> {
        check::elementwise("download", host.len(), &[("buffer", buf.len())])?;
        host.copy_from_slice(&buf[..host.len()]);
        Ok(())
    }

    fn gemm(&self, s: Gemm, alpha: E, a: &Vec<E>, b: &Vec<E>, beta: E, c: &mut Vec<E>) -> Result<()> {
        check::gemm(&s, a.len(), b.len(), c.len())?;
        if small::fits(&s) {
            small::gemm(s, alpha, a, b, beta, c);
            return Ok(());
        }
        if s.m == 0 || s.n == 0 || s.k == 0 {
            // Nothing to multiply: no choice to make (C ← β·C, by BLAS's conventions).
            return self.large_gemm(GemmProvider::OpenBlas, s, alpha, a, b, beta, c);
        }
        let key = GemmKey { shape: s, beta_zero: beta == E::zero(), dtype: E::DTYPE, threads: self.threads };
        let provider = self
            .chooser
            .provider(key, c, |provider, scratch| self.large_gemm(provider, s, alpha, a, b, beta, scratch))?;
        self.large_gemm(provider, s, alpha, a, b, beta, c)
    }

    fn hadamard(&self, len: usize, x: &Vec<E>, y: &mut Vec<E>) -> Result<()> {
        cpu::hadamard(len, x, y)
    }

    fn bias_add(&self, d: Dims, bias: &Vec<E>, z: &mut Vec<E>) -> Result<()> {
        cpu::bias_add(d, bias, z)
    }

    fn activate(&self, f: Activation, d: Dims, z: &Vec<E>, a: &mut Vec<E>) -> Result<()> {
        cpu::activate(f, d, z, a)
    }

    fn bias_add_activate(&self, f: Activation, d: Dims, bias: &Vec<E>, z: &mut Vec<E>, a: &mut Vec<E>) -> Result<()> {
        if f.is_row_wise() {
            cpu::bias_add(d, bias, z)?;
            return cpu::activate(f, d, z, a);
        }
        check::bias("bias_add_activate", d, bias.len())?;
        check::matrices("bias_add_activate", d, &[("z", z.len()), ("a", a.len())])?;
        if !d.is_empty() {
            let n = d.len();
            self.team.split_mut(n, d.cols, PARALLEL_MIN, [&mut z[..n], &mut a[..n]], |r, [z, a]| {
                kernels::bias_add_activate(f, Dims::new(r.len() / d.cols, d.cols), bias, z, a);
            });
        }
        Ok(())
    }

    fn activate_grad(&self, f: Activation, d: Dims, z: &Vec<E>, a: &Vec<E>, delta: &mut Vec<E>) -> Result<()> {
        if f.is_row_wise() {
            return cpu::activate_grad(f, d, z, a, delta);
        }
        check::matrices("activate_grad", d, &[("z", z.len()), ("a", a.len()), ("delta", delta.len())])?;
        let n = d.len();
        self.team.split_mut(n, PARALLEL_ALIGN, PARALLEL_MIN, [&mut delta[..n]], |r, [delta]| {
            kernels::activate_grad(f, &z[r.clone()], &a[r], delta);
        });
        Ok(())
    }

    fn sum_rows(&self, d: Dims, alpha: E, x: &Vec<E>, beta: E, out: &mut Vec<E>) -> Result<()> {
        check::matrices("sum_rows", d, &[("x", x.len())])?;
        check::bias("sum_rows", d, out.len())?;
        if d.cols == 0 {
            return Ok(());
        }
        // Each thread sums a range of columns over all rows.
        let min_cols = PARALLEL_MIN.div_ceil(d.rows.max(1));
        self.team.split_mut(d.cols, PARALLEL_ALIGN, min_cols, [&mut out[..d.cols]], |cols, [out]| {
            kernels::sum_rows(d, cols, alpha, x, beta, out);
        });
        Ok(())
    }

    fn loss(
        &self,
        l: Loss,
        d: Dims,
        out: &Vec<E>,
        target: &Vec<E>,
        grad: &mut Vec<E>,
        stats: &mut Vec<E>,
    ) -> Result<()> {
        if l != Loss::Bce {
            return cpu::loss(l, d, out, target, grad, stats);
        }
        check::matrices("loss", d, &[("output", out.len()), ("target", target.len()), ("grad", grad.len())])?;
        check::stats(stats.len())?;
        let n = d.len();
        let (value, correct) = kernels::bce(&out[..n], &target[..n], &mut grad[..n]);
        stats[0] = value;
        stats[1] = E::of(correct as f64);
        Ok(())
    }

    fn update(&self, u: &Update, len: usize, w: &mut Vec<E>, g: &Vec<E>, state: &mut [&mut Vec<E>]) -> Result<()> {
        check::elementwise("update", len, &[("w", w.len()), ("g", g.len())])?;
        check::state(len, u.rule.state_count(), state.iter().map(|s| s.len()))?;
        let (w, g) = (&mut w[..len], &g[..len]);
        let (t, at, min) = (&self.team, PARALLEL_ALIGN, PARALLEL_MIN);
        match state {
            [] => t.split_mut(len, at, min, [w], |r, [w]| kernels::update(u, w, &g[r], &mut [], &mut [])),
            [s0] => {
                t.split_mut(len, at, min, [w, &mut s0[..len]], |r, [w, s0]| kernels::update(u, w, &g[r], s0, &mut []))
            }
            [s0, s1, ..] => t.split_mut(len, at, min, [w, &mut s0[..len], &mut s1[..len]], |r, [w, s0, s1]| {
                kernels::update(u, w, &g[r], s0, s1)
            }),
        }
        Ok(())
    }

    fn dropout_mask(&self, len: usize, rate: f64, seed: u64, first: u64, mask: &mut Vec<E>) -> Result<()> {
        cpu::dropout_mask(len, rate, seed, first, mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_times_providers_on_one_thread_or_under_narrow_openblas_kernels() {
        let one = OpenBlas::with_gemm(Some(1), GemmProvider::Auto).unwrap();
        assert!(one.gemm_mode().contains("the faster per shape, on nabla's threads"), "{}", one.gemm_mode());
        let two = OpenBlas::with_gemm(Some(2), GemmProvider::Auto).unwrap();
        let timed = two.gemm_mode().contains("the faster per shape");
        assert_eq!(timed, !report::openblas_is_full_width(), "{}", two.gemm_mode());
        let forced = OpenBlas::with_gemm(Some(2), GemmProvider::OpenBlas).unwrap();
        assert_eq!(forced.gemm_mode(), "GEMM openblas, on OpenBLAS's own threads");
        let native = OpenBlas::with_gemm(Some(2), GemmProvider::Native).unwrap();
        assert_eq!(native.gemm_mode(), "GEMM native, on nabla's threads");
    }

    #[test]
    fn empty_matrices_are_no_ops() {
        let b = OpenBlas::new(Some(2)).unwrap();
        for d in [Dims::new(3, 0), Dims::new(0, 5)] {
            let (x, mut y, mut out) = (vec![1.0_f32; 5], vec![1.0_f32; 5], vec![2.0_f32; 5]);
            b.sum_rows(d, 1.0, &x, 0.0, &mut out).unwrap();
            assert_eq!(out[d.cols..], [2.0; 5][d.cols..], "{d}");
            b.bias_add_activate(Activation::Sigmoid, d, &x, &mut y.clone(), &mut out).unwrap();
            b.activate_grad(Activation::Relu, d, &x, &x, &mut y).unwrap();
            assert_eq!(y, [1.0; 5]);
        }
        let u = Update { rule: nabla_core::Rule::Sgd, lr: 0.1, t: 1, l2: 0.0, decay: 0.0 };
        let mut w = vec![1.0_f32; 3];
        b.update(&u, 0, &mut w, &vec![1.0; 3], &mut []).unwrap();
        assert_eq!(w, [1.0; 3]);
    }
}
