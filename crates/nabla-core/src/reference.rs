//! The reference backend: plain Rust loops over `Vec`s, written for obviousness, not speed.
//! Every other backend is tested against it.

use crate::activation::Activation;
use crate::backend::{Backend, Dims, Gemm};
use crate::check;
use crate::cpu;
use crate::element::Element;
use crate::error::Result;
use crate::loss::Loss;
use crate::update::Update;

/// The reference backend (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct Reference;

impl<E: Element> Backend<E> for Reference {
    type Buf = Vec<E>;

    fn name(&self) -> String {
        "reference".into()
    }

    fn alloc(&self, len: usize) -> Result<Vec<E>> {
        crate::memory::filled(len, E::zero(), "a reference-backend buffer")
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
        cpu::gemm(s, alpha, a, b, beta, c)
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

    fn activate_grad(&self, f: Activation, d: Dims, z: &Vec<E>, a: &Vec<E>, delta: &mut Vec<E>) -> Result<()> {
        cpu::activate_grad(f, d, z, a, delta)
    }

    fn sum_rows(&self, d: Dims, alpha: E, x: &Vec<E>, beta: E, out: &mut Vec<E>) -> Result<()> {
        cpu::sum_rows(d, alpha, x, beta, out)
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
        cpu::loss(l, d, out, target, grad, stats)
    }

    fn update(&self, u: &Update, len: usize, w: &mut Vec<E>, g: &Vec<E>, state: &mut [&mut Vec<E>]) -> Result<()> {
        cpu::update_vecs(u, len, w, g, state)
    }

    fn dropout_mask(&self, len: usize, rate: f64, seed: u64, first: u64, mask: &mut Vec<E>) -> Result<()> {
        cpu::dropout_mask(len, rate, seed, first, mask)
    }
}
