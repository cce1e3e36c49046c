//! Which provider computes each GEMM shape: OpenBLAS or nabla's packed kernels ([`crate::packed`]).
//!
//! With [`GemmProvider::Auto`] the first product of a shape (transposes, `m`, `n`, `k`, whether
//! `β = 0`, element type, thread count) is timed on both providers — one warm-up run each, then
//! the best of two runs each, alternating, into a copy of `C` (the warm-up runs alone when one
//! took longer than [`LONG_RUN`]) — and the faster is kept for that
//! shape (native only when at least 5% faster) for the life of the process: every auto backend
//! of the process takes the same provider for the same shape, so two runs of one seed in one
//! process agree bit for bit. The first step of a network pays a few extra products per shape;
//! every later product is one lookup. The copy of `C` lives in a buffer kept for the next shape
//! and the tables have room for [`SHAPES`] shapes, so a shape first seen later (a last, smaller
//! batch) allocates nothing unless it is the largest yet. Two processes may choose differently
//! (the timings differ) and then differ in the last bits; `--gemm openblas` or `--gemm native`
//! makes runs repeatable across processes.

use std::mem::{align_of, size_of};
use std::sync::Mutex;
use std::time::Instant;

use nabla_core::backend::{Gemm, GemmProvider};
use nabla_core::{DType, Element, Result};

use crate::team::lock;

/// A shape as the choice sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmKey {
    /// Transposes and sizes.
    pub shape: Gemm,
    /// Whether `β = 0` (C is then not read).
    pub beta_zero: bool,
    /// The element type.
    pub dtype: DType,
    /// The backend's threads (the products are timed on them).
    pub threads: usize,
}

/// The provider a shape took, and the timings it was chosen by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmChoice {
    /// The shape.
    pub key: GemmKey,
    /// [`GemmProvider::OpenBlas`] or [`GemmProvider::Native`].
    pub provider: GemmProvider,
    /// Seconds per product on each provider (OpenBLAS, native) when chosen by timing; `None`
    /// when the provider was forced.
    pub seconds: Option<(f64, f64)>,
}

/// When either warm-up run takes longer than this, the warm-up runs decide (no more runs).
const LONG_RUN: f64 = 0.25;
/// Native must be this much faster than OpenBLAS to be taken: two timings of one product differ
/// by a few percent from one run to the next, so OpenBLAS keeps the near ties. (Before native's
/// packing moved whole strips with vector moves and 8 × 8 transposes, a product timed alone
/// overstated native's lead inside a step, and the margin was 15%: on W1's shapes at one thread
/// native timed 7–14% faster made the step 6% slower. With the faster packing, W1 at one thread
/// runs 54.2–54.8k samples/s with this margin against 51.1–52.2k with 15%, same session,
/// alternating runs; W3's choices do not change.) Where OpenBLAS runs narrower kernels than the
/// CPU's, native times 15–38% faster on every large shape.
pub const NATIVE_MARGIN: f64 = 0.95;
/// Shapes the table holds without growing (a network has three per layer and β, plus evaluation).
const SHAPES: usize = 64;

/// The shapes every auto backend of the process has timed, and what they chose.
static TIMED: Mutex<Vec<GemmChoice>> = Mutex::new(Vec::new());
/// Held while a shape is timed.
static TIMING: Mutex<()> = Mutex::new(());

/// The forced provider or the choices made so far.
#[derive(Debug)]
pub(crate) struct Chooser {
    forced: GemmProvider,
    choices: Mutex<Vec<GemmChoice>>,
    /// The copy of C the providers are timed on, as 8-byte words (f32 or f64 elements).
    scratch: Mutex<Vec<u64>>,
}

impl Chooser {
    pub(crate) fn new(forced: GemmProvider) -> Chooser {
        if forced == GemmProvider::Auto {
            let mut timed = lock(&TIMED);
            if timed.capacity() == 0 {
                timed.reserve(SHAPES);
            }
        }
        Chooser { forced, choices: Mutex::new(Vec::with_capacity(SHAPES)), scratch: Mutex::new(Vec::new()) }
    }

    /// The provider setting (`Auto` or a forced one).
    pub(crate) fn setting(&self) -> GemmProvider {
        self.forced
    }

    /// Every shape this backend has seen so far, in the order first seen.
    pub(crate) fn choices(&self) -> Vec<GemmChoice> {
        lock(&self.choices).clone()
    }

    /// The provider for `key`: the recorded one, else the forced one (recorded), else the faster
    /// of the two on `c`'s shape, found by running `run(provider, scratch)` into a copy of `c`.
    pub(crate) fn provider<E: Element>(
        &self,
        key: GemmKey,
        c: &[E],
        run: impl FnMut(GemmProvider, &mut [E]) -> Result<()>,
    ) -> Result<GemmProvider> {
        if let Some(choice) = lock(&self.choices).iter().find(|ch| ch.key == key) {
            return Ok(choice.provider);
        }
        let choice = match self.forced {
            GemmProvider::Auto => {
                // One shape timed at a time in the process; a thread that waited here finds the
                // choice another one made.
                let _one_at_a_time = lock(&TIMING);
                let timed = lock(&TIMED).iter().find(|ch| ch.key == key).copied();
                match timed {
                    Some(choice) => choice,
                    None => {
                        let choice = self.time_both(key, c, run)?;
                        lock(&TIMED).push(choice);
                        choice
                    }
                }
            }
            forced => GemmChoice { key, provider: forced, seconds: None },
        };
        let mut mine = lock(&self.choices);
        if !mine.iter().any(|ch| ch.key == key) {
            mine.push(choice);
        }
        Ok(choice.provider)
    }

    /// Times both providers on `key`'s shape into a copy of `c` and chooses.
    fn time_both<E: Element>(
        &self,
        key: GemmKey,
        c: &[E],
        mut run: impl FnMut(GemmProvider, &mut [E]) -> Result<()>,
    ) -> Result<GemmChoice> {
        let len = key.shape.m * key.shape.n;
        let mut words = lock(&self.scratch);
        let needed = (len * size_of::<E>()).div_ceil(size_of::<u64>());
        if words.len() < needed {
            *words = nabla_core::memory::filled(needed, 0, "a copy of C to time GEMM providers on")?;
        }
        const { assert!(align_of::<E>() <= align_of::<u64>()) };
        // SAFETY: the words hold at least `len` elements of `E` (sized above), aligned for `E`
        // (asserted), and any bit pattern is a valid float; the lock is held meanwhile.
        let scratch = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<E>(), len) };
        scratch.copy_from_slice(&c[..len]);
        let providers = [GemmProvider::OpenBlas, GemmProvider::Native];
        let mut time = |provider| -> Result<f64> {
            let start = Instant::now();
            run(provider, scratch)?;
            Ok(start.elapsed().as_secs_f64())
        };
        // The warm-up runs; repeated (best of two more each, alternating) unless one was long.
        let mut best = [time(providers[0])?, time(providers[1])?];
        if best.iter().all(|&t| t <= LONG_RUN) {
            best = [f64::INFINITY; 2];
            for _ in 0..2 {
                for (best, &provider) in best.iter_mut().zip(&providers) {
                    *best = best.min(time(provider)?);
                }
            }
        }
        let native = best[1] < NATIVE_MARGIN * best[0];
        let provider = if native { GemmProvider::Native } else { GemmProvider::OpenBlas };
        Ok(GemmChoice { key, provider, seconds: Some((best[0], best[1])) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nabla_core::Trans;

    /// A key no backend of the test process uses (its thread count).
    fn key(m: usize) -> GemmKey {
        let shape = Gemm { ta: Trans::No, tb: Trans::Yes, m, n: 64, k: 64 };
        GemmKey { shape, beta_zero: true, dtype: DType::F32, threads: 1001 }
    }

    #[test]
    fn auto_keeps_the_faster_provider_per_shape_and_times_each_shape_once() {
        let chooser = Chooser::new(GemmProvider::Auto);
        let c = vec![0.0_f32; 64 * 64];
        let mut runs = Vec::new();
        // Native is slow on shape 1, OpenBLAS on shape 2.
        let run_on = |slow: GemmProvider| {
            move |p: GemmProvider, _: &mut [f32]| {
                if p == slow {
                    std::thread::sleep(std::time::Duration::from_millis(3));
                }
                Ok(())
            }
        };
        assert_eq!(chooser.provider(key(1), &c, run_on(GemmProvider::Native)).unwrap(), GemmProvider::OpenBlas);
        assert_eq!(chooser.provider(key(2), &c, run_on(GemmProvider::OpenBlas)).unwrap(), GemmProvider::Native);
        // Recorded: no further runs.
        let counted = chooser.provider(key(1), &c, |p, _: &mut [f32]| {
            runs.push(p);
            Ok(())
        });
        assert_eq!(counted.unwrap(), GemmProvider::OpenBlas);
        assert!(runs.is_empty());
        let choices = chooser.choices();
        assert_eq!(choices.len(), 2);
        let (openblas, native) = choices[0].seconds.unwrap();
        assert!(native > openblas && native >= 0.003, "{choices:?}");
        // Another auto backend of the process takes the recorded choices, untimed.
        let other = Chooser::new(GemmProvider::Auto);
        let untimed = |_: GemmProvider, _: &mut [f32]| panic!("a shape the process has timed is not timed again");
        assert_eq!(other.provider(key(2), &c, untimed).unwrap(), GemmProvider::Native);
        assert_eq!(other.choices(), [choices[1]]);
    }

    #[test]
    fn a_forced_provider_is_recorded_without_timing() {
        let chooser = Chooser::new(GemmProvider::Native);
        let c = vec![0.0_f64; 64];
        let got = chooser.provider(key(1), &c, |_, _: &mut [f64]| panic!("a forced provider is not timed")).unwrap();
        assert_eq!(got, GemmProvider::Native);
        assert_eq!(chooser.choices()[0].seconds, None);
    }
}
