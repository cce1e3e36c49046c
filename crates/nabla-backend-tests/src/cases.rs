//! The data every check draws from: seeded random operands on sizes 1, odd and large, every
//! update rule with and without regularisation, and the tolerances.

use nabla_core::backend::Backend;
use nabla_core::{DType, Element, Result, Rule, Update};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The sizes every shape is drawn from (1 and odd sizes on purpose).
pub const SIZES: [usize; 5] = [1, 3, 17, 64, 129];

/// Every update rule, with L2 and decoupled decay switched on for some.
pub fn updates() -> Vec<Update> {
    let u = |rule, lr, t, l2, decay| Update { rule, lr, t, l2, decay };
    let mut all: Vec<Update> = Rule::ALL.iter().map(|&rule| u(rule, 0.01, 3, 0.0, 0.0)).collect();
    all.push(u(Rule::Sgd, 0.1, 1, 0.01, 0.0));
    all.push(u(Rule::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 }, 0.003, 3, 0.0, 0.01));
    all
}

/// What an update is called in the report: its rule's code name, with `+l2`/`+decay`.
pub fn update_name(u: &Update) -> String {
    let mut name = u.rule.code_name().to_ascii_lowercase();
    if u.l2 != 0.0 {
        name.push_str("+l2");
    }
    if u.decay != 0.0 {
        name.push_str("+decay");
    }
    name
}

/// `n` values uniform in `[lo, hi]`, as `E`.
pub fn random<E: Element>(rng: &mut ChaCha8Rng, n: usize, lo: f64, hi: f64) -> Vec<E> {
    (0..n).map(|_| E::of(rng.random_range(lo..=hi))).collect()
}

/// A random size from [`SIZES`].
pub fn size(rng: &mut ChaCha8Rng) -> usize {
    SIZES[rng.random_range(0..SIZES.len())]
}

/// The tolerance for `E`: 1e-4 in f32, 1e-10 in f64 (relative to the largest reference value).
pub fn tol<E: Element>() -> f64 {
    if E::DTYPE == DType::F32 { 1e-4 } else { 1e-10 }
}

/// Uploads `host` to `b`.
pub fn up<E: Element, B: Backend<E>>(b: &B, host: &[E]) -> Result<B::Buf> {
    b.upload(host)
}

/// Downloads the first `n` elements of `buf` from `b`.
pub fn down<E: Element, B: Backend<E>>(b: &B, buf: &B::Buf, n: usize) -> Result<Vec<E>> {
    let mut out = vec![E::zero(); n];
    b.download(buf, &mut out)?;
    Ok(out)
}
