//! Plain-Rust kernels on host slices: the reference backend is made of these, and the CPU
//! backends reuse every one they do not replace with something faster. Each kernel validates
//! its operand sizes first (see [`crate::check`]).

use crate::activation::{Activation, softmax_row, softmax_row_grad};
use crate::backend::{Dims, Gemm, Trans};
use crate::check;
use crate::dropout;
use crate::element::Element;
use crate::error::Result;
use crate::loss::Loss;
use crate::update::{Rule, Update};

/// `C ← α·op(A)·op(B) + β·C` by the definition `c_ij = Σ_p a_ip b_pj`. With `β = 0` the old
/// contents of `C` are ignored (as in BLAS), so a NaN there does not leak into the result.
pub fn gemm<E: Element>(s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) -> Result<()> {
    check::gemm(&s, a.len(), b.len(), c.len())?;
    let Gemm { ta, tb, m, n, k } = s;
    let a_at = |i: usize, p: usize| {
        if ta == Trans::No { a[i * k + p] } else { a[p * m + i] }
    };
    let b_at = |p: usize, j: usize| {
        if tb == Trans::No { b[p * n + j] } else { b[j * k + p] }
    };
    for i in 0..m {
        for j in 0..n {
            let dot: E = (0..k).map(|p| a_at(i, p) * b_at(p, j)).sum();
            let old = if beta == E::zero() { E::zero() } else { beta * c[i * n + j] };
            c[i * n + j] = alpha * dot + old;
        }
    }
    Ok(())
}

/// `y ← x ⊙ y`.
pub fn hadamard<E: Element>(len: usize, x: &[E], y: &mut [E]) -> Result<()> {
    check::elementwise("hadamard", len, &[("x", x.len()), ("y", y.len())])?;
    y[..len].iter_mut().zip(&x[..len]).for_each(|(y, &x)| *y = x * *y);
    Ok(())
}

/// `z[r, c] ← z[r, c] + b[c]`.
pub fn bias_add<E: Element>(d: Dims, bias: &[E], z: &mut [E]) -> Result<()> {
    check::bias("bias_add", d, bias.len())?;
    check::matrices("bias_add", d, &[("z", z.len())])?;
    if d.is_empty() {
        return Ok(());
    }
    for row in z[..d.len()].chunks_exact_mut(d.cols) {
        row.iter_mut().zip(bias).for_each(|(z, &b)| *z = *z + b);
    }
    Ok(())
}

/// `a ← σ(z)`, row by row for softmax.
pub fn activate<E: Element>(f: Activation, d: Dims, z: &[E], a: &mut [E]) -> Result<()> {
    check::matrices("activate", d, &[("z", z.len()), ("a", a.len())])?;
    if d.is_empty() {
        return Ok(());
    }
    let (z, a) = (&z[..d.len()], &mut a[..d.len()]);
    if f.is_row_wise() {
        z.chunks_exact(d.cols).zip(a.chunks_exact_mut(d.cols)).for_each(|(z, a)| softmax_row(z, a));
    } else {
        a.iter_mut().zip(z).for_each(|(a, &z)| *a = f.apply(z));
    }
    Ok(())
}

/// `δ ← δ ⊙ σ'(z)`, or the softmax Jacobian product row by row.
pub fn activate_grad<E: Element>(f: Activation, d: Dims, z: &[E], a: &[E], delta: &mut [E]) -> Result<()> {
    check::matrices("activate_grad", d, &[("z", z.len()), ("a", a.len()), ("delta", delta.len())])?;
    if d.is_empty() {
        return Ok(());
    }
    let (z, a, delta) = (&z[..d.len()], &a[..d.len()], &mut delta[..d.len()]);
    if f.is_row_wise() {
        a.chunks_exact(d.cols).zip(delta.chunks_exact_mut(d.cols)).for_each(|(a, delta)| softmax_row_grad(a, delta));
    } else {
        for ((delta, &z), &a) in delta.iter_mut().zip(z).zip(a) {
            *delta = *delta * f.derivative(z, a);
        }
    }
    Ok(())
}

/// `out[c] ← α Σ_r x[r, c] + β out[c]` (the old `out` ignored when `β = 0`).
pub fn sum_rows<E: Element>(d: Dims, alpha: E, x: &[E], beta: E, out: &mut [E]) -> Result<()> {
    check::matrices("sum_rows", d, &[("x", x.len())])?;
    check::bias("sum_rows", d, out.len())?;
    for (c, o) in out[..d.cols].iter_mut().enumerate() {
        let sum: E = (0..d.rows).map(|r| x[r * d.cols + c]).sum();
        let old = if beta == E::zero() { E::zero() } else { beta * *o };
        *o = alpha * sum + old;
    }
    Ok(())
}

/// The index of the first largest value.
fn argmax<E: Element>(row: &[E]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}

/// The loss of one row: returns `(Σ loss terms, correct predictions)` and writes the row's
/// output error scaled by `scale` (see [`crate::loss`] for the formulas).
fn loss_row<E: Element>(l: Loss, o: &[E], y: &[E], g: &mut [E], scale: E) -> (E, usize) {
    let (zero, half) = (E::zero(), E::of(0.5));
    let mut total = zero;
    match l {
        Loss::Mse => {
            for ((g, &o), &y) in g.iter_mut().zip(o).zip(y) {
                let r = o - y;
                total = total + r * r;
                *g = (r + r) * scale;
            }
        }
        Loss::Mae => {
            for ((g, &o), &y) in g.iter_mut().zip(o).zip(y) {
                let r = o - y;
                total = total + r.abs();
                *g = if r > zero {
                    scale
                } else if r < zero {
                    -scale
                } else {
                    zero
                };
            }
        }
        Loss::Huber { delta } => {
            let delta = E::of(delta);
            for ((g, &o), &y) in g.iter_mut().zip(o).zip(y) {
                let r = o - y;
                total = total + if r.abs() <= delta { half * r * r } else { delta * (r.abs() - half * delta) };
                *g = r.max(-delta).min(delta) * scale;
            }
        }
        Loss::Bce => {
            let mut correct = 0;
            for ((g, &z), &y) in g.iter_mut().zip(o).zip(y) {
                total = total + z.max(zero) - z * y + (-z.abs()).exp().ln_1p();
                *g = (crate::activation::sigmoid(z) - y) * scale;
                correct += usize::from((z > zero) == (y > half));
            }
            return (total, correct);
        }
        Loss::SoftmaxCe => {
            let max = o.iter().copied().fold(E::neg_infinity(), E::max);
            let lse = max + o.iter().map(|&z| (z - max).exp()).sum::<E>().ln();
            let ysum: E = y.iter().copied().sum();
            for ((g, &z), &y) in g.iter_mut().zip(o).zip(y) {
                total = total + y * (lse - z);
                *g = ((z - lse).exp() * ysum - y) * scale;
            }
        }
    }
    let correct = if o.len() == 1 { (o[0] > half) == (y[0] > half) } else { argmax(o) == argmax(y) };
    (total, usize::from(correct))
}

/// Loss value, correct count and output error of a batch (see [`crate::Backend::loss`]).
pub fn loss<E: Element>(l: Loss, d: Dims, out: &[E], target: &[E], grad: &mut [E], stats: &mut [E]) -> Result<()> {
    check::matrices("loss", d, &[("output", out.len()), ("target", target.len()), ("grad", grad.len())])?;
    check::stats(stats.len())?;
    let per_element = !matches!(l, Loss::SoftmaxCe);
    let norm = if per_element { d.len() } else { d.rows }.max(1);
    let scale = E::one() / E::of(norm as f64);
    let (mut total, mut correct) = (E::zero(), 0usize);
    if d.cols > 0 {
        let rows = out[..d.len()]
            .chunks_exact(d.cols)
            .zip(target[..d.len()].chunks_exact(d.cols))
            .zip(grad[..d.len()].chunks_exact_mut(d.cols));
        for ((o, y), g) in rows {
            let (t, c) = loss_row(l, o, y, g, scale);
            total = total + t;
            correct += c;
        }
    }
    stats[0] = total * scale;
    stats[1] = E::of(correct as f64);
    Ok(())
}

/// One optimizer step over a whole tensor (see [`crate::update::Rule`] for the formulas).
/// `#[inline(always)]` so that a backend can compile it for wider vector units (nabla-openblas).
#[inline(always)]
pub fn update<E: Element>(u: &Update, w: &mut [E], g: &[E], s0: &mut [E], s1: &mut [E]) {
    let lr = E::of(u.lr);
    let l2 = E::of(u.l2);
    let shrink = E::one() - E::of(u.lr * u.decay);
    let one = E::one();
    // The regularised gradient `g + λ₂ w`, after decoupled decay has shrunk `w`.
    let prepare = |w: &mut E, g: E| -> E {
        if u.decay != 0.0 {
            *w = *w * shrink;
        }
        if u.l2 != 0.0 { g + l2 * *w } else { g }
    };
    match u.rule {
        Rule::Sgd => w.iter_mut().zip(g).for_each(|(w, &g)| {
            let g = prepare(w, g);
            *w = *w - lr * g;
        }),
        Rule::Momentum { mu, nesterov } => {
            let mu = E::of(mu);
            for ((w, &g), v) in w.iter_mut().zip(g).zip(s0.iter_mut()) {
                let g = prepare(w, g);
                *v = mu * *v + g;
                *w = *w - lr * if nesterov { g + mu * *v } else { *v };
            }
        }
        Rule::Adagrad { eps } => {
            let eps = E::of(eps);
            for ((w, &g), s) in w.iter_mut().zip(g).zip(s0.iter_mut()) {
                let g = prepare(w, g);
                *s = *s + g * g;
                *w = *w - lr * g / (s.sqrt() + eps);
            }
        }
        Rule::RmsProp { rho, eps } => {
            let (rho, eps) = (E::of(rho), E::of(eps));
            for ((w, &g), s) in w.iter_mut().zip(g).zip(s0.iter_mut()) {
                let g = prepare(w, g);
                *s = rho * *s + (one - rho) * g * g;
                *w = *w - lr * g / (s.sqrt() + eps);
            }
        }
        Rule::Adam { beta1, beta2, eps } => {
            let (c1, c2) = u.adam_corrections();
            let (b1, b2, eps) = (E::of(beta1), E::of(beta2), E::of(eps));
            let (step, c2) = (E::of(u.lr / c1), E::of(c2));
            for (((w, &g), m), v) in w.iter_mut().zip(g).zip(s0.iter_mut()).zip(s1.iter_mut()) {
                let g = prepare(w, g);
                *m = b1 * *m + (one - b1) * g;
                *v = b2 * *v + (one - b2) * g * g;
                *w = *w - step * *m / ((*v / c2).sqrt() + eps);
            }
        }
        Rule::Rprop { eta_minus, eta_plus, step_min, step_max } => {
            let (em, ep) = (E::of(eta_minus), E::of(eta_plus));
            let (lo, hi) = (E::of(step_min), E::of(step_max));
            for (((w, &g), prev), step) in w.iter_mut().zip(g).zip(s0.iter_mut()).zip(s1.iter_mut()) {
                let g = prepare(w, g);
                let trend = *prev * g;
                if trend < E::zero() {
                    *step = (*step * em).max(lo);
                    *prev = E::zero();
                } else {
                    if trend > E::zero() {
                        *step = (*step * ep).min(hi);
                    }
                    *w = *w - sign(g) * *step;
                    *prev = g;
                }
            }
        }
    }
}

/// `sign(x)` with `sign(0) = 0`.
#[inline(always)]
fn sign<E: Element>(x: E) -> E {
    if x > E::zero() {
        E::one()
    } else if x < E::zero() {
        -E::one()
    } else {
        E::zero()
    }
}

/// Checks the operands of an update and runs it on `Vec` buffers (the CPU backends' buffers).
pub fn update_vecs<E: Element>(u: &Update, len: usize, w: &mut [E], g: &[E], state: &mut [&mut Vec<E>]) -> Result<()> {
    check::elementwise("update", len, &[("w", w.len()), ("g", g.len())])?;
    check::state(len, u.rule.state_count(), state.iter().map(|s| s.len()))?;
    let (w, g) = (&mut w[..len], &g[..len]);
    match state {
        [] => update(u, w, g, &mut [], &mut []),
        [s0] => update(u, w, g, &mut s0[..len], &mut []),
        [s0, s1, ..] => update(u, w, g, &mut s0[..len], &mut s1[..len]),
    }
    Ok(())
}

/// `mask[i] ← keep(seed, first + i) ? 1/(1 − rate) : 0`.
pub fn dropout_mask<E: Element>(len: usize, rate: f64, seed: u64, first: u64, mask: &mut [E]) -> Result<()> {
    check::elementwise("dropout_mask", len, &[("mask", mask.len())])?;
    let t = dropout::threshold(rate);
    let kept = E::of(1.0 / (1.0 - rate));
    for (i, m) in mask[..len].iter_mut().enumerate() {
        *m = if dropout::keep(seed, first.wrapping_add(i as u64), t) { kept } else { E::zero() };
    }
    Ok(())
}
