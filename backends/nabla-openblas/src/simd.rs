//! Run-time choice of instruction set. Hot kernels are written once as `#[inline(always)]`
//! generic bodies; [`multiversion!`] compiles each body three times — for AVX-512, for
//! AVX2 + FMA, and for the baseline — and calls the best one the CPU supports. Setting
//! `NABLA_SIMD=generic` forces the baseline (to compare, or to rule the vector code out).

use std::sync::OnceLock;

/// The instruction sets the kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    if std::env::var_os("NABLA_SIMD").is_some_and(|v| v == "generic") {
        return Level::Generic;
    }
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
