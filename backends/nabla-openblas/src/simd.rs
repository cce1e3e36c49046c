//! Run-time choice of instruction set. Hot kernels are written once as `#[inline(always)]`
//! generic bodies; [`multiversion!`] compiles each body three times — for AVX-512, for
//! AVX2 + FMA, and for the baseline — and calls the best one the CPU supports. Setting
//! `NABLA_SIMD=generic` forces the baseline (to compare, or to rule the vector code out);
//! `NABLA_SIMD=avx2` caps the choice at AVX2 (for valgrind, which does not decode AVX-512).

use std::mem::MaybeUninit;
use std::sync::OnceLock;

use nabla_core::Element;

/// The instruction sets the kernels are compiled for, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The target's baseline (SSE2 on x86-64).
    Generic,
    /// AVX2 with FMA.
    Avx2,
    /// AVX-512 (F, VL, BW, DQ) with FMA.
    Avx512,
}

/// The best level this CPU supports (detected once).
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(detect)
}

fn detect() -> Level {
    let cap = match std::env::var("NABLA_SIMD").as_deref() {
        Ok("generic") => Level::Generic,
        Ok("avx2") => Level::Avx2,
        _ => Level::Avx512,
    };
    detect_cpu().min(cap)
}

fn detect_cpu() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        let avx512 = avx2
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512dq");
        if avx512 {
            return Level::Avx512;
        }
        if avx2 {
            return Level::Avx2;
        }
    }
    Level::Generic
}

/// `multiversion!(pub fn name<E: Bound>(args…) -> Ret => body);` defines `name`, which calls the
/// `#[inline(always)]` function `body` compiled for the best [`Level`] of this CPU.
/// `=> fused body` calls `body::<E, FMA>` instead, with `FMA` true in the AVX2 and AVX-512
/// copies, for bodies that multiply-add through [`mul_add`].
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident<$E:ident: $bound:path>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:ident) => {
        $crate::simd::multiversion!(@ $(#[$meta])* $vis fn $name<$E: $bound>($($arg: $ty),*) $(-> $ret)?
            => $body::<$E>, $body::<$E>);
    };
    ($(#[$meta:meta])* $vis:vis fn $name:ident<$E:ident: $bound:path>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => fused $body:ident) => {
        $crate::simd::multiversion!(@ $(#[$meta])* $vis fn $name<$E: $bound>($($arg: $ty),*) $(-> $ret)?
            => $body::<$E, true>, $body::<$E, false>);
    };
    (@ $(#[$meta:meta])* $vis:vis fn $name:ident<$E:ident: $bound:path>($($arg:ident: $ty:ty),*) $(-> $ret:ty)? => $vector:expr, $baseline:expr) => {
        $(#[$meta])*
        $vis fn $name<$E: $bound>($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
                fn avx512<$E: $bound>($($arg: $ty),*) $(-> $ret)? {
                    $vector($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2<$E: $bound>($($arg: $ty),*) $(-> $ret)? {
                    $vector($($arg),*)
                }
                match $crate::simd::level() {
                    // SAFETY: `level()` checked at run time that the CPU has these features.
                    $crate::simd::Level::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::simd::Level::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::simd::Level::Generic => {}
                }
            }
            $baseline($($arg),*)
        }
    };
}

pub(crate) use multiversion;

/// Elements a kernel handles as one vector (an AVX2 register of f32). Loops over short rows (W2's
/// are 16 wide) are written over fixed chunks of `LANES`: a plain loop is vectorised in blocks of
/// several vectors, and a row shorter than a block runs entirely in its scalar tail.
pub(crate) const LANES: usize = 8;

pub(crate) use nabla_core::fastmath::mul_add;

/// Writes the transpose of the `LANES × LANES` block at the start of `src` (rows `src_stride`
/// apart) to the start of `dst` (rows `dst_stride` apart), initialising all of its
/// `LANES × LANES` elements. For `f32` on a CPU with AVX2: eight vector loads, three rounds of
/// shuffles, eight vector stores; otherwise element by element.
///
/// # Panics
/// If the slices do not hold the block.
pub(crate) fn transpose_block<E: Element>(src: &[E], src_stride: usize, dst: &mut [MaybeUninit<E>], dst_stride: usize) {
    let fits = src.len() >= (LANES - 1) * src_stride + LANES && dst.len() >= (LANES - 1) * dst_stride + LANES;
    assert!(fits, "transpose_block: the slices do not hold a {LANES} × {LANES} block");
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<E>() == std::any::TypeId::of::<f32>() && level() != Level::Generic {
        // SAFETY: `E` is `f32` (the same TypeId), the CPU has AVX2 (`level()` checked it at run
        // time), and every row read or written lies within the slices (asserted above).
        unsafe { transpose_8x8_f32(src.as_ptr().cast(), src_stride, dst.as_mut_ptr().cast(), dst_stride) };
        return;
    }
    for r in 0..LANES {
        for c in 0..LANES {
            dst[r * dst_stride + c].write(src[c * src_stride + r]);
        }
    }
}

/// The 8 × 8 `f32` transpose of [`transpose_block`]: rows interleaved in pairs, then in fours,
/// then the 128-bit halves exchanged.
///
/// # Safety
/// The CPU must have AVX; rows `src + i·ss` and `dst + i·ds` (`i < 8`) must each hold 8 floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn transpose_8x8_f32(src: *const f32, ss: usize, dst: *mut f32, ds: usize) {
    use std::arch::x86_64::{
        _mm256_loadu_ps, _mm256_permute2f128_ps, _mm256_shuffle_ps, _mm256_storeu_ps, _mm256_unpackhi_ps,
        _mm256_unpacklo_ps,
    };
    // SAFETY: within the rows the caller guarantees.
    let r: [_; 8] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(src.add(i * ss)) });
    // t: pairs of rows interleaved; u: columns 4 at a time in each 128-bit half.
    let t: [_; 8] = std::array::from_fn(|i| {
        let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
        if i % 2 == 0 { _mm256_unpacklo_ps(a, b) } else { _mm256_unpackhi_ps(a, b) }
    });
    let u: [_; 8] = std::array::from_fn(|i| {
        let (a, b) = (t[i / 4 * 4 + i % 4 / 2], t[i / 4 * 4 + i % 4 / 2 + 2]);
        if i % 2 == 0 { _mm256_shuffle_ps::<0x44>(a, b) } else { _mm256_shuffle_ps::<0xEE>(a, b) }
    });
    for i in 0..8 {
        let column = if i < 4 {
            _mm256_permute2f128_ps::<0x20>(u[i], u[i + 4])
        } else {
            _mm256_permute2f128_ps::<0x31>(u[i - 4], u[i])
        };
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(dst.add(i * ds), column) };
    }
}

/// One SIMD register of [`Vector::LANES`] elements of [`Vector::E`] and the operations the packed
/// GEMM's micro-kernel needs ([`crate::packed`]). An implementation is a marker type per
/// (instruction set, element type); its functions are `unsafe` because the CPU must have that
/// instruction set, and pointers must be valid for `LANES` elements (no alignment needed).
pub(crate) trait Vector {
    /// The element type.
    type E: Element;
    /// The register type.
    type V: Copy;
    /// Elements per register.
    const LANES: usize;
    /// All lanes 0.
    unsafe fn zero() -> Self::V;
    /// All lanes `x`.
    unsafe fn splat(x: Self::E) -> Self::V;
    /// `LANES` elements from `p`.
    unsafe fn load(p: *const Self::E) -> Self::V;
    /// `LANES` elements to `p`.
    unsafe fn store(p: *mut Self::E, v: Self::V);
    /// `a·b + c` per lane (fused where the instruction set has FMA).
    unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a·b` per lane.
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// Asks for the cache line holding `p` to be brought into L1 (a hint: never faults).
    #[inline(always)]
    unsafe fn prefetch(p: *const Self::E) {
        let _ = p;
    }
    /// Writes the transpose of the 8 × 8 block at `src` (rows `ss` apart) to `dst` (rows `ds`
    /// apart): `dst[r·ds + c] = src[c·ss + r]`. Element by element unless the instruction set
    /// has shuffles for `E` ([`transpose_8x8_f32`]).
    ///
    /// # Safety
    /// Rows `src + c·ss` and `dst + r·ds` (`c`, `r` < 8) must each hold 8 elements; the CPU must
    /// have the instruction set.
    #[inline(always)]
    unsafe fn transpose_8x8(src: *const Self::E, ss: usize, dst: *mut Self::E, ds: usize) {
        for r in 0..8 {
            for c in 0..8 {
                // SAFETY: the caller guarantees the eight rows of eight elements at each pointer.
                unsafe { *dst.add(r * ds + c) = *src.add(c * ss + r) };
            }
        }
    }
}

/// The baseline "vector": one element, plain multiply and add (no FMA).
pub(crate) struct Scalar<E>(std::marker::PhantomData<E>);

impl<E: Element> Vector for Scalar<E> {
    type E = E;
    type V = E;
    const LANES: usize = 1;
    #[inline(always)]
    unsafe fn zero() -> E {
        E::zero()
    }
    #[inline(always)]
    unsafe fn splat(x: E) -> E {
        x
    }
    #[inline(always)]
    unsafe fn load(p: *const E) -> E {
        // SAFETY: the caller guarantees `p` is readable.
        unsafe { p.read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(p: *mut E, v: E) {
        // SAFETY: the caller guarantees `p` is writable.
        unsafe { p.write_unaligned(v) }
    }
    #[inline(always)]
    unsafe fn mul_add(a: E, b: E, c: E) -> E {
        a * b + c
    }
    #[inline(always)]
    unsafe fn mul(a: E, b: E) -> E {
        a * b
    }
}

/// Defines an x86-64 [`Vector`] from its intrinsics.
#[cfg(target_arch = "x86_64")]
macro_rules! x86_vector {
    ($(#[$meta:meta])* $name:ident: $e:ty, $v:ident, $lanes:expr,
     $zero:ident, $splat:ident, $load:ident, $store:ident, $fma:ident, $mul:ident $(, $transpose:ident)?) => {
        $(#[$meta])*
        pub(crate) struct $name;

        impl Vector for $name {
            type E = $e;
            type V = std::arch::x86_64::$v;
            const LANES: usize = $lanes;
            // SAFETY (every function): the caller guarantees the instruction set and the pointers.
            #[inline(always)]
            unsafe fn zero() -> Self::V {
                unsafe { std::arch::x86_64::$zero() }
            }
            #[inline(always)]
            unsafe fn splat(x: $e) -> Self::V {
                unsafe { std::arch::x86_64::$splat(x) }
            }
            #[inline(always)]
            unsafe fn load(p: *const $e) -> Self::V {
                unsafe { std::arch::x86_64::$load(p) }
            }
            #[inline(always)]
            unsafe fn store(p: *mut $e, v: Self::V) {
                unsafe { std::arch::x86_64::$store(p, v) }
            }
            #[inline(always)]
            unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
                unsafe { std::arch::x86_64::$fma(a, b, c) }
            }
            #[inline(always)]
            unsafe fn mul(a: Self::V, b: Self::V) -> Self::V {
                unsafe { std::arch::x86_64::$mul(a, b) }
            }
            #[inline(always)]
            unsafe fn prefetch(p: *const $e) {
                unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast()) }
            }
            $(
            #[inline(always)]
            unsafe fn transpose_8x8(src: *const $e, ss: usize, dst: *mut $e, ds: usize) {
                unsafe { $transpose(src, ss, dst, ds) }
            }
            )?
        }
    };
}

#[cfg(target_arch = "x86_64")]
x86_vector!(
    /// 16 f32 in a ZMM register (AVX-512F).
    Avx512F32: f32, __m512, 16, _mm512_setzero_ps, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_mul_ps,
    transpose_8x8_f32
);
#[cfg(target_arch = "x86_64")]
x86_vector!(
    /// 8 f64 in a ZMM register (AVX-512F).
    Avx512F64: f64, __m512d, 8, _mm512_setzero_pd, _mm512_set1_pd, _mm512_loadu_pd, _mm512_storeu_pd, _mm512_fmadd_pd, _mm512_mul_pd
);
#[cfg(target_arch = "x86_64")]
x86_vector!(
    /// 8 f32 in a YMM register (AVX2 + FMA).
    Avx2F32: f32, __m256, 8, _mm256_setzero_ps, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_mul_ps,
    transpose_8x8_f32
);
#[cfg(target_arch = "x86_64")]
x86_vector!(
    /// 4 f64 in a YMM register (AVX2 + FMA).
    Avx2F64: f64, __m256d, 4, _mm256_setzero_pd, _mm256_set1_pd, _mm256_loadu_pd, _mm256_storeu_pd, _mm256_fmadd_pd, _mm256_mul_pd
);
