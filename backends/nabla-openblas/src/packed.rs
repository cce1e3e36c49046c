//! nabla's own GEMM for large products (the `native` provider): `C ← α·op(A)·op(B) + β·C`, `C`
//! row-major `m × n`, computed by the blocked algorithm of GotoBLAS and BLIS around a register
//! micro-kernel, so that its speed does not depend on the kernels OpenBLAS chose (or was told to
//! choose by `OPENBLAS_CORETYPE`).
//!
//! Loops, outermost first:
//! 1. `k` in blocks of [`KC`]: `β` applies in the first block, 1 in the others;
//! 2. `n` in blocks of [`NC`]: pack `op(B)[kc × nc]` into strips `NR` columns wide (each strip
//!    `kc × NR` contiguous, zero-padded past `n`), which then stay in L2;
//! 3. `m` in blocks of [`MC`]: pack `op(A)[mc × kc]` into strips `MR` rows tall (each strip
//!    `kc × MR` contiguous, zero-padded past `m`);
//! 4. every strip of A (in L1 while it is used) against every strip of B: the micro-kernel,
//!    `MR × NR` sums in registers, `acc[r][j] += a[p][r]·b[p][j]` for `p < kc` (one broadcast of
//!    `a` and `NR / LANES` vector FMAs per row), then `C ← α·acc + β·C` for the tile's valid part.
//!
//! Tiles per instruction set (registers: 32 ZMM, 16 YMM): AVX-512 `12 × 32` f32 / `12 × 16` f64
//! (24 accumulators, 2 B vectors, 1 broadcast), AVX2 `6 × 16` f32 / `6 × 8` f64 (12 + 2 + 1),
//! baseline `4 × 4` scalars. The packing buffers ([`Workspace`]) are allocated once per thread and
//! reused, so a step allocates nothing; products large enough are cut among the backend's own
//! threads ([`Team`]), each computing a block of columns (or of rows) of `C` with its workspace.

use std::mem::size_of;
use std::sync::Mutex;

use nabla_core::backend::{Gemm, Trans};
use nabla_core::{Element, Result, check};

#[cfg(target_arch = "x86_64")]
use crate::simd::{Avx2F32, Avx2F64, Avx512F32, Avx512F64};
use crate::simd::{Level, Scalar, Vector, level};
use crate::team::{Team, lock};

/// Depth of a block: a strip of B (`KC × NR`: 32 KiB for AVX-512) stays in L2, one of A
/// (`KC × MR`: 12 KiB f32) in L1.
const KC: usize = 256;
/// Columns of a packed block of B: a multiple of every `NR` (32, 16, 8, 4).
const NC: usize = 960;
/// Rows of a packed block of A: a multiple of every `MR` (12, 6, 4).
const MC: usize = 192;
/// Column blocks handed to threads are multiples of this (the widest `NR`) …
const SPLIT_COLS: usize = 32;
/// … and row blocks multiples of this (a multiple of every `MR`).
const SPLIT_ROWS: usize = 12;
/// The widest tile, in elements (the edge-tile buffer).
const MAX_TILE: usize = 12 * 32;
/// Multiply-adds a thread must get for a product to be cut (waking one costs ~14 µs, ~1M FMAs).
const MIN_PART_WORK: usize = 1 << 22;

/// One cache line of packing buffer (the buffers are aligned for vector loads).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// A thread's packing buffers: one block of A (`MC × KC`) and one of B (`KC × NC`).
#[derive(Default)]
pub(crate) struct Workspace {
    lines: Vec<Line>,
}

/// The elements of a workspace's A block; B's follow.
const A_BLOCK: usize = MC * KC;
/// The elements of a workspace's B block.
const B_BLOCK: usize = KC * NC;

impl Workspace {
    /// Grows the buffers to hold the blocks for `E` (once per thread: later calls find them big
    /// enough).
    fn reserve<E: Element>(&mut self) -> Result<()> {
        let lines = ((A_BLOCK + B_BLOCK) * size_of::<E>()).div_ceil(size_of::<Line>());
        if self.lines.len() < lines {
            self.lines = nabla_core::memory::filled(lines, Line([0; 64]), "the native GEMM's packing buffers")?;
        }
        Ok(())
    }

    /// The A and B blocks (valid after [`Workspace::reserve`] for `E`).
    fn blocks<E: Element>(&mut self) -> (*mut E, *mut E) {
        let a = self.lines.as_mut_ptr().cast::<E>();
        // In bounds: `reserve` sized the lines for both blocks (the pointer is only offset here).
        (a, a.wrapping_add(A_BLOCK))
    }
}

/// One workspace per thread of the team (thread `i` locks slot `i`).
pub(crate) struct Workspaces(Box<[Mutex<Workspace>]>);

impl std::fmt::Debug for Workspaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Workspaces({} threads)", self.0.len())
    }
}

impl Workspaces {
    /// Empty workspaces for `threads` threads (allocated at first use).
    pub(crate) fn new(threads: usize) -> Workspaces {
        Workspaces((0..threads.max(1)).map(|_| Mutex::default()).collect())
    }
}

/// An operand as the product reads it: element `(i, j)` of `op(X)` is `ptr[i·rs + j·cs]`.
#[derive(Clone, Copy)]
struct Strided<E> {
    ptr: *const E,
    rs: usize,
    cs: usize,
}

impl<E> Strided<E> {
    /// The operand from element `(i, j)` on (the offset stays within the operand's storage).
    fn at(self, i: usize, j: usize) -> Strided<E> {
        Strided { ptr: self.ptr.wrapping_add(i * self.rs + j * self.cs), ..self }
    }

    /// The transpose: element `(j, i)` is this one's `(i, j)`.
    fn transposed(self) -> Strided<E> {
        Strided { rs: self.cs, cs: self.rs, ..self }
    }
}

/// A product with its operands as raw pointers, valid for the `m × k`, `k × n` and `m × n`
/// (rows `ldc` apart) elements it names.
#[derive(Clone, Copy)]
struct Problem<E> {
    m: usize,
    n: usize,
    k: usize,
    a: Strided<E>,
    b: Strided<E>,
    c: *mut E,
    ldc: usize,
    alpha: E,
    beta: E,
}

// SAFETY: the threads given parts of one problem write disjoint blocks of C and only read A and B;
// `Team::run` returns only after every part has finished, while the caller's borrows last.
unsafe impl<E: Send> Sync for Problem<E> {}
// SAFETY: as above.
unsafe impl<E: Send> Send for Problem<E> {}

impl<E: Element> Problem<E> {
    /// Part `i` of `parts`: a block of columns of C when `by_cols`, else a block of rows (`None`
    /// when the part is empty).
    fn part(&self, i: usize, parts: usize, by_cols: bool) -> Option<Problem<E>> {
        if by_cols {
            let chunk = self.n.div_ceil(parts).next_multiple_of(SPLIT_COLS);
            let (j0, j1) = (i * chunk, ((i + 1) * chunk).min(self.n));
            (j0 < j1).then(|| Problem { n: j1 - j0, b: self.b.at(0, j0), c: self.c.wrapping_add(j0), ..*self })
        } else {
            let chunk = self.m.div_ceil(parts).next_multiple_of(SPLIT_ROWS);
            let (i0, i1) = (i * chunk, ((i + 1) * chunk).min(self.m));
            let c = self.c.wrapping_add(i0 * self.ldc);
            (i0 < i1).then(|| Problem { m: i1 - i0, a: self.a.at(i0, 0), c, ..*self })
        }
    }

    /// The same problem typed as `T` when `E` is `T`.
    fn cast<T: Element>(&self) -> Option<Problem<T>> {
        (std::any::TypeId::of::<E>() == std::any::TypeId::of::<T>()).then(|| Problem {
            a: Strided { ptr: self.a.ptr.cast(), rs: self.a.rs, cs: self.a.cs },
            b: Strided { ptr: self.b.ptr.cast(), rs: self.b.rs, cs: self.b.cs },
            c: self.c.cast(),
            // Exact: `E` and `T` are the same type.
            alpha: T::of(self.alpha.f64()),
            beta: T::of(self.beta.f64()),
            m: self.m,
            n: self.n,
            k: self.k,
            ldc: self.ldc,
        })
    }
}

/// `C ← α·op(A)·op(B) + β·C` on up to `team.size()` threads. The operand lengths are checked
/// against `s` here (`nabla_core::check::gemm`), before any unsafe access; `m`, `n`, `k` may be
/// anything, 0 included.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<E: Element>(
    team: &Team,
    spaces: &Workspaces,
    s: Gemm,
    alpha: E,
    a: &[E],
    b: &[E],
    beta: E,
    c: &mut [E],
) -> Result<()> {
    check::gemm(&s, a.len(), b.len(), c.len())?;
    let Gemm { m, n, k, .. } = s;
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 || alpha == E::zero() {
        // No product terms (or none that count, as BLAS has it): C ← β·C, not read when β = 0.
        for c in &mut c[..m * n] {
            *c = if beta == E::zero() { E::zero() } else { beta * *c };
        }
        return Ok(());
    }
    for space in &spaces.0[..parts(team, s).min(spaces.0.len())] {
        lock(space).reserve::<E>()?;
    }
    on_team(team, s, alpha, a, b, beta, c, &|i, part| {
        let mut space = lock(&spaces.0[i]);
        // SAFETY: `part` lies within the caller's slices (lengths asserted above, parts are
        // sub-blocks), parts write disjoint blocks of C, and the workspace was reserved for `E`.
        unsafe { dispatch(part, &mut space) };
    });
    Ok(())
}

/// `C ← α·op(A)·op(B) + β·C` through OpenBLAS, one call per part of C, cut over the team like
/// [`gemm`]: with both providers on the team's threads, no OpenBLAS thread spins, after its call,
/// on a core the team's next product needs. The backend sets OpenBLAS to one thread for this
/// (OpenBLAS's count is process-wide: a backend created later may raise it, which costs speed,
/// not correctness), and uses it only with an OpenBLAS that takes concurrent calls (≥ 0.3.7).
/// Sizes as for [`gemm`], with `m`, `n`, `k` ≥ 1.
pub(crate) fn blas<E: Element>(team: &Team, s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) -> Result<()> {
    use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
    check::gemm(&s, a.len(), b.len(), c.len())?;
    on_team(team, s, alpha, a, b, beta, c, &|_, p| {
        // SAFETY: the part's operands lie within the caller's slices with these strides, and
        // parts write disjoint blocks of C.
        let (a, b, mut c) = unsafe {
            (
                ArrayView2::from_shape_ptr((p.m, p.k).strides((p.a.rs, p.a.cs)), p.a.ptr),
                ArrayView2::from_shape_ptr((p.k, p.n).strides((p.b.rs, p.b.cs)), p.b.ptr),
                ArrayViewMut2::from_shape_ptr((p.m, p.n).strides((p.ldc, 1)), p.c),
            )
        };
        ndarray::linalg::general_mat_mul(p.alpha, &a, &b, p.beta, &mut c);
    });
    Ok(())
}

/// The threads a product is cut over: one per [`MIN_PART_WORK`] multiply-adds, at most one per
/// team member and per block of C.
fn parts(team: &Team, s: Gemm) -> usize {
    let Gemm { m, n, k, .. } = s;
    let blocks = if n >= m { n.div_ceil(SPLIT_COLS) } else { m.div_ceil(SPLIT_ROWS) };
    let work = m.saturating_mul(n).saturating_mul(k.max(1));
    (work / MIN_PART_WORK).clamp(1, team.size().min(blocks))
}

/// Runs `f(i, part)` for each part `i` of the product on the team: blocks of columns of C when it
/// is at least as wide as tall, else blocks of rows (each thread packs all of the operand that is
/// not cut, so the copy every thread repeats is the smaller one). Operands as for [`gemm`], with
/// `m`, `n`, `k` ≥ 1.
#[allow(clippy::too_many_arguments)]
fn on_team<E: Element>(
    team: &Team,
    s: Gemm,
    alpha: E,
    a: &[E],
    b: &[E],
    beta: E,
    c: &mut [E],
    f: &(dyn Fn(usize, &Problem<E>) + Sync),
) {
    let Gemm { ta, tb, m, n, k } = s;
    let a = match ta {
        Trans::No => Strided { ptr: a.as_ptr(), rs: k, cs: 1 },
        Trans::Yes => Strided { ptr: a.as_ptr(), rs: 1, cs: m },
    };
    let b = match tb {
        Trans::No => Strided { ptr: b.as_ptr(), rs: n, cs: 1 },
        Trans::Yes => Strided { ptr: b.as_ptr(), rs: 1, cs: k },
    };
    let problem = Problem { m, n, k, a, b, c: c.as_mut_ptr(), ldc: n, alpha, beta };
    let (parts, by_cols) = (parts(team, s), n >= m);
    team.run(parts, &|i| {
        if let Some(part) = problem.part(i, parts, by_cols) {
            f(i, &part);
        }
    });
}

/// Runs [`blocked`] with the tile of the best instruction set the CPU has.
///
/// # Safety
/// As [`blocked`].
unsafe fn dispatch<E: Element>(p: &Problem<E>, space: &mut Workspace) {
    #[cfg(target_arch = "x86_64")]
    {
        /// `blocked::<$v, MR, NV, NR>` compiled with `$features`, run on `p` if `E` is `$v::E`.
        macro_rules! run {
            ($features:literal, $v:ty, $mr:literal, $nv:literal, $nr:literal) => {{
                #[target_feature(enable = $features)]
                unsafe fn with_features(p: &Problem<<$v as Vector>::E>, space: &mut Workspace) {
                    // SAFETY: passed on from `dispatch`'s caller.
                    unsafe { blocked::<$v, $mr, $nv, $nr>(p, space) }
                }
                if let Some(p) = p.cast::<<$v as Vector>::E>() {
                    // SAFETY: `level()` checked the features at run time; the rest is the caller's.
                    return unsafe { with_features(&p, space) };
                }
            }};
        }
        match level() {
            Level::Avx512 => {
                run!("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma", Avx512F32, 12, 2, 32);
                run!("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma", Avx512F64, 12, 2, 16);
            }
            Level::Avx2 => {
                run!("avx2,fma", Avx2F32, 6, 2, 16);
                run!("avx2,fma", Avx2F64, 6, 2, 8);
            }
            Level::Generic => {}
        }
    }
    // SAFETY: as above; the scalar "vector" needs no instruction set.
    unsafe { blocked::<Scalar<E>, 4, 4, 4>(p, space) }
}

/// The blocked product (loops 1–4 of the module documentation) with `MR × NR` tiles, `NR` =
/// `NV·LANES`.
///
/// # Safety
/// The operands of `p` must be valid for the elements they name, C writable and not read by
/// anyone else meanwhile; `space` must have been reserved for `V::E`; the CPU must have the
/// instruction set of `V`.
#[inline(always)]
unsafe fn blocked<V: Vector, const MR: usize, const NV: usize, const NR: usize>(
    p: &Problem<V::E>,
    space: &mut Workspace,
) {
    const { assert!(NR == NV * V::LANES && NC.is_multiple_of(NR) && MC.is_multiple_of(MR) && MR * NR <= MAX_TILE) };
    let (a_block, b_block) = space.blocks::<V::E>();
    for pc in (0..p.k).step_by(KC) {
        let kc = KC.min(p.k - pc);
        let beta = if pc == 0 { p.beta } else { V::E::of(1.0) };
        for jc in (0..p.n).step_by(NC) {
            let nc = NC.min(p.n - jc);
            // SAFETY: the block of B lies within op(B); the buffer holds `KC × NC` elements.
            unsafe { pack::<V, NR>(p.b.at(pc, jc), kc, nc, b_block) };
            for ic in (0..p.m).step_by(MC) {
                let mc = MC.min(p.m - ic);
                // SAFETY: as for B, with `MC × KC`.
                unsafe { pack::<V, MR>(p.a.at(ic, pc).transposed(), kc, mc, a_block) };
                for ir in (0..mc).step_by(MR) {
                    for jr in (0..nc).step_by(NR) {
                        // SAFETY: strip `ir / MR` of A and `jr / NR` of B were packed above, `kc`
                        // deep; the tile's valid part lies within C.
                        unsafe {
                            let c = p.c.add((ic + ir) * p.ldc + jc + jr);
                            let (rows, cols) = (MR.min(mc - ir), NR.min(nc - jr));
                            // C's tile is read and written only after the kernel: ask for its
                            // lines now, so that they arrive while the kernel runs.
                            for r in 0..rows {
                                let row = c.add(r * p.ldc);
                                for line in (0..cols).step_by(64 / size_of::<V::E>()) {
                                    V::prefetch(row.add(line));
                                }
                            }
                            let acc = kernel::<V, MR, NV>(kc, a_block.add(ir * kc), b_block.add(jr * kc));
                            if rows == MR && cols == NR {
                                store::<V, MR, NV>(&acc, c, p.ldc, p.alpha, beta);
                            } else {
                                store_edge::<V, MR, NV>(&acc, c, p.ldc, (rows, cols), p.alpha, beta);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The micro-kernel: `acc[r][v] = Σ_{p<kc} a[p·MR + r] · b[p·NR + v·LANES ..][..LANES]`.
///
/// # Safety
/// `a` must hold `kc·MR` elements and `b` `kc·NV·LANES`; the CPU must have `V`'s instruction set.
#[inline(always)]
unsafe fn kernel<V: Vector, const MR: usize, const NV: usize>(
    kc: usize,
    a: *const V::E,
    b: *const V::E,
) -> [[V::V; NV]; MR] {
    let nr = NV * V::LANES;
    // SAFETY: every read below is within the strips the caller guarantees.
    unsafe {
        let mut acc = [[V::zero(); NV]; MR];
        for p in 0..kc {
            let bp = b.add(p * nr);
            let row: [V::V; NV] = std::array::from_fn(|v| V::load(bp.add(v * V::LANES)));
            let ap = a.add(p * MR);
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = V::splat(*ap.add(r));
                for (acc, &b) in acc.iter_mut().zip(&row) {
                    *acc = V::mul_add(x, b, *acc);
                }
            }
        }
        acc
    }
}

/// `C ← α·acc + β·C` for a whole tile at `c` (rows `ldc` apart); with `β = 0` C is not read.
///
/// # Safety
/// The `MR × NV·LANES` tile at `c` must be writable; the CPU must have `V`'s instruction set.
#[inline(always)]
unsafe fn store<V: Vector, const MR: usize, const NV: usize>(
    acc: &[[V::V; NV]; MR],
    c: *mut V::E,
    ldc: usize,
    alpha: V::E,
    beta: V::E,
) {
    // SAFETY: within the tile the caller guarantees.
    unsafe {
        let (alpha, beta_is_zero, beta) = (V::splat(alpha), beta == V::E::of(0.0), V::splat(beta));
        for (r, acc) in acc.iter().enumerate() {
            for (v, &acc) in acc.iter().enumerate() {
                let c = c.add(r * ldc + v * V::LANES);
                let scaled = V::mul(alpha, acc);
                V::store(c, if beta_is_zero { scaled } else { V::mul_add(beta, V::load(c), scaled) });
            }
        }
    }
}

/// [`store`] for the valid `rows × cols` corner of an edge tile (out of line: inlined it would
/// crowd the hot loop). Needs no instruction set: the registers are copied out as memory.
///
/// # Safety
/// The `rows × cols` corner at `c` must be writable.
#[inline(never)]
unsafe fn store_edge<V: Vector, const MR: usize, const NV: usize>(
    acc: &[[V::V; NV]; MR],
    c: *mut V::E,
    ldc: usize,
    (rows, cols): (usize, usize),
    alpha: V::E,
    beta: V::E,
) {
    let nr = NV * V::LANES;
    let mut tile = [V::E::of(0.0); MAX_TILE];
    const { assert!(size_of::<V::V>() == V::LANES * size_of::<V::E>()) };
    // SAFETY: the accumulators are `MR·NV` registers of `LANES` elements each, laid out one after
    // the other (asserted: no padding), so `MR·nr ≤ MAX_TILE` elements (asserted in `blocked`);
    // the corner is the caller's.
    unsafe {
        std::ptr::copy_nonoverlapping(acc.as_ptr().cast::<V::E>(), tile.as_mut_ptr(), MR * nr);
        for r in 0..rows {
            for j in 0..cols {
                let (c, sum) = (c.add(r * ldc + j), tile[r * nr + j]);
                *c = if beta == V::E::of(0.0) { alpha * sum } else { alpha * sum + beta * *c };
            }
        }
    }
}

/// Packs the `rows × cols` block at `src` into strips of `W` columns: element `(p, jj)` of the
/// strip starting at column `j0` goes to `dst[j0·rows + p·W + jj]`, zeros past `cols`. B's block
/// (`kc × nc`, strips `NR` wide) is packed as it is; A's (`mc × kc`, strips `MR` tall) as its
/// transpose ([`Strided::transposed`]), whose columns are A's rows. A whole strip's rows are
/// copied with a length known at compile time (vector moves, not a `memmove` call per row); a
/// block whose columns are contiguous (B transposed, A not) is transposed 8 × 8 at a time.
///
/// # Safety
/// `src` must be valid for the block, `dst` for `rows · cols.next_multiple_of(W)` elements; the
/// CPU must have `V`'s instruction set.
#[inline(always)]
unsafe fn pack<V: Vector, const W: usize>(src: Strided<V::E>, rows: usize, cols: usize, dst: *mut V::E) {
    // SAFETY: every read is within the block, every write within the strips.
    unsafe {
        for j0 in (0..cols).step_by(W) {
            let (valid, strip) = (W.min(cols - j0), dst.add(j0 * rows));
            let from = src.at(0, j0);
            if from.cs == 1 {
                // Rows are contiguous: copy `valid` elements per row.
                for p in 0..rows {
                    let (row, to) = (from.ptr.add(p * from.rs), strip.add(p * W));
                    if valid == W {
                        std::ptr::copy_nonoverlapping(row, to, W);
                    } else {
                        std::ptr::copy_nonoverlapping(row, to, valid);
                    }
                }
            } else {
                // Columns are contiguous: whole strips 8 rows × 8 columns at a time (the last
                // block of columns moved back to end at `W`: its overlap is written twice, with
                // the same values), then the other rows one at a time from `valid` columns,
                // whose lines stay in L1 over the next rows.
                let blocked = if from.rs == 1 && valid == W && W >= 8 { rows / 8 * 8 } else { 0 };
                for p0 in (0..blocked).step_by(8) {
                    for jj0 in (0..W).step_by(8) {
                        let jj0 = jj0.min(W - 8);
                        V::transpose_8x8(from.at(p0, jj0).ptr, from.cs, strip.add(p0 * W + jj0), W);
                    }
                }
                for p in blocked..rows {
                    for jj in 0..valid {
                        *strip.add(p * W + jj) = *from.ptr.add(p * from.rs + jj * from.cs);
                    }
                }
            }
            for p in 0..rows {
                for jj in valid..W {
                    *strip.add(p * W + jj) = V::E::of(0.0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle;

    /// The blocked product against the textbook triple loop (in f64) for every transpose pair,
    /// with sizes that are 1, odd, below and above a tile, a block (`MC`, `NC`, `KC`) and a thread's
    /// part, β = 0 (an old C of NaN must not matter) and β ≠ 0, on one and two threads, with the
    /// CPU's widest tile (`make test` reruns it with `NABLA_SIMD=avx2` under valgrind and with
    /// `generic`).
    #[test]
    fn every_shape_matches_the_triple_loop() {
        matches_the_triple_loop::<f64>(1e-12);
        matches_the_triple_loop::<f32>(2e-5);
    }

    fn matches_the_triple_loop<E: Element>(tolerance: f64) {
        let shapes = [
            (1, 1, 1),
            (1, 37, 5),
            (37, 1, 5),
            (3, 5, 1),
            (12, 32, 7),
            (13, 33, 19),
            (25, 70, 300),
            // Several blocks of rows and of depth; several blocks of columns (kept small: the
            // test also runs under valgrind).
            (MC + 5, 40, KC + 3),
            (13, NC + 17, 20),
            (100, 50, 2 * KC + 1),
            (2 * SPLIT_ROWS + 1, 7, 700),
        ];
        for threads in [1, 2] {
            let team = Team::new(threads).unwrap();
            let spaces = Workspaces::new(threads);
            for (m, n, k) in shapes {
                for ta in [Trans::No, Trans::Yes] {
                    for tb in [Trans::No, Trans::Yes] {
                        let s = Gemm { ta, tb, m, n, k };
                        for beta in [0.0, 0.5] {
                            let (a, b, mut c) = oracle::operands::<E>(&s, beta);
                            let want = oracle::product(&s, &a, &b, beta, &c);
                            // Both providers on the team: the packed kernels and OpenBLAS by blocks.
                            let (alpha, mut by_blas) = (E::of(oracle::ALPHA), c.clone());
                            gemm(&team, &spaces, s, alpha, &a, &b, E::of(beta), &mut c).unwrap();
                            blas(&team, s, alpha, &a, &b, E::of(beta), &mut by_blas).unwrap();
                            oracle::assert_close(&format!("{s:?} β {beta} {threads}T"), &c, &want, tolerance);
                            oracle::assert_close(
                                &format!("blas {s:?} β {beta} {threads}T"),
                                &by_blas,
                                &want,
                                tolerance,
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn empty_products_leave_c_alone() {
        let (team, spaces) = (Team::new(2).unwrap(), Workspaces::new(2));
        let mut c = vec![3.0_f32; 4];
        for (m, n, k) in [(0, 4, 3), (4, 0, 3)] {
            gemm(
                &team,
                &spaces,
                Gemm { ta: Trans::No, tb: Trans::No, m, n, k },
                1.0,
                &[1.0; 12],
                &[1.0; 12],
                0.0,
                &mut c,
            )
            .unwrap();
        }
        assert_eq!(c, [3.0; 4]);
        // k = 0: C ← β·C (no product terms).
        gemm(&team, &spaces, Gemm { ta: Trans::No, tb: Trans::No, m: 2, n: 2, k: 0 }, 1.0, &[], &[], 0.5, &mut c)
            .unwrap();
        assert_eq!(c, [1.5; 4]);
    }
}
