//! The dropout mask's random numbers: a counter-based hash, so that the mask of element `i`
//! depends only on `(seed, i)` and every backend (CPU, CUDA, C plugins) draws the same mask.

/// SplitMix64's finaliser: a bijective 64-bit mix with good avalanche.
#[inline(always)]
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The 53-bit threshold below which an element is dropped: `⌊rate · 2⁵³⌋`.
#[inline(always)]
pub fn threshold(rate: f64) -> u64 {
    (rate.clamp(0.0, 1.0) * (1u64 << 53) as f64) as u64
}

/// Whether element `i` is kept: `mix64(seed ⊕ mix64(i)) >> 11 ≥ threshold(rate)`, i.e. with
/// probability `1 − rate`.
#[inline(always)]
pub fn keep(seed: u64, i: u64, threshold: u64) -> bool {
    (mix64(seed ^ mix64(i)) >> 11) >= threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_expected_fraction() {
        let t = threshold(0.3);
        let kept = (0..100_000u64).filter(|&i| keep(42, i, t)).count();
        assert!((kept as f64 / 100_000.0 - 0.7).abs() < 0.01, "{kept}");
        assert_eq!((0..1000u64).filter(|&i| keep(1, i, threshold(0.0))).count(), 1000);
    }

    #[test]
    fn known_value() {
        // Pinned so that the CUDA and C implementations can be checked against it.
        assert_eq!(mix64(0), 0xE220_A839_7B1D_CDAF);
    }
}
