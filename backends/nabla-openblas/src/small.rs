//! GEMM for products too small to be worth a BLAS call (below about 32³ multiply-adds the
//! call's thread hand-off and packing cost more than the arithmetic).
//!
//! A register-blocked micro-kernel computes `C` in tiles of `MR × NR`: for every `p` it loads
//! `NR` values of row `p` of `op(B)` once and updates `MR` rows of accumulators, which stay in
//! vector registers for the whole `p` loop. Operands are read in place wherever the kernel's
//! reads are contiguous (rows of `op(B)` a whole number of tiles wide; `A` as stored, or
//! transposed with whole tiles of rows); otherwise they are packed on the stack, transposed and
//! padded with zeros to whole tiles. Whole tiles are stored straight from the registers; an edge
//! tile stores only its valid part. Products with a single row or a few columns of `C` take their
//! own paths (see [`gemm`]). Every path is checked against the triple loop in the tests below.

use std::mem::MaybeUninit;

use nabla_core::Element;
use nabla_core::backend::{Gemm, Trans};

use crate::simd::{LANES, mul_add, multiversion};

/// Rows of a tile.
const MR: usize = 4;
/// Columns of a tile (two AVX2 vectors of f32, four of f64).
const NR: usize = 16;
/// Columns of C at most for the [`narrow`] path.
const NARROW: usize = 4;
/// Rows of C that [`narrow`] accumulates at a time.
const BLOCK: usize = 64;
/// Elements of each stack buffer.
const PACK: usize = 1536;
/// Products with at most this many multiply-adds take the small path.
const MAX_WORK: usize = 32 * 32 * 32;

/// Whether `s` takes the small path (small enough, and its padded operands fit the buffers).
pub fn fits(s: &Gemm) -> bool {
    let (mp, np) = (s.m.next_multiple_of(MR), s.n.next_multiple_of(NR));
    s.m * s.n * s.k <= MAX_WORK && mp * s.k <= PACK && s.k * np <= PACK && s.k > 0 && s.m > 0 && s.n > 0
}

/// `C ← α·op(A)·op(B) + β·C` for shapes that [`fits`]; operand sizes already checked.
/// Tiles `MR × NR` would waste most of their lanes on a row of C (m = 1) or on a few columns, so:
/// - a row of C (m = 1; the row of op(A) is `a` as stored, either way) or a column of C with A as
///   stored (n = 1; the column of op(B) is `b`) is a [`vector_product`];
/// - a few columns with A transposed (n ≤ [`NARROW`], as in `∂C/∂W¹ = δᵀX` for 2 inputs) go
///   column by column through [`narrow`], which reads A's rows in place;
/// - the rest is [`tiled`].
pub fn gemm<E: Element>(s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) {
    if s.m == 1 || (s.n == 1 && s.ta == Trans::No) {
        vector_product(s, alpha, a, b, beta, c);
    } else if s.n <= NARROW && s.ta == Trans::Yes {
        narrow(s, alpha, a, b, beta, c);
    } else {
        tiled(s, alpha, a, b, beta, c);
    }
}

multiversion!(
    /// [`gemm`] in `MR × NR` tiles.
    fn tiled<E: Element>(s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) => fused tiled_body
);

multiversion!(
    /// [`gemm`] with `m = 1`, or `n = 1` and A as stored.
    fn vector_product<E: Element>(s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) => fused vector_product_body
);

multiversion!(
    /// [`gemm`] with A transposed and `n ≤ NARROW`.
    fn narrow<E: Element>(s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) => fused narrow_body
);

#[inline(always)]
fn vector_product_body<E: Element, const FMA: bool>(s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) {
    let Gemm { tb, m, n, k, .. } = s;
    if m == 1 {
        match tb {
            Trans::Yes => dots::<E, FMA>(&b[..n * k], k, &a[..k], alpha, beta, &mut c[..n]),
            Trans::No => axpys::<E, FMA>(&b[..k * n], &a[..k], alpha, beta, &mut c[..n]),
        }
    } else {
        dots::<E, FMA>(&a[..m * k], k, &b[..k], alpha, beta, &mut c[..m]);
    }
}

/// `C[:, j] ← α Σ_p op(B)[p, j] A[p, :] + β C[:, j]` (A stored `k × m`), in blocks of
/// [`BLOCK`] rows accumulated on the stack.
#[inline(always)]
fn narrow_body<E: Element, const FMA: bool>(s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) {
    let Gemm { tb, m, n, k, .. } = s;
    for i0 in (0..m).step_by(BLOCK) {
        let rows = BLOCK.min(m - i0);
        for j in 0..n {
            let mut acc = [E::zero(); BLOCK];
            let acc = &mut acc[..rows];
            for p in 0..k {
                let w = match tb {
                    Trans::No => b[p * n + j],
                    Trans::Yes => b[j * k + p],
                };
                axpy::<E, FMA>(w, &a[p * m + i0..][..rows], acc);
            }
            for (i, &v) in acc.iter().enumerate() {
                let c = &mut c[(i0 + i) * n + j];
                *c = if beta == E::zero() { alpha * v } else { alpha * v + beta * *c };
            }
        }
    }
}

/// Copies a `rows × cols` matrix into `buf` row-major with rows of `stride` elements, each
/// zero-padded from `cols` to `stride`; returns the initialised slice. `src` holds the matrix
/// row-major (`Trans::No`) or its transpose, `cols × rows` row-major (`Trans::Yes`: each row of
/// `src` is scattered down a column of `buf`).
#[inline(always)]
fn pack<'b, E: Element>(
    buf: &'b mut [MaybeUninit<E>; PACK],
    src: &[E],
    t: Trans,
    rows: usize,
    cols: usize,
    stride: usize,
) -> &'b [E] {
    let dst = &mut buf[..rows * stride];
    match t {
        Trans::No => {
            for (d, s) in dst.chunks_exact_mut(stride).zip(src[..rows * cols].chunks_exact(cols)) {
                d.iter_mut().zip(s).for_each(|(d, &v)| {
                    d.write(v);
                });
            }
        }
        // Scattered a row of `src` at a time, or gathered a row of `buf` at a time: whichever
        // starts fewer strided iterators.
        Trans::Yes if rows >= cols => {
            for (c, s) in src[..cols * rows].chunks_exact(rows).enumerate() {
                dst[c..].iter_mut().step_by(stride).zip(s).for_each(|(d, &v)| {
                    d.write(v);
                });
            }
        }
        Trans::Yes => {
            for (r, d) in dst.chunks_exact_mut(stride).enumerate() {
                d[..cols].iter_mut().zip(src[r..cols * rows].iter().step_by(rows)).for_each(|(d, &v)| {
                    d.write(v);
                });
            }
        }
    }
    for row in dst.chunks_exact_mut(stride) {
        row[cols..].iter_mut().for_each(|d| {
            d.write(E::zero());
        });
    }
    // SAFETY: the loops above wrote every one of the first `rows * stride` elements: columns
    // `0..cols` of every row from `src`, the rest with zeros.
    unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<E>(), rows * stride) }
}

#[inline(always)]
fn tiled_body<E: Element, const FMA: bool>(s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) {
    let Gemm { ta, tb, m, n, k } = s;
    let (mp, np) = (m.next_multiple_of(MR), n.next_multiple_of(NR));
    let mut a_buf = [MaybeUninit::<E>::uninit(); PACK];
    let mut b_buf = [MaybeUninit::<E>::uninit(); PACK];
    // Rows of op(B) are read in place when whole tiles wide; otherwise packed (and padded).
    let (pb, stride) = match tb {
        Trans::No if n % NR == 0 => (&b[..k * n], n),
        Trans::No => (pack(&mut b_buf, b, Trans::No, k, n, np), np),
        Trans::Yes => (pack(&mut b_buf, b, Trans::Yes, k, n, np), np),
    };
    // A transposed holds the MR values of a tile's column p side by side in its row p: read in
    // place when the rows come in whole tiles; A as stored is read a row per accumulator row.
    match ta {
        Trans::Yes if m % MR == 0 => tiles::<E, true, FMA>(a, m, m, pb, stride, s, alpha, beta, c),
        Trans::Yes => {
            let pa = pack(&mut a_buf, a, Trans::No, k, m, mp);
            tiles::<E, true, FMA>(pa, mp, m, pb, stride, s, alpha, beta, c);
        }
        Trans::No => tiles::<E, false, FMA>(a, k, m, pb, stride, s, alpha, beta, c),
    }
}

/// `c[i] ← α Σ_p x[i·k + p] v[p] + β c[i]` for every `i` of `c` (rows of `x` dotted with `v`).
/// Each dot product runs in [`LANES`] lanes, summed at the end.
#[inline(always)]
fn dots<E: Element, const FMA: bool>(x: &[E], k: usize, v: &[E], alpha: E, beta: E, c: &mut [E]) {
    for (row, c) in x.chunks_exact(k).zip(c.iter_mut()) {
        let mut lanes = [E::zero(); LANES];
        for (xs, vs) in row.chunks_exact(LANES).zip(v.chunks_exact(LANES)) {
            for l in 0..LANES {
                lanes[l] = mul_add::<E, FMA>(xs[l], vs[l], lanes[l]);
            }
        }
        let tail = k - k % LANES;
        let mut dot = lanes.iter().fold(E::zero(), |s, &l| s + l);
        for (&x, &v) in row[tail..].iter().zip(&v[tail..]) {
            dot = mul_add::<E, FMA>(x, v, dot);
        }
        *c = if beta == E::zero() { alpha * dot } else { alpha * dot + beta * *c };
    }
}

/// `c ← α Σ_p v[p] x[p·len ..][..len] + β c` with `len = c.len()` (rows of `x` weighted by `v`).
#[inline(always)]
fn axpys<E: Element, const FMA: bool>(x: &[E], v: &[E], alpha: E, beta: E, c: &mut [E]) {
    if beta == E::zero() {
        c.fill(E::zero());
    } else if beta != E::one() {
        c.iter_mut().for_each(|c| *c = beta * *c);
    }
    for (row, &v) in x.chunks_exact(c.len()).zip(v) {
        axpy::<E, FMA>(alpha * v, row, c);
    }
}

/// `y ← w·x + y`, in whole vectors of [`LANES`].
#[inline(always)]
fn axpy<E: Element, const FMA: bool>(w: E, x: &[E], y: &mut [E]) {
    let mut ys = y.chunks_exact_mut(LANES);
    let mut xs = x.chunks_exact(LANES);
    for (y, x) in (&mut ys).zip(&mut xs) {
        for l in 0..LANES {
            y[l] = mul_add::<E, FMA>(w, x[l], y[l]);
        }
    }
    for (y, &x) in ys.into_remainder().iter_mut().zip(xs.remainder()) {
        *y = mul_add::<E, FMA>(w, x, *y);
    }
}

/// Every tile of `C = α A·B + β C`. `A` is read row-major with rows of `lda` (`COLUMNS =
/// false`: row `i` of `op(A)` is `a[i·lda ..]`) or column-major (`true`: column `p` of `op(A)`
/// is `a[p·lda ..]`); `rows` rows of it exist (a last partial tile repeats the last row).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tiles<E: Element, const COLUMNS: bool, const FMA: bool>(
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
        // The tile's rows of A as stored, each exactly `k` long, so `a_rows[r][p]` needs no check.
        // (A loop, not `array::from_fn`, which is not inlined into the vector copies.)
        let mut a_rows: [&[E]; MR] = [&[]; MR];
        if !COLUMNS {
            for (r, row) in a_rows.iter_mut().enumerate() {
                *row = &a[(i0 + r).min(rows - 1) * lda..][..k];
            }
        }
        for j0 in (0..n).step_by(NR) {
            let mut acc = [[E::zero(); NR]; MR];
            for p in 0..k {
                let bp = &pb[p * stride + j0..][..NR];
                let ap: [E; MR] = if COLUMNS {
                    let col = &a[p * lda + i0..][..MR];
                    std::array::from_fn(|r| col[r])
                } else {
                    std::array::from_fn(|r| a_rows[r][p])
                };
                for r in 0..MR {
                    for l in 0..NR {
                        acc[r][l] = mul_add::<E, FMA>(ap[r], bp[l], acc[r][l]);
                    }
                }
            }
            if i0 + MR <= m && j0 + NR <= n {
                // A whole tile, with fixed trip counts, so the accumulators stay in registers.
                for (r, acc_row) in acc.iter().enumerate() {
                    let c_row = &mut c[(i0 + r) * n + j0..][..NR];
                    if beta == E::zero() {
                        for l in 0..NR {
                            c_row[l] = alpha * acc_row[l];
                        }
                    } else {
                        for l in 0..NR {
                            c_row[l] = alpha * acc_row[l] + beta * c_row[l];
                        }
                    }
                }
            } else {
                // An edge tile goes through a copy, indexed by its valid size.
                let edge = acc;
                store_edge(&edge, c, n, i0, j0, m - i0, (n - j0).min(NR), alpha, beta);
            }
        }
    }
}

/// Writes the valid `rows × cols` corner of an edge tile to `C` at `(i0, j0)`: `C ← α acc + β C`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn store_edge<E: Element>(
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
        if beta == E::zero() {
            c_row.iter_mut().zip(acc_row).for_each(|(c, &v)| *c = alpha * v);
        } else {
            c_row.iter_mut().zip(acc_row).for_each(|(c, &v)| *c = alpha * v + beta * *c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path (vector products, narrow, tiles with and without packing) against the
    /// textbook triple loop, in f64 and at the CPU's SIMD level.
    #[test]
    fn every_path_matches_the_triple_loop() {
        let sizes = [1, 2, 3, 4, 5, 8, 16, 17, 33];
        let value = |i: usize| ((i * 7919) % 61) as f64 / 30.0 - 1.0;
        for ta in [Trans::No, Trans::Yes] {
            for tb in [Trans::No, Trans::Yes] {
                for &m in &sizes {
                    for &n in &sizes {
                        for &k in &sizes {
                            let s = Gemm { ta, tb, m, n, k };
                            if !fits(&s) {
                                continue;
                            }
                            let a: Vec<f64> = (0..m * k).map(value).collect();
                            let b: Vec<f64> = (0..k * n).map(|i| value(i + 5)).collect();
                            let at = |i: usize, p: usize| if ta == Trans::No { a[i * k + p] } else { a[p * m + i] };
                            let bt = |p: usize, j: usize| if tb == Trans::No { b[p * n + j] } else { b[j * k + p] };
                            for beta in [0.0, 0.5] {
                                let mut c: Vec<f64> = (0..m * n).map(|i| value(i + 11)).collect();
                                let want: Vec<f64> = (0..m * n)
                                    .map(|ij| {
                                        let (i, j) = (ij / n, ij % n);
                                        let dot: f64 = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
                                        -0.7 * dot + beta * c[ij]
                                    })
                                    .collect();
                                gemm(s, -0.7, &a, &b, beta, &mut c);
                                for (ij, (got, want)) in c.iter().zip(&want).enumerate() {
                                    assert!((got - want).abs() < 1e-12, "{s:?} β {beta} at {ij}: {got} vs {want}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn shapes_that_fit() {
        let g = |m, n, k| fits(&Gemm { ta: Trans::No, tb: Trans::Yes, m, n, k });
        // W2's products all take the small path; W1's go to BLAS.
        assert!(g(32, 16, 2) && g(32, 16, 16) && g(32, 1, 16) && g(16, 2, 32) && g(1, 16, 32));
        assert!(!g(128, 512, 784));
        assert!(!g(1, 1, 0));
    }
}
