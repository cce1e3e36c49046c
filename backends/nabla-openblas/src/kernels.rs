//! Fused element-wise kernels, specialised per activation so that each loop is branch-free and
//! vectorises (the shared `nabla_core::cpu` kernels decide the activation per element).
//! Operand sizes are checked by the caller.

use std::ops::Range;

use nabla_core::{Activation, Dims, Element, Update, cpu};

use crate::simd::{LANES, multiversion};

multiversion!(
    /// `z ← z ⊕ b`, `a ← σ(z)` in one pass (element-wise activations).
    pub fn bias_add_activate<E: Element>(f: Activation, d: Dims, bias: &[E], z: &mut [E], a: &mut [E]) => fused bias_add_activate_body
);

#[inline(always)]
fn bias_add_activate_body<E: Element, const FMA: bool>(f: Activation, d: Dims, bias: &[E], z: &mut [E], a: &mut [E]) {
    let rows = z[..d.len()].chunks_exact_mut(d.cols).zip(a[..d.len()].chunks_exact_mut(d.cols));
    let bias = &bias[..d.cols];
    // Each row in whole vectors of LANES, then its tail.
    macro_rules! each {
        (|$v:ident| $e:expr) => {
            for (z, a) in rows {
                let (mut zs, mut as_, mut bs) =
                    (z.chunks_exact_mut(LANES), a.chunks_exact_mut(LANES), bias.chunks_exact(LANES));
                for ((z, a), b) in (&mut zs).zip(&mut as_).zip(&mut bs) {
                    for l in 0..LANES {
                        let $v = z[l] + b[l];
                        z[l] = $v;
                        a[l] = $e;
                    }
                }
                let tail = zs.into_remainder().iter_mut().zip(as_.into_remainder()).zip(bs.remainder());
                for ((z, a), &b) in tail {
                    let $v = *z + b;
                    *z = $v;
                    *a = $e;
                }
            }
        };
    }
    let zero = E::zero();
    match f {
        Activation::Identity => each!(|v| v),
        Activation::Relu => each!(|v| if v < zero { zero } else { v }),
        Activation::LeakyRelu { alpha } => {
            let alpha = E::of(alpha);
            each!(|v| if v < zero { alpha * v } else { v })
        }
        Activation::Sigmoid => each!(|v| v.sigmoid_fast::<FMA>()),
        _ => each!(|v| f.apply(v)),
    }
}

multiversion!(
    /// `δ ← δ ⊙ σ'(z)` (element-wise activations), over slices of equal length.
    pub fn activate_grad<E: Element>(f: Activation, z: &[E], a: &[E], delta: &mut [E]) => activate_grad_body
);

#[inline(always)]
fn activate_grad_body<E: Element>(f: Activation, z: &[E], a: &[E], delta: &mut [E]) {
    let (zero, one) = (E::zero(), E::one());
    match f {
        Activation::Identity => {}
        Activation::Relu => delta.iter_mut().zip(z).for_each(|(d, &z)| *d = if z > zero { *d } else { zero }),
        Activation::LeakyRelu { alpha } => {
            let alpha = E::of(alpha);
            delta.iter_mut().zip(z).for_each(|(d, &z)| *d = if z > zero { *d } else { alpha * *d });
        }
        Activation::Sigmoid => delta.iter_mut().zip(a).for_each(|(d, &a)| *d = *d * (a * (one - a))),
        Activation::Tanh => delta.iter_mut().zip(a).for_each(|(d, &a)| *d = *d * (one - a * a)),
        _ => delta.iter_mut().zip(z).zip(a).for_each(|((d, &z), &a)| *d = *d * f.derivative(z, a)),
    }
}

multiversion!(
    /// `out[c] ← α Σ_r x[r, c] + β out[c]` for the columns `c` in `cols` (`out` holds just those).
    pub fn sum_rows<E: Element>(d: Dims, cols: Range<usize>, alpha: E, x: &[E], beta: E, out: &mut [E]) => sum_rows_body
);

#[inline(always)]
fn sum_rows_body<E: Element>(d: Dims, cols: Range<usize>, alpha: E, x: &[E], beta: E, out: &mut [E]) {
    let out = &mut out[..cols.len()];
    if beta == E::zero() {
        out.fill(E::zero());
    } else if beta != E::one() {
        out.iter_mut().for_each(|o| *o = beta * *o);
    }
    // A vector of LANES columns at a time, its sums kept in registers down all the rows.
    let rows = x[..d.len()].chunks_exact(d.cols);
    for (block, out) in out.chunks_mut(LANES).enumerate() {
        let first = cols.start + block * LANES;
        let mut sums = [E::zero(); LANES];
        if out.len() == LANES {
            for row in rows.clone() {
                let x = &row[first..][..LANES];
                for l in 0..LANES {
                    sums[l] = sums[l] + x[l];
                }
            }
        } else {
            // A column at a time (a vector loop here would be compiled with masked loads and
            // stores, which stall on every row).
            for (l, sum) in sums[..out.len()].iter_mut().enumerate() {
                *sum = rows.clone().fold(E::zero(), |s, row| s + row[first + l]);
            }
        }
        out.iter_mut().zip(sums).for_each(|(o, s)| *o = *o + alpha * s);
    }
}

multiversion!(
    /// One optimizer step over slices of equal length (`nabla_core::cpu::update`), compiled for
    /// the CPU's vector width.
    pub fn update<E: Element>(u: &Update, w: &mut [E], g: &[E], s0: &mut [E], s1: &mut [E]) => update_body
);

#[inline(always)]
fn update_body<E: Element>(u: &Update, w: &mut [E], g: &[E], s0: &mut [E], s1: &mut [E]) {
    cpu::update(u, w, g, s0, s1)
}

multiversion!(
    /// Binary cross-entropy on logits and its output error (see `nabla_core::loss`):
    /// `C = 1/(nk) Σ max(z,0) − zy + ln(1 + e^−│z│)`, `δ = (sigmoid(z) − y)/(nk)`; returns
    /// `(C, correct)`. Samples go [`LANES`] side by side, each lane summing its terms and
    /// multiplying its factors `1 + e^−│z│ ∈ (1, 2]`; the factors of two vectors (16 samples, a
    /// product of at most 2¹⁶, exact to a few ulp) then take one `ln`, so a batch needs a handful
    /// of `ln` calls, not one per sample.
    pub fn bce<E: Element>(z: &[E], y: &[E], grad: &mut [E]) -> (E, usize) => fused bce_body
);

#[inline(always)]
fn bce_body<E: Element, const FMA: bool>(z: &[E], y: &[E], grad: &mut [E]) -> (E, usize) {
    let n = z.len().min(y.len()).min(grad.len());
    let scale = E::one() / E::of(n.max(1) as f64);
    let (zero, half, one) = (E::zero(), E::of(0.5), E::one());
    // One sample: its factor 1 + e^−│z│, its linear term max(z,0) − zy, its δ, and whether the
    // logit's sign agrees with the target. sigmoid(z) comes from the same exponential: 1/(1+e)
    // for z ≥ 0, e/(1+e) otherwise.
    let sample = |z: E, y: E| {
        let e = (-z.abs()).exp_fast::<FMA>();
        let s = if z >= zero { one / (one + e) } else { e / (one + e) };
        (one + e, z.max(zero) - z * y, (s - y) * scale, usize::from((z > zero) == (y > half)))
    };
    let (mut linear, mut products, mut hits) = ([zero; LANES], [one; LANES], [0usize; LANES]);
    let mut logs = zero;
    let vectors = z[..n].chunks_exact(LANES).zip(y[..n].chunks_exact(LANES)).zip(grad[..n].chunks_exact_mut(LANES));
    for (v, ((z, y), g)) in vectors.enumerate() {
        for l in 0..LANES {
            let (factor, term, delta, hit) = sample(z[l], y[l]);
            products[l] = products[l] * factor;
            linear[l] = linear[l] + term;
            g[l] = delta;
            hits[l] += hit;
        }
        if v % 2 == 1 {
            logs = logs + products.iter().fold(one, |p, &f| p * f).ln();
            products = [one; LANES];
        }
    }
    let tail = n - n % LANES;
    let mut product = products.iter().fold(one, |p, &f| p * f);
    let mut linear = linear.iter().fold(zero, |s, &t| s + t);
    let mut correct: usize = hits.iter().sum();
    for ((&z, &y), g) in z[tail..n].iter().zip(&y[tail..n]).zip(&mut grad[tail..n]) {
        let (factor, term, delta, hit) = sample(z, y);
        product = product * factor;
        linear = linear + term;
        *g = delta;
        correct += hit;
    }
    ((linear + logs + product.ln()) * scale, correct)
}
