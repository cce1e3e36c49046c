//! What runs: the OpenBLAS build and the core it chose, the CPU's vector instruction set, and the
//! CPU's floating-point peak measured by a register-only FMA loop (the hardware's bound, which
//! "% of peak" figures divide by).

use std::ffi::{CStr, c_char};
use std::time::Instant;

#[cfg(target_arch = "x86_64")]
use crate::simd::{Avx2F32, Avx512F32};
use crate::simd::{Level, Scalar, Vector, level};

unsafe extern "C" {
    fn openblas_get_config() -> *const c_char;
    fn openblas_get_corename() -> *const c_char;
}

/// A C string OpenBLAS returns, as Rust text.
fn text(p: *const c_char) -> String {
    if p.is_null() {
        return "unknown".into();
    }
    // SAFETY: OpenBLAS returns a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().trim().to_string()
}

/// OpenBLAS's build configuration (version, build target, threading, e.g.
/// `OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Cooperlake MAX_THREADS=64`).
pub fn openblas_config() -> String {
    // SAFETY: a plain getter of a static string.
    text(unsafe { openblas_get_config() })
}

/// The core whose kernels OpenBLAS runs (its CPU detection, or `OPENBLAS_CORETYPE`), e.g.
/// `Cooperlake` or `Haswell`.
pub fn openblas_core() -> String {
    // SAFETY: a plain getter of a static string.
    text(unsafe { openblas_get_corename() })
}

/// The widest vector instruction set of an OpenBLAS core's kernels, where the name is known:
/// AVX-512 for Skylake-X and later Xeons, AVX2 + FMA for Haswell and the Zens, the baseline for
/// the rest (Sandy Bridge's AVX has no FMA).
pub fn core_level(core: &str) -> Option<Level> {
    let core = core.to_ascii_lowercase();
    let known = |names: &[&str]| names.contains(&core.as_str());
    if known(&["skylakex", "cooperlake", "sapphirerapids"]) {
        Some(Level::Avx512)
    } else if known(&["haswell", "zen", "excavator", "dhyana"]) {
        Some(Level::Avx2)
    } else if known(&[
        "sandybridge",
        "bulldozer",
        "piledriver",
        "steamroller",
        "nehalem",
        "core2",
        "penryn",
        "dunnington",
        "prescott",
        "atom",
        "barcelona",
        "opteron",
        "opteron_sse3",
        "nano",
        "bobcat",
    ]) {
        Some(Level::Generic)
    } else {
        None
    }
}

/// The vector instruction set's name.
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Generic => "baseline (no AVX2)",
        Level::Avx2 => "AVX2+FMA",
        Level::Avx512 => "AVX-512",
    }
}

/// Whether OpenBLAS's kernels are as wide as the CPU's vector registers, as far as is known: an
/// unknown core counts as full width (as for [`narrower_kernels`]).
pub fn openblas_is_full_width() -> bool {
    narrower_level(&openblas_core(), level()).is_none()
}

/// The level of OpenBLAS core `core` when it is known and below `ours` (the one test both
/// [`openblas_is_full_width`] and [`narrower_kernels`] rest on).
fn narrower_level(core: &str, ours: Level) -> Option<Level> {
    core_level(core).filter(|&theirs| theirs < ours)
}

/// OpenBLAS's version from its configuration string (`OpenBLAS 0.3.21 …`).
pub fn openblas_version() -> Option<(u32, u32, u32)> {
    version_in(&openblas_config())
}

/// The `x.y.z` after `OpenBLAS ` in `config`.
fn version_in(config: &str) -> Option<(u32, u32, u32)> {
    let v = config.strip_prefix("OpenBLAS ")?.split_whitespace().next()?;
    let mut parts = v.split('.').map(|p| p.trim_end_matches(|c: char| !c.is_ascii_digit()).parse::<u32>().ok());
    Some((parts.next()??, parts.next()??, parts.next().flatten().unwrap_or(0)))
}

/// Whether this OpenBLAS may be called from several threads at once (0.3.7 made it safe).
pub fn openblas_takes_concurrent_calls() -> bool {
    openblas_version().is_some_and(|v| v >= (0, 3, 7))
}

/// A warning when OpenBLAS runs kernels narrower than the CPU offers (an old OpenBLAS on a new
/// CPU, a VM hiding CPUID bits, or `OPENBLAS_CORETYPE`), with what it costs in peak: `None` when
/// they match or the core is unknown.
pub fn narrower_kernels() -> Option<String> {
    let coretype = std::env::var("OPENBLAS_CORETYPE").ok();
    kernel_gap(&openblas_core(), level(), coretype.as_deref(), fma_peak)
}

/// [`narrower_kernels`] for OpenBLAS core `core` on a CPU whose widest level is `ours`, with
/// `OPENBLAS_CORETYPE` (if set) and the peak of each level from `peak`.
fn kernel_gap(core: &str, ours: Level, coretype: Option<&str>, peak: impl Fn(Level) -> f64) -> Option<String> {
    narrower_level(core, ours).map(|theirs| {
        let coretype = coretype.map(|v| format!(" (OPENBLAS_CORETYPE={v})")).unwrap_or_default();
        let (low, high) = (peak(theirs), peak(ours));
        format!(
            "OpenBLAS runs its {core} kernels{coretype}, {} on a CPU with {}: its GEMMs can reach at most \
             {low:.0} of the {high:.0} GFLOP/s per core the CPU has ({:.0}%); nabla's own GEMM (--gemm auto or \
             native) uses {}",
            level_name(theirs),
            level_name(ours),
            100.0 * low / high,
            level_name(ours),
        )
    })
}

/// The f32 peak of one core at `level` in GFLOP/s (2 per FMA lane), measured once per process
/// and level by [`fma_loop`]: the best of 5 runs of 2²⁰ iterations.
pub fn fma_peak(level: Level) -> f64 {
    use std::sync::OnceLock;
    static PEAKS: [OnceLock<f64>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let at = match level {
        Level::Generic => 0,
        Level::Avx2 => 1,
        Level::Avx512 => 2,
    };
    *PEAKS[at].get_or_init(|| measure_peak(level))
}

/// Independent accumulators of the FMA loop: more than latency × ports (4 × 2) on every CPU.
const CHAINS: usize = 12;
/// Iterations of one timed run.
const ITERATIONS: usize = 1 << 20;

fn measure_peak(level: Level) -> f64 {
    let run = || -> (f64, usize) {
        let start = Instant::now();
        let (lanes, _) = fma_chains(level, ITERATIONS);
        (start.elapsed().as_secs_f64(), lanes)
    };
    let best = (0..5).map(|_| run()).fold((f64::INFINITY, 1), |b, r| if r.0 < b.0 { r } else { b });
    (2 * CHAINS * best.1 * ITERATIONS) as f64 / best.0 / 1e9
}

/// [`fma_loop`] at `level` (at most the CPU's): the lanes per register and the value one lane
/// ends with.
fn fma_chains(level: Level, iterations: usize) -> (usize, f32) {
    match level.min(crate::simd::level()) {
        // SAFETY: the CPU has the level (clamped above).
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { fma_avx512(iterations) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { fma_avx2(iterations) },
        // SAFETY: the scalar loop needs no instruction set.
        _ => unsafe { fma_loop::<Scalar<f32>>(iterations) },
    }
}

/// [`fma_loop`] on AVX-512 registers.
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn fma_avx512(iterations: usize) -> (usize, f32) {
    // SAFETY: the caller guarantees the instruction set.
    unsafe { fma_loop::<Avx512F32>(iterations) }
}

/// [`fma_loop`] on AVX2 registers.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_avx2(iterations: usize) -> (usize, f32) {
    // SAFETY: the caller guarantees the instruction set.
    unsafe { fma_loop::<Avx2F32>(iterations) }
}

/// `iterations × CHAINS` FMAs on registers only (`acc ← acc·x + y` from 1 with x = 0.999999,
/// y = 10⁻⁶, `CHAINS` independent chains); returns the lanes per register and the value a lane
/// ends with. Every chain goes through `black_box`, so none of the loop can be dropped.
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
unsafe fn fma_loop<V: Vector<E = f32>>(iterations: usize) -> (usize, f32) {
    // SAFETY: the caller guarantees the instruction set; the store is into a local array.
    unsafe {
        let (x, y) = (V::splat(std::hint::black_box(0.999_999)), V::splat(std::hint::black_box(1e-6)));
        let mut acc = [V::splat(1.0); CHAINS];
        for _ in 0..iterations {
            for a in &mut acc {
                *a = V::mul_add(*a, x, y);
            }
        }
        let mut out = [0.0_f32; 16];
        for a in acc {
            V::store(out.as_mut_ptr(), a);
            std::hint::black_box(&out);
        }
        (V::LANES, out[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_names_map_to_their_vector_width() {
        assert_eq!(core_level("Haswell"), Some(Level::Avx2));
        assert_eq!(core_level("Zen"), Some(Level::Avx2));
        assert_eq!(core_level("SkylakeX"), Some(Level::Avx512));
        assert_eq!(core_level("COOPERLAKE"), Some(Level::Avx512));
        assert_eq!(core_level("Sandybridge"), Some(Level::Generic));
        assert_eq!(core_level("NeoverseN1"), None);
    }

    #[test]
    fn narrower_kernels_are_named_with_their_cost() {
        let peak = |l: Level| match l {
            Level::Generic => 10.0,
            Level::Avx2 => 100.0,
            Level::Avx512 => 200.0,
        };
        let gap = kernel_gap("Haswell", Level::Avx512, Some("Haswell"), peak).unwrap();
        assert!(gap.contains("Haswell kernels (OPENBLAS_CORETYPE=Haswell), AVX2+FMA on a CPU with AVX-512"), "{gap}");
        assert!(gap.contains("at most 100 of the 200 GFLOP/s") && gap.contains("(50%)"), "{gap}");
        assert!(kernel_gap("SkylakeX", Level::Avx512, None, peak).is_none());
        assert!(kernel_gap("Haswell", Level::Avx2, None, peak).is_none());
        assert!(kernel_gap("SomeFutureCore", Level::Avx512, None, peak).is_none());
        assert!(kernel_gap("Sandybridge", Level::Avx2, None, peak).unwrap().contains("baseline"));
    }

    #[test]
    fn versions_are_read_from_the_configuration() {
        assert_eq!(version_in("OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH SkylakeX"), Some((0, 3, 21)));
        assert_eq!(version_in("OpenBLAS 0.3.30.dev DYNAMIC_ARCH"), Some((0, 3, 30)));
        assert_eq!(version_in("OpenBLAS 0.2 Haswell"), Some((0, 2, 0)));
        assert_eq!(version_in("GotoBLAS 1.13"), None);
        assert!(version_in("OpenBLAS 0.3.6 Haswell").unwrap() < (0, 3, 7));
    }

    #[test]
    fn the_build_and_core_are_reported() {
        assert!(openblas_config().contains("OpenBLAS"), "{}", openblas_config());
        assert!(!openblas_core().is_empty());
    }

    /// The peak loop computes what it says at every level the CPU has (fused where the level
    /// has FMA): its timing is a figure for `nabla bench`, never asserted here.
    #[test]
    fn the_peak_loop_runs_its_chains_at_every_level() {
        for (l, lanes) in [(Level::Generic, 1), (Level::Avx2, 8), (Level::Avx512, 16)] {
            if l > level() {
                continue;
            }
            let want = (0..1000).fold(1.0_f32, |a, _| {
                if l == Level::Generic { a * 0.999_999 + 1e-6 } else { a.mul_add(0.999_999, 1e-6) }
            });
            assert_eq!(fma_chains(l, 1000), (lanes, want), "{l:?}");
            let peak = fma_peak(l);
            assert!(peak.is_finite() && peak > 0.0, "{l:?}: {peak}");
        }
    }
}
