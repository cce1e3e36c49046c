//! GEMM for products too small to be worth a BLAS call (below about 32³ multiply-adds the
//! call's thread hand-off and packing cost more than the arithmetic).
//!
//! Three loop orders, each with a contiguous, vectorisable inner loop; a cost model picks the
//! cheapest for the shape at hand:
//!
//! - **row-axpy**: `C[i,:] += α A(i,p) · B(p,:)` — inner loop over `n`; needs rows of `op(B)`
//!   (`B` as stored, or packed on the stack when transposed);
//! - **dot**: `C[i,j] += α ⟨A(i,:), B(:,j)⟩` — inner loop over `k`; needs `A` untransposed and
//!   `B` transposed (both rows contiguous);
//! - **column-axpy**: `C[:,j] += α B(p,j) · A(:,p)` — inner loop over `m`; needs `A`
//!   transposed (columns of `op(A)` contiguous).
//!
//! The axpy orders accumulate up to 16 outputs in registers across the whole `p` loop.

use nabla_core::Element;
use nabla_core::backend::{Gemm, Trans};

use crate::simd::multiversion;

/// Stack buffer size in elements (a packed, transposed `B`).
const PACK: usize = 1024;
/// Products with at most this many multiply-adds take the small path.
const MAX_WORK: usize = 32 * 32 * 32;
/// Lanes assumed by the cost model.
const LANES: usize = 8;

/// A loop order (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    RowAxpy,
    Dot,
    ColumnAxpy,
}

/// The cheapest loop order for `s`, or `None` if `s` should go to BLAS.
pub fn order(s: &Gemm) -> Option<Order> {
    let Gemm { ta, tb, m, n, k } = *s;
    if m * n * k > MAX_WORK {
        return None;
    }
    let vectors = |len: usize| len.div_ceil(LANES);
    let row = (tb == Trans::No || k * n <= PACK).then(|| m * k * vectors(n) + if tb == Trans::Yes { k * n } else { 0 });
    let dot = (ta == Trans::No && tb == Trans::Yes).then(|| m * n * (vectors(k) + 3));
    let column = (ta == Trans::Yes).then(|| n * k * vectors(m) + m * n);
    [(Order::RowAxpy, row), (Order::Dot, dot), (Order::ColumnAxpy, column)]
        .into_iter()
        .filter_map(|(o, c)| c.map(|c| (c, o)))
        .min_by_key(|&(c, _)| c)
        .map(|(_, o)| o)
}

multiversion!(
    /// `C ← α·op(A)·op(B) + β·C` in loop order `order`; operand sizes already checked.
    pub fn gemm<E: Element>(order: Order, s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) => gemm_body
);

/// Columns of `C` accumulated in registers at a time (two AVX2 vectors of f32).
const BLOCK: usize = 16;

#[inline(always)]
fn gemm_body<E: Element>(order: Order, s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) {
    let Gemm { ta, tb, m, n, k } = s;
    let c = &mut c[..m * n];
    if beta == E::zero() {
        c.fill(E::zero());
    } else if beta != E::one() {
        c.iter_mut().for_each(|c| *c = beta * *c);
    }
    let a_at = |i: usize, p: usize| if ta == Trans::No { a[i * k + p] } else { a[p * m + i] };
    let b_at = |p: usize, j: usize| if tb == Trans::No { b[p * n + j] } else { b[j * k + p] };
    match order {
        Order::Dot => {
            for (i, c_row) in c.chunks_exact_mut(n).enumerate() {
                let a_row = &a[i * k..][..k];
                for (j, c) in c_row.iter_mut().enumerate() {
                    *c = *c + alpha * dot(a_row, &b[j * k..][..k]);
                }
            }
        }
        Order::ColumnAxpy => {
            // Column j of C, a block of rows at a time: Σ_p B(p, j) · A(:, p), A(:, p) contiguous.
            for j in 0..n {
                for i0 in (0..m).step_by(BLOCK) {
                    let w = BLOCK.min(m - i0);
                    let acc = accumulate(w, k, |p| (alpha * b_at(p, j), &a[p * m + i0..][..w]));
                    for (l, &v) in acc[..w].iter().enumerate() {
                        c[(i0 + l) * n + j] = c[(i0 + l) * n + j] + v;
                    }
                }
            }
        }
        Order::RowAxpy => {
            let mut packed = [E::zero(); PACK];
            let rows_b: &[E] = if tb == Trans::No {
                &b[..k * n]
            } else {
                for p in 0..k {
                    for j in 0..n {
                        packed[p * n + j] = b_at(p, j);
                    }
                }
                &packed[..k * n]
            };
            // Row i of C, a block of columns at a time: Σ_p A(i, p) · B(p, :).
            for (i, c_row) in c.chunks_exact_mut(n).enumerate() {
                for j0 in (0..n).step_by(BLOCK) {
                    let w = BLOCK.min(n - j0);
                    let acc = accumulate(w, k, |p| (alpha * a_at(i, p), &rows_b[p * n + j0..][..w]));
                    c_row[j0..j0 + w].iter_mut().zip(&acc[..w]).for_each(|(c, &v)| *c = *c + v);
                }
            }
        }
    }
}

/// `Σ_p s_p · x_p` over `k` terms, where `term(p) = (s_p, x_p)` and each `x_p` has `w ≤ BLOCK`
/// elements. A full block is a fixed-size loop, which the compiler keeps in vector registers.
#[inline(always)]
fn accumulate<'a, E: Element>(w: usize, k: usize, term: impl Fn(usize) -> (E, &'a [E])) -> [E; BLOCK] {
    let mut acc = [E::zero(); BLOCK];
    if w == BLOCK {
        for p in 0..k {
            let (s, x) = term(p);
            let x = &x[..BLOCK];
            for l in 0..BLOCK {
                acc[l] = acc[l] + s * x[l];
            }
        }
    } else {
        for p in 0..k {
            let (s, x) = term(p);
            acc[..w].iter_mut().zip(x).for_each(|(a, &x)| *a = *a + s * x);
        }
    }
    acc
}

/// `⟨x, y⟩` with eight independent partial sums (which the compiler keeps in vector lanes).
#[inline(always)]
fn dot<E: Element>(x: &[E], y: &[E]) -> E {
    let mut acc = [E::zero(); LANES];
    let (xs, ys) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
    let tail: E = xs.remainder().iter().zip(ys.remainder()).map(|(&x, &y)| x * y).sum();
    for (x, y) in xs.zip(ys) {
        for l in 0..LANES {
            acc[l] = acc[l] + x[l] * y[l];
        }
    }
    acc.iter().copied().sum::<E>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cost_model_picks_contiguous_loops() {
        let g = |ta, tb, m, n, k| order(&Gemm { ta, tb, m, n, k });
        // W2's products: forward with a transposed weight, weight gradients, input gradients.
        assert_eq!(g(Trans::No, Trans::Yes, 32, 16, 16), Some(Order::RowAxpy));
        assert_eq!(g(Trans::No, Trans::Yes, 32, 1, 16), Some(Order::Dot));
        assert_eq!(g(Trans::Yes, Trans::No, 16, 2, 32), Some(Order::ColumnAxpy));
        assert_eq!(g(Trans::Yes, Trans::No, 16, 16, 32), Some(Order::RowAxpy));
        assert_eq!(g(Trans::No, Trans::No, 128, 512, 784), None);
    }
}
