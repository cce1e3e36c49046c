//! GEMM for products too small to be worth a BLAS call (below about 32³ multiply-adds the
//! call's thread hand-off and packing cost more than the arithmetic).
//!
//! A register-blocked micro-kernel computes `C` in tiles of `MR × NR`: for every `p` it loads
//! `NR` values of row `p` of `op(B)` once and updates `MR` rows of accumulators, which stay in
//! vector registers for the whole `p` loop. Operands are read in place wherever the kernel's
//! reads are contiguous (rows of `op(B)` a whole number of tiles wide; `A` as stored, or
//! transposed with whole tiles of rows); otherwise they are packed on the stack, transposed and
//! padded with zeros to whole tiles. Only the valid part of a tile is stored.

use std::mem::MaybeUninit;

use nabla_core::Element;
use nabla_core::backend::{Gemm, Trans};

use crate::simd::multiversion;

/// Rows of a tile.
const MR: usize = 4;
/// Columns of a tile (one AVX2 vector of f32, two of f64).
const NR: usize = 8;
/// Elements of each stack buffer.
const PACK: usize = 1536;
/// Products with at most this many multiply-adds take the small path.
const MAX_WORK: usize = 32 * 32 * 32;

/// Whether `s` takes the small path (small enough, and its padded operands fit the buffers).
pub fn fits(s: &Gemm) -> bool {
    let (mp, np) = (s.m.next_multiple_of(MR), s.n.next_multiple_of(NR));
    s.m * s.n * s.k <= MAX_WORK && mp * s.k <= PACK && s.k * np <= PACK && s.k > 0 && s.m > 0 && s.n > 0
}

multiversion!(
    /// `C ← α·op(A)·op(B) + β·C` for shapes that [`fits`]; operand sizes already checked.
    pub fn gemm<E: Element>(s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) => gemm_body
);

/// Copies `rows × cols` values `at(r, c)` into `buf` row-major with rows of `stride` elements,
/// zero-padding each row to `stride` and adding zero rows up to `rows_padded`; returns the
/// initialised slice.
#[inline(always)]
fn pack<E: Element>(
    buf: &mut [MaybeUninit<E>; PACK],
    rows: usize,
    cols: usize,
    rows_padded: usize,
    stride: usize,
    at: impl Fn(usize, usize) -> E,
) -> &[E] {
    for r in 0..rows {
        let row = &mut buf[r * stride..][..stride];
        for (c, slot) in row.iter_mut().enumerate().take(cols) {
            slot.write(at(r, c));
        }
        row[cols..].iter_mut().for_each(|slot| {
            slot.write(E::zero());
        });
    }
    buf[rows * stride..rows_padded * stride].iter_mut().for_each(|slot| {
        slot.write(E::zero());
    });
    // SAFETY: the loops above wrote every one of the first `rows_padded * stride` elements.
    unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<E>(), rows_padded * stride) }
}

#[inline(always)]
fn gemm_body<E: Element>(s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) {
    let Gemm { ta, tb, m, n, k } = s;
    let (mp, np) = (m.next_multiple_of(MR), n.next_multiple_of(NR));
    let mut a_buf = [MaybeUninit::<E>::uninit(); PACK];
    let mut b_buf = [MaybeUninit::<E>::uninit(); PACK];
    // Rows of op(B) are read in place when whole tiles wide; otherwise packed (and padded).
    let (pb, stride) = match tb {
        Trans::No if n % NR == 0 => (&b[..k * n], n),
        Trans::No => (pack(&mut b_buf, k, n, k, np, |p, j| b[p * n + j]), np),
        Trans::Yes => (pack(&mut b_buf, k, n, k, np, |p, j| b[j * k + p]), np),
    };
    // A transposed holds the MR values of a tile's column p side by side in its row p: read in
    // place when the rows come in whole tiles; A as stored is read a row per accumulator row.
    match ta {
        Trans::Yes if m % MR == 0 => tiles::<E, true>(a, m, m, pb, stride, s, alpha, beta, c),
        Trans::Yes => {
            let pa = pack(&mut a_buf, k, m, k, mp, |p, i| a[p * m + i]);
            tiles::<E, true>(pa, mp, m, pb, stride, s, alpha, beta, c);
        }
        Trans::No => tiles::<E, false>(a, k, m, pb, stride, s, alpha, beta, c),
    }
}

/// Every tile of `C = α A·B + β C`. `A` is read row-major with rows of `lda` (`COLUMNS =
/// false`: row `i` of `op(A)` is `a[i·lda ..]`) or column-major (`true`: column `p` of `op(A)`
/// is `a[p·lda ..]`); `rows` rows of it exist (a last partial tile repeats the last row).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tiles<E: Element, const COLUMNS: bool>(
    a: &[E],
    lda: usize,
    rows: usize,
    pb: &[E],
    stride: usize,
    s: Gemm,
    alpha: E,
    beta: E,
    c: &mut [E],
) {
    let Gemm { m, n, k, .. } = s;
    for i0 in (0..m).step_by(MR) {
        let offsets: [usize; MR] = std::array::from_fn(|r| (i0 + r).min(rows - 1) * lda);
        for j0 in (0..n).step_by(NR) {
            let mut acc = [[E::zero(); NR]; MR];
            for p in 0..k {
                let bp = &pb[p * stride + j0..][..NR];
                let ap: [E; MR] = if COLUMNS {
                    let col = &a[p * lda + i0..][..MR];
                    std::array::from_fn(|r| col[r])
                } else {
                    std::array::from_fn(|r| a[offsets[r] + p])
                };
                for r in 0..MR {
                    for l in 0..NR {
                        acc[r][l] = acc[r][l] + ap[r] * bp[l];
                    }
                }
            }
            store(&acc, c, n, i0, j0, MR.min(m - i0), NR.min(n - j0), alpha, beta);
        }
    }
}

/// Writes the valid `rows × cols` corner of a tile to `C` at `(i0, j0)`: `C ← α acc + β C`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn store<E: Element>(
    acc: &[[E; NR]; MR],
    c: &mut [E],
    n: usize,
    i0: usize,
    j0: usize,
    rows: usize,
    cols: usize,
    alpha: E,
    beta: E,
) {
    for (r, acc_row) in acc.iter().enumerate().take(rows) {
        let c_row = &mut c[(i0 + r) * n + j0..][..cols];
        if cols == NR && beta == E::zero() {
            for l in 0..NR {
                c_row[l] = alpha * acc_row[l];
            }
        } else if cols == NR {
            for l in 0..NR {
                c_row[l] = alpha * acc_row[l] + beta * c_row[l];
            }
        } else if beta == E::zero() {
            c_row.iter_mut().zip(acc_row).for_each(|(c, &v)| *c = alpha * v);
        } else {
            c_row.iter_mut().zip(acc_row).for_each(|(c, &v)| *c = alpha * v + beta * *c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_that_fit() {
        let g = |m, n, k| fits(&Gemm { ta: Trans::No, tb: Trans::Yes, m, n, k });
        // W2's products all take the small path; W1's go to BLAS.
        assert!(g(32, 16, 2) && g(32, 16, 16) && g(32, 1, 16) && g(16, 2, 32) && g(1, 16, 32));
        assert!(!g(128, 512, 784));
        assert!(!g(1, 1, 0));
    }
}
