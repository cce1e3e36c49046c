#![warn(missing_docs)]
//! The OpenBLAS backend: GEMM through ndarray's `blas` feature (which calls `cblas_?gemm` with
//! transpose flags, never copying a transposed operand), a register-friendly kernel for products
//! too small to be worth a BLAS call, and fused element-wise kernels. Buffers are host `Vec`s.

extern crate blas_src;
extern crate openblas_src;

mod kernels;
mod simd;
mod small;

pub use simd::{Level, level};

use nabla_core::backend::{Backend, Dims, Gemm, Trans};
use nabla_core::{Activation, Element, Error, Loss, Result, Update, check, cpu};
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

unsafe extern "C" {
    fn openblas_set_num_threads(n: std::ffi::c_int);
    fn openblas_get_num_threads() -> std::ffi::c_int;
}

/// The OpenBLAS CPU backend.
#[derive(Clone, Debug)]
pub struct OpenBlas {
    threads: usize,
}

impl OpenBlas {
    /// A backend using `threads` BLAS threads (`None`: one per core). OpenBLAS's thread count
    /// is process-wide, so the last backend created decides it.
    pub fn new(threads: Option<usize>) -> Result<OpenBlas> {
        let threads = match threads {
            Some(0) => return Err(Error::invalid("threads", "0; give at least 1")),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let n = std::ffi::c_int::try_from(threads)
            .map_err(|_| Error::invalid("threads", format!("{threads} is too many")))?;
        // SAFETY: plain setter of OpenBLAS's global thread count; any positive value is valid.
        unsafe { openblas_set_num_threads(n) };
        Ok(OpenBlas { threads })
    }

    /// The number of BLAS threads.
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
        Ok(vec![E::zero(); len])
    }

    fn len(&self, buf: &Vec<E>) -> usize {
        buf.len()
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
        let a = view(a, s.a_dims(), s.ta)?;
        let b = view(b, s.b_dims(), s.tb)?;
        let d = s.c_dims();
        let mut c = ArrayViewMut2::from_shape((d.rows, d.cols), &mut c[..d.len()])
            .map_err(|e| Error::shape("gemm", e.to_string()))?;
        general_mat_mul(alpha, &a, &b, beta, &mut c);
        Ok(())
    }

    fn hadamard(&self, len: usize, x: &Vec<E>, y: &mut Vec<E>) -> Result<()> {
        cpu::hadamard(len, x, y)
    }

    fn axpy(&self, len: usize, alpha: E, x: &Vec<E>, y: &mut Vec<E>) -> Result<()> {
        cpu::axpy(len, alpha, x, y)
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
            kernels::bias_add_activate(f, d, bias, z, a);
        }
        Ok(())
    }

    fn activate_grad(&self, f: Activation, d: Dims, z: &Vec<E>, a: &Vec<E>, delta: &mut Vec<E>) -> Result<()> {
        if f.is_row_wise() {
            return cpu::activate_grad(f, d, z, a, delta);
        }
        check::matrices("activate_grad", d, &[("z", z.len()), ("a", a.len()), ("delta", delta.len())])?;
        kernels::activate_grad(f, d, z, a, delta);
        Ok(())
    }

    fn sum_rows(&self, d: Dims, alpha: E, x: &Vec<E>, beta: E, out: &mut Vec<E>) -> Result<()> {
        check::matrices("sum_rows", d, &[("x", x.len())])?;
        check::bias("sum_rows", d, out.len())?;
        kernels::sum_rows(d, alpha, x, beta, out);
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
        cpu::update_vecs(u, len, w, g, state)
    }

    fn dropout_mask(&self, len: usize, rate: f64, seed: u64, mask: &mut Vec<E>) -> Result<()> {
        cpu::dropout_mask(len, rate, seed, mask)
    }
}
