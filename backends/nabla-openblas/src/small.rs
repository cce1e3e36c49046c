//! GEMM for products too small to be worth a BLAS call (below about 32³ multiply-adds the
//! call's thread hand-off and packing cost more than the arithmetic).
//!
//! A register-blocked micro-kernel computes `C` in tiles of `MR × NR`: for every `p` it loads
//! `NR` values of row `p` of `op(B)` once and updates `MR` rows of accumulators, which stay in
//! vector registers for the whole `p` loop. `op(A)` is always read in place: a tile broadcasts one
//! element of each of its rows per `p`, read through strided pointers whichever the transpose
//! (the bounds are checked once per call). `op(B)` is read in place when its rows are a whole
//! number of tiles wide, and otherwise packed on the stack: padded with zeros to whole tiles and,
//! if stored transposed, transposed (in 8 × 8 blocks of AVX shuffles for f32). Whole tiles are
//! stored straight from the registers; an edge tile stores only its valid part. Products with a
//! single row, a single column or a few columns of `C` take their own paths (see [`gemm`]). Every
//! path is checked against the triple loop in the tests below.

use std::mem::MaybeUninit;

use nabla_core::Element;
use nabla_core::backend::{Gemm, Trans};

use crate::simd::{LANES, mul_add, multiversion, transpose_block};

/// Rows of a tile.
const MR: usize = 4;
/// Columns of a tile (two AVX2 vectors of f32, four of f64).
const NR: usize = 16;
/// Columns of C at most for a product to be computed as `Cᵀ` (see [`is_narrow`]).
const NARROW: usize = 4;
/// Elements of the stack buffer for a packed B.
const PACK: usize = 1536;
/// Products with at most this many multiply-adds take the small path.
const MAX_WORK: usize = 32 * 32 * 32;

/// Whether `s` takes the small path: small enough (every size then is at most `MAX_WORK`, so no
/// product of sizes below overflows), and, for the tiled paths, a padded B fits the buffer.
pub fn fits(s: &Gemm) -> bool {
    let work = s.m.checked_mul(s.n).and_then(|mn| mn.checked_mul(s.k));
    if !work.is_some_and(|w| w > 0 && w <= MAX_WORK) {
        return false;
    }
    let t = if is_narrow(s) { transposed(s) } else { *s };
    is_vector_product(s) || t.k * t.n.next_multiple_of(NR) <= PACK
}

/// Whether `C` is a single row, or a single column (the column of op(B) is `b` as stored, either
/// way): a [`vector_product`].
fn is_vector_product(s: &Gemm) -> bool {
    s.m == 1 || s.n == 1
}

/// Whether `C` has more than one row, only a few columns, and `A` transposed (as in
/// `∂C/∂W¹ = δᵀX` for 2 inputs): tiles of `Cᵀ = op(B)ᵀ·op(A)ᵀ` then fill their vectors, and read
/// A's rows in place.
fn is_narrow(s: &Gemm) -> bool {
    s.n <= NARROW && s.ta == Trans::Yes && s.m > 1
}

/// The product that gives `Cᵀ`: `op(B)ᵀ·op(A)ᵀ`, with the operands swapped.
fn transposed(s: &Gemm) -> Gemm {
    let flip = |t| if t == Trans::No { Trans::Yes } else { Trans::No };
    Gemm { ta: flip(s.tb), tb: flip(s.ta), m: s.n, n: s.m, k: s.k }
}

/// `C ← α·op(A)·op(B) + β·C` for shapes that [`fits`]; operand sizes already checked.
/// Tiles `MR × NR` would waste most of their lanes on a row of C (m = 1) or on a few columns, so:
/// - a row of C (m = 1; the row of op(A) is `a` as stored, either way) or a column of C (n = 1;
///   the column of op(B) is `b` as stored, either way) is a [`vector_product`];
/// - a few columns with A transposed (see [`is_narrow`]) are computed as `Cᵀ`, [`tiled`] too;
/// - the rest is [`tiled`].
pub fn gemm<E: Element>(s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) {
    if is_vector_product(&s) {
        vector_product(s, alpha, a, b, beta, c);
    } else if is_narrow(&s) {
        tiled_transposed(transposed(&s), alpha, b, a, beta, c);
    } else {
        tiled(s, alpha, a, b, beta, c);
    }
}

multiversion!(
    /// [`gemm`] in `MR × NR` tiles.
    fn tiled<E: Element>(s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) => fused tiled_body
);

multiversion!(
    /// [`gemm`] in `MR × NR` tiles, into `C` stored transposed (`n × m` row-major).
    fn tiled_transposed<E: Element>(s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) => fused tiled_transposed_body
);

multiversion!(
    /// [`gemm`] with `m = 1` or `n = 1`.
    fn vector_product<E: Element>(s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) => fused vector_product_body
);

#[inline(always)]
fn vector_product_body<E: Element, const FMA: bool>(s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) {
    let Gemm { ta, tb, m, n, k } = s;
    if m == 1 {
        // Row j of op(B) dotted with `a`, or the rows of B weighted by `a`.
        match tb {
            Trans::Yes => dots::<E, FMA>(&b[..n * k], k, &a[..k], alpha, beta, &mut c[..n]),
            Trans::No => axpys::<E, FMA>(&b[..k * n], &a[..k], alpha, beta, &mut c[..n]),
        }
    } else {
        // Row i of op(A) dotted with `b`, or the rows of A weighted by `b`.
        match ta {
            Trans::No => dots::<E, FMA>(&a[..m * k], k, &b[..k], alpha, beta, &mut c[..m]),
            Trans::Yes => axpys::<E, FMA>(&a[..k * m], &b[..k], alpha, beta, &mut c[..m]),
        }
    }
}

/// Copies a `rows × cols` matrix into `buf` row-major with rows of `stride` elements, each
/// zero-padded from `cols` to `stride`; returns the initialised slice. `src` holds the matrix
/// row-major (`Trans::No`) or its transpose, `cols × rows` row-major (`Trans::Yes`).
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
        Trans::Yes => {
            let src = &src[..cols * rows];
            // Whole blocks of LANES × LANES (by vector shuffles where the CPU and `E` allow) …
            let (block_rows, block_cols) = (rows - rows % LANES, cols - cols % LANES);
            for r0 in (0..block_rows).step_by(LANES) {
                for c0 in (0..block_cols).step_by(LANES) {
                    transpose_block(&src[c0 * rows + r0..], rows, &mut dst[r0 * stride + c0..], stride);
                }
            }
            // … the rest gathered element by element.
            for (r, d) in dst.chunks_exact_mut(stride).enumerate() {
                let first = if r < block_rows { block_cols } else { 0 };
                for (c, d) in d[..cols].iter_mut().enumerate().skip(first) {
                    // SAFETY: `c < cols` and `r < rows`, so `c·rows + r < cols·rows = src.len()`.
                    d.write(unsafe { *src.get_unchecked(c * rows + r) });
                }
            }
        }
    }
    for row in dst.chunks_exact_mut(stride) {
        row[cols..].iter_mut().for_each(|d| {
            d.write(E::zero());
        });
    }
    // SAFETY: the code above wrote every one of the first `rows * stride` elements: columns
    // `0..cols` of every row from `src` (whole blocks by `transpose_block`, which initialises all
    // of a block, the rest one by one), the rest with zeros.
    unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<E>(), rows * stride) }
}

// Two bodies for the two const values of `TRANSPOSED`: `multiversion!` passes only `FMA`.
#[inline(always)]
fn tiled_body<E: Element, const FMA: bool>(s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) {
    tiles_of::<E, FMA, false>(s, alpha, a, b, beta, c);
}

#[inline(always)]
fn tiled_transposed_body<E: Element, const FMA: bool>(s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) {
    tiles_of::<E, FMA, true>(s, alpha, a, b, beta, c);
}

/// Lays out the operands for [`tiles`]: B packed unless its rows can be read in place.
#[inline(always)]
fn tiles_of<E: Element, const FMA: bool, const TRANSPOSED: bool>(
    s: Gemm,
    alpha: E,
    a: &[E],
    b: &[E],
    beta: E,
    c: &mut [E],
) {
    let Gemm { ta, tb, m, n, k } = s;
    let np = n.next_multiple_of(NR);
    let mut b_buf = [MaybeUninit::<E>::uninit(); PACK];
    // Rows of op(B) are read in place when whole tiles wide; otherwise packed (and padded).
    let (pb, stride) = match tb {
        Trans::No if n % NR == 0 => (&b[..k * n], n),
        Trans::No => (pack(&mut b_buf, b, Trans::No, k, n, np), np),
        Trans::Yes => (pack(&mut b_buf, b, Trans::Yes, k, n, np), np),
    };
    // op(A) is read in place either way, a strided scalar per row of a tile.
    let a_layout = match ta {
        Trans::No => (k, 1),
        Trans::Yes => (1, m),
    };
    tiles::<E, FMA, TRANSPOSED>(a, a_layout, pb, stride, s, alpha, beta, c);
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

/// `c ← α Σ_p v[p] x[p·len ..][..len] + β c` with `len = c.len()` (rows of `x` weighted by `v`),
/// [`LANES`] columns at a time, summed in registers down all the rows.
#[inline(always)]
fn axpys<E: Element, const FMA: bool>(x: &[E], v: &[E], alpha: E, beta: E, c: &mut [E]) {
    let len = c.len();
    let rows = x.chunks_exact(len).zip(v);
    let store = |c: &mut E, sum: E| *c = if beta == E::zero() { alpha * sum } else { alpha * sum + beta * *c };
    let mut blocks = c.chunks_exact_mut(LANES);
    for (block, c) in (&mut blocks).enumerate() {
        let first = block * LANES;
        let mut sums = [E::zero(); LANES];
        for (row, &v) in rows.clone() {
            let x = &row[first..][..LANES];
            for l in 0..LANES {
                sums[l] = mul_add::<E, FMA>(v, x[l], sums[l]);
            }
        }
        c.iter_mut().zip(sums).for_each(|(c, sum)| store(c, sum));
    }
    let tail = len - len % LANES;
    for (l, c) in blocks.into_remainder().iter_mut().enumerate() {
        let sum = rows.clone().fold(E::zero(), |s, (row, &v)| mul_add::<E, FMA>(v, row[tail + l], s));
        store(c, sum);
    }
}

/// Every tile of `C = α op(A)·B + β C`, with `B` read as `k` rows of `stride ≥ n` elements
/// (`stride` a whole number of tiles). Element `(i, p)` of `op(A)` is `a[i·row_step + p·col_step]`
/// (A as stored: `row_step = k`, `col_step = 1`; transposed: `1` and `m`). `C` holds the product
/// row-major, or (`TRANSPOSED`) its transpose.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tiles<E: Element, const FMA: bool, const TRANSPOSED: bool>(
    a: &[E],
    (row_step, col_step): (usize, usize),
    b: &[E],
    stride: usize,
    s: Gemm,
    alpha: E,
    beta: E,
    c: &mut [E],
) {
    let Gemm { m, n, k, .. } = s;
    // The bounds every access below stays within, checked once (without overflow) instead of at
    // every access.
    let last_a = (m.max(1) - 1).checked_mul(row_step).zip((k.max(1) - 1).checked_mul(col_step));
    assert!(m >= 1 && k >= 1 && last_a.is_some_and(|(i, p)| i.checked_add(p).is_some_and(|last| last < a.len())));
    let whole_b = n.checked_next_multiple_of(NR).is_some_and(|np| np <= stride);
    assert!(whole_b && k.checked_mul(stride).is_some_and(|len| len <= b.len()));
    assert!(m.checked_mul(n).is_some_and(|len| len <= c.len()));
    // Element (i, j) of the product is `c[i·c_row + j·c_col]`.
    let (c_row, c_col) = if TRANSPOSED { (1, m) } else { (n, 1) };
    // Offsets of a tile's rows in A and in C, from its first.
    let (a_offsets, c_offsets): ([usize; MR], [usize; MR]) =
        (std::array::from_fn(|r| r * row_step), std::array::from_fn(|r| r * n));
    for i0 in (0..m.div_ceil(MR)).map(|t| t * MR) {
        let a_rows: [*const E; MR] = if i0 + MR <= m {
            std::array::from_fn(|r| a.as_ptr().wrapping_add(i0 * row_step + a_offsets[r]))
        } else {
            // A last partial tile repeats row m − 1.
            std::array::from_fn(|r| a.as_ptr().wrapping_add((i0 + r).min(m - 1) * row_step))
        };
        for j0 in (0..n.div_ceil(NR)).map(|t| t * NR) {
            // SAFETY: row `i < m` of op(A) is read at `i·row_step + p·col_step` for `p < k`, and
            // `b` at `p·stride + j0 + l` with `j0 + l < n.next_multiple_of(NR) ≤ stride`: both
            // checked against the lengths above.
            let acc = unsafe { tile::<E, FMA>(a_rows, col_step, b.as_ptr().add(j0), stride, k) };
            if !TRANSPOSED && i0 + MR <= m && j0 + NR <= n {
                // A whole tile, with fixed trip counts, so the accumulators stay in registers.
                let first = i0 * n + j0;
                for (acc_row, offset) in acc.iter().zip(c_offsets) {
                    for (l, &v) in acc_row.iter().enumerate() {
                        // SAFETY: `first + offset + l < (i0 + MR)·n ≤ m·n ≤ c.len()`, checked above.
                        let c = unsafe { c.get_unchecked_mut(first + offset + l) };
                        *c = if beta == E::zero() { alpha * v } else { alpha * v + beta * *c };
                    }
                }
            } else {
                // An edge tile, or any tile of a transposed C (scattered stores, which inlined
                // would make LLVM vectorise the tile in half-width vectors), is stored out of line.
                store_edge(&acc, c, (c_row, c_col), i0, j0, (m - i0, (n - j0).min(NR)), alpha, beta);
            }
        }
    }
}

/// One tile: `acc[r][l] = Σ_p a_rows[r][p·col_step] · b[p·stride + l]`, the `MR` values of
/// op(A) broadcast against `NR` values of a row of B, for every `p < k`.
///
/// # Safety
/// Every `a_rows[r].add(p·col_step)` and `b.add(p·stride + l)` with `p < k`, `l < NR` must be
/// readable.
#[inline(always)]
unsafe fn tile<E: Element, const FMA: bool>(
    a_rows: [*const E; MR],
    col_step: usize,
    b: *const E,
    stride: usize,
    k: usize,
) -> [[E; NR]; MR] {
    let mut acc = [[E::zero(); NR]; MR];
    for p in 0..k {
        // SAFETY: within the bounds the caller guarantees.
        let (ap, bp): ([E; MR], [E; NR]) = unsafe {
            (
                std::array::from_fn(|r| *a_rows[r].add(p * col_step)),
                b.add(p * stride).cast::<[E; NR]>().read_unaligned(),
            )
        };
        for r in 0..MR {
            for l in 0..NR {
                acc[r][l] = mul_add::<E, FMA>(ap[r], bp[l], acc[r][l]);
            }
        }
    }
    acc
}

/// Writes the valid `rows × cols` corner of an edge tile at `(i0, j0)` of the product, whose
/// element `(i, j)` is `c[i·c_row + j·c_col]`: `C ← α acc + β C`. Kept out of line: inlined, its
/// set-up is hoisted into every tile.
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn store_edge<E: Element>(
    acc: &[[E; NR]; MR],
    c: &mut [E],
    (c_row, c_col): (usize, usize),
    i0: usize,
    j0: usize,
    (rows, cols): (usize, usize),
    alpha: E,
    beta: E,
) {
    for (r, acc_row) in acc.iter().enumerate().take(rows) {
        for (l, &v) in acc_row.iter().enumerate().take(cols) {
            let c = &mut c[(i0 + r) * c_row + (j0 + l) * c_col];
            *c = if beta == E::zero() { alpha * v } else { alpha * v + beta * *c };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle;

    /// Every path (vector products, tiles of C or of Cᵀ, with and without packing) against the
    /// textbook triple loop (in f64), at the CPU's SIMD level, in f64 and in f32 (whose transposed
    /// packing has its own vector code).
    #[test]
    fn every_path_matches_the_triple_loop() {
        matches_the_triple_loop::<f64>(1e-12);
        matches_the_triple_loop::<f32>(1e-5);
    }

    fn matches_the_triple_loop<E: Element>(tolerance: f64) {
        let sizes = [1, 2, 3, 4, 5, 8, 16, 17, 33];
        for ta in [Trans::No, Trans::Yes] {
            for tb in [Trans::No, Trans::Yes] {
                for &m in &sizes {
                    for &n in &sizes {
                        for &k in &sizes {
                            let s = Gemm { ta, tb, m, n, k };
                            if !fits(&s) {
                                continue;
                            }
                            for beta in [0.0, 0.5] {
                                let (a, b, mut c) = oracle::operands::<E>(&s, beta);
                                let want = oracle::product(&s, &a, &b, beta, &c);
                                gemm(s, E::of(oracle::ALPHA), &a, &b, E::of(beta), &mut c);
                                oracle::assert_close(&format!("{s:?} β {beta}"), &c, &want, tolerance);
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
        // A vector product packs nothing, so only its work bounds it.
        assert!(g(1, 64, 64) && g(64, 1, 64));
        // Sizes whose product overflows are not small.
        assert!(!g((1 << 63) + 1, 2, 2) && !g(usize::MAX, usize::MAX, 1));
    }
}
